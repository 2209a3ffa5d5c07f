"""Scale from zero, end to end in local mode: a real control plane, the operator with its autoscaler,
the gateway and the CPU vLLM engine run from their pods' specs.

The RerankerDeployment starts at zero engine replicas (``autoscaling.minReplicas: 0``). One request
through the Service (the gateway) is held; the autoscaler reads the held pairs from the gateway's
/metrics and scales the StatefulSet 0 -> 1; the engine loads the model and the held request is
answered 200 with scores. A second request while the hold queue is full is a 503 with Retry-After.
After the scale-down window without requests the engines go back to zero.
"""

from __future__ import annotations

import copy
import io
import json
import os
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from rerank_localdev import local_mode, local_stack

pytestmark = [pytest.mark.cluster, pytest.mark.vllm]

IDLE_WINDOW = 20  # scaleDownStabilizationSeconds


def _post(url: str, body: dict[str, Any], timeout: float) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def _get_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def _until(what: str, check, timeout: float, stack: local_stack.LocalStack, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            stack.print_log_tails(30)
            raise AssertionError(f"not within {timeout:.0f} s: {what}\n{stack.out.getvalue()[-6000:]}")
        time.sleep(interval)


@pytest.fixture
def stack():
    args = local_mode.parse_args(["--smoke"])
    local = local_stack.LocalStack(args, out=io.StringIO())
    spec = local.sample["spec"]
    spec["replicas"] = 0
    spec["autoscaling"] = {"enabled": True, "minReplicas": 0, "maxReplicas": 1, "scrapeIntervalSeconds": 1,
                           "scaleDownStabilizationSeconds": IDLE_WINDOW}
    spec["gateway"] = {"holdSeconds": 600, "maxHeldRequests": 1}
    spec["ui"] = {"enabled": False}
    run_id = os.environ.get(local_stack.RUN_ID_ENV)
    try:
        local.up(wait=False)
        yield local
    finally:
        local.down()
        if run_id is None:
            os.environ.pop(local_stack.RUN_ID_ENV, None)


def _statefulset_replicas(stack: local_stack.LocalStack) -> int | None:
    out = stack.cp.kubectl("get", "statefulset", f"{stack.name}-engine", "-n", stack.namespace, "-o", "json",
                           check=False)
    return json.loads(out.stdout)["spec"].get("replicas") if out.returncode == 0 else None


def _engine_processes(stack: local_stack.LocalStack) -> list[dict[str, Any]]:
    return [s for s in stack.runner.snapshot() if s["container"] == "engine"]


@pytest.mark.timeout(1200)
def test_a_request_held_at_zero_replicas_wakes_an_engine_and_is_served(stack):
    port = stack.service_port
    # The gateway is up (its pod Ready behind the Service) while the engines are at zero.
    _until("the gateway pod is Ready behind the Service", lambda: stack._backends(stack.name, port), 300, stack)
    base = f"http://127.0.0.1:{stack.proxy.local_port(stack.namespace, stack.name, port)}"
    assert _statefulset_replicas(stack) == 0
    time.sleep(3)  # a few autoscaler passes at zero with nothing held: it stays at zero
    assert _statefulset_replicas(stack) == 0 and _engine_processes(stack) == []
    assert _get_json(base + "/health")["ready_engines"] == 0

    served = stack.sample["spec"]["model"]["name"]
    body = {"model": served, "query": local_stack.SMOKE_QUERY, "documents": local_stack.SMOKE_DOCUMENTS}
    held: dict[str, Any] = {}
    sent = time.monotonic()
    worker = threading.Thread(target=lambda: held.update(answer=_post(base + "/v1/rerank", body, 900)), daemon=True)
    worker.start()
    _until("the gateway holds the request", lambda: _get_json(base + "/health")["held_requests"] == 1, 30, stack)

    # The hold queue (maxHeldRequests: 1) is full: the next request is refused at once, with a retry hint.
    status, headers, raw = _post(base + "/v1/rerank", copy.deepcopy(body), 30)
    assert status == 503, raw
    assert int(headers["Retry-After"]) > 0
    assert "waiting" in json.loads(raw)["error"]["message"]

    # The operator's autoscaler saw the held pairs and scaled the StatefulSet 0 -> 1.
    _until("the StatefulSet scaled to 1", lambda: _statefulset_replicas(stack) == 1, 120, stack)
    rrd = stack._rrd()
    assert rrd["spec"]["replicas"] == 1

    worker.join(900)
    assert "answer" in held, "the held request never returned"
    status, _, raw = held["answer"]
    assert status == 200, raw
    results = json.loads(raw)["results"]
    assert sorted(r["index"] for r in results) == list(range(len(local_stack.SMOKE_DOCUMENTS)))
    assert all(isinstance(r["relevance_score"], float) for r in results)
    waited = time.monotonic() - sent
    assert [s["ready"] for s in _engine_processes(stack)] == [True]

    # Idle for the scale-down window: back to zero engines (the gateway stays, ready to hold again).
    _until("the StatefulSet back at 0 after the idle window", lambda: _statefulset_replicas(stack) == 0,
           IDLE_WINDOW + 120, stack)
    _until("the engine process stopped", lambda: _engine_processes(stack) == [], 120, stack)
    assert _get_json(base + "/health")["ready_engines"] == 0 or _until(
        "the gateway sees no Ready engine", lambda: _get_json(base + "/health")["ready_engines"] == 0, 30, stack)
    events = stack.cp.kubectl("get", "events", "-n", stack.namespace, "-o", "json").stdout
    reasons = [e["reason"] for e in json.loads(events)["items"]
               if e["involvedObject"].get("kind") == "RerankerDeployment"]
    assert "ScaledUp" in reasons and "ScaledDown" in reasons, reasons
    print(f"held request answered after {waited:.1f} s (engine scaled 0 -> 1 and loaded the model)")
