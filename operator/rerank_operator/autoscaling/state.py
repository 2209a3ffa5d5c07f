"""The autoscaler's memory, kept in the RerankerDeployment's status.

The stabilization windows need the recent recommendations. Keeping them in
``status.autoscaling.recommendations`` (not in operator memory) means an operator restart or a
leader change does not reset the windows: a scale-down that was being held back stays held
back. The list is compacted by the policy (only entries that can still matter), so it stays a
handful of items even with a 5 s scrape interval and a 300 s window.

Shape (the CRD's status schema):

    status:
      queueDepth: 87
      desiredReplicas: 3
      autoscaling:
        lastScaleTime: "2026-01-01T10:00:00Z"
        recommendations: [{time: "2026-01-01T09:58:10Z", replicas: 3}, ...]
      conditions: [{type: AutoscalingActive, ...}, {type: ScalingLimited, ...}]
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Mapping, Sequence

from .policy import NO_METRICS, Recommendation, ScalingDecision

AUTOSCALING_ACTIVE = "AutoscalingActive"
SCALING_LIMITED = "ScalingLimited"


def to_rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def from_rfc3339(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def history_from_status(status: Mapping[str, Any] | None) -> list[Recommendation]:
    """The recommendations recorded in ``status.autoscaling``; malformed entries are skipped."""
    entries = ((status or {}).get("autoscaling") or {}).get("recommendations") or []
    history: list[Recommendation] = []
    for entry in entries:
        try:
            history.append(Recommendation(time=from_rfc3339(str(entry["time"])), replicas=int(entry["replicas"])))
        except (KeyError, TypeError, ValueError):
            continue  # a hand-edited or foreign entry must not stop autoscaling
    return history


def last_scale_time(status: Mapping[str, Any] | None) -> str | None:
    return ((status or {}).get("autoscaling") or {}).get("lastScaleTime")


def upsert_condition(
    conditions: Sequence[Mapping[str, Any]], type_: str, status: str, reason: str, message: str, now: float
) -> list[dict[str, Any]]:
    """Conditions with ``type_`` set; lastTransitionTime changes only when the status flips."""
    result: list[dict[str, Any]] = []
    found = False
    for condition in conditions:
        if condition.get("type") != type_:
            result.append(dict(condition))
            continue
        found = True
        transition = condition.get("lastTransitionTime") if condition.get("status") == status else None
        result.append({
            "type": type_, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": transition or to_rfc3339(now),
        })
    if not found:
        result.append({
            "type": type_, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": to_rfc3339(now),
        })
    return result


def status_patch(
    decision: ScalingDecision, current_status: Mapping[str, Any] | None, now: float, scaled: bool
) -> dict[str, Any]:
    """The ``status`` fields this autoscaling pass owns (merge-patch body under ``status``).

    ``conditions`` is a list, which a merge patch replaces whole: the other conditions (Ready,
    Progressing, ...) are carried over from ``current_status`` unchanged.
    """
    conditions = list((current_status or {}).get("conditions") or [])
    if decision.reason == NO_METRICS:
        conditions = upsert_condition(conditions, AUTOSCALING_ACTIVE, "False", NO_METRICS, decision.message, now)
    else:
        conditions = upsert_condition(conditions, AUTOSCALING_ACTIVE, "True", decision.reason, decision.message, now)
    if decision.limited_reason:
        conditions = upsert_condition(
            conditions, SCALING_LIMITED, "True", decision.limited_reason,
            f"the replica count is limited ({decision.limited_reason}): {decision.message}", now,
        )
    else:
        conditions = upsert_condition(
            conditions, SCALING_LIMITED, "False", "DesiredWithinRange",
            "the desired replica count is within minReplicas..maxReplicas", now,
        )
    last = to_rfc3339(now) if scaled else last_scale_time(current_status)
    autoscaling: dict[str, Any] = {
        "recommendations": [{"time": to_rfc3339(r.time), "replicas": r.replicas} for r in decision.history],
    }
    if last:
        autoscaling["lastScaleTime"] = last
    return {
        "queueDepth": round(decision.observed_queue_depth, 3),
        "desiredReplicas": decision.desired_replicas,
        "autoscaling": autoscaling,
        "conditions": conditions,
    }


def disabled_status_patch(current_status: Mapping[str, Any] | None, now: float) -> dict[str, Any] | None:
    """When autoscaling is off: flip AutoscalingActive to False once (None if nothing to change)."""
    conditions = list((current_status or {}).get("conditions") or [])
    active = next((c for c in conditions if c.get("type") == AUTOSCALING_ACTIVE), None)
    if active is None or active.get("status") == "False":
        return None
    return {
        "conditions": upsert_condition(
            conditions, AUTOSCALING_ACTIVE, "False", "Disabled",
            "spec.autoscaling.enabled is false; spec.replicas is set by hand or by an external autoscaler", now,
        ),
    }
