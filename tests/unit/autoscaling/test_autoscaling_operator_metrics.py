"""The autoscaler's gauges: what one pass records, and what deleting the RerankerDeployment removes."""

from __future__ import annotations

from prometheus_client import REGISTRY

from rerank_operator.autoscaling import operator_metrics
from rerank_operator.autoscaling.policy import AT_MAX_REPLICAS, ScalingDecision


def decision(limited: str | None) -> ScalingDecision:
    return ScalingDecision(current_replicas=3, desired_replicas=3, recommended_replicas=5, reason="ScaleUp",
                           message="m", observed_queue_depth=42.0, ready_pods=2, missing_pods=0, pending_pods=1,
                           demand=900.0, capacity=300.0, limited_reason=limited)


def sample(metric: str, name: str = "limited") -> float | None:
    return REGISTRY.get_sample_value(metric, {"namespace": "ns", "name": name})


def test_a_pass_records_ready_replicas_and_scaling_limited() -> None:
    operator_metrics.record("ns", "limited", decision(AT_MAX_REPLICAS))
    assert sample("rerank_autoscaler_ready_replicas") == 2
    assert sample("rerank_autoscaler_scaling_limited") == 1
    assert sample("rerank_autoscaler_desired_replicas") == 3
    assert sample("rerank_autoscaler_queue_depth") == 42
    assert sample("rerank_autoscaler_demand_tokens_per_second") == 900
    assert sample("rerank_autoscaler_capacity_tokens_per_second") == 300
    operator_metrics.record("ns", "limited", decision(None))
    assert sample("rerank_autoscaler_scaling_limited") == 0


def test_forget_drops_the_new_gauges_too() -> None:
    operator_metrics.record("ns", "gone", decision(AT_MAX_REPLICAS))
    operator_metrics.forget("ns", "gone")
    assert sample("rerank_autoscaler_ready_replicas", "gone") is None
    assert sample("rerank_autoscaler_scaling_limited", "gone") is None
