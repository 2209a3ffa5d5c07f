"""The README's promises, checked: its first two commands, and the commands of its walkthroughs.

kind and docker cannot run on the test machines; what they consume is checked elsewhere
(kind-config.yaml against kind's schema in tests/helm/test_kind_config.py, the Dockerfiles by hadolint in
tests/helm/test_images.py and tests/ui/test_ui_dockerfile.py). Everything else the README tells a user to
run is run here, against the real control plane or the real CPU vLLM.
"""

from __future__ import annotations

import json
import re
import shlex
import time
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()


def bash_blocks() -> list[str]:
    return re.findall(r"```bash\n(.*?)```", README, flags=re.S)


def commands() -> list[str]:
    """Shell commands of the README's bash blocks, with line continuations and multi-line quotes joined."""
    joined = "\n".join(bash_blocks())
    result, buffer = [], ""
    for line in joined.splitlines():
        buffer = f"{buffer}\n{line}" if buffer else line
        try:
            shlex.split(buffer, comments=True)
        except ValueError:  # an open quote: the command goes on on the next line
            continue
        if buffer.strip():
            result.append(buffer.strip())
        buffer = ""
    return result


def curl_bodies() -> list[dict]:
    bodies = []
    for command in commands():
        words = shlex.split(command, comments=True)
        if words and words[0] == "curl" and "-d" in words:
            bodies.append(json.loads(words[words.index("-d") + 1]))
    return bodies


def test_readme_starts_with_the_run_and_test_commands_and_ci_runs_the_test_command():
    first_block = bash_blocks()[0]
    first_two = [shlex.split(line, comments=True) for line in first_block.splitlines() if line.strip()][:2]
    assert first_two == [["make", "local"], ["make", "test"]]
    ci = (REPO / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, flags=re.M), ".ci/run must call the README's test command"
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^local:", makefile, flags=re.M) and re.search(r"^test:", makefile, flags=re.M)
    assert "rerank-local" in makefile


def test_every_readme_command_is_known_to_the_tests():
    """A new command in the README must get a check here (or in the test named in the module docstring)."""
    checked_elsewhere = {"make", "kind", "docker"}
    checked_here = {"helm", "kubectl", "curl"}
    programs = {shlex.split(c, comments=True)[0] for c in commands()}
    assert programs <= checked_elsewhere | checked_here, programs - checked_elsewhere - checked_here


@pytest.mark.parametrize("body", curl_bodies(), ids=lambda b: b["query"][:30])
def test_readme_rerank_requests_are_served_by_the_real_engine(body, rerank_engine):
    request = dict(body, model=rerank_engine.model)  # the README names real Qwen3 models; tests serve a tiny one
    response = requests.post(f"{rerank_engine.base_url}/v1/rerank", json=request, timeout=60)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert len(results) == min(body.get("top_n", len(body["documents"])), len(body["documents"]))
    scores = [r["relevance_score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    assert {r["index"] for r in results} <= set(range(len(body["documents"])))


def test_readme_helm_install_and_explain_work_against_a_real_api_server(control_plane, oci_registry, pushed_chart):
    # A real `helm install` installs crds/ before the templates; a dry run does not, so do that part first.
    control_plane.kubectl("apply", "--server-side", "-f", str(REPO / "charts/rerank-operator/crds"))
    control_plane.wait_crds_established("rerankerdeployments.rerank.io")
    helm_installs = [c for c in commands() if c.startswith("helm install")]
    assert helm_installs, "the README should show helm install"
    for command in helm_installs:
        args = shlex.split(command)[1:]
        # The README's chart path is relative to the repository; a server-side dry run validates every
        # rendered object against the API server's schemas (and the CRD's) and leaves nothing behind.
        args = [str(REPO / a) if a.startswith("charts/") else a for a in args]
        # A published chart (GHCR, or "your own registry") comes from the local OCI registry instead, which holds
        # this chart under the same version (tests/release checks the published chart is this one).
        if any(a.startswith("oci://") for a in args):
            args = [pushed_chart if a.startswith("oci://") else a for a in args] + [f"--ca-file={oci_registry.ca_file}"]
        result = control_plane.helm(*args, "--dry-run=server", check=False)
        assert result.returncode == 0, result.stderr
        assert "kind: RerankerDeployment" in result.stdout  # --set sample.enabled=true renders the sample
    # The API server publishes a new CRD's OpenAPI a few seconds after it is Established.
    deadline = time.monotonic() + 60
    while (explained := control_plane.kubectl("explain", "rrd.spec.autoscaling", check=False)).returncode:
        assert time.monotonic() < deadline, explained.stderr
        time.sleep(1)
    assert "targetQueueDepthPerReplica" in explained.stdout


def test_readme_lists_exactly_the_owned_engine_flags():
    from rerank_operator.api.v1alpha1 import MANAGED_ENGINE_FLAGS

    section = README.split("## What the API refuses", 1)[1].split("\n## ", 1)[0]
    listed = section.split("Owned:", 1)[1].split("(the ones", 1)[0]
    assert re.findall(r"`(-[-a-z]+)`", listed) == list(MANAGED_ENGINE_FLAGS)
