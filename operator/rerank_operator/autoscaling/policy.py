"""How many engine replicas a RerankerDeployment should run: size by throughput, not by queue.

Pure: no I/O, no clock. The caller passes an :class:`Observation` (the replicas asked for and what
each pod's ``/metrics`` said) and the :class:`Memory` of the previous pass, and gets back a
:class:`ScalingDecision` that carries the memory to keep. The operator's control loop and
``bench/autoscaler_sim.py`` both call :func:`decide`, so what the benchmark measures is what the
operator runs.

Why throughput: the in-flight count (waiting + running) grows steeply with load near saturation
(queueing), so ``ceil(in_flight / target)`` over-shoots when replicas are saturated and
under-shoots when they are not; one scrape of a gauge is also noisy (one 40-pair request is 40
engine requests). Counters are not: between two scrapes, the tokens a pod prefilled
(``vllm:prompt_tokens_total``) say how much work it did, and the change of its in-flight requests
says how much arrived on top. So:

1. **Demand** (tokens/s): per pod, (tokens done + in-flight change x tokens per request) / seconds,
   summed over the pods read twice in a row (scaled to all readable pods), smoothed by an
   exponential moving average over ``demand_window_seconds``. Tokens weight each pair by its
   length: a rerank request carries 1 to hundreds of pairs, and documents differ in length.
   A clear rise is answered at once: when every rated pod had requests waiting at both ends of the
   interval (a queue that outlived one interval, not one large request) and the interval's arrivals
   are at least ``_CLEAR_RISE`` x what the replicas asked for can do at full batch, the average jumps
   to them instead of creeping up over its window. A fall is still smoothed, so the scale-down side
   stays as calm.
   Optionally (``forecast_seconds`` > 0, off by default) a clear rise of that average is carried
   forward over its window plus one model load (``forecast_seconds`` until the deployment's own load
   time is learned; see :func:`forecast_rise`), so replicas are asked for before the average has
   caught up with a rising load.
2. **Capacity** (tokens/s per replica) is learned from the same counters whenever every read pod
   had requests waiting at both ends of the interval -- then the engines run as fast as they can,
   and their rate is their capacity. It is smoothed, never below what a pod was seen to do, and
   kept in the status so a restart does not forget it.
3. **Size**: ``ceil((demand + backlog / drain + held) / (target_utilization x capacity))``, with a
   ``tolerance`` band around the current count; a scale-down lands at the bottom of that band.
   ``held`` is demand queued outside the engines (e.g. by a gateway), 0 today. The backlog (pairs
   waiting x tokens per pair) is drained over ``drain``, the shorter of ``backlog_drain_seconds``
   and two model loads: the replicas a rise's backlog asks for serve after one load, and the backlog
   is gone within about one more. The model load is learned from the deployment's own pods: the
   time from a scale-up asked to as many pods Ready (``LOAD_SECONDS`` until one was seen).
   Until saturation has been seen, the capacity is only known to be at least what a pod was seen
   to do: that bound may size a scale-down (it over-estimates the replicas needed), never a
   scale-up -- pods with nothing waiting are not short of capacity.
4. **Unknowns never scale down**: a Ready pod whose metrics could not be read holds any
   scale-down; pods still loading and replicas asked for but not created count as capacity that is
   coming (the sizing is absolute, so a pending scale-up is not repeated).
5. **Backlog is not demand**: one scale-up asks for at most ``max_scale_up_factor`` x the Ready
   replicas (new replicas take minutes to load); the next one grows from there.
6. **Stabilization**: a scale-down goes only to the highest recommendation of the last
   ``scale_down_stabilization_seconds``; a scale-up to the lowest of the last
   ``scale_up_stabilization_seconds`` (0: at once). The down window adapts to the traffic: a
   scale-up within the window after a scale-down means that scale-down was premature (bursts come
   more often than the window), so the window grows by as much as it fell short -- the time from
   that scale-down to the scale-up that undid it -- plus half a model load, up to 3x the setting;
   after an hour without such a correction it halves back towards the setting. (Doubling instead
   let small corrections at two or three replicas hold the replicas of a later, larger burst for
   30 minutes.) At most ``max_scale_up_step`` added per decision; clamped to ``[min_replicas,
   max_replicas]``; a limit that bites sets ``limited_reason``.
7. **Scale to zero** (``min_replicas`` 0, only behind a gateway): zero is recommended only after the
   engines were idle -- every pod read, none with a request in flight, none that did any work, no
   request held by the gateway -- for the whole scale-down window; anything else recommends at
   least one. At zero, requests the gateway holds (``held_pairs``) wake one replica at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Mapping, Sequence

from ..api.v1alpha1 import AutoscalingSpec
# The decisions' reasons end up in status conditions and events: rerank_operator.reasons holds them all.
from ..reasons import (  # re-exported: the autoscaler's modules and tests name them from here
    AT_MAX_REPLICAS,
    AT_MIN_REPLICAS,
    METRICS_MISSING,
    NO_METRICS,
    SCALE_DOWN_STABILIZED,
    SCALE_UP_LIMIT,
    SCALE_UP_STABILIZED,
    SCALED_DOWN,
    SCALED_UP,
    WITHIN_TOLERANCE,
)

# Float noise guard so that e.g. 3.0000000001 replicas' worth of demand does not become 4.
_EPSILON = 1e-9
# The down window grows at most to this multiple of the setting, and shrinks back after this long
# without a premature scale-down.
_MAX_DOWN_WINDOW_FACTOR = 3.0
_DOWN_WINDOW_RELAX_SECONDS = 3600.0
# Weight of a new capacity measurement (per saturated interval) and of a new tokens-per-request one.
_CAPACITY_WEIGHT = 0.3
_TOKENS_PER_REQUEST_WEIGHT = 0.3
# A forecast rise counts only when it is at least the first multiple of the smoothed demand (a clear
# rise, not the noise of Poisson arrivals and mixed request sizes), and adds at most the second.
_MIN_FORECAST_RISE = 0.6
_MAX_FORECAST_RISE = 1.0
# An interval's arrivals are a clear rise when they are at least this multiple of what the replicas asked
# for do at full batch: more than Poisson noise or one large request can make at the target utilization.
_CLEAR_RISE = 1.2
# How long a new replica takes to serve (the model load of a Qwen3-Reranker engine, about 2 min), until the
# deployment's own pods have shown it; and the weight of each new measurement of it.
LOAD_SECONDS = 120.0
_LOAD_WEIGHT = 0.5
# A backlog is drained within this many model loads at most: replicas it asks for serve after one load,
# and the backlog is gone about one load later.
_DRAIN_LOADS = 2.0
# A premature scale-down lengthens the window by what it fell short plus this many model loads.
_WINDOW_MARGIN_LOADS = 0.5


class PolicyConfigError(ValueError):
    """An autoscaling setting is invalid; the message names the field."""


# The policy's defaults are the CRD's: an object that leaves a field out gets the same policy as one
# built in code (bench/, the tests) that leaves the argument out.
_SPEC_DEFAULTS = AutoscalingSpec()


@dataclass(frozen=True)
class AutoscalingPolicy:
    """The knobs of ``spec.autoscaling`` (snake_case here, camelCase in the CRD)."""

    min_replicas: int = _SPEC_DEFAULTS.min_replicas
    max_replicas: int = _SPEC_DEFAULTS.max_replicas
    target_utilization: float = _SPEC_DEFAULTS.target_utilization
    demand_window_seconds: float = _SPEC_DEFAULTS.demand_window_seconds
    backlog_drain_seconds: float = _SPEC_DEFAULTS.backlog_drain_seconds
    tolerance: float = _SPEC_DEFAULTS.tolerance
    scale_down_stabilization_seconds: float = _SPEC_DEFAULTS.scale_down_stabilization_seconds
    scale_up_stabilization_seconds: float = _SPEC_DEFAULTS.scale_up_stabilization_seconds
    max_scale_up_step: int | None = _SPEC_DEFAULTS.max_scale_up_step
    max_scale_up_factor: float | None = _SPEC_DEFAULTS.max_scale_up_factor
    forecast_seconds: float = _SPEC_DEFAULTS.forecast_seconds

    def __post_init__(self) -> None:
        if self.min_replicas < 0:
            raise PolicyConfigError("spec.autoscaling.minReplicas must be >= 0")
        if self.max_replicas < self.min_replicas:
            raise PolicyConfigError("spec.autoscaling.maxReplicas must be >= spec.autoscaling.minReplicas")
        if not 0 < self.target_utilization <= 1:
            raise PolicyConfigError("spec.autoscaling.targetUtilization must be in (0, 1]")
        if not self.demand_window_seconds > 0:
            raise PolicyConfigError("spec.autoscaling.demandWindowSeconds must be > 0")
        if not self.backlog_drain_seconds > 0:
            raise PolicyConfigError("spec.autoscaling.backlogDrainSeconds must be > 0")
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
        if self.forecast_seconds < 0:
            raise PolicyConfigError("spec.autoscaling.forecastSeconds must be >= 0")

    @classmethod
    def from_spec(cls, autoscaling: AutoscalingSpec) -> "AutoscalingPolicy":
        """The policy of a parsed ``spec.autoscaling`` (``api.v1alpha1.parse_spec`` filled its defaults)."""
        return cls(**{f.name: getattr(autoscaling, f.name) for f in fields(cls)})

    def clamp(self, replicas: int) -> int:
        return max(self.min_replicas, min(self.max_replicas, replicas))


@dataclass(frozen=True)
class PodSample:
    """One engine pod as the autoscaler sees it at one pass.

    ``waiting``/``running`` are vLLM's queue gauges, ``requests_done``/``prompt_tokens`` its work
    counters; all ``None`` when the pod is Ready but its metrics could not be read (or it is not Ready).
    """

    name: str
    ready: bool
    waiting: float | None = None
    running: float | None = None
    requests_done: float | None = None
    prompt_tokens: float | None = None

    @property
    def readable(self) -> bool:
        return self.ready and self.waiting is not None and self.running is not None

    @property
    def in_flight(self) -> float:
        return (self.waiting or 0.0) + (self.running or 0.0)


@dataclass(frozen=True)
class Observation:
    """Everything one decision looks at. ``held_demand`` (tokens/s) is demand queued outside the
    engines -- e.g. held by a gateway in front of them -- that the engines' counters cannot see."""

    now: float  # seconds since the epoch
    current_replicas: int  # spec.replicas
    pods: tuple[PodSample, ...]
    held_demand: float = 0.0
    held_pairs: float = 0.0  # pairs in requests a gateway holds because no engine is Ready


@dataclass(frozen=True)
class PodCounters:
    """A pod's counters and gauges at the previous pass, to turn the next ones into rates."""

    requests_done: float
    prompt_tokens: float
    in_flight: float
    waiting: float


@dataclass(frozen=True)
class Recommendation:
    time: float  # seconds since the epoch
    replicas: int


@dataclass(frozen=True)
class Memory:
    """What the autoscaler carries from one pass to the next (kept in the resource's status)."""

    sample_time: float | None = None
    counters: Mapping[str, PodCounters] = field(default_factory=dict)
    demand: float | None = None  # tokens/s, smoothed
    demand_trend: float | None = None  # tokens/s per second: the smoothed slope of ``demand``
    capacity: float | None = None  # tokens/s one replica does when saturated
    capacity_floor: float | None = None  # most tokens/s one replica was seen to do (capacity >= this)
    tokens_per_request: float | None = None
    history: tuple[Recommendation, ...] = ()
    down_window: float | None = None  # the adapted scale-down window (None: the setting)
    last_scale_down: float | None = None
    last_correction: float | None = None  # when a scale-up last undid a recent scale-down
    idle_since: float | None = None  # start of the current stretch without any request (scale to zero)
    load_seconds: float | None = None  # learned: a scale-up asked -> its replicas Ready (None: LOAD_SECONDS)
    scale_up_asked: float | None = None  # when the scale-up being timed was asked for
    scale_up_replicas: int | None = None  # the replicas it asked for: Ready that many, it is done


@dataclass(frozen=True)
class ScalingDecision:
    current_replicas: int
    desired_replicas: int
    recommended_replicas: int  # before stabilization and limits (clamped to min/max)
    reason: str
    message: str
    observed_queue_depth: float  # waiting + running, summed over the pods whose metrics were read
    ready_pods: int
    missing_pods: int  # Ready, but metrics unreadable
    pending_pods: int  # not Ready yet, or asked for and not created yet
    demand: float | None  # tokens/s, smoothed (None until two passes have read a pod)
    capacity: float | None  # tokens/s per replica, learned (None until saturation was seen)
    limited_reason: str | None = None
    memory: Memory = field(default_factory=Memory)

    @property
    def history(self) -> tuple[Recommendation, ...]:
        return self.memory.history

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


def _ceil(x: float) -> int:
    return max(0, math.ceil(x - _EPSILON))


def compact_history(
    history: Sequence[Recommendation], now: float, policy: AutoscalingPolicy, down_window: float | None = None
) -> tuple[Recommendation, ...]:
    """Drop recommendations that can no longer change a decision.

    Only the maximum over the down window and the minimum over the up window are ever read.
    An entry that a later entry matches or beats in both respects is redundant (the later one
    stays in the window longer), so the kept history is short -- it is stored in the CR status.
    """
    down_cutoff = now - (policy.scale_down_stabilization_seconds if down_window is None else down_window)
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


@dataclass(frozen=True)
class _Rates:
    demand_sample: float | None  # tokens/s arriving at the read pods this interval
    capacity_sample: float | None  # tokens/s per pod, when every rated pod was saturated
    per_pod_done: float | None  # tokens/s per rated pod, done this interval
    tokens_per_request: float | None
    idle: bool = False  # every readable pod rated, none did work this interval, none has a request now


def measure(memory: Memory, pods: Sequence[PodSample], now: float) -> _Rates:
    """Rates from the counters of the pods read now and at the previous pass.

    A pod new since the last pass, or whose counters went down (it restarted), is left out of this
    interval; the rest are scaled up to all readable pods (the Service spreads requests evenly).
    """
    readable = [p for p in pods if p.readable and p.requests_done is not None and p.prompt_tokens is not None]
    dt = None if memory.sample_time is None else now - memory.sample_time
    if not readable or dt is None or dt <= 0:
        return _Rates(None, None, None, memory.tokens_per_request)
    done_requests = done_tokens = in_flight_change = 0.0
    rated = saturated = 0
    for pod in readable:
        prev = memory.counters.get(pod.name)
        if prev is None or pod.requests_done < prev.requests_done or pod.prompt_tokens < prev.prompt_tokens:
            continue
        rated += 1
        done_requests += pod.requests_done - prev.requests_done
        done_tokens += pod.prompt_tokens - prev.prompt_tokens
        in_flight_change += pod.in_flight - prev.in_flight
        if pod.waiting >= 1 and prev.waiting >= 1:  # a request waited: the running batch was full
            saturated += 1
    if rated == 0:
        return _Rates(None, None, None, memory.tokens_per_request)
    idle = (rated == len(readable) and done_requests == 0 and done_tokens == 0
            and all(p.in_flight == 0 for p in readable))
    tpr = memory.tokens_per_request
    if done_requests >= 1:
        measured_tpr = done_tokens / done_requests
        tpr = measured_tpr if tpr is None else tpr + _TOKENS_PER_REQUEST_WEIGHT * (measured_tpr - tpr)
    arrived_tokens = done_tokens + (in_flight_change * tpr if tpr is not None else 0.0)
    demand_sample = max(0.0, arrived_tokens / dt) * len(readable) / rated
    per_pod_done = done_tokens / dt / rated
    capacity_sample = per_pod_done if saturated == rated and done_tokens > 0 else None
    return _Rates(demand_sample, capacity_sample, per_pod_done, tpr, idle)


def decide(policy: AutoscalingPolicy, observation: Observation, memory: Memory) -> ScalingDecision:
    """One autoscaling decision. See the module docstring for the rules."""
    now = observation.now
    current = observation.current_replicas
    pods = observation.pods
    measured = [p for p in pods if p.readable]
    missing = sum(1 for p in pods if p.ready and not p.readable)
    pending = sum(1 for p in pods if not p.ready) + max(0, current - len(pods))
    in_flight = float(sum(p.in_flight for p in measured))
    waiting = float(sum(p.waiting or 0.0 for p in measured))

    # Learn: demand, capacity, tokens per request.
    rates = measure(memory, pods, now)
    demand = memory.demand
    trend = memory.demand_trend
    if rates.demand_sample is not None:
        if demand is None:
            demand = rates.demand_sample
        else:
            dt = now - (memory.sample_time or now)
            weight = 1.0 - math.exp(-dt / policy.demand_window_seconds)
            previous = demand
            demand += weight * (rates.demand_sample - demand)
            slope = (demand - previous) / dt
            trend = (trend or 0.0) + weight * (slope - (trend or 0.0))  # from 0: one interval is no trend
    capacity = memory.capacity
    if rates.capacity_sample is not None:
        capacity = rates.capacity_sample if capacity is None else (
            capacity + _CAPACITY_WEIGHT * (rates.capacity_sample - capacity))
    floor = memory.capacity_floor
    if rates.per_pod_done is not None:
        floor = max(floor or 0.0, rates.per_pod_done)
        if capacity is not None:
            capacity = max(capacity, rates.per_pod_done)  # a pod did this much, so it can
    if (demand is not None and capacity is not None and rates.capacity_sample is not None
            and rates.demand_sample >= _CLEAR_RISE * current * capacity):
        demand = max(demand, rates.demand_sample)  # a clear rise: size for it now, not over the window
    ready_now = len(measured) + missing
    load_seconds, asked, asked_replicas = memory.load_seconds, memory.scale_up_asked, memory.scale_up_replicas
    if asked is not None and asked_replicas is not None and ready_now >= asked_replicas:
        took = max(0.0, now - asked)
        load_seconds = took if load_seconds is None else load_seconds + _LOAD_WEIGHT * (took - load_seconds)
        asked = asked_replicas = None
    elif asked is not None and current < (asked_replicas or 0):
        asked = asked_replicas = None  # scaled back down before they came: nothing to time
    counters = {
        p.name: PodCounters(p.requests_done, p.prompt_tokens, p.in_flight, p.waiting or 0.0)
        for p in measured if p.requests_done is not None and p.prompt_tokens is not None
    }
    base_window = policy.scale_down_stabilization_seconds
    down_window = max(base_window, min(memory.down_window or base_window, _MAX_DOWN_WINDOW_FACTOR * base_window))
    last_correction = memory.last_correction
    if down_window > base_window and now - (last_correction or now) >= _DOWN_WINDOW_RELAX_SECONDS:
        down_window, last_correction = max(base_window, down_window / 2), now
    # Idle: nothing held, nothing in flight, nothing done since the last pass, no pod unaccounted for.
    # At zero replicas with nothing held there is nothing to run, so the stretch goes on.
    idle = observation.held_pairs <= 0 and (
        (current == 0 and not pods) or (rates.idle and missing == 0 and pending == 0))
    idle_since = (memory.idle_since if memory.idle_since is not None else now) if idle else None
    learned = Memory(sample_time=now, counters=counters, demand=demand, demand_trend=trend, capacity=capacity,
                     capacity_floor=floor,
                     tokens_per_request=rates.tokens_per_request, history=memory.history,
                     down_window=down_window, last_scale_down=memory.last_scale_down, last_correction=last_correction,
                     idle_since=idle_since, load_seconds=load_seconds, scale_up_asked=asked,
                     scale_up_replicas=asked_replicas)

    def result(desired: int, recommended: int, reason: str, message: str, limited: str | None,
               kept: tuple[Recommendation, ...]) -> ScalingDecision:
        adapted = replace(learned, history=kept)
        if desired > current and adapted.scale_up_asked is None:
            adapted = replace(adapted, scale_up_asked=now, scale_up_replicas=desired)  # time its model load
        if desired < current:
            adapted = replace(adapted, last_scale_down=now)
        elif desired > current and memory.last_scale_down is not None and now - memory.last_scale_down < down_window:
            # The last scale-down was premature: hold the next ones longer, by as much as this one was
            # short plus half a model load, so the same cycle, or one a little longer, does not catch it
            # again; no more, or a few small corrections would hold every later burst's replicas for the
            # longest window.
            short_by = now - memory.last_scale_down + _WINDOW_MARGIN_LOADS * (load_seconds or LOAD_SECONDS)
            adapted = replace(adapted, last_correction=now,
                              down_window=min(_MAX_DOWN_WINDOW_FACTOR * base_window, down_window + short_by))
        return ScalingDecision(
            current_replicas=current, desired_replicas=desired, recommended_replicas=recommended,
            reason=reason, message=message, observed_queue_depth=in_flight, ready_pods=len(measured) + missing,
            missing_pods=missing, pending_pods=pending, demand=demand, capacity=capacity, limited_reason=limited,
            memory=adapted,
        )

    if current == 0 and observation.held_pairs > 0:
        # Only the gateway sees demand at zero replicas; one replica serves it (then the sizing takes over).
        desired = policy.clamp(1)
        kept = compact_history(list(memory.history) + [Recommendation(now, desired)], now, policy, down_window)
        return result(desired, desired, SCALED_UP,
                      f"{observation.held_pairs:g} pairs held by the gateway with no engine running; 0 -> {desired}",
                      _bound_reason(policy, desired), kept)

    if policy.min_replicas == 0 and current > 0 and idle_since is not None and now - idle_since >= down_window:
        # Idle for the whole window (the stretch is measured directly: a moving average never reaches 0).
        kept = compact_history(list(memory.history) + [Recommendation(now, 0)], now, policy, down_window)
        return result(0, 0, SCALED_DOWN,
                      f"no request for {now - idle_since:.0f} s (scale-down window {down_window:g} s); "
                      f"{current} -> 0, the gateway holds requests until an engine is back", None, kept)

    if not measured:
        # Nothing to go on (all pods loading, or no metrics readable): hold, only enforce min/max.
        desired = policy.clamp(current)
        kept = compact_history(memory.history, now, policy, down_window)
        return result(desired, desired, NO_METRICS,
                      f"no readable engine metrics ({missing} unreadable, {pending} pending); holding",
                      _bound_reason(policy, current), kept)

    # Size.
    per_replica = capacity if capacity is not None else floor
    if demand is None or not per_replica:
        desired = policy.clamp(current)
        kept = compact_history(memory.history, now, policy, down_window)
        return result(desired, desired, NO_METRICS,
                      f"no work rate yet (counters read once, or nothing done); holding at {current}",
                      _bound_reason(policy, current), kept)
    backlog = waiting * (rates.tokens_per_request or 0.0)
    drain = min(policy.backlog_drain_seconds, _DRAIN_LOADS * (load_seconds or LOAD_SECONDS))
    rising = forecast_rise(policy, demand, trend, load_seconds)
    wanted = demand + rising + backlog / drain + max(0.0, observation.held_demand)
    need = wanted / (policy.target_utilization * per_replica)
    basis = (f"demand {demand:,.0f} tokens/s{f' + rising {rising:,.0f}' if rising else ''} + "
             f"backlog {backlog:,.0f} tokens over "
             f"{drain:g} s; capacity {per_replica:,.0f} tokens/s per replica"
             f"{'' if capacity is not None else ' or more (no saturation seen yet)'} at "
             f"{policy.target_utilization:g} utilization")
    if capacity is None:
        need = min(need, float(current))  # a lower bound of the capacity sizes no scale-up
    if _ceil(need) > current:
        raw, reason = _ceil(need), SCALED_UP
    elif need < current * (1.0 - policy.tolerance):
        # Land at the bottom of the tolerance band, not at its edge.
        raw, reason = min(current, _ceil(need / (1.0 - policy.tolerance))), SCALED_DOWN
        if missing:
            raw, reason = current, METRICS_MISSING  # a pod we cannot read never lets the count drop
    else:
        raw, reason = current, WITHIN_TOLERANCE
    factor_limited = False
    if policy.max_scale_up_factor is not None and raw > current:
        bound = max(current, _ceil(policy.max_scale_up_factor * (len(measured) + missing)))
        if raw > bound:
            raw, factor_limited = bound, True
    recommended = max(policy.clamp(raw), 1 if current > 0 else 0)  # zero only by the idle rule above

    # Stabilization over the recorded recommendations plus this one.
    history = memory.history
    down_cutoff = now - down_window
    up_cutoff = now - policy.scale_up_stabilization_seconds
    down_limit = max([recommended] + [r.replicas for r in history if r.time > down_cutoff])
    up_limit = min([recommended] + [r.replicas for r in history if r.time > up_cutoff])
    desired = current
    if desired < up_limit:
        desired = up_limit
    if desired > down_limit:
        desired = down_limit
    if recommended < current and desired > recommended:
        reason = SCALE_DOWN_STABILIZED
    elif recommended > current and desired < recommended:
        reason = SCALE_UP_STABILIZED

    limited: str | None = SCALE_UP_LIMIT if factor_limited and desired == recommended else None
    if policy.max_scale_up_step is not None and desired > current + policy.max_scale_up_step:
        desired = current + policy.max_scale_up_step
        limited = SCALE_UP_LIMIT
    if raw > policy.max_replicas or desired > policy.max_replicas:
        limited = AT_MAX_REPLICAS
    elif raw < policy.min_replicas or desired < policy.min_replicas:
        limited = AT_MIN_REPLICAS
    desired = policy.clamp(desired)

    if desired > current:
        reason = SCALED_UP
    elif desired < current:
        reason = SCALED_DOWN
    elif reason in (SCALED_UP, SCALED_DOWN):
        reason = limited or WITHIN_TOLERANCE  # the recommendation moved, but a limit held the count

    kept = compact_history(list(history) + [Recommendation(now, recommended)], now, policy, down_window)
    message = (
        f"{basis}: need {need:.2f} replicas ({len(measured)} read, {missing} unreadable, {pending} pending); "
        f"recommend {recommended}, {current} -> {desired}"
    )
    if factor_limited:
        message += f" (a scale-up asks for at most {policy.max_scale_up_factor:g} x the ready pods)"
    return result(desired, recommended, reason, message, limited, kept)


def forecast_rise(policy: AutoscalingPolicy, demand: float, trend: float | None,
                  load_seconds: float | None = None) -> float:
    """Demand (tokens/s) expected on top of the smoothed demand one model load from now.

    The moving average trails a rising load by about its window, and a replica asked for now serves
    only after its model load: so a rise seen in the average is carried forward over the window plus
    the model load -- ``load_seconds`` as learned from the deployment's own pods, ``forecast_seconds``
    until one was seen (a model that loads in 5 minutes needs a longer look ahead than one that loads
    in 1, whatever was guessed when the resource was written). Only upward (a forecast fall must not
    drop warm replicas; scale-downs keep their window); only a clear rise (at least
    ``_MIN_FORECAST_RISE`` x the demand: the slope of a flat but noisy load is not a trend); at most
    ``_MAX_FORECAST_RISE`` x the demand (a sudden burst's slope is steep but short). 0
    ``forecast_seconds``: off.
    """
    if policy.forecast_seconds <= 0 or not trend or trend <= 0 or demand <= 0:
        return 0.0
    horizon = policy.forecast_seconds if load_seconds is None else load_seconds
    rise = trend * (policy.demand_window_seconds + horizon)
    if rise < _MIN_FORECAST_RISE * demand:
        return 0.0
    return min(rise, _MAX_FORECAST_RISE * demand)


def _bound_reason(policy: AutoscalingPolicy, replicas: int) -> str | None:
    if replicas > policy.max_replicas:
        return AT_MAX_REPLICAS
    if replicas < policy.min_replicas:
        return AT_MIN_REPLICAS
    return None
