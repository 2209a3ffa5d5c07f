"""The policy's memory and conditions kept in the RerankerDeployment status."""

from __future__ import annotations

import pytest

from rerank_operator.api.v1alpha1 import RerankerDeploymentStatus
from rerank_operator.autoscaling.policy import AutoscalingPolicy, Memory, Observation, PodSample, Recommendation, decide
from rerank_operator.autoscaling.state import (
    disabled_status_patch,
    from_rfc3339,
    history_from_status,
    memory_from_status,
    status_patch,
    to_rfc3339,
)

from tests.unit.autoscaling.fleet import Fleet

NOW = from_rfc3339("2026-03-01T12:00:00Z")


def test_learned_state_round_trips_through_the_status_as_after_a_restart():
    # Saturated pods teach a capacity; an operator that restarts reads back exactly that memory
    # and decides as the running one would have.
    p = AutoscalingPolicy(min_replicas=1, max_replicas=8)
    fleet, status, memory, current = Fleet(ready=2), {}, Memory(), 2
    for i in range(6):
        now = NOW + 5 * i
        d = decide(p, Observation(now, current, fleet.step(5.0, 26_000, 200, 40 + 10 * i, 256)),
                   memory_from_status(status))
        status = {**status, **status_patch(d, status, now, d.scaled)}
        memory, current = d.memory, d.desired_replicas
    assert memory.capacity == pytest.approx(26_000)
    read_back = memory_from_status(status)
    assert read_back.capacity == pytest.approx(memory.capacity, rel=1e-6)
    assert read_back.demand == pytest.approx(memory.demand, rel=1e-6)
    assert read_back.sample_time == pytest.approx(memory.sample_time, abs=1e-3)
    assert read_back.counters == memory.counters and read_back.history == memory.history
    assert (read_back.down_window, read_back.last_scale_down, read_back.last_correction) == (
        memory.down_window, memory.last_scale_down, memory.last_correction)
    RerankerDeploymentStatus.model_validate(status)  # the CRD's status schema accepts it
    pods = fleet.step(5.0, 26_000, 200, 100, 256)
    live = decide(p, Observation(NOW + 30, current, pods), memory)
    restarted = decide(p, Observation(NOW + 30, current, pods), read_back)
    assert (live.desired_replicas, live.reason) == (restarted.desired_replicas, restarted.reason)
    assert status["queueDepth"] == 2 * (40 + 10 * 5 + 256)


def test_malformed_memory_entries_are_left_out():
    status = {"autoscaling": {"capacityTokensPerSecond": "NaN", "demandTokensPerSecond": -4,
                              "sampleTime": "2026-03-01T11:59:00Z",
                              "pods": [{"name": "a", "requestsDone": 1, "promptTokens": 2, "inFlight": 3, "waiting": 0},
                                       {"name": "b", "requestsDone": "x"}, {"requestsDone": 1}]}}
    memory = memory_from_status(status)
    assert memory.capacity is None and memory.demand is None
    assert list(memory.counters) == ["a"]


def test_malformed_history_entries_are_skipped():
    status = {"autoscaling": {"recommendations": [
        {"time": "2026-03-01T11:59:00Z", "replicas": 3}, {"time": "yesterday", "replicas": 2}, {"replicas": 1},
    ]}}
    assert history_from_status(status) == [Recommendation(from_rfc3339("2026-03-01T11:59:00Z"), 3)]


def test_conditions_of_others_are_kept_and_transition_time_moves_only_on_flip():
    p = AutoscalingPolicy(min_replicas=1, max_replicas=2)
    ready = {"type": "Ready", "status": "True", "reason": "AllReplicasReady", "message": "",
             "lastTransitionTime": "2026-03-01T10:00:00Z"}
    busy = Memory(capacity=1000.0, demand=5000.0, tokens_per_request=100.0, sample_time=NOW - 5)
    d = decide(p, Observation(NOW, 2, (PodSample("e0", True, 0, 10, 1, 1), PodSample("e1", True, 0, 10, 1, 1))), busy)
    first = status_patch(d, {"conditions": [ready]}, NOW, d.scaled)
    by_type = {c["type"]: c for c in first["conditions"]}
    assert by_type["Ready"] == ready
    assert by_type["ScalingLimited"]["status"] == "True" and by_type["ScalingLimited"]["reason"] == "AtMaxReplicas"
    assert by_type["AutoscalingActive"]["status"] == "True"

    later = status_patch(d, first, NOW + 60, d.scaled)
    by_type_later = {c["type"]: c for c in later["conditions"]}
    assert by_type_later["ScalingLimited"]["lastTransitionTime"] == to_rfc3339(NOW)

    quiet = Memory(capacity=1000.0, demand=1500.0, tokens_per_request=100.0, sample_time=NOW + 115)
    calm = decide(p, Observation(NOW + 120, 2, (PodSample("e0", True, 0, 10, 1, 1), PodSample("e1", True, 0, 10, 1, 1))),
                  quiet)
    flipped = {c["type"]: c for c in status_patch(calm, later, NOW + 120, calm.scaled)["conditions"]}
    assert flipped["ScalingLimited"]["status"] == "False"
    assert flipped["ScalingLimited"]["lastTransitionTime"] == to_rfc3339(NOW + 120)


def test_turning_autoscaling_off_flips_the_condition_once():
    active = {"conditions": [{"type": "AutoscalingActive", "status": "True", "reason": "ScaledUp", "message": "",
                              "lastTransitionTime": "2026-03-01T10:00:00Z"}]}
    patch = disabled_status_patch(active, NOW)
    assert patch["conditions"][0]["status"] == "False" and patch["conditions"][0]["reason"] == "Disabled"
    assert disabled_status_patch(patch, NOW + 5) is None
    assert disabled_status_patch({}, NOW) is None


def test_the_timed_scale_up_and_the_learned_load_round_trip_through_the_status():
    memory = Memory(load_seconds=95.5, scale_up_asked=NOW - 30, scale_up_replicas=6)
    d = decide(AutoscalingPolicy(min_replicas=1, max_replicas=8),
               Observation(NOW, 6, (PodSample("e-0", False),) * 6), memory)
    status = status_patch(d, {}, NOW, d.scaled)
    RerankerDeploymentStatus.model_validate(status)
    read_back = memory_from_status(status)
    assert read_back.load_seconds == pytest.approx(95.5)
    assert read_back.scale_up_asked == pytest.approx(NOW - 30, abs=1e-3) and read_back.scale_up_replicas == 6
