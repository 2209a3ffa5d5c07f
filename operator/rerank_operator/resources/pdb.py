"""The engine PodDisruptionBudget `<name>-engine`: node drains take down at most `maxUnavailable`
engine pods at once (each holds GPUs and takes minutes to come back)."""

from __future__ import annotations

from typing import Any, Mapping

from rerank_operator.api.v1alpha1 import RerankerDeploymentSpec

from . import labels as L


def build_pdb(body: Mapping[str, Any], spec: RerankerDeploymentSpec) -> dict[str, Any]:
    name = body["metadata"]["name"]
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": L.child_metadata(body, L.engine_name(name), L.ENGINE),
        "spec": {
            "maxUnavailable": spec.disruption_budget.max_unavailable,
            "selector": {"matchLabels": L.selector_labels(name, L.ENGINE)},
            # A pod that is not Ready (crash-looping, still loading) may always be evicted: it serves nothing.
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }
