"""The status computation: conditions from what the StatefulSet reports (pure, table-driven)."""

from __future__ import annotations

import pytest

from rerank_operator.reconcile.status import (
    Failure,
    Wanted,
    carried_failure,
    compute_status,
    degraded_transition,
    latest_statefulset,
    status_changes,
)

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def body(status=None, generation=3):
    return {"metadata": {"name": "rr", "namespace": "ns", "generation": generation}, "status": status or {}}


def sts(spec_replicas=2, replicas=2, ready=2, updated=2, gen=5, observed=5, current="r1", update="r1"):
    return {"metadata": {"generation": gen}, "spec": {"replicas": spec_replicas},
            "status": {"observedGeneration": observed, "replicas": replicas, "readyReplicas": ready,
                       "updatedReplicas": updated, "currentRevision": current, "updateRevision": update}}


WANT2 = Wanted(replicas=2, autoscaling=False, endpoint="http://rr.ns.svc:8000/v1/rerank", ui_url="http://rr-ui.ns.svc:80/")


def conds(status):
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


@pytest.mark.parametrize("observed, expected", [
    (None, {"Ready": ("False", "ReplicasNotReady"), "Progressing": ("True", "Creating"),
            "Degraded": ("False", "AsExpected")}),
    (sts(observed=4), {"Ready": ("True", "AllReplicasReady"), "Progressing": ("True", "RollingOut"),
                       "Degraded": ("False", "AsExpected")}),
    (sts(updated=1, update="r2", ready=1), {"Ready": ("False", "ReplicasNotReady"), "Progressing": ("True", "RollingOut"),
                                             "Degraded": ("False", "AsExpected")}),
    (sts(replicas=1, ready=1, updated=1), {"Ready": ("False", "ReplicasNotReady"), "Progressing": ("True", "Scaling"),
                                            "Degraded": ("False", "AsExpected")}),
    (sts(ready=1), {"Ready": ("False", "ReplicasNotReady"), "Progressing": ("True", "WaitingForReplicas"),
                    "Degraded": ("False", "AsExpected")}),
    (sts(), {"Ready": ("True", "AllReplicasReady"), "Progressing": ("False", "RolloutComplete"),
             "Degraded": ("False", "AsExpected")}),
])
def test_conditions_follow_the_statefulset(observed, expected):
    status = compute_status(body(), WANT2, observed, now=NOW, observed_generation=3)
    assert conds(status) == expected
    assert all(c["observedGeneration"] == 3 for c in status["conditions"])


def test_counts_selector_and_urls():
    status = compute_status(body(), WANT2, sts(replicas=2, ready=1), now=NOW, observed_generation=3)
    assert status["replicas"] == 2 and status["readyReplicas"] == 1 and status["desiredReplicas"] == 2
    assert status["selector"] == "app.kubernetes.io/instance=rr,app.kubernetes.io/component=engine"
    assert status["endpoint"] == "http://rr.ns.svc:8000/v1/rerank"
    assert status["uiURL"] == "http://rr-ui.ns.svc:80/"
    assert status["observedGeneration"] == 3


def test_scaled_to_zero_is_not_ready_but_settled():
    zero = Wanted(0, False, "e", None)
    status = compute_status(body(), zero, sts(spec_replicas=0, replicas=0, ready=0, updated=0), now=NOW,
                            observed_generation=3)
    assert conds(status)["Ready"] == ("False", "ScaledToZero")
    assert conds(status)["Progressing"] == ("False", "RolloutComplete")
    # UI switched off: the uiURL key is removed by the patch.
    assert status["uiURL"] is None
    assert status_changes({"uiURL": "http://old/"}, status)["uiURL"] is None


def test_insufficient_gpus_is_degraded_and_not_progressing():
    status = compute_status(body(), WANT2, sts(ready=0), now=NOW, observed_generation=3,
                            failure=Failure("InsufficientGPUs", "no node has 8 nvidia.com/gpu"))
    assert conds(status) == {"Ready": ("False", "ReplicasNotReady"), "Progressing": ("False", "InsufficientGPUs"),
                             "Degraded": ("True", "InsufficientGPUs")}
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    assert degraded["message"] == "no node has 8 nvidia.com/gpu"


def test_transition_time_moves_only_when_the_status_flips():
    first = compute_status(body(), WANT2, sts(ready=1), now=NOW, observed_generation=3)
    later = compute_status(body(first), WANT2, sts(ready=1), now=NOW + 60, observed_generation=3)
    assert first["conditions"] == later["conditions"]
    assert status_changes(first, later) == {}  # nothing to write
    flipped = compute_status(body(later), WANT2, sts(), now=NOW + 120, observed_generation=3)
    times = {c["type"]: c["lastTransitionTime"] for c in flipped["conditions"]}
    assert times["Ready"] == "2026-01-01T00:02:00Z"
    assert times["Degraded"] == "2026-01-01T00:00:00Z"


def test_autoscaler_owns_desired_replicas_and_its_conditions_are_kept():
    previous = {"desiredReplicas": 3, "queueDepth": 90,
                "conditions": [{"type": "AutoscalingActive", "status": "True", "reason": "ScaledUp", "message": "m",
                                "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
    on = Wanted(2, True, "e", None)
    status = compute_status(body(previous), on, sts(), now=NOW, observed_generation=3)
    assert status["desiredReplicas"] == 3
    assert "queueDepth" not in status  # the autoscaler's field, left alone
    assert conds(status)["AutoscalingActive"] == ("True", "ScaledUp")
    # Autoscaling switched off: the condition turns False (its daemon is gone and cannot say it).
    off = compute_status(body(previous), WANT2, sts(), now=NOW, observed_generation=3)
    assert off["desiredReplicas"] == 2
    assert conds(off)["AutoscalingActive"] == ("False", "Disabled")


def test_unreadable_spec_keeps_the_last_counts_and_says_why():
    status = compute_status(body({"desiredReplicas": 2}), None, sts(), now=NOW, observed_generation=3,
                            failure=Failure("InvalidSpec", "spec.engine.tensorParallelSize: must be 1, 2, 4 or 8"))
    assert conds(status)["Degraded"] == ("True", "InvalidSpec")
    assert status["desiredReplicas"] == 2
    assert "endpoint" not in status


def test_sticky_failures_survive_a_status_refresh_but_capacity_does_not():
    failing = compute_status(body(), WANT2, sts(), now=NOW, observed_generation=3,
                             failure=Failure("ReconcileFailed", "Service rr: 422"))
    assert carried_failure(failing) == Failure("ReconcileFailed", "Service rr: 422")
    gpus = compute_status(body(), WANT2, sts(), now=NOW, observed_generation=3,
                          failure=Failure("InsufficientGPUs", "x"))
    assert carried_failure(gpus) is None


def test_a_degraded_condition_is_announced_once():
    ok = compute_status(body(), WANT2, sts(), now=NOW, observed_generation=3)
    bad = compute_status(body(ok), WANT2, sts(), now=NOW, observed_generation=3, failure=Failure("InsufficientGPUs", "x"))
    assert degraded_transition(ok, bad)["reason"] == "InsufficientGPUs"
    still_bad = compute_status(body(bad), WANT2, sts(), now=NOW + 5, observed_generation=3,
                               failure=Failure("InsufficientGPUs", "x"))
    assert degraded_transition(bad, still_bad) is None
    other = compute_status(body(bad), WANT2, sts(), now=NOW, observed_generation=3, failure=Failure("ReconcileFailed", "y"))
    assert degraded_transition(bad, other)["reason"] == "ReconcileFailed"
    assert degraded_transition(bad, ok) is None


# --- pod creation refused by admission (FailedCreate events) -------------------------------------

from rerank_operator.reconcile.status import (  # noqa: E402
    POD_CREATION_FAILED,
    POD_SECURITY_VIOLATION,
    pod_creation_failure,
)

_PSA_MESSAGE = ('create Pod rr-engine-0 in StatefulSet rr-engine failed error: pods "rr-engine-0" is forbidden: '
                'violates PodSecurity "restricted:latest": runAsNonRoot != true')


def _event(message: str, stamp: str, reason: str = "FailedCreate") -> dict:
    return {"reason": reason, "message": message, "lastTimestamp": stamp, "type": "Warning"}


def test_pod_security_refusal_is_its_own_degraded_reason():
    now = 1_800_000_000.0
    events = [_event("old quota problem", "2027-01-15T07:30:00Z"), _event(_PSA_MESSAGE, "2027-01-15T07:59:00Z"),
              _event("created pod", "2027-01-15T07:59:30Z", reason="SuccessfulCreate")]
    failure = pod_creation_failure(events, now)
    assert failure is not None and failure.reason == POD_SECURITY_VIOLATION
    assert "runAsNonRoot" in failure.message


def test_other_admission_refusals_and_stale_events():
    now = 1_800_000_000.0
    quota = _event('exceeded quota: compute, requested: memory=12Gi', "2027-01-15T07:55:00Z")
    assert pod_creation_failure([quota], now).reason == POD_CREATION_FAILED
    stale = _event(_PSA_MESSAGE, "2027-01-15T06:00:00Z")  # two hours old: history, not the present
    assert pod_creation_failure([stale], now) is None
    assert pod_creation_failure([], now) is None


def _sts_read(uid: str, resource_version: str | None) -> dict:
    meta = {"name": "rr-engine", "uid": uid}
    if resource_version is not None:
        meta["resourceVersion"] = resource_version
    return {"metadata": meta}


@pytest.mark.parametrize("known, seen, later", [
    (None, _sts_read("a", "5"), "seen"),  # nothing read before
    (_sts_read("a", "12"), _sts_read("a", "10"), "known"),  # an older event's copy arrives late
    (_sts_read("a", "10"), _sts_read("a", "12"), "seen"),
    (_sts_read("a", "9"), _sts_read("a", "10"), "seen"),  # compared as integers, not as text
    (_sts_read("a", "12"), _sts_read("b", "3"), "seen"),  # deleted and created again: another object
    (_sts_read("a", "12"), _sts_read("a", None), "seen"),
    (_sts_read("a", "12"), _sts_read("a", "not-a-number"), "seen"),
])
def test_latest_statefulset_keeps_the_later_read_of_the_same_object(known, seen, later):
    assert latest_statefulset(known, seen) is {"known": known, "seen": seen}[later]
