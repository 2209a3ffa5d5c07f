"""`rerank-local --smoke`, end to end, exactly as a newcomer (and CI) runs it: a real
control plane with simulated nodes, the operator, the sample RerankerDeployment, the CPU vLLM
engine and the UI started from their pods' specs, one rerank request through the Service's local
endpoint -- then everything torn down, with no process left behind."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from rerank_localdev.local_pod import RUN_ID_ENV
from tests.fixtures.local_mode import listening, tagged_processes

pytestmark = [pytest.mark.cluster, pytest.mark.vllm]

CLI = Path(sys.executable).with_name("rerank-local")


@pytest.mark.timeout(900)
def test_local_smoke_serves_a_ranking_and_the_ui_then_leaves_nothing_behind():
    run_id = f"test-{uuid.uuid4().hex[:10]}"
    env = {**os.environ, RUN_ID_ENV: run_id}
    # --port/--ui-port 0 is not offered; let local mode pick free ports if 8000/7860 are taken.
    # Simulated nodes asked for: `auto` picks a real node where the machine allows one (tests/node covers it).
    proc = subprocess.run([str(CLI), "--node", "simulated", "--smoke"], env=env, capture_output=True,
                          text=True, timeout=840)
    out = proc.stdout
    report = f"exit {proc.returncode}\nstdout:\n{out}\nstderr:\n{proc.stderr[-4000:]}"
    assert proc.returncode == 0, report

    assert "local mode: a real control plane with simulated nodes (kwok)" in out, report
    assert "Nodes: simulated: asked for (--node simulated)" in out, report
    endpoint = re.search(r"Rerank endpoint\s+(http://127\.0\.0\.1:(\d+)/v1/rerank)", out)
    ui = re.search(r"Web UI\s+(http://127\.0\.0\.1:(\d+)/)", out)
    kubectl = re.search(r"kubectl\s+(\S*kubectl) --kubeconfig (\S+) get rrd", out)
    assert endpoint and ui and kubectl, report
    assert re.search(r"curl -s " + re.escape(endpoint.group(1)) + r" -H 'Content-Type: application/json' -d ", out)
    # The smoke's own checks, as it printed them: a sorted ranking of all three documents, the UI
    # page, and the RerankerDeployment listed by the printed kubectl command.
    assert re.search(r"smoke: rerank -> indices \[[012], [012], [012]\], scores .* \(sorted\)", out), report
    assert f"smoke: UI {ui.group(1)} -> HTTP 200" in out, report
    assert re.search(r"^\s+reranker\s", out, re.M), report
    assert "smoke: passed" in out, report

    # Torn down: no tagged process, nothing listening on the printed ports, the kubeconfig gone.
    assert tagged_processes(run_id) == [], report
    assert not listening(int(endpoint.group(2))) and not listening(int(ui.group(2)))
    assert not Path(kubectl.group(2)).exists()
    assert "Stopped everything" in out
