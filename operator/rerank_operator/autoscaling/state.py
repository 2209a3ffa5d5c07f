"""The autoscaler's memory, kept in the RerankerDeployment's status.

Everything the policy learns lives in ``status.autoscaling`` (not in operator memory), so an
operator restart or a leader change forgets nothing: the learned per-replica capacity, the
smoothed demand, the counters of the last scrape (so the next pass has rates at once) and the
recent recommendations (so a scale-down that was being held back stays held back). The
recommendation list is compacted by the policy, so it stays a handful of items.

Shape (the CRD's status schema):

    status:
      queueDepth: 87
      desiredReplicas: 3
      autoscaling:
        lastScaleTime: "2026-01-01T10:00:00Z"
        recommendations: [{time: "2026-01-01T09:58:10Z", replicas: 3}, ...]
        capacityTokensPerSecond: 26500.0      # learned while the replicas were saturated
        capacityFloorTokensPerSecond: 26500.0
        demandTokensPerSecond: 61000.0
        demandTrendTokensPerSecond2: 40.0     # slope of the demand average (for forecastSeconds)
        tokensPerRequest: 212.5
        scaleDownWindowSeconds: 1200          # adapted: grown after a premature scale-down
        loadSeconds: 118.5                    # learned: a scale-up asked -> that many pods Ready
        scaleUpAskedTime: ..., scaleUpAskedReplicas: 6   # the scale-up being timed
        lastScaleDownTime: ..., lastPrematureScaleDownTime: ...
        sampleTime: "2026-01-01T10:00:05.250000Z"
        pods: [{name: x-engine-0, requestsDone: 1200, promptTokens: 254000, inFlight: 40, waiting: 0}, ...]
      conditions: [{type: AutoscalingActive, ...}, {type: ScalingLimited, ...}]
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any, Mapping, Sequence

from ..reasons import AUTOSCALING_DISABLED, DESIRED_WITHIN_RANGE
from .policy import NO_METRICS, Memory, PodCounters, Recommendation, ScalingDecision

AUTOSCALING_ACTIVE = "AutoscalingActive"
SCALING_LIMITED = "ScalingLimited"


def to_rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def to_rfc3339_precise(epoch: float) -> str:
    """With milliseconds: counter rates divide by the time between two samples."""
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number >= 0 else None


def memory_from_status(status: Mapping[str, Any] | None) -> Memory:
    """The policy's memory as recorded in ``status.autoscaling``; what is malformed is left out."""
    recorded = (status or {}).get("autoscaling") or {}
    counters: dict[str, PodCounters] = {}
    for entry in recorded.get("pods") or []:
        try:
            values = [_number(entry[k]) for k in ("requestsDone", "promptTokens", "inFlight", "waiting")]
            if None not in values:
                counters[str(entry["name"])] = PodCounters(*values)  # type: ignore[arg-type]
        except (KeyError, TypeError):
            continue
    sample = _time(recorded.get("sampleTime"))
    return Memory(
        sample_time=sample,
        counters=counters if sample is not None else {},
        demand=_number(recorded.get("demandTokensPerSecond")),
        demand_trend=_signed(recorded.get("demandTrendTokensPerSecond2")),
        capacity=_number(recorded.get("capacityTokensPerSecond")),
        capacity_floor=_number(recorded.get("capacityFloorTokensPerSecond")),
        tokens_per_request=_number(recorded.get("tokensPerRequest")),
        history=tuple(history_from_status(status)),
        down_window=_number(recorded.get("scaleDownWindowSeconds")),
        last_scale_down=_time(recorded.get("lastScaleDownTime")),
        last_correction=_time(recorded.get("lastPrematureScaleDownTime")),
        idle_since=_time(recorded.get("idleSinceTime")),
        load_seconds=_number(recorded.get("loadSeconds")),
        scale_up_asked=_time(recorded.get("scaleUpAskedTime")),
        scale_up_replicas=_count(recorded.get("scaleUpAskedReplicas")),
    )


def _count(value: Any) -> int | None:
    number = _number(value)
    return None if number is None else int(number)


def _signed(value: Any) -> float | None:
    """A finite number that may be negative (a falling demand has a negative slope)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _time(text: Any) -> float | None:
    try:
        return from_rfc3339(str(text)) if text else None
    except ValueError:
        return None


def _memory_fields(memory: Memory) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for key, value in (("capacityTokensPerSecond", memory.capacity),
                       ("capacityFloorTokensPerSecond", memory.capacity_floor),
                       ("demandTokensPerSecond", memory.demand),
                       ("demandTrendTokensPerSecond2", memory.demand_trend),
                       ("tokensPerRequest", memory.tokens_per_request),
                       ("loadSeconds", memory.load_seconds)):
        fields[key] = None if value is None else round(value, 3)
    fields["scaleDownWindowSeconds"] = memory.down_window
    for key, value in (("sampleTime", memory.sample_time), ("lastScaleDownTime", memory.last_scale_down),
                       ("lastPrematureScaleDownTime", memory.last_correction), ("idleSinceTime", memory.idle_since),
                       ("scaleUpAskedTime", memory.scale_up_asked)):
        fields[key] = None if value is None else to_rfc3339_precise(value)
    fields["scaleUpAskedReplicas"] = memory.scale_up_replicas
    fields["pods"] = [
        {"name": name, "requestsDone": c.requests_done, "promptTokens": c.prompt_tokens,
         "inFlight": c.in_flight, "waiting": c.waiting}
        for name, c in sorted(memory.counters.items())
    ]
    return fields


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
            conditions, SCALING_LIMITED, "False", DESIRED_WITHIN_RANGE,
            "the desired replica count is within minReplicas..maxReplicas", now,
        )
    last = to_rfc3339(now) if scaled else last_scale_time(current_status)
    autoscaling: dict[str, Any] = {
        "recommendations": [{"time": to_rfc3339(r.time), "replicas": r.replicas} for r in decision.history],
        **_memory_fields(decision.memory),
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
            conditions, AUTOSCALING_ACTIVE, "False", AUTOSCALING_DISABLED,
            "spec.autoscaling.enabled is false; spec.replicas is set by hand or by an external autoscaler", now,
        ),
    }
