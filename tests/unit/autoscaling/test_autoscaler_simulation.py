"""The benchmark's simulation (bench/autoscaler_simlib.py): each baseline reads only its real signal,
and the fleet model conserves work."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))

from autoscaler_simlib import (  # noqa: E402
    ClusterView,
    HpaWaiting,
    KedaProductionStack,
    KubeAI,
    ProjectPolicy,
    ServiceModel,
    Trace,
    simulate,
)

from rerank_operator.autoscaling.policy import AutoscalingPolicy, PodSample  # noqa: E402


def view(now: float, replicas: int, waiting_per_pod: list[float], http_in_flight: int = 0) -> ClusterView:
    pods = tuple(PodSample(f"e{i}", True, w, 10.0, 0.0, 0.0) for i, w in enumerate(waiting_per_pod))
    return ClusterView(now, replicas, len(pods), replicas - len(pods), sum(waiting_per_pod), 10.0 * len(pods),
                       http_in_flight, pods)


def test_keda_as_shipped_scales_on_one_series_and_holds_once_several_pods_report():
    keda = KedaProductionStack(1, 24, 5.0)
    one = view(10.0, 1, [50.0])
    keda.observe(one)
    assert keda.desired(one) == 5  # 50 waiting / 5, at most +4 per period
    several = view(40.0, 5, [50.0, 50.0])
    keda.observe(several)
    assert keda.desired(several) == 5  # "returned multiple elements": the HPA keeps its count


def test_hpa_on_the_waiting_gauge_sums_the_pods():
    hpa = HpaWaiting(1, 24, 5.0)
    v = view(10.0, 2, [20.0, 20.0])
    hpa.observe(v)
    assert hpa.desired(v) == 6  # ceil(40 / 5) = 8, but at most 2 + max(2, 4) per period


def test_kubeai_counts_http_requests_not_pairs():
    kubeai = KubeAI(1, 24, initial_average=150.0)
    assert kubeai.desired(view(10.0, 1, [5000.0], http_in_flight=150)) == 2


def test_the_simulated_fleet_serves_what_arrives_under_the_operators_policy():
    trace = Trace("flat", 1800.0, lambda t: 2.0, lambda t: 40.0)
    result = simulate(trace, ProjectPolicy(AutoscalingPolicy(max_replicas=8)), ServiceModel(), 2, seed=1)
    arrived = 2.0 * 40.0 * 1800.0
    assert abs(result.completed_pairs - arrived) / arrived < 0.05
    assert result.slo_violation_pct == 0 and result.reversals == 0
