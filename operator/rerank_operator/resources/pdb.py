"""The PodDisruptionBudgets: `<name>-engine` lets node drains take down at most `maxUnavailable` engine
pods at once (each holds GPUs and takes minutes to come back); `<name>-gateway`, with two or more gateway
pods, one gateway pod at a time (a drain that took every gateway at once would cut the endpoint off)."""

from __future__ import annotations

from typing import Any, Mapping

from rerank_operator.api.v1alpha1 import RerankerDeploymentSpec

from . import labels as L


def build_pdb(body: Mapping[str, Any], spec: RerankerDeploymentSpec) -> dict[str, Any]:
    name = body["metadata"]["name"]
    return _budget(body, L.engine_name(name), L.ENGINE, spec.disruption_budget.max_unavailable)


def wants_gateway_pdb(spec: RerankerDeploymentSpec) -> bool:
    """One gateway pod has nothing to protect: a budget of one unavailable would allow its eviction anyway."""
    return spec.disruption_budget.enabled and spec.gateway.enabled and spec.gateway.replicas >= 2


def build_gateway_pdb(body: Mapping[str, Any], spec: RerankerDeploymentSpec) -> dict[str, Any]:
    return _budget(body, L.gateway_name(body["metadata"]["name"]), L.GATEWAY, 1)


def _budget(body: Mapping[str, Any], name: str, component: str, max_unavailable: int | str) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": L.child_metadata(body, name, component),
        "spec": {
            "maxUnavailable": max_unavailable,
            "selector": {"matchLabels": L.selector_labels(body["metadata"]["name"], component)},
            # A pod that is not Ready (crash-looping, still loading) may always be evicted: it serves nothing.
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }
