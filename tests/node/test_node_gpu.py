"""GPU engine pods on a GPU-shaped real node: four `nvidia.com/gpu` devices advertised by a device plugin through
the kubelet's device-plugin API, the RuntimeClass `nvidia` (containerd maps its handler to runc, as the GPU Operator
maps it to NVIDIA's runc wrapper) and the GPU pool's `nvidia.com/gpu=present:NoSchedule` taint
(LocalNode.advertise_gpus, on the shared node for this module only).

What is real: the scheduler placing pods by the advertised devices, the taint and the tolerations; the kubelet's
device manager allocating devices and handing the plugin's answer to the container; containerd running the pod
with the RuntimeClass's handler; the kubelet's probes. What is not: no GPU is behind the devices, and the engine
is the node's stand-in (the probe program as python3, started with the GPU engine's real command line, serving
HTTP on the engine's port): a real vLLM on this node is the README test's (tests/node/test_node_helm_readme.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from rerank_localdev.node import config as node_config
from rerank_localdev.node.binaries import ENGINE_STAND_IN_IMAGE
from tests.fixtures.node import stand_in_rrd, visible_devices, wait_for_degraded
from tests.fixtures.waiting import wait_for

pytestmark = pytest.mark.node

DEVICES = 4
DEVICE_ID_PREFIX = "GPU-rerank-node-"


@pytest.fixture(scope="module")
def gpu_node(real_node) -> Iterator[object]:
    real_node.node.advertise_gpus(DEVICES)
    try:
        yield real_node
    finally:
        real_node.node.withdraw_gpus()


def _gpu_rrd(name: str, tensor_parallel_size: int, **scheduling: object) -> str:
    # The stand-in serves HTTP on the engine's port: every path answers 200, probes included.
    return stand_in_rrd(name, ENGINE_STAND_IN_IMAGE, {"PROBE_AS_ENGINE": "serve::8000"}, device="gpu",
                        tensor_parallel_size=tensor_parallel_size,
                        scheduling={"runtimeClassName": node_config.GPU_RUNTIME_HANDLER, **scheduling})


def _pod(real_node, namespace: str, name: str) -> dict:
    return json.loads(real_node.cp.kubectl("-n", namespace, "get", "pod", name, "-o", "json").stdout)


def _condition(obj: dict, type_: str) -> dict:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == type_), {})


def test_a_gpu_engine_runs_on_advertised_devices_through_the_toleration_and_runtime_class(
        gpu_node, node_namespace, node_operator):
    cp, node = gpu_node.cp, gpu_node.node
    cp.kubectl("-n", node_namespace, "apply", "-f", "-", input=_gpu_rrd("gpu", 2))

    def ready():
        rrd = json.loads(cp.kubectl("-n", node_namespace, "get", "rrd", "gpu", "-o", "json").stdout)
        return rrd if _condition(rrd, "Ready").get("status") == "True" else None

    wait_for(ready, 180, "rrd/gpu Ready through the kubelet's probes", interval=1,
             context=lambda: cp.kubectl("-n", node_namespace, "get", "pods,events", check=False).stdout)

    pod = _pod(gpu_node, node_namespace, "gpu-engine-0")
    spec, container = pod["spec"], pod["spec"]["containers"][0]
    assert spec["nodeName"] == node.name
    assert spec["runtimeClassName"] == node_config.GPU_RUNTIME_HANDLER
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "2"
    command = container["command"]
    assert command[command.index("--tensor-parallel-size") + 1] == "2"

    # The kubelet's device manager gave the container two of the plugin's devices.
    devices = visible_devices(node, pod)
    assert len(devices) == 2 and len(set(devices)) == 2
    assert all(d.startswith(DEVICE_ID_PREFIX) for d in devices)
    container_id = pod["status"]["containerStatuses"][0]["containerID"].removeprefix("containerd://")
    # ... and containerd ran it with the RuntimeClass's handler (whose runc keeps its state apart).
    assert [p.name for p in node.layout.gpu_runc_root.glob(f"*/{container_id}")] == [container_id]


def test_more_gpus_than_the_node_has_is_degraded_and_the_pod_says_why(gpu_node, node_namespace, node_operator):
    cp = gpu_node.cp
    cp.kubectl("-n", node_namespace, "apply", "-f", "-", input=_gpu_rrd("toobig", 8))
    degraded = wait_for_degraded(gpu_node, node_namespace, "toobig", "InsufficientGPUs", node_operator)
    assert "tensorParallelSize is 8" in degraded["message"] and f"can allocate is {DEVICES}" in degraded["message"]

    def pending_reason():
        scheduled = _condition(_pod(gpu_node, node_namespace, "toobig-engine-0"), "PodScheduled")
        return scheduled if scheduled.get("reason") == "Unschedulable" else None

    scheduled = wait_for(pending_reason, 60, "the scheduler's verdict on toobig-engine-0", interval=1)
    assert "Insufficient nvidia.com/gpu" in scheduled["message"]


def test_an_engine_that_does_not_tolerate_the_gpu_taint_is_degraded_with_the_schedulers_reason(
        gpu_node, node_namespace, node_operator):
    # A toleration of the same key replaces the default one, and this one does not match the taint's value.
    wrong = [{"key": "nvidia.com/gpu", "operator": "Equal", "value": "absent", "effect": "NoSchedule"}]
    gpu_node.cp.kubectl("-n", node_namespace, "apply", "-f", "-", input=_gpu_rrd("untolerated", 2, tolerations=wrong))
    degraded = wait_for_degraded(gpu_node, node_namespace, "untolerated", "Unschedulable", node_operator)
    # The scheduler's own words (v1.36 counts the nodes, without naming the taint).
    assert "had untolerated taint" in degraded["message"]
    assert "untolerated-engine-0" in degraded["message"]
