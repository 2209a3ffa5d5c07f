"""The autoscaler's own Prometheus metrics (exposed by the operator's metrics endpoint).

Registered in prometheus-client's default registry, so whatever serves that registry (e.g.
``prometheus_client.start_http_server``) exposes them. Labels: the RerankerDeployment's
``namespace`` and ``name``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge, Histogram

if TYPE_CHECKING:
    from .policy import ScalingDecision

QUEUE_DEPTH = Gauge(
    "rerank_autoscaler_queue_depth",
    "Waiting + running engine requests (query-document pairs) summed over the ready engine pods.",
    ["namespace", "name"],
)
DESIRED_REPLICAS = Gauge(
    "rerank_autoscaler_desired_replicas",
    "Engine replicas the autoscaler decided on at its last pass.",
    ["namespace", "name"],
)
READY_REPLICAS = Gauge(
    "rerank_autoscaler_ready_replicas",
    "Ready engine pods the autoscaler saw at its last pass.",
    ["namespace", "name"],
)
SCALING_LIMITED = Gauge(
    "rerank_autoscaler_scaling_limited",
    "1 while the ScalingLimited condition is True: minReplicas, maxReplicas or a scale-up limit holds the "
    "replica count below or above what the load asks for; else 0.",
    ["namespace", "name"],
)
DEMAND = Gauge(
    "rerank_autoscaler_demand_tokens_per_second",
    "Smoothed arrival rate of work (prompt tokens per second) over the engine pods.",
    ["namespace", "name"],
)
CAPACITY = Gauge(
    "rerank_autoscaler_capacity_tokens_per_second",
    "Learned capacity of one engine replica (prompt tokens per second while saturated).",
    ["namespace", "name"],
)
SCRAPE_ERRORS = Counter(
    "rerank_autoscaler_scrape_errors",
    "Engine /metrics scrapes whose sample was rejected, by reason (timeout, connect, http_<status>, format, "
    "bad_value: NaN, +-Inf, negative or impossibly large; too_large).",
    ["namespace", "name", "reason"],
)
SCRAPE_DURATION = Histogram(
    "rerank_autoscaler_scrape_duration_seconds",
    "Time to scrape all ready engine pods of one RerankerDeployment.",
    ["namespace", "name"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0),
)
SCALE_EVENTS = Counter(
    "rerank_autoscaler_scale_events",
    "Replica changes the autoscaler made, by direction (up, down).",
    ["namespace", "name", "direction"],
)


def record(namespace: str, name: str, decision: ScalingDecision) -> None:
    """The gauges of one autoscaler pass (the scale event itself is counted once the scale is written)."""
    QUEUE_DEPTH.labels(namespace, name).set(decision.observed_queue_depth)
    DESIRED_REPLICAS.labels(namespace, name).set(decision.desired_replicas)
    READY_REPLICAS.labels(namespace, name).set(decision.ready_pods)
    SCALING_LIMITED.labels(namespace, name).set(1 if decision.limited_reason else 0)
    if decision.demand is not None:
        DEMAND.labels(namespace, name).set(decision.demand)
    if decision.capacity is not None:
        CAPACITY.labels(namespace, name).set(decision.capacity)


def forget(namespace: str, name: str) -> None:
    """Drop the series of a deleted RerankerDeployment so they do not linger at their last value."""
    for metric in (QUEUE_DEPTH, DESIRED_REPLICAS, READY_REPLICAS, SCALING_LIMITED, DEMAND, CAPACITY,
                   SCRAPE_DURATION, SCRAPE_ERRORS, SCALE_EVENTS):
        metric.remove_by_labels({"namespace": namespace, "name": name})
