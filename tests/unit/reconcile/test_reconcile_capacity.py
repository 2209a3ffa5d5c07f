from __future__ import annotations

import asyncio

from rerank_operator.reconcile.capacity import NodeCapacity, gpu_problem, node_gpus


def node(name, gpus=None, labels=None, unschedulable=False):
    allocatable = {"cpu": "32", "memory": "256Gi"}
    if gpus is not None:
        allocatable["nvidia.com/gpu"] = str(gpus)
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": {"unschedulable": unschedulable},
            "status": {"allocatable": allocatable}}


NODES = node_gpus([node("cpu"), node("a", 4, {"pool": "a100"}), node("h", 8, {"pool": "h100"}, unschedulable=True)])


def test_fits_when_one_node_has_enough():
    assert gpu_problem(4, None, NODES) is None
    assert gpu_problem(1, {"pool": "a100"}, NODES) is None


def test_too_many_gpus_per_pod_is_explained():
    message = gpu_problem(8, None, NODES)  # the 8-GPU node is cordoned
    assert "tensorParallelSize is 8" in message and "is 4" in message
    assert "nodeSelector" in gpu_problem(2, {"pool": "h100"}, NODES)
    assert gpu_problem(1, None, []) is not None  # no GPU node at all


def test_a_cpu_engine_needs_no_gpu_node():
    from rerank_operator.api.v1alpha1 import parse_spec

    no_gpus = node_gpus([node("cpu")])
    assert gpu_problem(parse_spec({"engine": {"device": "cpu"}}).engine.gpus, None, no_gpus) is None
    assert gpu_problem(parse_spec({}).engine.gpus, None, no_gpus) is not None


def test_unknown_nodes_never_report_a_problem():
    assert gpu_problem(8, None, None) is None


def test_nodes_are_listed_once_per_ttl():
    calls = []

    async def list_nodes():
        calls.append(1)
        return [node("a", 2)]

    async def scenario():
        capacity = NodeCapacity(list_nodes, ttl=60)
        results = await asyncio.gather(*(capacity.problem(4, None) for _ in range(50)))
        assert all(r is not None for r in results)
        assert await capacity.problem(2, None) is None

    asyncio.run(scenario())
    assert len(calls) == 1
