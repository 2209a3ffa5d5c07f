"""Recommendation history and conditions kept in the RerankerDeployment status."""

from __future__ import annotations

from rerank_operator.autoscaling.policy import AutoscalingPolicy, PodLoad, Recommendation, decide
from rerank_operator.autoscaling.state import (
    disabled_status_patch,
    from_rfc3339,
    history_from_status,
    status_patch,
    to_rfc3339,
)

NOW = from_rfc3339("2026-03-01T12:00:00Z")


def test_history_round_trips_through_the_status():
    p = AutoscalingPolicy(min_replicas=1, max_replicas=8, target_per_replica=32)
    history: list[Recommendation] = []
    status: dict = {}
    current = 2
    for i, total in enumerate([200, 200, 70, 70, 70]):
        now = NOW + 5 * i
        pods = [PodLoad(f"e{j}", True, total / current) for j in range(current)]
        d = decide(p, current, pods, history_from_status(status), now)
        status = {**status, **status_patch(d, status, now, d.scaled)}
        current = d.desired_replicas
        history = list(d.history)
    # What a restarted operator reads back is what the policy kept.
    assert history_from_status(status) == history
    assert status["desiredReplicas"] == current == 7
    assert status["queueDepth"] == 70
    assert status["autoscaling"]["lastScaleTime"] == to_rfc3339(NOW)


def test_malformed_history_entries_are_skipped():
    status = {"autoscaling": {"recommendations": [
        {"time": "2026-03-01T11:59:00Z", "replicas": 3}, {"time": "yesterday", "replicas": 2}, {"replicas": 1},
    ]}}
    assert history_from_status(status) == [Recommendation(from_rfc3339("2026-03-01T11:59:00Z"), 3)]


def test_conditions_of_others_are_kept_and_transition_time_moves_only_on_flip():
    p = AutoscalingPolicy(min_replicas=1, max_replicas=2, target_per_replica=32)
    ready = {"type": "Ready", "status": "True", "reason": "AllReplicasReady", "message": "",
             "lastTransitionTime": "2026-03-01T10:00:00Z"}
    d = decide(p, 2, [PodLoad("e0", True, 500), PodLoad("e1", True, 500)], [], NOW)
    first = status_patch(d, {"conditions": [ready]}, NOW, d.scaled)
    by_type = {c["type"]: c for c in first["conditions"]}
    assert by_type["Ready"] == ready
    assert by_type["ScalingLimited"]["status"] == "True" and by_type["ScalingLimited"]["reason"] == "AtMaxReplicas"
    assert by_type["AutoscalingActive"]["status"] == "True"

    later = status_patch(d, first, NOW + 60, d.scaled)
    by_type_later = {c["type"]: c for c in later["conditions"]}
    assert by_type_later["ScalingLimited"]["lastTransitionTime"] == to_rfc3339(NOW)

    calm = decide(p, 2, [PodLoad("e0", True, 32), PodLoad("e1", True, 32)], [], NOW + 120)
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
