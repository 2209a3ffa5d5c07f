"""The scaling policy (pure): table-driven cases, stabilization over time, history compaction."""

from __future__ import annotations

import random

import pytest

from rerank_operator.api.v1alpha1 import AutoscalingSpec
from rerank_operator.autoscaling.policy import (
    AT_MAX_REPLICAS,
    AT_MIN_REPLICAS,
    AWAITING_PENDING_REPLICAS,
    NO_METRICS,
    SCALE_DOWN_STABILIZED,
    SCALE_UP_LIMIT,
    SCALE_UP_STABILIZED,
    SCALED_DOWN,
    SCALED_UP,
    WITHIN_TOLERANCE,
    AutoscalingPolicy,
    PodLoad,
    PolicyConfigError,
    Recommendation,
    compact_history,
    decide,
)

NOW = 1_000_000.0
T = 32.0  # target queue depth per replica in these cases


def ready(*depths: float | None) -> list[PodLoad]:
    return [PodLoad(f"engine-{i}", True, d) for i, d in enumerate(depths)]


def loading(n: int, start: int = 50) -> list[PodLoad]:
    return [PodLoad(f"engine-{start + i}", False) for i in range(n)]


def policy(**kw) -> AutoscalingPolicy:
    base = dict(min_replicas=1, max_replicas=10, target_per_replica=T)
    base.update(kw)
    return AutoscalingPolicy(**base)


CASES = [
    # id, policy kwargs, current, pods, history [(age_s, replicas)], expected desired, reason, limited
    ("steady within tolerance", {}, 2, ready(33, 34), [], 2, WITHIN_TOLERANCE, None),
    ("just outside tolerance scales", {}, 2, ready(36, 36), [], 3, SCALED_UP, None),
    ("scale up at once", {}, 2, ready(64, 64), [], 4, SCALED_UP, None),
    ("clamped to max", {}, 3, ready(150, 150, 150), [], 10, SCALED_UP, AT_MAX_REPLICAS),
    ("at max holds and says so", {}, 10, ready(*[64] * 10), [], 10, AT_MAX_REPLICAS, AT_MAX_REPLICAS),
    ("current above a lowered max comes down", {"max_replicas": 4}, 6, ready(*[32] * 6), [], 4, SCALED_DOWN,
     AT_MAX_REPLICAS),
    ("idle stays at min", {}, 1, ready(0), [], 1, AT_MIN_REPLICAS, AT_MIN_REPLICAS),
    ("min replicas floor", {"min_replicas": 2}, 3, ready(1, 1, 1), [], 2, SCALED_DOWN, AT_MIN_REPLICAS),
    ("max step limits a big jump", {"max_scale_up_step": 2}, 1, ready(320), [], 3, SCALED_UP, SCALE_UP_LIMIT),
    # A queue that grew while replicas loaded asks for at most maxScaleUpFactor x the Ready pods.
    ("factor bounds a backlog-driven jump", {}, 2, ready(320, 320), [], 8, SCALED_UP, SCALE_UP_LIMIT),
    ("factor counts pending replicas as already granted", {}, 8, ready(320, 320) + loading(6), [], 8,
     SCALE_UP_LIMIT, SCALE_UP_LIMIT),
    ("factor grows from the larger ready count", {}, 8, ready(*[80] * 8), [], 10, SCALED_UP, AT_MAX_REPLICAS),
    ("factor off (1000x)", {"max_scale_up_factor": 1000.0}, 2, ready(200, 200), [], 10, SCALED_UP,
     AT_MAX_REPLICAS),
    ("factor not needed", {"max_scale_up_factor": 2.0}, 2, ready(64, 64), [], 4, SCALED_UP, None),
    ("max step not needed", {"max_scale_up_step": 2}, 2, ready(48, 48), [], 3, SCALED_UP, None),
    # Pods still loading are capacity that is coming: no second scale-up for the same load.
    ("loading pods cover the load", {}, 4, ready(64, 64) + loading(2), [], 4, WITHIN_TOLERANCE, None),
    ("pods not yet created cover the load", {}, 4, ready(48, 48), [], 4, AWAITING_PENDING_REPLICAS, None),
    ("more load than pending covers", {}, 4, ready(128, 128) + loading(2), [], 8, SCALED_UP, None),
    ("all loading: hold", {}, 3, loading(3), [], 3, NO_METRICS, None),
    # Missing metrics (HPA rules): 0 load when scaling up, target load when scaling down.
    ("missing counts 0 on scale-up", {}, 3, ready(64, 64, None), [], 4, SCALED_UP, None),
    ("missing never causes a scale-down", {}, 2, ready(32, None), [], 2, WITHIN_TOLERANCE, None),
    ("missing counts as target on scale-down", {}, 4, ready(0, 0, None, None), [], 3, SCALED_DOWN, None),
    ("nothing readable: hold", {}, 2, ready(None, None), [], 2, NO_METRICS, None),
    # Stabilization windows.
    ("scale-down held by the window", {}, 4, ready(8, 8, 8, 8), [(100, 4)], 4, SCALE_DOWN_STABILIZED, None),
    ("scale-down to the window max", {}, 4, ready(8, 8, 8, 8), [(200, 3), (100, 2)], 3, SCALED_DOWN, None),
    ("scale-down after the window", {}, 4, ready(8, 8, 8, 8), [(301, 4)], 2, SCALED_DOWN, None),
    # Scale-down headroom: land at the bottom of the tolerance band (load 62 on target 32: 2 replicas
    # would sit at 97 %, one noisy reading from scaling back up; 3 sit at 65 %).
    ("scale-down keeps headroom", {}, 6, ready(*[62 / 6] * 6), [], 3, SCALED_DOWN, None),
    ("scale-down without headroom need", {}, 6, ready(*[50 / 6] * 6), [], 2, SCALED_DOWN, None),
    ("scale-up held by an up window", {"scale_up_stabilization_seconds": 30}, 2, ready(64, 64), [(10, 2)], 2,
     SCALE_UP_STABILIZED, None),
    ("up window passed", {"scale_up_stabilization_seconds": 30}, 2, ready(64, 64), [(40, 2), (10, 4)], 4,
     SCALED_UP, None),
]


@pytest.mark.parametrize(
    "kw,current,pods,history,expected,reason,limited",
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_decision_table(kw, current, pods, history, expected, reason, limited):
    hist = [Recommendation(NOW - age, replicas) for age, replicas in history]
    d = decide(policy(**kw), current, pods, hist, NOW)
    assert (d.desired_replicas, d.reason, d.limited_reason) == (expected, reason, limited), d.message


def test_decision_reports_what_it_saw():
    d = decide(policy(), 4, ready(40, None, 24) + loading(1), [], NOW)
    assert d.observed_queue_depth == 64
    assert (d.ready_pods, d.missing_pods, d.pending_pods) == (3, 1, 1)
    assert d.history[-1] == Recommendation(NOW, d.recommended_replicas)


def _run(p: AutoscalingPolicy, loads: list[float], start: int, interval: float = 5.0):
    """Feed per-pass total loads through decide as the operator would; return (time, from, to) scales."""
    current, history, scales = start, (), []
    for i, load in enumerate(loads):
        now = NOW + i * interval
        per_pod = load / current
        d = decide(p, current, ready(*[per_pod] * current), history, now)
        history = d.history
        if d.scaled:
            scales.append((i * interval, current, d.desired_replicas))
            current = d.desired_replicas
    return scales, current


def test_oscillating_load_does_not_flap():
    # Load swings every 30 s between "needs 4" and "needs 1" for 20 minutes, then stays low.
    swings = [(4 * T if (i // 6) % 2 == 0 else 0.5 * T) for i in range(240)]
    calm = [0.5 * T] * 100
    scales, final = _run(policy(), swings + calm, start=1)
    # One scale-up, then nothing while it swings, then one scale-down a window after the last peak.
    assert [(a, b) for _, a, b in scales] == [(1, 4), (4, 1)]
    last_peak = max(i for i, load in enumerate(swings) if load > T) * 5.0
    assert scales[1][0] - last_peak >= 300
    assert final == 1


def test_step_load_scales_up_then_down_after_window():
    low = 0.8 * T  # below the tolerance band's floor, so one replica is the right count
    loads = [low] * 20 + [6 * T] * 100 + [low] * 100
    scales, _ = _run(policy(), loads, start=1)
    # Up by at most maxScaleUpFactor (4) x the ready replicas per decision, then to the need;
    # down once, a window after the last high pass.
    assert [(a, b) for _, a, b in scales] == [(1, 4), (4, 6), (6, 1)]
    last_high_pass = 119 * 5.0
    # The first pass whose 300 s window no longer holds a "6" recommendation.
    assert scales[-1][0] - last_high_pass == 300


def test_compacted_history_gives_the_same_decisions():
    rng = random.Random(3)
    p = policy(scale_up_stabilization_seconds=20, scale_down_stabilization_seconds=60)
    full: list[Recommendation] = []
    compact: tuple[Recommendation, ...] = ()
    current_full = current_compact = 3
    for i in range(600):
        now = NOW + i * 5
        pods = ready(*[rng.uniform(0, 3 * T) for _ in range(current_full)])
        a = decide(p, current_full, pods, full, now)
        b = decide(p, current_compact, pods, compact, now)
        assert a.desired_replicas == b.desired_replicas
        full.append(Recommendation(now, a.recommended_replicas))
        compact = b.history
        current_full = current_compact = a.desired_replicas
        assert len(compact) <= 2 * (60 // 5) + 1
    # Usually far shorter than the raw window.
    assert len(compact_history(full, NOW + 599 * 5, p)) < len([r for r in full if r.time > NOW + 599 * 5 - 60])


@pytest.mark.parametrize(
    "spec,field",
    [
        ({"minReplicas": 0}, "minReplicas"),
        ({"minReplicas": 3, "maxReplicas": 2}, "maxReplicas"),
        ({"targetQueueDepthPerReplica": 0}, "targetQueueDepthPerReplica"),
        ({"tolerance": 1.5}, "tolerance"),
        ({"scaleDownStabilizationSeconds": -1}, "scaleDownStabilizationSeconds"),
        ({"maxScaleUpStep": 0}, "maxScaleUpStep"),
        ({"maxScaleUpFactor": 0.5}, "maxScaleUpFactor"),
    ],
)
def test_invalid_settings_name_the_field(spec, field):
    with pytest.raises(PolicyConfigError, match=field):
        AutoscalingPolicy.from_spec(spec)


def test_from_spec_reads_camel_case_and_defaults():
    p = AutoscalingPolicy.from_spec({"minReplicas": 2, "maxReplicas": 8, "targetQueueDepthPerReplica": 16,
                                     "scaleDownStabilizationSeconds": 10, "maxScaleUpStep": 3,
                                     "maxScaleUpFactor": 2.5})
    assert (p.min_replicas, p.max_replicas, p.target_per_replica) == (2, 8, 16.0)
    assert (p.scale_down_stabilization_seconds, p.max_scale_up_step, p.max_scale_up_factor, p.tolerance) == (
        10.0, 3, 2.5, 0.1)
    assert AutoscalingPolicy.from_spec(None) == AutoscalingPolicy()
    # The CRD's defaults and the policy's agree.
    assert AutoscalingPolicy.from_spec(AutoscalingSpec().model_dump(by_alias=True)) == AutoscalingPolicy()


def test_backlog_growing_while_replicas_load_does_not_scale_further():
    # 2 pods serve, 6 more were asked for and load the model for 2 minutes; meanwhile the queue
    # the 2 pods report keeps growing. The count stays at 4 x 2 = 8 until the new pods serve.
    p = policy(max_replicas=24)
    current, history = 8, ()
    for i in range(24):
        backlog = 320.0 + 200.0 * i
        d = decide(p, current, ready(backlog, backlog) + loading(6), history, NOW + 5.0 * i)
        history = d.history
        assert d.desired_replicas == 8, d.message
    assert d.limited_reason == SCALE_UP_LIMIT and "at most 4 x the ready pods" in d.message
    # Once they serve and still see a backlog, the next scale-up grows from 8 ready pods.
    d = decide(p, current, ready(*[400.0] * 8), history, NOW + 120.0)
    assert d.desired_replicas == 24 and d.reason == SCALED_UP


def test_scale_down_headroom_avoids_an_immediate_scale_back_up():
    # Load settles just under 2 replicas' worth after a peak. Without headroom the fleet would
    # drop to 2 replicas at 97 % of target, and a +15 % wobble would scale it back up.
    p = policy()
    history = (Recommendation(NOW - 301, 6),)
    d = decide(p, 6, ready(*[62 / 6] * 6), history, NOW)
    assert d.desired_replicas == 3
    wobble = 62 * 1.15
    after = decide(p, 3, ready(*[wobble / 3] * 3), d.history, NOW + 5)
    assert after.desired_replicas == 3 and after.reason == WITHIN_TOLERANCE, after.message
