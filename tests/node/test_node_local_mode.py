"""`rerank-local --node real` end to end, as a user runs it: it starts (control plane, real node, the
images into containerd, the operator, the sample RerankerDeployment in real containers), prints the endpoint, one
`/v1/rerank` from this host through it answers a float score for every document, and again once the pod its
port-forward picked is gone; Ctrl-C (SIGINT) then tears
everything down and nothing of the node is left: no process, mount, cgroup, interface, route or firewall rule.

The time from the command's start to the first 200 is printed (the warm figure when the node's parts and images
are already built and imported)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from rerank_localdev.local_pod import RUN_ID_ENV
from rerank_localdev.node import binaries as node_binaries
from rerank_localdev.node import host
from tests.fixtures.local_mode import listening, tagged_processes

pytestmark = [pytest.mark.node, pytest.mark.images, pytest.mark.vllm]

CLI = Path(sys.executable).with_name("rerank-local")
DOCUMENTS = ["Paris is the capital of France.", "The quick brown fox.", "Berlin is the capital of Germany."]
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _rerank(url: str) -> tuple[int, dict]:
    body = json.dumps({"model": "rerank-operator/tiny-qwen3-reranker", "query": "What is the capital of France?",
                       "documents": DOCUMENTS}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with _DIRECT.open(request, timeout=120) as response:
        return response.status, json.loads(response.read())


class Output:
    """The command's stdout, read on a thread, so the test can wait for a line while it runs."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            self.lines.append(line)

    @property
    def text(self) -> str:
        return "".join(self.lines)

    def wait_for(self, needle: str, proc: subprocess.Popen, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.text:
            assert proc.poll() is None, f"exited {proc.returncode} before {needle!r}:\n{self.text}"
            assert time.monotonic() < deadline, f"no {needle!r} within {timeout:.0f} s:\n{self.text}"
            time.sleep(0.5)

    def join(self) -> None:
        self._thread.join(30)


@pytest.mark.timeout(1500)
def test_local_mode_on_a_real_node_serves_from_the_host_and_leaves_nothing_behind():
    missing = host.preflight()
    if missing:
        pytest.skip("no real node on this machine: " + "; ".join(missing))
    existed = {p: p.exists() for p in host.FOOTPRINT}
    netns_before = set(os.listdir(host.NETNS_DIR)) if host.NETNS_DIR.exists() else set()
    rules_before = host._iptables_rules()
    run_id = f"test-{uuid.uuid4().hex[:10]}"
    started = time.monotonic()
    proc = subprocess.Popen([str(CLI), "--node", "real"], env={**os.environ, RUN_ID_ENV: run_id},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = Output(proc)
    try:
        out.wait_for("Press Ctrl-C", proc, 1200)
        assert "local mode: a real control plane and one real node" in out.text
        assert "Nodes: real: asked for (--node real)" in out.text
        endpoint = re.search(r"Rerank endpoint\s+(http://127\.0\.0\.1:(\d+)/v1/rerank)\s+\(Service default/reranker "
                             r"through kubectl port-forward\)", out.text)
        ui = re.search(r"Web UI\s+http://127\.0\.0\.1:(\d+)/", out.text)
        kubectl = re.search(r"kubectl\s+(\S*kubectl) --kubeconfig (\S+) get rrd", out.text)
        assert endpoint and ui and kubectl, out.text

        status, answer = _rerank(endpoint.group(1))
        first_200 = time.monotonic() - started
        print(f"\nlocal mode on a real node: first 200 from /v1/rerank {first_200:.1f} s after the command started")
        assert status == 200
        results = answer["results"]
        assert sorted(r["index"] for r in results) == list(range(len(DOCUMENTS))), answer
        assert all(isinstance(r["relevance_score"], float) for r in results), answer
        assert [r["relevance_score"] for r in results] == sorted((r["relevance_score"] for r in results),
                                                                 reverse=True)

        # The pod the port-forward picked goes away (as in a rollout): the printed endpoint serves again.
        subprocess.run([kubectl.group(1), "--kubeconfig", kubectl.group(2), "-n", "default", "delete", "pod", "-l",
                        "app.kubernetes.io/instance=reranker,app.kubernetes.io/component=gateway", "--wait=false"],
                       check=True, capture_output=True, timeout=60)
        deadline = time.monotonic() + 180
        while True:
            try:
                if _rerank(endpoint.group(1))[0] == 200 and "ended (its pod went away)" in out.text:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"the endpoint did not serve again:\n{out.text}"
            time.sleep(1)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(300)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        out.join()

    assert proc.returncode == 0, out.text
    assert "SIGINT: stopping" in out.text and "Stopped everything" in out.text, out.text
    assert "failed" not in out.text.split("SIGINT: stopping", 1)[1], out.text
    # Nothing left: the command's processes, its ports, its control plane's files, and anything of the node.
    assert tagged_processes(run_id) == []
    assert not listening(int(endpoint.group(2))) and not listening(int(ui.group(1)))
    assert not Path(kubectl.group(2)).exists()
    left = host.leftovers(node_binaries.cache_dir(), existed, netns_before, rules_before, host.default_image_store())
    assert left == [], left
