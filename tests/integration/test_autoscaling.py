"""The autoscaler against the real API server, with real HTTP metric endpoints at the pods' IPs.

Engine pods are kwok pods (Ready, IPs on the loopback range); at each pod's IP and engine port
the test binds a real HTTP server that serves vLLM's ``/metrics`` text (captured from a real
vLLM) with queue values and work counters the test sets. ``autoscale_once`` -- the pass the operator runs every
scrape interval -- is driven directly, so the test controls time; the pods that the engine
StatefulSet would add after a scale-up are created by the test (``_sync_engine_pods``), so this
test does not depend on the operator's reconcile loop.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiohttp import web
from kubernetes import client

from rerank_operator.autoscaling import loop
from tests.unit.autoscaling.engine_metrics_text import MetricEndpoints, with_queue

pytestmark = pytest.mark.cluster

ENGINE_PORT = 8000
NAME = "rr-autoscale"


@pytest.fixture(scope="module")
def crd_installed(control_plane, tmp_path_factory):
    # The CRD as the operator ships it (`rerank-operator crd`), scale subresource included.
    crd_yaml = subprocess.run(
        [str(Path(sys.executable).with_name("rerank-operator")), "crd"], check=True, capture_output=True, text=True
    ).stdout
    path = tmp_path_factory.mktemp("crd") / "crd.yaml"
    path.write_text(crd_yaml)
    control_plane.kubectl("apply", "-f", str(path))
    control_plane.wait_crds_established("rerankerdeployments.rerank.io")


def _engine_pod(name: str, index: int, node: str) -> dict:
    labels = {"app.kubernetes.io/instance": name, "app.kubernetes.io/component": "engine",
              "app.kubernetes.io/name": "rerank-engine"}
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": f"{name}-engine-{index}", "labels": labels},
        "spec": {
            "nodeName": node,
            "tolerations": [{"operator": "Exists"}],
            "containers": [{"name": "engine", "image": "vllm/vllm-openai:pinned-for-test",
                            "ports": [{"name": "http", "containerPort": ENGINE_PORT}]}],
        },
    }


async def _sync_engine_pods(core: client.CoreV1Api, ns: str, node: str, replicas: int,
                            endpoints: MetricEndpoints) -> None:
    """Stand-in for the StatefulSet controller: pods 0..replicas-1 exist, are Ready, and serve metrics."""
    existing = {p.metadata.name: p for p in core.list_namespaced_pod(ns, label_selector=loop.engine_pod_selector(NAME)).items}
    for i in range(replicas):
        if f"{NAME}-engine-{i}" not in existing:
            core.create_namespaced_pod(ns, _engine_pod(NAME, i, node))
    for i in range(replicas, 64):
        if f"{NAME}-engine-{i}" in existing:
            core.delete_namespaced_pod(f"{NAME}-engine-{i}", ns, grace_period_seconds=0)
    deadline = time.monotonic() + 60
    while True:
        pods = [p for p in core.list_namespaced_pod(ns, label_selector=loop.engine_pod_selector(NAME)).items
                if p.metadata.deletion_timestamp is None]
        ready = [p for p in pods if loop._is_ready(p)]
        if len(pods) == replicas and len(ready) == replicas:
            break
        assert time.monotonic() < deadline, f"engine pods not Ready: {[(p.metadata.name, p.status.phase) for p in pods]}"
        await asyncio.sleep(0.3)
    for p in ready:
        await endpoints.serve(p.status.pod_ip)


def _events(core: client.CoreV1Api, ns: str) -> list:
    """The RerankerDeployment's events, oldest first (the API lists them by name)."""
    events = [e for e in core.list_namespaced_event(ns).items
              if e.involved_object.kind == "RerankerDeployment" and e.involved_object.name == NAME]
    return sorted(events, key=lambda e: e.first_timestamp or e.metadata.creation_timestamp)


def _create(custom, namespace: str, name: str, autoscaling: dict) -> None:
    custom.create_namespaced_custom_object("rerank.io", "v1alpha1", namespace, "rerankerdeployments", {
        "apiVersion": "rerank.io/v1alpha1", "kind": "RerankerDeployment",
        "metadata": {"name": name},
        "spec": {"model": {"name": "Qwen/Qwen3-Reranker-0.6B"}, "replicas": 1, "engine": {"port": ENGINE_PORT},
                 "autoscaling": {"enabled": True, "minReplicas": 1, "maxReplicas": 4, **autoscaling}},
    })


def test_throughput_scales_up_then_down_after_the_window(control_plane, namespace, crd_installed):
    """Counters that move as the test says, passes at test-chosen times: the capacity is learned while
    the one pod is saturated, kept in the status, and sizes the fleet up and (after the window) down."""
    api = control_plane.api_client()
    core = client.CoreV1Api(api)
    custom = client.CustomObjectsApi(api)
    node = next(n.metadata.name for n in core.list_node().items)
    _create(custom, namespace, NAME, {"scrapeIntervalSeconds": 1, "scaleDownStabilizationSeconds": 30,
                                      "demandWindowSeconds": 10})
    body = {"metadata": {"namespace": namespace, "name": NAME}}
    t0 = float(int(time.time()))

    def replicas() -> int:
        scale = custom.get_namespaced_custom_object_scale("rerank.io", "v1alpha1", namespace, "rerankerdeployments", NAME)
        return scale["spec"]["replicas"]

    def status() -> dict:
        return custom.get_namespaced_custom_object("rerank.io", "v1alpha1", namespace, "rerankerdeployments",
                                                   NAME).get("status") or {}

    async def scenario() -> None:
        endpoints = MetricEndpoints(ENGINE_PORT)
        try:
            await _sync_engine_pods(core, namespace, node, 1, endpoints)

            # First read: no rate yet, hold.
            endpoints.waiting, endpoints.running = 0, 20
            d = await loop.autoscale_once(api, body, now=t0)
            assert d.reason == "NoMetrics" and replicas() == 1, d.message

            # The pod saturates: 20,000 tokens/s done while 100 pairs/s more arrive and wait.
            for i, waiting in enumerate((100, 600), start=1):
                endpoints.advance(5, 20_000)
                endpoints.waiting, endpoints.running = waiting, 256
                d = await loop.autoscale_once(api, body, now=t0 + 5 * i)
            assert d.capacity == pytest.approx(20_000) and d.reason == "ScaledUp" and replicas() == 3, d.message
            st = status()
            assert st["desiredReplicas"] == 3 and st["queueDepth"] == 856
            assert st["autoscaling"]["capacityTokensPerSecond"] == pytest.approx(20_000)
            assert st["autoscaling"]["lastScaleTime"] and st["autoscaling"]["recommendations"][-1]["replicas"] == 3
            conditions = {c["type"]: c for c in st["conditions"]}
            assert conditions["AutoscalingActive"]["status"] == "True"
            assert [e.reason for e in _events(core, namespace)] == ["ScaledUp"]

            # While the two new pods are not there yet, the same load does not scale further.
            endpoints.advance(5, 20_000)
            endpoints.waiting = 700
            d = await loop.autoscale_once(api, body, now=t0 + 15)
            assert replicas() == 3 and d.pending_pods == 2, d.message

            # The new pods serve; the load drops to a trickle. The scale-down waits for the 30 s
            # window, each pass reading the memory back from the status (as after a restart).
            await _sync_engine_pods(core, namespace, node, 3, endpoints)
            endpoints.waiting, endpoints.running = 0, 2
            times = []
            for i in range(4, 20):
                endpoints.advance(5, 500)
                d = await loop.autoscale_once(api, body, now=t0 + 5 * i)
                times.append((5 * i, d.reason))
                if replicas() == 1:
                    break
            assert replicas() == 1 and d.reason == "ScaledDown", times
            assert times[-1][0] >= 10 + 30, times  # not before the last scale-up recommendation left the window
            assert "ScaleDownStabilized" in {r for _, r in times}
            reasons = [e.reason for e in _events(core, namespace)]
            assert reasons[0] == "ScaledUp" and set(reasons[1:]) == {"ScaledDown"}, reasons  # down in steps
            assert status()["autoscaling"]["capacityTokensPerSecond"] == pytest.approx(20_000)  # kept
        finally:
            await endpoints.close()

    asyncio.run(scenario())


def test_bad_pods_cost_only_their_own_sample(control_plane, namespace, crd_installed):
    """One pod answering undecodable bytes, one a NaN gauge, one a negative gauge: the pass still
    decides from the good pod, holds the count (unreadable pods never let it drop), counts each
    rejection, and its status write is accepted."""
    from prometheus_client import REGISTRY

    api = control_plane.api_client()
    core = client.CoreV1Api(api)
    custom = client.CustomObjectsApi(api)
    node = next(n.metadata.name for n in core.list_node().items)
    _create(custom, namespace, NAME, {"scrapeIntervalSeconds": 1, "scaleDownStabilizationSeconds": 0})
    custom.patch_namespaced_custom_object_scale("rerank.io", "v1alpha1", namespace, "rerankerdeployments", NAME,
                                                {"spec": {"replicas": 4}})
    body = {"metadata": {"namespace": namespace, "name": NAME}}

    def rejected(reason: str) -> float:
        return REGISTRY.get_sample_value("rerank_autoscaler_scrape_errors_total",
                                         {"namespace": namespace, "name": NAME, "reason": reason}) or 0.0

    async def scenario() -> None:
        endpoints = MetricEndpoints(ENGINE_PORT)
        try:
            await _sync_engine_pods(core, namespace, node, 4, endpoints)
            ips = sorted(endpoints.runners)
            good = with_queue(0, 2, requests_done=1, prompt_tokens=100)
            endpoints.raw[ips[1]] = b"\xff\xfe\x00vllm:num_requests_waiting \xc3\x28 1\n"
            endpoints.raw[ips[2]] = _set_first(good, "vllm:num_requests_waiting", "NaN").encode()
            endpoints.raw[ips[3]] = _set_first(good, "vllm:num_requests_running", "-40").encode()
            before = {r: rejected(r) for r in ("format", "bad_value")}
            now = time.time()
            for i in range(3):
                endpoints.advance(5, 100)
                d = await loop.autoscale_once(api, body, now=now + 5 * i)
                assert d is not None and d.missing_pods == 3 and d.ready_pods == 4, d.message
                assert d.desired_replicas == 4, d.message
            assert rejected("format") - before["format"] == 3
            assert rejected("bad_value") - before["bad_value"] == 6
            st = custom.get_namespaced_custom_object("rerank.io", "v1alpha1", namespace, "rerankerdeployments",
                                                     NAME)["status"]
            assert st["queueDepth"] >= 0 and st["desiredReplicas"] == 4
        finally:
            await endpoints.close()

    asyncio.run(scenario())


def _set_first(text: str, family: str, raw: str) -> str:
    lines = text.splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith(family + "{"))
    lines[i] = lines[i].rpartition(" ")[0] + " " + raw
    return "\n".join(lines) + "\n"


def test_autoscaling_off_leaves_replicas_alone(control_plane, namespace, crd_installed):
    api = control_plane.api_client()
    custom = client.CustomObjectsApi(api)
    custom.create_namespaced_custom_object("rerank.io", "v1alpha1", namespace, "rerankerdeployments", {
        "apiVersion": "rerank.io/v1alpha1", "kind": "RerankerDeployment",
        "metadata": {"name": "rr-manual"},
        "spec": {"model": {"name": "Qwen/Qwen3-Reranker-0.6B"}, "replicas": 2, "autoscaling": {"enabled": False}},
    })
    # `kubectl scale` works through the scale subresource...
    control_plane.kubectl("-n", namespace, "scale", "rerankerdeployments/rr-manual", "--replicas=3")
    assert asyncio.run(loop.autoscale_once(api, {"metadata": {"namespace": namespace, "name": "rr-manual"}})) is None
    # ...and the autoscaler leaves it be.
    obj = custom.get_namespaced_custom_object("rerank.io", "v1alpha1", namespace, "rerankerdeployments", "rr-manual")
    assert obj["spec"]["replicas"] == 3


# --- end to end, through the operator -------------------------------------------------------------

from rerank_localdev.volumes import provision_pending  # noqa: E402
from tests.integration.operator_fixture import crd_installed_once, op_namespace, operator  # noqa: E402,F401


def test_operator_scales_the_statefulset_by_the_pods_throughput(control_plane, op_namespace, operator, tmp_path):
    """The operator's autoscaler daemon scrapes the engine pods the StatefulSet controller made
    (kwok pods; the test serves their /metrics at their IPs, counters moving in real time), writes
    spec.replicas through the
    scale subresource, and the operator resizes the StatefulSet: up at once, down after the window."""
    api = control_plane.api_client()
    core = client.CoreV1Api(api)
    apps = client.AppsV1Api(api)
    custom = client.CustomObjectsApi(api)
    ns, name = op_namespace, "rr-e2e"
    custom.create_namespaced_custom_object("rerank.io", "v1alpha1", ns, "rerankerdeployments", {
        "apiVersion": "rerank.io/v1alpha1", "kind": "RerankerDeployment", "metadata": {"name": name},
        "spec": {"replicas": 1, "engine": {"port": ENGINE_PORT}, "ui": {"enabled": False},
                 "autoscaling": {"enabled": True, "minReplicas": 1, "maxReplicas": 3,
                                 "scrapeIntervalSeconds": 1, "demandWindowSeconds": 2,
                                 "scaleDownStabilizationSeconds": 6}},
    })

    def sts_replicas() -> int | None:
        try:
            return apps.read_namespaced_stateful_set(f"{name}-engine", ns).spec.replicas
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            raise

    async def serve_ready_pods(endpoints: MetricEndpoints, count: int, timeout: float = 60) -> None:
        """Bind metrics at every Ready engine pod until `count` of them serve."""
        deadline = time.monotonic() + timeout
        while True:
            await asyncio.to_thread(provision_pending, core, ns, tmp_path)  # local mode's storage provisioner
            pods = (await asyncio.to_thread(core.list_namespaced_pod, ns,
                                            label_selector=loop.engine_pod_selector(name))).items
            ready = [p for p in pods if p.metadata.deletion_timestamp is None and loop._is_ready(p)]
            for p in ready:
                await endpoints.serve(p.status.pod_ip)
            if len(ready) >= count:
                return
            assert time.monotonic() < deadline, f"{len(ready)} of {count} engine pods Ready:\n{operator.log_tail()}"
            await asyncio.sleep(0.5)

    async def until(predicate, timeout: float, what: str) -> float:
        started = time.monotonic()
        while not await asyncio.to_thread(predicate):
            assert time.monotonic() - started < timeout, f"timed out waiting for {what}:\n{operator.log_tail()}"
            await asyncio.sleep(0.3)
        return time.monotonic() - started

    async def work(endpoints: MetricEndpoints, load: dict) -> None:
        """The engines' counters move in real time: load["tokens"] tokens/s done per pod, and
        load["arriving"] pairs/s more than that join the waiting queue."""
        while True:
            await asyncio.sleep(0.2)
            endpoints.advance(0.2, load["tokens"])
            endpoints.waiting = max(0.0, endpoints.waiting + load["arriving"] * 0.2)

    async def scenario() -> None:
        endpoints = MetricEndpoints(ENGINE_PORT)
        load = {"tokens": 20_000.0, "arriving": 100.0}  # saturated, and the queue grows
        endpoints.waiting, endpoints.running = 60, 256
        worker = asyncio.create_task(work(endpoints, load))
        try:
            await serve_ready_pods(endpoints, 1)
            await until(lambda: sts_replicas() == 3, 30, "the StatefulSet to scale to 3")
            await serve_ready_pods(endpoints, 3)
            load.update(tokens=300.0, arriving=0.0)  # idle: 1 replica, but only after the 6 s window
            endpoints.waiting, endpoints.running = 0, 2
            took = await until(lambda: sts_replicas() == 1, 60, "the StatefulSet to scale down to 1")
            assert took >= 4, f"scaled down after {took:.1f} s, before the stabilization window"
        finally:
            worker.cancel()
            await endpoints.close()

    asyncio.run(scenario())
    status = custom.get_namespaced_custom_object("rerank.io", "v1alpha1", ns, "rerankerdeployments", name)["status"]
    assert status["desiredReplicas"] == 1
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["AutoscalingActive"]["status"] == "True"
    reasons = [e.reason for e in core.list_namespaced_event(ns).items
               if e.involved_object.kind == "RerankerDeployment" and e.involved_object.name == name]
    assert "ScaledUp" in reasons and "ScaledDown" in reasons
    assert "rerank_autoscaler_desired_replicas" in operator.metrics()
