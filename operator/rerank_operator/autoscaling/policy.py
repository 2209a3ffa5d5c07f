"""How many engine replicas a RerankerDeployment should run, given its queue depth.

Pure: no I/O, no clock. The caller passes the observation (replicas asked for, what each pod
reports) and the recommendation history, and gets back a :class:`ScalingDecision` that also
carries the history to keep. The operator's control loop and ``bench/autoscaler_sim.py`` both
call :func:`decide`, so what the benchmark measures is what the operator runs.

The algorithm is the Kubernetes HorizontalPodAutoscaler's, applied to an average-value metric
("waiting + running engine requests per replica"; for rerank one request is one
query-document pair):

1. Raw recommendation: ``ceil(load / target)``, unless the load is within ``tolerance`` of what
   the current replicas are sized for (``|load / (current * target) - 1| <= tolerance``).
2. Missing metrics (a Ready pod whose ``/metrics`` could not be read) follow the HPA rules: if
   the measured pods ask for more capacity they count as 0 load, otherwise as exactly the
   target -- so a pod we cannot read never causes a scale-down by itself.
3. Pods that are not Ready (still loading the model) and replicas asked for but not created yet
   are capacity that is coming: they count as 0 load but as part of the current replicas, so a
   scale-up already in flight is not repeated for the same load. If the measured pods want more
   capacity but counting the pending replicas says "fewer", the count is held (the HPA's
   "direction changed" rule).
4. Queue growth is not demand: while new replicas load the model (minutes), the waiting queue
   keeps growing, and ``ceil(queue / target)`` would ask for far more replicas than the arrival
   rate needs -- replicas that come up after the backlog has drained. So one recommendation
   asks for at most ``max_scale_up_factor`` x the Ready replicas; if those are still too few once
   the new ones serve, the next recommendation grows again from the larger Ready count.
5. Scale-down headroom: a scale-down goes to ``ceil(load / (target * (1 - tolerance)))``, so the
   remaining replicas sit at the bottom of the tolerance band rather than at its top, where the
   next bit of noise would scale straight back up.
6. Stabilization: a scale-down happens only to the highest recommendation made within the
   down-stabilization window (so every recommendation in the window must allow it); a scale-up
   goes to the lowest recommendation within the up window (0 s by default: at once).
7. Limits: at most ``max_scale_up_step`` replicas added per decision, and the result is clamped
   to ``[min_replicas, max_replicas]``; hitting one of these (or the factor of rule 4) sets
   ``limited_reason``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

# Reasons. They end up in status conditions and events, so they are CamelCase like Kubernetes'.
SCALED_UP = "ScaledUp"
SCALED_DOWN = "ScaledDown"
WITHIN_TOLERANCE = "WithinTolerance"
SCALE_DOWN_STABILIZED = "ScaleDownStabilized"
SCALE_UP_STABILIZED = "ScaleUpStabilized"
AWAITING_PENDING_REPLICAS = "AwaitingPendingReplicas"
NO_METRICS = "NoMetrics"
# Limit reasons (ScalingLimited condition).
AT_MAX_REPLICAS = "AtMaxReplicas"
AT_MIN_REPLICAS = "AtMinReplicas"
SCALE_UP_LIMIT = "ScaleUpLimit"

# Float noise guard so that e.g. 96.00000000001 / 32 does not become 4 replicas.
_EPSILON = 1e-9


class PolicyConfigError(ValueError):
    """An autoscaling setting is invalid; the message names the field."""


@dataclass(frozen=True)
class AutoscalingPolicy:
    """The knobs of ``spec.autoscaling`` (snake_case here, camelCase in the CRD)."""

    min_replicas: int = 1
    max_replicas: int = 4
    target_per_replica: float = 32.0
    tolerance: float = 0.1
    scale_down_stabilization_seconds: float = 300.0
    scale_up_stabilization_seconds: float = 0.0
    max_scale_up_step: int | None = None
    max_scale_up_factor: float | None = 4.0

    def __post_init__(self) -> None:
        if self.min_replicas < 1:
            raise PolicyConfigError("spec.autoscaling.minReplicas must be >= 1")
        if self.max_replicas < self.min_replicas:
            raise PolicyConfigError("spec.autoscaling.maxReplicas must be >= spec.autoscaling.minReplicas")
        if not self.target_per_replica > 0:
            raise PolicyConfigError("spec.autoscaling.targetQueueDepthPerReplica must be > 0")
        if not 0 <= self.tolerance < 1:
            raise PolicyConfigError("spec.autoscaling.tolerance must be in [0, 1)")
        if self.scale_down_stabilization_seconds < 0:
            raise PolicyConfigError("spec.autoscaling.scaleDownStabilizationSeconds must be >= 0")
        if self.scale_up_stabilization_seconds < 0:
            raise PolicyConfigError("spec.autoscaling.scaleUpStabilizationSeconds must be >= 0")
        if self.max_scale_up_step is not None and self.max_scale_up_step < 1:
            raise PolicyConfigError("spec.autoscaling.maxScaleUpStep must be >= 1 (or null)")
        if self.max_scale_up_factor is not None and self.max_scale_up_factor < 1:
            raise PolicyConfigError("spec.autoscaling.maxScaleUpFactor must be >= 1 (or null)")

    @classmethod
    def from_spec(cls, autoscaling: Mapping[str, Any] | None) -> "AutoscalingPolicy":
        """Build from the CR's ``spec.autoscaling`` mapping (camelCase keys); absent keys take defaults."""
        a = dict(autoscaling or {})
        defaults = cls()
        step = a.get("maxScaleUpStep")
        factor = a.get("maxScaleUpFactor", defaults.max_scale_up_factor)
        return cls(
            min_replicas=int(a.get("minReplicas", defaults.min_replicas)),
            max_replicas=int(a.get("maxReplicas", defaults.max_replicas)),
            target_per_replica=float(a.get("targetQueueDepthPerReplica", defaults.target_per_replica)),
            tolerance=float(a.get("tolerance", defaults.tolerance)),
            scale_down_stabilization_seconds=float(
                a.get("scaleDownStabilizationSeconds", defaults.scale_down_stabilization_seconds)
            ),
            scale_up_stabilization_seconds=float(
                a.get("scaleUpStabilizationSeconds", defaults.scale_up_stabilization_seconds)
            ),
            max_scale_up_step=None if step is None else int(step),
            max_scale_up_factor=None if factor is None else float(factor),
        )

    def clamp(self, replicas: int) -> int:
        return max(self.min_replicas, min(self.max_replicas, replicas))


@dataclass(frozen=True)
class PodLoad:
    """One engine pod as the autoscaler sees it.

    ``queue_depth`` is waiting + running requests from its ``/metrics``; ``None`` when the pod is
    Ready but its metrics could not be read (timeout, refused, not a vLLM endpoint).
    """

    name: str
    ready: bool
    queue_depth: float | None = None


@dataclass(frozen=True)
class Recommendation:
    time: float  # seconds since the epoch
    replicas: int


@dataclass(frozen=True)
class ScalingDecision:
    current_replicas: int
    desired_replicas: int
    recommended_replicas: int  # before stabilization and limits (clamped to min/max)
    reason: str
    message: str
    observed_queue_depth: float  # sum over the pods whose metrics were read
    ready_pods: int
    missing_pods: int  # Ready, but metrics unreadable
    pending_pods: int  # not Ready yet, or asked for and not created yet
    limited_reason: str | None = None
    history: tuple[Recommendation, ...] = field(default_factory=tuple)

    @property
    def scaled(self) -> bool:
        return self.desired_replicas != self.current_replicas

    @property
    def direction(self) -> str:
        if self.desired_replicas > self.current_replicas:
            return "up"
        if self.desired_replicas < self.current_replicas:
            return "down"
        return "none"


def _ceil_div(load: float, target: float) -> int:
    return max(0, math.ceil(load / target - _EPSILON))


def compact_history(
    history: Sequence[Recommendation], now: float, policy: AutoscalingPolicy
) -> tuple[Recommendation, ...]:
    """Drop recommendations that can no longer change a decision.

    Only the maximum over the down window and the minimum over the up window are ever read.
    An entry that a later entry matches or beats in both respects is redundant (the later one
    stays in the window longer), so the kept history is short -- it is stored in the CR status.
    """
    down_cutoff = now - policy.scale_down_stabilization_seconds
    up_cutoff = now - policy.scale_up_stabilization_seconds
    in_window = sorted((r for r in history if r.time > min(down_cutoff, up_cutoff)), key=lambda r: r.time)
    kept: list[Recommendation] = []
    later_max = -math.inf
    later_min = math.inf
    for rec in reversed(in_window):
        needed_for_down = rec.time > down_cutoff and rec.replicas > later_max
        needed_for_up = rec.time > up_cutoff and rec.replicas < later_min
        if needed_for_down or needed_for_up:
            kept.append(rec)
        later_max = max(later_max, rec.replicas)
        later_min = min(later_min, rec.replicas)
    kept.reverse()
    return tuple(kept)


def decide(
    policy: AutoscalingPolicy,
    current_replicas: int,
    pods: Sequence[PodLoad],
    history: Sequence[Recommendation],
    now: float,
) -> ScalingDecision:
    """One autoscaling decision. See the module docstring for the rules."""
    target = policy.target_per_replica
    measured = [p.queue_depth for p in pods if p.ready and p.queue_depth is not None]
    missing = sum(1 for p in pods if p.ready and p.queue_depth is None)
    # Replicas asked for but not serving yet: pods still loading, and pods not created yet.
    unready = sum(1 for p in pods if not p.ready)
    pending = unready + max(0, current_replicas - len(pods))
    observed = float(sum(measured))

    def result(desired: int, recommended: int, reason: str, message: str, limited: str | None,
               kept: tuple[Recommendation, ...]) -> ScalingDecision:
        return ScalingDecision(
            current_replicas=current_replicas, desired_replicas=desired, recommended_replicas=recommended,
            reason=reason, message=message, observed_queue_depth=observed, ready_pods=len(measured) + missing,
            missing_pods=missing, pending_pods=pending, limited_reason=limited, history=kept,
        )

    if not measured:
        # Nothing to go on (all pods loading, or no metrics readable): hold, only enforce min/max.
        desired = policy.clamp(current_replicas)
        limited = _bound_reason(policy, current_replicas)
        kept = compact_history(history, now, policy)
        return result(desired, desired, NO_METRICS,
                      f"no readable engine metrics ({missing} unreadable, {pending} pending); holding", limited, kept)

    wants_more = observed / len(measured) > target
    # HPA missing-metrics rule: never let an unreadable pod pull the count down.
    load = observed + (0.0 if wants_more else missing * target)
    capacity = max(current_replicas, 1) * target
    if current_replicas > 0 and abs(load / capacity - 1.0) <= policy.tolerance:
        raw, reason = current_replicas, WITHIN_TOLERANCE
    else:
        raw = _ceil_div(load, target)
        reason = SCALED_UP if raw > current_replicas else SCALED_DOWN
        if (wants_more and raw < current_replicas) or (not wants_more and raw > current_replicas):
            # Pending replicas already cover the load the ready pods see (or the imputed loads
            # point the other way): the HPA keeps the count when the direction flips.
            raw, reason = current_replicas, AWAITING_PENDING_REPLICAS
        elif raw < current_replicas:
            # Rule 5: land at the bottom of the tolerance band, not at its edge.
            raw = min(current_replicas, _ceil_div(load, target * (1.0 - policy.tolerance)))
    factor_limited = False
    if policy.max_scale_up_factor is not None and raw > current_replicas:
        # Rule 4: grow from what serves now; pending replicas already cover part of the bound.
        bound = max(current_replicas, math.ceil(policy.max_scale_up_factor * (len(measured) + missing) - _EPSILON))
        if raw > bound:
            raw, factor_limited = bound, True
    recommended = policy.clamp(raw)

    # Stabilization over the recorded recommendations plus this one.
    down_cutoff = now - policy.scale_down_stabilization_seconds
    up_cutoff = now - policy.scale_up_stabilization_seconds
    down_limit = max([recommended] + [r.replicas for r in history if r.time > down_cutoff])
    up_limit = min([recommended] + [r.replicas for r in history if r.time > up_cutoff])
    desired = current_replicas
    if desired < up_limit:
        desired = up_limit
    if desired > down_limit:
        desired = down_limit
    if recommended < current_replicas and desired > recommended:
        reason = SCALE_DOWN_STABILIZED
    elif recommended > current_replicas and desired < recommended:
        reason = SCALE_UP_STABILIZED

    limited: str | None = SCALE_UP_LIMIT if factor_limited and desired == recommended else None
    if policy.max_scale_up_step is not None and desired > current_replicas + policy.max_scale_up_step:
        desired = current_replicas + policy.max_scale_up_step
        limited = SCALE_UP_LIMIT
    if raw > policy.max_replicas or desired > policy.max_replicas:
        limited = AT_MAX_REPLICAS
    elif raw < policy.min_replicas or desired < policy.min_replicas:
        limited = AT_MIN_REPLICAS
    desired = policy.clamp(desired)

    if desired > current_replicas:
        reason = SCALED_UP
    elif desired < current_replicas:
        reason = SCALED_DOWN
    elif reason in (SCALED_UP, SCALED_DOWN):
        # The raw recommendation moved, but a limit held the count where it is.
        held_at_raw = raw == current_replicas and not factor_limited
        reason = WITHIN_TOLERANCE if held_at_raw else (limited or reason)

    kept = compact_history(list(history) + [Recommendation(now, recommended)], now, policy)
    message = (
        f"queue depth {observed:g} over {len(measured)} pod(s) (target {target:g}/replica, "
        f"{missing} unreadable, {pending} pending): recommend {recommended}, "
        f"{current_replicas} -> {desired}"
    )
    if factor_limited:
        message += f" (a scale-up asks for at most {policy.max_scale_up_factor:g} x the ready pods)"
    return result(desired, recommended, reason, message, limited, kept)


def _bound_reason(policy: AutoscalingPolicy, replicas: int) -> str | None:
    if replicas > policy.max_replicas:
        return AT_MAX_REPLICAS
    if replicas < policy.min_replicas:
        return AT_MIN_REPLICAS
    return None
