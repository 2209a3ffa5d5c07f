"""checkov's Kubernetes policies on the rendered chart: no failed check, and every skip justified inline.

checkov pins older versions of libraries the project also uses (packaging, python-dateutil, networkx...), so
it lives in its own virtualenv: $RERANK_CHECKOV (a checkov executable) if set, else .cache/checkov-venv,
created on first use from PyPI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from .chart import REPO, VALUE_SETS, render

CHECKOV_VERSION = "3.3.30"
CHECKOV_VENV = REPO / ".cache" / "checkov-venv"


@pytest.fixture(scope="module")
def checkov() -> Path:
    if os.environ.get("RERANK_CHECKOV"):
        return Path(os.environ["RERANK_CHECKOV"])
    executable = CHECKOV_VENV / "bin" / "checkov"
    stamp = CHECKOV_VENV / f".checkov-{CHECKOV_VERSION}"
    if not stamp.exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(CHECKOV_VENV)], check=True)
        subprocess.run([str(CHECKOV_VENV / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        f"checkov=={CHECKOV_VERSION}"], check=True, timeout=900)
        stamp.touch()
    return executable


def run_checkov(checkov: Path, manifest: Path, skip: list[str] | None = None) -> dict[str, Any]:
    proc = subprocess.run(
        [str(checkov), "--compact", "--output", "json", "--framework", "kubernetes",
         "--skip-download", "--file", str(manifest)] + (["--skip-check", ",".join(skip)] if skip else []),
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"},
    )
    # Exit code 1 means "failed checks"; anything else non-zero is checkov itself failing.
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    report = report[0] if isinstance(report, list) else report
    return report


@pytest.mark.parametrize("value_set", ["defaults", "everything"])
def test_checkov_passes_on_the_rendered_chart(checkov: Path, value_set: str, tmp_path: Path) -> None:
    manifest = tmp_path / f"{value_set}.yaml"
    manifest.write_text(yaml.safe_dump_all(render(VALUE_SETS[value_set])))
    report = run_checkov(checkov, manifest)
    results = report.get("results", {})
    failed = [f"{c['check_id']} {c['check_name']} ({c['resource']})" for c in results.get("failed_checks", [])]
    assert not failed, "checkov failed:\n" + "\n".join(failed)
    assert len(results.get("passed_checks", [])) > 50, "checkov evaluated almost nothing: did it read the file?"
    for skipped in results.get("skipped_checks", []):
        reason = (skipped.get("check_result") or {}).get("suppress_comment", "")
        assert len(reason) > 20, f"{skipped['check_id']} on {skipped['resource']} is skipped without a reason"


# --- the children the operator writes -----------------------------------------------------------

# Checks that do not fit what the operator's children are, each with the reason. Everything else must pass.
CHILDREN_SKIPS = {
    "CKV_K8S_11": "no CPU limit on purpose: a throttled engine answers slowly, while one borrowing idle cores "
                  "harms no one (CPU requests are set, so scheduling and QoS are right)",
    "CKV_K8S_15": "imagePullPolicy IfNotPresent: images are pinned release tags (or digests), and a multi-GB "
                  "vLLM image must not be re-pulled, nor a registry outage stop a pod restart",
    "CKV_K8S_43": "images are the user's choice (spec.engine.image, spec.ui.image, which accept digests); "
                  "the defaults are pinned release tags",
    "CKV_K8S_40": "the engine runs as UID 1000, the user of the project's engine image (the vLLM images have "
                  "no fixed user); non-root is enforced, which is what Pod Security restricted requires",
    "CKV_K8S_35": "the Hugging Face token and UI credentials are read from the environment by vLLM and the UI "
                  "(HF_TOKEN, RERANK_UI_*); they come from a secretKeyRef, never from the spec",
    "CKV2_K8S_6": "the rerank endpoint serves every in-cluster client by design; which clients may reach it is "
                  "the cluster's NetworkPolicy to decide (the chart ships one for the operator itself)",
}


def test_checkov_passes_on_the_rendered_children(checkov: Path, tmp_path: Path) -> None:
    from rerank_operator.api.v1alpha1 import parse_spec
    from rerank_operator.resources import desired_children
    from tests.unit.api.admission_cases import VALID

    documents = []
    for case in VALID:
        body = {"apiVersion": "rerank.io/v1alpha1", "kind": "RerankerDeployment",
                "metadata": {"name": f"c-{case.id}"[:45].rstrip("-"), "namespace": "ml", "uid": "0b3c-uid"},
                "spec": case.spec}
        documents += desired_children(body, parse_spec(body["spec"]), {})
    manifest = tmp_path / "children.yaml"
    manifest.write_text(yaml.safe_dump_all(documents))
    report = run_checkov(checkov, manifest, skip=sorted(CHILDREN_SKIPS))
    results = report.get("results", {})
    failed = [f"{c['check_id']} {c['check_name']} ({c['resource']})" for c in results.get("failed_checks", [])]
    assert not failed, "checkov failed on the operator's children:\n" + "\n".join(failed)
    passed = {c["check_id"] for c in results.get("passed_checks", [])}
    # The pod-security checks ran and passed (non-root, read-only root, no escalation, capabilities, seccomp,
    # no token, requests and limits), so the file was read as Kubernetes objects.
    assert {"CKV_K8S_22", "CKV_K8S_20", "CKV_K8S_23", "CKV_K8S_37", "CKV_K8S_31", "CKV_K8S_38",
            "CKV_K8S_12", "CKV_K8S_13"} <= passed, sorted(passed)
    assert all(len(reason) > 40 for reason in CHILDREN_SKIPS.values())
