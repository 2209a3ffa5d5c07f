"""Can any node ever run one engine pod? (``tensorParallelSize`` GPUs on a single node.)

A pod asking for more ``nvidia.com/gpu`` than any node offers stays Pending forever; the
operator says so in the ``Degraded`` condition and an event instead of leaving people to find
out from the scheduler. The children are still created: a cluster autoscaler may add a
fitting node (node groups that scaled to zero are not in the node list), or someone may add one.

Only ``spec.scheduling.nodeSelector`` is taken into account, not taints or affinity: those can
only shrink the set of candidate nodes, so the check never reports a fitting spec as unfit.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable, Iterable, Mapping

from rerank_operator.api.v1alpha1 import GPU_RESOURCE


def _count(quantity: Any) -> int:
    try:
        return int(str(quantity))
    except (TypeError, ValueError):
        return 0


def node_gpus(nodes: Iterable[Mapping[str, Any]]) -> list[tuple[dict[str, str], int]]:
    """(labels, allocatable GPUs) of each schedulable node."""
    result = []
    for node in nodes:
        if (node.get("spec") or {}).get("unschedulable"):
            continue
        allocatable = (node.get("status") or {}).get("allocatable") or {}
        result.append((dict((node.get("metadata") or {}).get("labels") or {}), _count(allocatable.get(GPU_RESOURCE))))
    return result


def gpu_problem(tensor_parallel_size: int, node_selector: Mapping[str, str] | None,
                nodes: list[tuple[dict[str, str], int]] | None) -> str | None:
    """Why no node can host an engine pod, or None if one can (or if nodes are unknown).

    ``tensor_parallel_size`` is the GPUs one pod requests: 0 for a CPU engine, which needs none."""
    if nodes is None or tensor_parallel_size <= 0:
        return None
    selector = dict(node_selector or {})
    candidates = [gpus for labels, gpus in nodes if all(labels.get(k) == v for k, v in selector.items())]
    most = max(candidates, default=0)
    if most >= tensor_parallel_size:
        return None
    where = f"matching spec.scheduling.nodeSelector {selector}" if selector else "schedulable"
    return (f"spec.engine.tensorParallelSize is {tensor_parallel_size}, so each engine pod needs "
            f"{tensor_parallel_size} {GPU_RESOURCE} on one node, but the most any of the {len(candidates)} "
            f"{where} node(s) can allocate is {most}; the engine pods stay Pending until such a node joins")


class NodeCapacity:
    """The cluster's nodes, listed at most once per ``ttl`` seconds and shared by all reconciles
    (so 1,000 RerankerDeployments do not mean 1,000 node lists)."""

    def __init__(self, list_nodes: Callable[[], Awaitable[list[Mapping[str, Any]] | None]], ttl: float = 15.0):
        self._list_nodes = list_nodes
        self._ttl = ttl
        self._nodes: list[tuple[dict[str, str], int]] | None = None
        self._at = float("-inf")
        self._lock = asyncio.Lock()

    async def nodes(self) -> list[tuple[dict[str, str], int]] | None:
        async with self._lock:
            if time.monotonic() - self._at >= self._ttl:
                listed = await self._list_nodes()
                self._nodes = None if listed is None else node_gpus(listed)
                self._at = time.monotonic()
            return self._nodes

    async def problem(self, tensor_parallel_size: int, node_selector: Mapping[str, str] | None) -> str | None:
        return gpu_problem(tensor_parallel_size, node_selector, await self.nodes())
