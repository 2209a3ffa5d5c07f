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


def run_checkov(checkov: Path, manifest: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [str(checkov), "--compact", "--output", "json", "--framework", "kubernetes",
         "--skip-download", "--file", str(manifest)],
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
