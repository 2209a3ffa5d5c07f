"""The throughput policy: demand and capacity from vLLM's counters, sizing, and its guards."""

from __future__ import annotations

from dataclasses import replace

import pytest
from pydantic.alias_generators import to_snake

from rerank_operator.api.v1alpha1 import AutoscalingSpec
from rerank_operator.autoscaling.policy import (
    METRICS_MISSING,
    NO_METRICS,
    SCALE_DOWN_STABILIZED,
    SCALE_UP_LIMIT,
    SCALED_DOWN,
    SCALED_UP,
    AutoscalingPolicy,
    Memory,
    Observation,
    PodSample,
    PolicyConfigError,
    Recommendation,
    compact_history,
    decide,
)

from tests.unit.autoscaling.fleet import Fleet

NOW = 1_800_000_000.0
CAPACITY = 26_000.0  # tokens/s one saturated replica does


def run(policy, fleet, current, memory, now, **step):
    d = decide(policy, Observation(now, current, fleet.step(5.0, **step)), memory)
    return d, d.memory


def saturated(fleet, policy, current, seconds=60, start=NOW, memory=Memory(), tokens_per_pair=200.0,
              waiting=50.0):
    """Every pod saturated (requests waiting) for ``seconds``; pods keep arriving at 4 per interval more."""
    d = None
    for i in range(int(seconds / 5) + 1):
        d, memory = run(policy, fleet, current, memory, start + 5 * i, tokens_per_s_per_pod=CAPACITY,
                        tokens_per_pair=tokens_per_pair, waiting_per_pod=waiting + 20 * i, running_per_pod=256)
    return d, memory


def test_first_read_has_no_rate_and_holds():
    fleet = Fleet(ready=2)
    d, memory = run(AutoscalingPolicy(max_replicas=8), fleet, 2, Memory(), NOW, tokens_per_s_per_pod=1000,
                    tokens_per_pair=200, waiting_per_pod=500, running_per_pod=256)
    assert d.reason == NO_METRICS and d.desired_replicas == 2, d.message
    assert memory.sample_time == NOW and set(memory.counters) == {"engine-0", "engine-1"}


def test_saturated_replicas_teach_the_capacity_and_the_demand_sizes_the_fleet():
    # Two saturated pods each finish 26k tokens/s while the queue grows by 20 pairs x 200 tokens
    # per 5 s per pod: demand = 2 x (26,000 + 800) tokens/s.
    p = AutoscalingPolicy(max_replicas=8, max_scale_up_factor=None)
    d, memory = saturated(Fleet(ready=2), p, 2)
    assert memory.capacity == pytest.approx(CAPACITY)
    assert memory.tokens_per_request == pytest.approx(200.0)
    assert memory.demand == pytest.approx(2 * (CAPACITY + 800), rel=1e-6)
    backlog = 2 * (50 + 20 * 12) * 200.0
    expected = -(-(memory.demand + backlog / p.backlog_drain_seconds) // (0.8 * CAPACITY))
    assert d.desired_replicas == expected == 3 and d.reason == SCALED_UP, d.message


def test_a_capacity_not_yet_seen_saturated_never_scales_up():
    # Pods busy but never queueing: their rate is only a lower bound of what they can do.
    p = AutoscalingPolicy(max_replicas=8)
    fleet, memory = Fleet(ready=2), Memory()
    for i in range(20):
        d, memory = run(p, fleet, 2, memory, NOW + 5 * i, tokens_per_s_per_pod=20_000, tokens_per_pair=200,
                        waiting_per_pod=0, running_per_pod=200)
        assert d.desired_replicas <= 2, d.message
    assert memory.capacity is None and memory.capacity_floor == pytest.approx(20_000)


def test_load_falling_below_a_seen_rate_scales_down_after_the_window():
    p = AutoscalingPolicy(max_replicas=8, scale_down_stabilization_seconds=60)
    fleet, memory = Fleet(ready=4), Memory()
    _, memory = saturated(fleet, p, 4, seconds=20, memory=memory)
    current, reasons = 4, []
    for i in range(40):
        d, memory = run(p, fleet, current, memory, NOW + 60 + 5 * i, tokens_per_s_per_pod=2_000,
                        tokens_per_pair=200, waiting_per_pod=0, running_per_pod=10)
        reasons.append(d.reason)
        current = d.desired_replicas
    assert current == 1
    # Not before the last saturated recommendation (at +20 s) has left the 60 s window.
    assert SCALE_DOWN_STABILIZED in reasons and reasons.index(SCALED_DOWN) >= (20 + 60 - 60) // 5


def test_longer_documents_at_the_same_pair_rate_ask_for_more_replicas():
    # Same pairs/s over 4 pods, 3x the tokens per pair: the token counters carry it, a pair count would not.
    p = AutoscalingPolicy(max_replicas=16, max_scale_up_factor=None)
    pairs_per_s = 1.5 * 0.8 * CAPACITY / 200  # 1.5 replicas' worth at 200 tokens/pair
    results = {}
    for tokens_per_pair in (200.0, 600.0):
        fleet, memory = Fleet(ready=4), Memory(capacity=CAPACITY)
        for i in range(30):
            d, memory = run(p, fleet, 4, memory, NOW + 5 * i, tokens_per_s_per_pod=pairs_per_s / 4 * tokens_per_pair,
                            tokens_per_pair=tokens_per_pair, waiting_per_pod=0, running_per_pod=50)
        results[tokens_per_pair] = d.recommended_replicas
    assert results == {200.0: 2, 600.0: 5}


def test_a_pod_whose_metrics_cannot_be_read_holds_a_scale_down():
    p = AutoscalingPolicy(max_replicas=8, scale_down_stabilization_seconds=0)
    fleet, memory = Fleet(ready=3), Memory(capacity=CAPACITY)
    for i in range(10):
        d, memory = run(p, fleet, 3, memory, NOW + 5 * i, tokens_per_s_per_pod=1000, tokens_per_pair=200,
                        waiting_per_pod=0, running_per_pod=5, unreadable={"engine-2"})
    assert d.desired_replicas == 3 and d.reason == METRICS_MISSING and d.missing_pods == 1, d.message


def test_a_restarted_pod_counter_reset_is_not_a_negative_rate():
    p = AutoscalingPolicy(max_replicas=8)
    fleet, memory = Fleet(ready=2), Memory(capacity=CAPACITY)
    for i in range(3):
        d, memory = run(p, fleet, 2, memory, NOW + 5 * i, tokens_per_s_per_pod=10_000, tokens_per_pair=200,
                        waiting_per_pod=0, running_per_pod=30)
    before = memory.demand
    fleet.done["engine-1"] = [0.0, 0.0]  # engine-1 restarted: its counters start over
    d, memory = run(p, fleet, 2, memory, NOW + 15, tokens_per_s_per_pod=10_000, tokens_per_pair=200,
                    waiting_per_pod=0, running_per_pod=30)
    assert memory.demand == pytest.approx(before, rel=0.01)


def test_held_demand_from_outside_the_engines_adds_replicas():
    p = AutoscalingPolicy(max_replicas=8)
    memory = Memory(capacity=CAPACITY)
    fleet = Fleet(ready=2)
    for i in range(3):
        obs = Observation(NOW + 5 * i, 2, fleet.step(5.0, 10_000, 200, 0, 30), held_demand=3 * CAPACITY)
        d = decide(p, obs, memory)
        memory = d.memory
    # (2 x 10,000 + 3 x 26,000) / (0.8 x 26,000) = 4.7
    assert d.desired_replicas == 5, d.message


def test_one_scale_up_asks_for_at_most_factor_times_the_ready_pods():
    p = AutoscalingPolicy(max_replicas=24)
    fleet, memory = Fleet(ready=1), Memory(capacity=CAPACITY)
    for i in range(2):
        d = decide(p, Observation(NOW + 5 * i, 1, fleet.step(5.0, CAPACITY, 200, 500, 256), held_demand=20 * CAPACITY),
                   memory)
        memory = d.memory
    assert d.desired_replicas == 4 and d.limited_reason == SCALE_UP_LIMIT, d.message


def test_loading_pods_count_as_capacity_coming():
    # 2 ready + 2 loading = 4 asked for a moment ago; the pods already serving are busy -> no
    # further scale-up, and no scale-down of replicas that are still loading.
    p = AutoscalingPolicy(max_replicas=8)
    fleet = Fleet(ready=2, loading=2)
    memory = Memory(capacity=CAPACITY, history=(Recommendation(NOW - 10, 4),))
    for i in range(5):
        d, memory = run(p, fleet, 4, memory, NOW + 5 * i, tokens_per_s_per_pod=CAPACITY * 0.9, tokens_per_pair=200,
                        waiting_per_pod=0, running_per_pod=200)
    assert d.desired_replicas == 4 and d.pending_pods == 2, d.message


def test_no_ready_pods_holds():
    d = decide(AutoscalingPolicy(), Observation(NOW, 3, (PodSample("a", False), PodSample("b", False))), Memory())
    assert d.reason == NO_METRICS and d.desired_replicas == 3 and d.pending_pods == 3


def test_min_and_max_are_enforced():
    d = decide(AutoscalingPolicy(min_replicas=2, max_replicas=3), Observation(NOW, 5, ()), Memory())
    assert d.desired_replicas == 3


def test_compacted_history_gives_the_same_decisions():
    p = AutoscalingPolicy(scale_down_stabilization_seconds=60, scale_up_stabilization_seconds=15)
    import random

    rng = random.Random(3)
    full = [Recommendation(NOW + 5 * i, rng.randint(1, 4)) for i in range(200)]
    now = NOW + 5 * 199
    kept = compact_history(full, now, p)
    for cutoff in (now - 60, now - 15):
        assert max(r.replicas for r in full if r.time > cutoff) == max(r.replicas for r in kept if r.time > cutoff)
        assert min(r.replicas for r in full if r.time > cutoff) == min(r.replicas for r in kept if r.time > cutoff)
    assert len(kept) < 20


@pytest.mark.parametrize(
    "spec,field",
    [
        ({"minReplicas": -1}, "minReplicas"),
        ({"minReplicas": 3, "maxReplicas": 2}, "maxReplicas"),
        ({"targetUtilization": 0}, "targetUtilization"),
        ({"targetUtilization": 1.5}, "targetUtilization"),
        ({"demandWindowSeconds": 0}, "demandWindowSeconds"),
        ({"backlogDrainSeconds": 0}, "backlogDrainSeconds"),
        ({"tolerance": 1.5}, "tolerance"),
        ({"scaleDownStabilizationSeconds": -1}, "scaleDownStabilizationSeconds"),
        ({"maxScaleUpStep": 0}, "maxScaleUpStep"),
        ({"maxScaleUpFactor": 0.5}, "maxScaleUpFactor"),
    ],
)
def test_invalid_settings_name_the_field(spec, field):
    # Refused when the spec is parsed, and by a policy built in code (bench/, the tests) alike.
    with pytest.raises(ValueError, match=field):
        AutoscalingSpec.model_validate(spec)
    with pytest.raises(PolicyConfigError, match=field):
        AutoscalingPolicy(**{to_snake(key): value for key, value in spec.items()})


def test_from_spec_reads_the_parsed_spec_and_the_crd_defaults_are_the_policy_defaults():
    p = AutoscalingPolicy.from_spec(AutoscalingSpec.model_validate({
        "minReplicas": 2, "maxReplicas": 8, "targetUtilization": 0.7, "demandWindowSeconds": 30,
        "backlogDrainSeconds": 120, "scaleDownStabilizationSeconds": 10, "maxScaleUpStep": 3,
        "maxScaleUpFactor": 2.5}))
    assert (p.min_replicas, p.max_replicas, p.target_utilization, p.demand_window_seconds,
            p.backlog_drain_seconds) == (2, 8, 0.7, 30.0, 120.0)
    assert (p.scale_down_stabilization_seconds, p.max_scale_up_step, p.max_scale_up_factor) == (10.0, 3, 2.5)
    assert AutoscalingPolicy.from_spec(AutoscalingSpec()) == AutoscalingPolicy()


def test_a_premature_scale_down_grows_the_window_by_what_it_fell_short_and_an_hour_without_one_halves_it():
    p = AutoscalingPolicy(max_replicas=8, scale_down_stabilization_seconds=60)
    fleet = Fleet(ready=2)
    busy = dict(tokens_per_s_per_pod=20_000, tokens_per_pair=200, waiting_per_pod=0, running_per_pod=100)
    idle = dict(tokens_per_s_per_pod=1_000, tokens_per_pair=200, waiting_per_pod=0, running_per_pod=2)
    memory = Memory(capacity=CAPACITY, last_scale_down=NOW - 30, history=(Recommendation(NOW - 30, 1),))
    # 35 s after a scale-down, a burst needs 2 replicas again: that scale-down was premature, and a
    # window 35 s longer would not have made it; half a model load (120 s until one is seen) on top.
    current = 1
    for i in range(3):
        d, memory = run(p, fleet, current, memory, NOW + 5 * i, **busy)
        current = d.desired_replicas
    assert current == 2 and memory.down_window == 155 and memory.last_correction == NOW + 5
    # The next lull holds 155 s, not 60.
    started = NOW + 15
    for i in range(60):
        d, memory = run(p, fleet, current, memory, started + 5 * i, **idle)
        if d.desired_replicas < current:
            break
        current = d.desired_replicas
    assert d.desired_replicas == 1 and 5 * i >= 155 - 15, d.message
    # An hour without another correction halves it; another hour, and it is back to the setting.
    d, memory = run(p, fleet, 1, memory, NOW + 5 + 3600, **idle)
    assert memory.down_window == 77.5
    d, memory = run(p, fleet, 1, memory, NOW + 5 + 7200, **idle)
    assert memory.down_window == 60


def test_small_corrections_do_not_stretch_the_window_to_its_cap():
    # Bursts at two or three replicas: scale-downs undone 40-60 s later, three times. Doubling would
    # hold the next scale-down -- whatever its size -- for 3x the window (1,800 s); growing by what each
    # one fell short (plus half a 120 s model load) holds it for 600 + 100 + 110 + 120 = 930 s.
    p = AutoscalingPolicy(max_replicas=24, scale_down_stabilization_seconds=600)
    fleet = Fleet(ready=2)
    busy = dict(tokens_per_pair=200, waiting_per_pod=0, running_per_pod=100)  # 2.9 replicas' worth of work
    _, memory = run(p, fleet, 2, Memory(capacity=CAPACITY), NOW, tokens_per_s_per_pod=30_000, **busy)
    t = NOW
    for short_by in (40, 50, 60):
        memory = replace(memory, last_scale_down=t, history=(Recommendation(t, 2),))
        t += short_by
        pods = fleet.step(float(short_by), tokens_per_s_per_pod=30_000, **busy)
        d = decide(p, Observation(t, 2, pods), replace(memory, sample_time=t - short_by))
        memory = d.memory
        assert d.desired_replicas == 3, d.message
    assert memory.down_window == 930


def light_then(p, fleet, current, passes=6, memory=Memory(capacity=CAPACITY)):
    """``passes`` intervals at half a replica's capacity per pod, nothing waiting."""
    d = None
    for i in range(passes):
        d, memory = run(p, fleet, current, memory, NOW + 5 * i, tokens_per_s_per_pod=CAPACITY / 2,
                        tokens_per_pair=200, waiting_per_pod=0, running_per_pod=100)
    return d, memory, NOW + 5 * passes


def test_a_clear_rise_is_sized_in_one_decision():
    # Arrivals jump to 3x what the two replicas can do: the queue forms in one interval and keeps
    # growing in the next. The demand jumps to the interval's arrivals there, instead of an average
    # that takes minutes to creep up (one step of a 60 s average weighs a 5 s sample ~8 %).
    p = AutoscalingPolicy(max_replicas=24, max_scale_up_factor=None)
    fleet = Fleet(ready=2)
    _, memory, t = light_then(p, fleet, 2)
    growth = 2 * CAPACITY * 5 / 200  # pairs per pod per 5 s on top of a full batch: 3x the capacity arrives
    d, memory = run(p, fleet, 2, memory, t, tokens_per_s_per_pod=CAPACITY, tokens_per_pair=200,
                    waiting_per_pod=growth, running_per_pod=256)
    assert memory.demand < 2 * CAPACITY, d.message  # the queue just formed: maybe one large request
    d, memory = run(p, fleet, 2, memory, t + 5, tokens_per_s_per_pod=CAPACITY, tokens_per_pair=200,
                    waiting_per_pod=2 * growth, running_per_pod=256)
    assert memory.demand == pytest.approx(2 * 3 * CAPACITY, rel=1e-6), d.message
    backlog = 2 * 2 * growth * 200
    expected = -(-(2 * 3 * CAPACITY + backlog / 240) // (0.8 * CAPACITY))
    assert d.desired_replicas == expected == 8 and d.reason == SCALED_UP, d.message


def test_one_large_request_is_not_a_rise():
    # A queue that forms in one interval and is worked off in the next (one request of thousands of
    # pairs) leaves the average to smooth it.
    p = AutoscalingPolicy(max_replicas=24, max_scale_up_factor=None)
    fleet = Fleet(ready=2)
    _, memory, t = light_then(p, fleet, 2)
    before = memory.demand
    for i, waiting in enumerate((1300.0, 400.0)):
        d, memory = run(p, fleet, 2, memory, t + 5 * i, tokens_per_s_per_pod=CAPACITY, tokens_per_pair=200,
                        waiting_per_pod=waiting, running_per_pod=256)
        assert memory.demand < 2 * before, d.message


def test_a_fall_is_still_smoothed():
    # The scale-down side keeps its calm: a sudden fall moves the average by one step of its window.
    p = AutoscalingPolicy(max_replicas=24)
    fleet = Fleet(ready=2)
    _, memory, t = light_then(p, fleet, 2)
    before = memory.demand
    d, memory = run(p, fleet, 2, memory, t, tokens_per_s_per_pod=0.0, tokens_per_pair=200,
                    waiting_per_pod=0, running_per_pod=100)
    assert memory.demand > 0.9 * before, d.message


def test_a_backlog_is_drained_within_two_model_loads():
    # 7,000 pairs waiting per pod, the queue steady: over backlogDrainSeconds (300 s) it would add 0.45
    # replicas (3 in all); over two model loads (240 s), 0.56 (4 in all).
    p = AutoscalingPolicy(max_replicas=24)
    assert p.backlog_drain_seconds == 300
    fleet, memory = Fleet(ready=2), Memory(capacity=CAPACITY)
    for i in range(3):
        d, memory = run(p, fleet, 2, memory, NOW + 5 * i, tokens_per_s_per_pod=CAPACITY, tokens_per_pair=200,
                        waiting_per_pod=7000, running_per_pod=256)
    assert memory.demand == pytest.approx(2 * CAPACITY)
    assert d.desired_replicas == 4 and "over 240 s" in d.message, d.message


def test_the_model_load_is_learned_from_scale_up_to_ready_and_sets_the_drain():
    # 2 -> 4 asked; the two new pods are Ready 90 s later: the load is 90 s, and the backlog is then
    # drained over two of them (180 s) rather than two of the assumed 120 s.
    p = AutoscalingPolicy(max_replicas=24, max_scale_up_factor=None)
    fleet, memory = Fleet(ready=2), Memory(capacity=CAPACITY)
    d, memory = saturated(fleet, p, 2, seconds=10, memory=memory, waiting=2000)
    assert d.desired_replicas > 2 and memory.scale_up_asked is not None, d.message
    asked, target = memory.scale_up_asked, d.desired_replicas
    assert memory.scale_up_replicas == target
    fleet.loading = target - 2
    d, memory = run(p, fleet, target, memory, asked + 45, tokens_per_s_per_pod=CAPACITY, tokens_per_pair=200,
                    waiting_per_pod=100, running_per_pod=256)
    assert memory.load_seconds is None and memory.scale_up_asked == asked  # still loading
    fleet.ready, fleet.loading = target, 0
    d, memory = run(p, fleet, target, memory, asked + 90, tokens_per_s_per_pod=CAPACITY / 2, tokens_per_pair=200,
                    waiting_per_pod=100, running_per_pod=128)
    assert memory.load_seconds == pytest.approx(90.0) and memory.scale_up_asked is None
    assert "over 180 s" in d.message, d.message
