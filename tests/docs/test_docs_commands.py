"""The manual's promises, checked: the README's first two commands, and every command the README and the docs/
pages tell a reader to run.

Each command is either run here (against the real control plane or the real CPU vLLM) or mapped, in RUN_BY, to
the test that runs it; a new command in the manual fails `test_every_command_of_the_manual_is_run_by_a_test`
until it gets one. kind and docker cannot run on the test machines; what they consume is checked elsewhere
(kind-config.yaml against kind's schema in tests/helm/test_kind_config.py, the Dockerfiles by hadolint in
tests/helm/test_images.py and tests/ui/test_ui_dockerfile.py).
"""

from __future__ import annotations

import json
import re
import shlex
import time

import pytest
import requests

from tests.docs.manual import README, REPO, all_commands, blocks, commands, page, pages

# Where each command the manual gives is run, by its first words (the longest prefix that matches wins).
RUN_BY = {
    "make local": "test_the_readme_starts_with_the_run_and_test_commands (the Makefile target); "
                  "tests/integration/test_local_mode.py runs rerank-local",
    "make test": "test_the_readme_starts_with_the_run_and_test_commands (.ci/run calls it)",
    "kind create cluster": "tests/helm/test_kind_config.py (kind-config.yaml against kind's schema)",
    "helm install": "test_helm_installs_and_explain_work_against_a_real_api_server; tests/node/test_node_helm_readme.py",
    "helm test": "tests/node/test_node_helm_readme.py",
    "helm package": "tests/fixtures/registry.py (pushed_chart)",
    "helm registry login": "tests/fixtures/registry.py (pushed_chart)",
    "helm push": "tests/fixtures/registry.py (pushed_chart)",
    "helm show crds": "tests/release/test_chart_upgrade.py (the CRD applied server-side before the upgrade)",
    "helm upgrade": "tests/release/test_chart_upgrade.py",
    "kubectl -n rerank-system wait": "tests/node/test_node_helm_readme.py",
    "kubectl -n rerank-system port-forward": "tests/node/test_node_local_mode.py (local mode on a real node "
                                             "reaches the Service through kubectl port-forward)",
    "kubectl -n rerank-system get rrd": "test_troubleshooting_commands_run_against_a_real_api_server",
    "kubectl -n rerank-system describe rrd": "test_troubleshooting_commands_run_against_a_real_api_server",
    "curl": "test_rerank_requests_of_the_manual_are_served_by_the_real_engine",
}


def run_by(command: str) -> str | None:
    words = shlex.split(command, comments=True)
    for length in range(len(words), 0, -1):
        if " ".join(words[:length]) in RUN_BY:
            return RUN_BY[" ".join(words[:length])]
    return None


def curl_bodies() -> list[dict]:
    """The request bodies of the manual's curl commands, each once (the quick start is on two pages)."""
    bodies: dict[str, dict] = {}
    for _, command in all_commands():
        words = shlex.split(command, comments=True)
        if words and words[0] == "curl" and "-d" in words:
            body = json.loads(words[words.index("-d") + 1])
            bodies[json.dumps(body, sort_keys=True)] = body
    return list(bodies.values())


def test_the_readme_starts_with_the_run_and_test_commands_and_ci_runs_the_test_command():
    readme = README.read_text()
    first_block = re.findall(r"```bash\n(.*?)```", readme, flags=re.S)[0]
    first_two = [shlex.split(line, comments=True) for line in first_block.splitlines() if line.strip()][:2]
    assert first_two == [["make", "local"], ["make", "test"]]
    ci = (REPO / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, flags=re.M), ".ci/run must call the README's test command"
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^local:", makefile, flags=re.M) and re.search(r"^test:", makefile, flags=re.M)
    assert "rerank-local" in makefile


@pytest.mark.parametrize("where, command", all_commands(), ids=lambda v: v[:60])
def test_every_command_of_the_manual_is_run_by_a_test(where, command):
    """A new command in the manual must be run by a test: here, or one named in RUN_BY."""
    assert run_by(command), f"{where}: no test runs {command!r}; run it in a test and map it in RUN_BY"


def test_the_tests_named_for_the_commands_exist():
    for runner in RUN_BY.values():
        for path in re.findall(r"tests/[\w/]+\.py", runner):
            assert (REPO / path).exists(), path
        for name in re.findall(r"\btest_\w+", runner):
            if not name.endswith(".py"):
                assert name in (REPO / "tests/docs/test_docs_commands.py").read_text(), name


@pytest.mark.parametrize("body", curl_bodies(), ids=lambda b: b["query"][:30])
def test_rerank_requests_of_the_manual_are_served_by_the_real_engine(body, rerank_engine):
    request = dict(body, model=rerank_engine.model)  # the manual names real Qwen3 models; tests serve a tiny one
    response = requests.post(f"{rerank_engine.base_url}/v1/rerank", json=request, timeout=60)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert len(results) == min(body.get("top_n", len(body["documents"])), len(body["documents"]))
    scores = [r["relevance_score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    assert {r["index"] for r in results} <= set(range(len(body["documents"])))


def test_helm_installs_and_explain_work_against_a_real_api_server(control_plane, oci_registry, pushed_chart):
    # A real `helm install` installs crds/ before the templates; a dry run does not, so do that part first.
    control_plane.kubectl("apply", "--server-side", "-f", str(REPO / "charts/rerank-operator/crds"))
    control_plane.wait_crds_established("rerankerdeployments.rerank.io")
    helm_installs = sorted({c for _, c in all_commands() if c.startswith("helm install")})
    assert helm_installs, "the manual should show helm install"
    for command in helm_installs:
        args = shlex.split(command)[1:]
        # The chart path is relative to the repository; a server-side dry run validates every rendered object
        # against the API server's schemas (and the CRD's) and leaves nothing behind.
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


def test_troubleshooting_commands_run_against_a_real_api_server(control_plane):
    """The first commands of the troubleshooting page, as written, on the chart's sample with a status like the
    operator's."""
    control_plane.kubectl("apply", "--server-side", "-f", str(REPO / "charts/rerank-operator/crds"))
    control_plane.wait_crds_established("rerankerdeployments.rerank.io")
    control_plane.kubectl("create", "namespace", "rerank-system", check=False)
    control_plane.kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "rerank.io/v1alpha1", "kind": "RerankerDeployment",
        "metadata": {"name": "qwen3-reranker", "namespace": "rerank-system"}, "spec": {}}))
    try:
        condition = {"type": "Degraded", "status": "True", "reason": "InsufficientGPUs",
                     "message": "no node has 1 GPU", "lastTransitionTime": "2026-01-01T00:00:00Z"}
        control_plane.kubectl("-n", "rerank-system", "patch", "rrd", "qwen3-reranker", "--subresource=status",
                              "--type=merge", "-p", json.dumps({"status": {"conditions": [condition]}}))
        ran = [c for c in commands(page("troubleshooting.md")) if c.startswith("kubectl")]
        assert len(ran) == 2
        for command in ran:
            result = control_plane.kubectl(*shlex.split(command)[1:], check=False)
            assert result.returncode == 0, result.stderr
        printed = control_plane.kubectl(*shlex.split(ran[0])[1:]).stdout
    finally:
        # The control plane is the session's: the chart's own install of the sample (tests/helm) comes later.
        control_plane.kubectl("-n", "rerank-system", "delete", "rrd", "qwen3-reranker", "--wait=true")
    assert "Degraded=True InsufficientGPUs: no node has 1 GPU" in printed


def test_the_admission_page_lists_exactly_the_owned_engine_flags():
    from rerank_operator.api.v1alpha1 import MANAGED_ENGINE_FLAGS

    listed = page("reference/admission.md").split("Owned:", 1)[1].split("(the ones", 1)[0]
    assert re.findall(r"`(-[-a-z]+)`", listed) == list(MANAGED_ENGINE_FLAGS)


def test_the_client_snippets_are_pointed_at_the_tests_gateway():
    """tests/gateway/test_gateway_engine.py runs each snippet of the rerank API guide against the gateway in front
    of the real CPU vLLM; here, that each is found and rewritten to that gateway and its model's names."""
    from tests.docs.manual import SNIPPET_MODEL, SNIPPET_SHORT_NAME, SNIPPET_URL, client_snippets

    snippets = client_snippets("http://127.0.0.1:1234", "/models/tiny-Qwen3-Reranker-4B", "tiny")
    assert sorted(snippets) == ["cohere", "langchain_cohere", "litellm"]
    for client, code in snippets.items():
        compile(code, client, "exec")
        assert "http://127.0.0.1:1234" in code and SNIPPET_URL not in code
        assert SNIPPET_MODEL not in code.replace("/models/tiny-Qwen3-Reranker-4B", "")
        assert f'"{SNIPPET_SHORT_NAME}"' not in code
    assert 'model="tiny"' in snippets["cohere"]
    assert 'model="cohere//models/tiny-Qwen3-Reranker-4B"' in snippets["litellm"]
    python_pages = {name for name, text in pages().items() if blocks(text, "python")}
    assert python_pages == {"docs/guides/rerank-api.md"}, "a new Python snippet needs a test that runs it"
