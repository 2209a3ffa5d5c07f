"""Discrete-time simulation of a pool of vLLM reranker replicas under an autoscaler.

Used by ``bench/autoscaler_sim.py``. The pieces:

* **Traces** (seeded): rerank requests arriving as a Poisson process whose rate changes over time;
  each request carries a random number of query-document pairs (one pair is one engine request)
  of some token length.
* **Service model** (vLLM-like, per replica): up to ``max_num_seqs`` pairs run at once; the
  replica's token throughput grows with concurrency ``c`` as ``x_max * c / (c + k)`` (continuous
  batching amortises the fixed per-step cost) and saturates at ``max_num_seqs``; the rest wait.
  Longer pairs cost proportionally more. Requests are spread evenly over ready replicas, so the
  pool behaves as one FIFO queue in front of ``n`` replicas (a fluid approximation). Queue wait is
  the time from arrival to admission into a running batch (vLLM's ``request_queue_time``).
* **Replicas**: a new replica costs replica-seconds from the moment it is asked for but serves
  only after ``load_time`` (model load); scaling down removes the newest replica first
  (StatefulSet order). Each replica exports what a vLLM pod exports: waiting and running gauges,
  ``request_success_total`` and ``prompt_tokens_total`` counters.
* **Autoscalers**, each fed only the signal it really reads: this project's policy (the very
  ``decide`` the operator runs, on per-pod samples), KubeAI (in-flight HTTP requests counted in its
  proxy), vLLM production-stack's KEDA ScaledObject as shipped (one Prometheus series per pod), and
  an HPA on vLLM's waiting gauge.
* **References** that no real autoscaler could be: a clairvoyant policy that knows the future
  arrival rate, a fixed fleet sized in hindsight, and a lower bound on replica-seconds that holds
  for any policy (``work_lower_bound``).
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Protocol

from rerank_operator.autoscaling.policy import AutoscalingPolicy, Memory, Observation, PodSample, decide

# ---------------------------------------------------------------------------------------------
# Service model


@dataclass(frozen=True)
class ServiceModel:
    max_num_seqs: int = 256  # vLLM --max-num-seqs: pairs running at once per replica
    x_max: float = 30000.0  # tokens/s one replica approaches at full batch
    k: float = 32.0  # concurrency at which a replica reaches half of x_max
    load_time: float = 120.0  # seconds from "replica asked for" to "replica serving"

    def pair_throughput(self, concurrency: float, tokens_per_pair: float) -> float:
        """Pairs per second one replica completes with ``concurrency`` pairs running."""
        if concurrency <= 0:
            return 0.0
        return self.x_max / tokens_per_pair * concurrency / (concurrency + self.k)

    def saturated_pairs(self, tokens_per_pair: float) -> float:
        return self.pair_throughput(self.max_num_seqs, tokens_per_pair)


# ---------------------------------------------------------------------------------------------
# Traces


@dataclass(frozen=True)
class Trace:
    name: str
    duration: float
    request_rate: Callable[[float], float]  # mean rerank requests/s at time t
    pairs_per_request: Callable[[float], float]  # mean pairs per request at time t
    tokens_per_pair: Callable[[float], float] = lambda t: 200.0
    heavy_tailed_sizes: bool = False  # Pareto pairs per request instead of uniform
    note: str = ""

    def pair_rate(self, t: float) -> float:
        return self.request_rate(t) * self.pairs_per_request(t)


def _const(v: float) -> Callable[[float], float]:
    return lambda t: v


def step_trace(seed: int) -> Trace:
    return Trace("step", 3600.0, lambda t: (15.0 if 900 <= t < 2700 else 2.5), _const(40.0),
                 note="100 -> 600 -> 100 pairs/s")


def diurnal_trace(seed: int) -> Trace:
    # A day compressed to 6 hours, with a slow random wobble (+-15 %) on top of the sine.
    rng = random.Random(seed)
    wobble = [rng.uniform(-0.15, 0.15) for _ in range(400)]
    period = 6 * 3600.0

    def rate(t: float) -> float:
        base = 60.0 + 640.0 * 0.5 * (1 - math.cos(2 * math.pi * t / period))
        i = int(t // 60)
        frac = (t % 60) / 60
        w = wobble[i % 400] * (1 - frac) + wobble[(i + 1) % 400] * frac
        return max(10.0, base * (1 + w)) / 40.0

    return Trace("diurnal", period, rate, _const(40.0), note="60..700 pairs/s sine over 6 h")


def bursty_trace(seed: int) -> Trace:
    # Heavy-tailed bursts: Pareto-sized (x2..x10) lasting 30-180 s, 2-15 min apart, on 120 pairs/s.
    rng = random.Random(seed)
    duration = 2 * 3600.0
    bursts: list[tuple[float, float, float]] = []
    t = rng.uniform(120, 600)
    while t < duration:
        length = rng.uniform(30, 180)
        bursts.append((t, t + length, min(10.0, 2.0 * rng.paretovariate(1.5))))
        t += length + rng.uniform(120, 900)

    def rate(t: float) -> float:
        for start, end, factor in bursts:
            if start <= t < end:
                return 3.0 * factor
        return 3.0

    return Trace("bursty", duration, rate, _const(40.0), note="120 pairs/s + Pareto bursts x2-x10, 30-180 s")


def flash_crowd_trace(seed: int) -> Trace:
    # Two 60 s crowds at 8x -- shorter than the 120 s model load -- on 150 pairs/s.
    rng = random.Random(seed)
    starts = [rng.uniform(1500, 2100), rng.uniform(4500, 5100)]

    def rate(t: float) -> float:
        return 30.0 if any(s <= t < s + 60 for s in starts) else 3.75

    return Trace("flash-crowd", 2 * 3600.0, rate, _const(40.0), note="150 pairs/s, two 60 s crowds at x8")


def slow_ramp_trace(seed: int) -> Trace:
    def rate(t: float) -> float:
        return (50.0 + 850.0 * min(1.0, t / 5400.0)) / 40.0

    return Trace("slow-ramp", 2 * 3600.0, rate, _const(40.0), note="50 -> 900 pairs/s over 90 min")


def request_size_trace(seed: int) -> Trace:
    # Constant 4 requests/s; the pairs per request go 10 -> 60 -> 10 (6x the work at the same rate).
    return Trace("request-size", 2 * 3600.0, _const(4.0), lambda t: 60.0 if 1800 <= t < 5400 else 10.0,
                 note="4 req/s constant, 10 -> 60 -> 10 pairs/request")


def document_length_trace(seed: int) -> Trace:
    # Constant 200 pairs/s; the documents get 3x longer for an hour (token weighting matters).
    return Trace("doc-length", 2 * 3600.0, _const(5.0), _const(40.0),
                 tokens_per_pair=lambda t: 600.0 if 1800 <= t < 5400 else 200.0,
                 note="200 pairs/s constant, 200 -> 600 -> 200 tokens/pair")


def heavy_tail_sizes_trace(seed: int) -> Trace:
    return Trace("heavy-tail-sizes", 3600.0, _const(7.5), _const(40.0), heavy_tailed_sizes=True,
                 note="300 pairs/s, Pareto pairs/request (mean 40, up to 1000)")


TRACES: dict[str, Callable[[int], Trace]] = {make(0).name: make for make in (
    step_trace, diurnal_trace, bursty_trace, flash_crowd_trace, slow_ramp_trace, request_size_trace,
    document_length_trace, heavy_tail_sizes_trace)}


# Held out: shapes written after the operator's defaults were last changed, and never used to choose them.
# ``--traces held-out`` runs them; they are not part of the headline.


def on_off_trace(seed: int) -> Trace:
    # Batch jobs: 600 pairs/s for 3 minutes every 12 minutes (random phase), 75 pairs/s in between.
    phase = random.Random(seed).uniform(0, 720)
    return Trace("on-off", 2 * 3600.0, lambda t: 15.0 if (t + phase) % 720 < 180 else 1.875, _const(40.0),
                 note="75 pairs/s, 600 for 3 min every 12 min")


def retry_storm_trace(seed: int) -> Trace:
    # An upstream outage: no request for 5 minutes, then the clients' retries at 3x for 3 minutes.
    start = random.Random(seed).uniform(1800, 3600)

    def rate(t: float) -> float:
        if start <= t < start + 300:
            return 0.0
        return 15.0 if start + 300 <= t < start + 480 else 5.0

    return Trace("retry-storm", 2 * 3600.0, rate, _const(40.0), note="200 pairs/s; 5 min of none, 600 for 3 min")


def sawtooth_trace(seed: int) -> Trace:
    # Ramps from 50 to 500 pairs/s over 20 minutes that fall back at once, again and again.
    return Trace("sawtooth", 2 * 3600.0, lambda t: (50.0 + 450.0 * (t % 1200) / 1200) / 40.0, _const(40.0),
                 note="50 -> 500 pairs/s over 20 min, then back to 50, repeated")


def mixed_documents_trace(seed: int) -> Trace:
    # A client with 3x longer documents comes and goes every 5-20 minutes at a constant 150 pairs/s.
    rng = random.Random(seed)
    switches, t = [], 0.0
    while t < 2 * 3600.0:
        t += rng.uniform(300, 1200)
        switches.append(t)

    def tokens(t: float) -> float:
        return 450.0 if sum(1 for s in switches if s <= t) % 2 else 150.0

    return Trace("mixed-documents", 2 * 3600.0, _const(3.75), _const(40.0), tokens_per_pair=tokens,
                 note="150 pairs/s, 150 <-> 450 tokens/pair every 5-20 min")


HELD_OUT: dict[str, Callable[[int], Trace]] = {make(0).name: make for make in (
    on_off_trace, retry_storm_trace, sawtooth_trace, mixed_documents_trace)}
ALL_TRACES: dict[str, Callable[[int], Trace]] = {**TRACES, **HELD_OUT}


# ---------------------------------------------------------------------------------------------
# What an autoscaler can observe, and the autoscalers.


@dataclass
class ClusterView:
    now: float
    spec_replicas: int
    ready: int
    loading: int
    waiting: float  # pairs waiting, whole pool
    running: float  # pairs running, whole pool
    http_in_flight: int  # rerank requests sent and not answered yet (what a proxy counts)
    pods: tuple[PodSample, ...]  # what each engine pod's /metrics says


class Autoscaler(Protocol):
    name: str
    interval: float

    def desired(self, view: ClusterView) -> int: ...


@dataclass
class ProjectPolicy:
    """This project's autoscaler: the operator's ``decide`` on per-pod /metrics samples."""

    policy: AutoscalingPolicy
    interval: float = 5.0
    name: str = "rerank-operator"
    memory: Memory = field(default_factory=Memory)

    def desired(self, view: ClusterView) -> int:
        d = decide(self.policy, Observation(view.now, view.spec_replicas, view.pods), self.memory)
        self.memory = d.memory
        return d.desired_replicas


@dataclass
class Hpa:
    """The HorizontalPodAutoscaler's replica calculation with its default behavior: synced every
    15 s, tolerance 0.1, scale up by at most max(100 %, 4 pods) per 15 s, scale down to the highest
    recommendation of the last 300 s. ``metric(view)`` returns the metric's total over the pods (or
    None when the metric cannot be read, in which case the HPA keeps the count)."""

    min_replicas: int
    max_replicas: int
    target_average: float
    name: str
    interval: float = 15.0
    tolerance: float = 0.1
    down_window: float = 300.0
    recommendations: list[tuple[float, int]] = field(default_factory=list)

    def metric(self, view: ClusterView) -> float | None:
        raise NotImplementedError

    def desired(self, view: ClusterView) -> int:
        current = view.spec_replicas
        usage = self.metric(view)
        if usage is None:
            return current
        ratio = usage / (self.target_average * current)
        raw = current if abs(ratio - 1) <= self.tolerance else math.ceil(usage / self.target_average - 1e-9)
        raw = max(self.min_replicas, min(self.max_replicas, raw))
        self.recommendations = [(t, r) for t, r in self.recommendations if t > view.now - self.down_window]
        down_limit = max([raw] + [r for _, r in self.recommendations])
        self.recommendations.append((view.now, raw))
        desired = raw if raw > current else min(current, down_limit)
        desired = min(desired, current + max(current, 4))
        return max(self.min_replicas, min(self.max_replicas, desired))


@dataclass
class _Scraped:
    """Prometheus' view: per-pod series of vllm:num_requests_waiting, scraped every 15 s."""

    interval: float = 15.0
    offset: float = 7.0
    series: tuple[float, ...] = ()
    _next: float | None = None

    def observe(self, view: ClusterView) -> None:
        if self._next is None:
            self._next = self.offset
        if view.now + 1e-9 >= self._next:
            # A pod loading the model serves no /metrics yet, so it has no series.
            self.series = tuple(p.waiting for p in view.pods if p.readable)
            self._next += self.interval


@dataclass
class KedaProductionStack(Hpa):
    """vLLM production-stack's KEDA ScaledObject as shipped (vllm-project/production-stack:
    helm/templates/scaledobject-vllm.yaml's default trigger, tutorials/20-keda-autoscaling.md,
    helm/tests/keda_test.yaml): a Prometheus trigger on ``vllm:num_requests_waiting`` (the template's
    default adds ``{model="<name>"}``) with threshold 5 -- an HPA External metric with an
    AverageValue target of 5. pollingInterval and cooldownPeriod only govern activation and scale
    to/from zero, which a minReplicaCount of 1 rules out.

    The query is not summed: it returns one series per engine pod. KEDA's Prometheus scaler takes a
    single element and fails with "returned multiple elements" when there are more
    (kedacore/keda: pkg/scalers/prometheus_scaler.go); with no ``fallback`` in the ScaledObject, KEDA
    leaves the count alone (pkg/scaling/executor/scale_scaledobjects.go) and the HPA, whose metric
    fails, keeps it. So it scales while one pod serves, and holds once two or more do. An empty
    result reads 0 (``ignoreNullValues`` defaults to true).
    """

    name: str = "keda (production-stack, as shipped)"
    scraped: _Scraped = field(default_factory=_Scraped)

    def observe(self, view: ClusterView) -> None:
        self.scraped.observe(view)

    def metric(self, view: ClusterView) -> float | None:
        series = self.scraped.series
        if len(series) != 1:
            return None if len(series) > 1 else 0.0  # empty result: ignoreNullValues (default) -> 0
        return series[0]


@dataclass
class HpaWaiting(Hpa):
    """An HPA on vLLM's waiting gauge as a Pods metric (e.g. through prometheus-adapter), average
    value 5 per pod -- what production-stack's trigger means to do, summed over pods."""

    name: str = "hpa (num_requests_waiting, avg 5)"
    scraped: _Scraped = field(default_factory=_Scraped)

    def observe(self, view: ClusterView) -> None:
        self.scraped.observe(view)

    def metric(self, view: ClusterView) -> float | None:
        return float(sum(self.scraped.series))


@dataclass
class KubeAI:
    """KubeAI's model autoscaler (kubeai-project/kubeai: internal/modelautoscaler/autoscaler.go,
    internal/modelclient/scale.go, internal/config/system.go, api/k8s/v1/model_types.go,
    charts/kubeai/values.yaml).

    Its proxy counts in-flight HTTP requests per model (internal/modelproxy/handler.go: +1 when a
    request comes in, -1 when it is answered; one rerank call = one request, however many pairs).
    Every ``interval`` (10 s) the sum over KubeAI's pods goes into a simple moving average over
    ``time_window`` (10 min = 60 samples, zero-filled at a fresh start); it asks for
    ``ceil(avg / targetRequests)`` clamped to min/max (``targetRequests`` default 100), scales up at
    once, and scales down only once ``ceil(scaleDownDelaySeconds / interval)`` consecutive
    scale-down intents were skipped (default 30 s -> 3; the counter resets on a scale-up or an
    unchanged intent, not after a scale-down).
    """

    min_replicas: int
    max_replicas: int
    target_requests: float = 100.0
    interval: float = 10.0
    time_window: float = 600.0
    scale_down_delay: float = 30.0
    name: str = "kubeai (targetRequests 100)"
    initial_average: float = 0.0
    _samples: deque = field(default_factory=deque)
    _consecutive_down: int = 0

    def __post_init__(self) -> None:
        n = math.ceil(self.time_window / self.interval)
        self._samples = deque([self.initial_average] * n, maxlen=n)

    def desired(self, view: ClusterView) -> int:
        self._samples.append(view.http_in_flight)
        avg = sum(self._samples) / len(self._samples)
        want = max(self.min_replicas, min(self.max_replicas, math.ceil(avg / self.target_requests)))
        current = view.spec_replicas
        if current > want:
            required = math.ceil(self.scale_down_delay / self.interval)
            if self._consecutive_down < required:
                self._consecutive_down += 1
                return current
        else:
            self._consecutive_down = 0
        return want


@dataclass
class Clairvoyant:
    """A reference, not a candidate: knows the trace's future mean arrival rate (tokens/s) and asks
    for replicas one model load ahead -- it pays the same load time as everyone. It sizes for
    ``need(s) = (token rate at s + backlog / drain_seconds) / (headroom x saturated tokens/s per
    replica)``: it scales up at once to the highest need within the next load time, and scales down
    only to the highest need within the next ``hold`` + load time, never sooner than ``hold`` after
    its last scale-up -- so, given its foresight, it does not reverse within ``hold`` (the
    benchmark's reversal window). A ``headroom`` above 1 under-provisions on purpose (trading SLO
    misses for replica-seconds).

    With ``foresight`` False it is the best a *reacting* policy could be: it knows the mean arrival
    rate exactly but only up to now -- it sizes for the highest rate of the last ``load_time`` (up)
    or ``hold`` + load time (down) instead of the next. What it costs over the clairvoyant at the
    same SLO miss is the price of not seeing the future, which no reacting policy avoids."""

    trace: Trace
    service: ServiceModel
    min_replicas: int
    max_replicas: int
    headroom: float = 0.8
    hold: float = 600.0
    interval: float = 5.0
    drain_seconds: float = 60.0
    name: str = "clairvoyant"
    foresight: bool = True
    _last_up: float = -math.inf

    def _need(self, view: ClusterView, horizon: float) -> int:
        steps = max(1, int(horizon / self.interval))
        ahead = 1 if self.foresight else -1
        peak = max(self.trace.pair_rate(t) * self.trace.tokens_per_pair(t)
                   for t in (max(0.0, view.now + ahead * i * self.interval) for i in range(steps + 1)))
        backlog = view.waiting * self.trace.tokens_per_pair(view.now)
        per_replica = self.service.saturated_pairs(1.0)  # tokens/s of one replica at full batch
        want = math.ceil((peak + backlog / self.drain_seconds) / (self.headroom * per_replica) - 1e-9)
        return max(self.min_replicas, min(self.max_replicas, want))

    def desired(self, view: ClusterView) -> int:
        current = view.spec_replicas
        up = self._need(view, self.service.load_time + self.interval)
        if up > current:
            self._last_up = view.now
            return up
        if view.now - self._last_up < self.hold:
            return current
        return min(current, self._need(view, self.service.load_time + self.hold + self.interval))


@dataclass
class Static:
    """A fixed fleet, its size chosen in hindsight: the other reference (it never scales). With
    ``lower``, one replica fewer from ``lower[0]`` to ``lower[1]`` seconds (one scale-down, one
    scale-up): a fleet that spends fewer replica-seconds by letting the queue grow for a while."""

    replicas: int
    interval: float = 60.0
    name: str = "static"
    lower: tuple[float, float] | None = None

    def desired(self, view: ClusterView) -> int:
        if self.lower is not None and self.lower[0] <= view.now < self.lower[1]:
            return self.replicas - 1
        return self.replicas


def work_lower_bound(result: "Result", service: ServiceModel, min_replicas: int, max_replicas: int,
                     slo_violation_pct: float, slo_wait: float = 2.0) -> float:
    """Replica-seconds that no autoscaler -- clairvoyant or not -- can go below on this arrival
    sequence while missing the SLO for at most ``slo_violation_pct`` % of pairs.

    The engine admits in arrival order (vLLM schedules first come, first served), so if the K-th
    pair to arrive (at t_K) is admitted in time, every pair before it was admitted by t_K + SLO,
    and all but those still running then (at most ``max_replicas`` x ``max_num_seqs`` pairs) were
    prefilled by then. At least K = (1 - share) x N pairs must be on time (less those of the last
    SLO seconds, which the trace's end leaves uncounted), a replica prefills at most its full-batch
    token rate, and ``min_replicas`` are always paid for. So replica-seconds >=
    max((t_K + SLO) x min_replicas, tokens before K / full-batch rate) + (T - t_K - SLO) x min_replicas.
    """
    tail = sum(p for t, p, _ in result.arrivals if t >= result.duration - slo_wait)
    must_be_on_time = result.arrived_pairs * (1.0 - slo_violation_pct / 100.0) - tail
    if must_be_on_time <= 0:
        return result.duration * min_replicas
    pairs = tokens = 0.0
    t_k = 0.0
    biggest = 0.0
    for t, p, tpp in result.arrivals:
        take = min(p, must_be_on_time - pairs)
        pairs += take
        tokens += take * tpp
        biggest = max(biggest, tpp)
        t_k = t
        if pairs >= must_be_on_time - 1e-9:
            break
    running = max_replicas * service.max_num_seqs * biggest
    until = min(result.duration, t_k + slo_wait)
    first = max(until * min_replicas, (tokens - running) / service.saturated_pairs(1.0))
    return first + (result.duration - until) * min_replicas


# ---------------------------------------------------------------------------------------------
# The simulation loop.

WAIT_BIN = 0.05  # seconds per histogram bin
WAIT_BINS = int(3600 / WAIT_BIN)
REVERSAL_WINDOW = 600.0  # a scale event opposite to the previous one within this long is a reversal


@dataclass
class Result:
    autoscaler: str
    trace: str
    duration: float
    replica_seconds: float
    p50_wait: float
    p99_wait: float
    slo_violation_pct: float
    reversals: int
    scale_events: int
    max_replicas_used: int
    completed_pairs: float
    arrived_pairs: float
    # (time, pairs, tokens per pair) of each tick's arrivals, in order: for the lower bound.
    arrivals: list[tuple[float, float, float]] = field(default_factory=list)
    # Every 10 s: (t, arriving pairs/s over the last 10 s, spec replicas, oldest waiting pair's age).
    timeline: list[tuple[float, float, int, float]] = field(default_factory=list)

    @property
    def hours(self) -> float:
        return self.duration / 3600.0


def _percentile(hist: list[float], q: float) -> float:
    total = sum(hist)
    if total <= 0:
        return 0.0
    threshold = q * total
    acc = 0.0
    for i, c in enumerate(hist):
        acc += c
        if acc >= threshold:
            return i * WAIT_BIN
    return WAIT_BINS * WAIT_BIN


def _request_pairs(rng: random.Random, mean: float, heavy_tailed: bool) -> int:
    if heavy_tailed:
        # Pareto with shape 1.5 has mean 3 x its minimum; capped at 1000 pairs.
        return min(1000, max(1, int(round(mean / 3.0 * rng.paretovariate(1.5)))))
    return rng.randint(1, max(1, int(2 * mean - 1)))


def simulate(
    trace: Trace,
    autoscaler: Autoscaler,
    service: ServiceModel,
    initial_replicas: int,
    seed: int,
    dt: float = 0.5,
    slo_wait: float = 2.0,
) -> Result:
    rng = random.Random(seed)
    ready_at: list[float] = [0.0] * initial_replicas  # one entry per replica asked for
    pod_done: list[list[float]] = [[0.0, 0.0] for _ in range(initial_replicas)]  # requests, tokens
    waiting: deque[list[float]] = deque()  # FIFO cohorts [arrival_time, pairs]
    waiting_total = 0.0
    running = 0.0
    request_ends: deque[float] = deque()  # cumulative pair count at which each open request is answered
    arrived_pairs = 0.0
    arrivals: list[tuple[float, float, float]] = []
    completed = 0.0
    hist = [0.0] * (WAIT_BINS + 1)
    slo_violating = 0.0
    replica_seconds = 0.0
    events: list[tuple[float, str]] = []
    timeline: list[tuple[float, float, int, float]] = []
    arrived_since_mark = 0.0
    next_decision = autoscaler.interval
    observe = getattr(autoscaler, "observe", None)
    ticks = int(trace.duration / dt)

    for tick in range(ticks):
        now = tick * dt
        tokens_per_pair = trace.tokens_per_pair(now)
        n_req = _poisson(rng, trace.request_rate(now) * dt)
        if n_req:
            mean = trace.pairs_per_request(now)
            pairs = 0
            for _ in range(n_req):
                p = _request_pairs(rng, mean, trace.heavy_tailed_sizes)
                pairs += p
                arrived_pairs += p
                request_ends.append(arrived_pairs)
            waiting.append([now, float(pairs)])
            waiting_total += pairs
            arrivals.append((now, float(pairs), tokens_per_pair))
            arrived_since_mark += pairs

        n_ready = sum(1 for r in ready_at if r <= now)
        # Serve: completions from the running batches, then admit from the queue (FIFO).
        if n_ready and running > 0:
            # After a scale-down the pairs the removed replicas ran are left to the others; a replica still
            # runs at most max_num_seqs at once, so it never goes faster than its full batch.
            per = min(running / n_ready, service.max_num_seqs)
            done = min(running, n_ready * service.pair_throughput(per, tokens_per_pair) * dt)
            running -= done
            completed += done
            share = done / n_ready
            for i, r in enumerate(ready_at):
                if r <= now:
                    pod_done[i][0] += share
                    pod_done[i][1] += share * tokens_per_pair
            while request_ends and request_ends[0] <= completed + 1e-6:
                request_ends.popleft()
        free = n_ready * service.max_num_seqs - running
        while free > 1e-9 and waiting:
            cohort = waiting[0]
            take = min(free, cohort[1])
            wait = now - cohort[0]
            hist[min(WAIT_BINS, int(wait / WAIT_BIN))] += take
            if wait > slo_wait:
                slo_violating += take
            cohort[1] -= take
            waiting_total -= take
            running += take
            free -= take
            if cohort[1] <= 1e-9:
                waiting.popleft()
        replica_seconds += len(ready_at) * dt
        if tick % int(10 / dt) == 0:
            timeline.append((now, arrived_since_mark / 10.0, len(ready_at), now - waiting[0][0] if waiting else 0.0))
            arrived_since_mark = 0.0

        due = now + 1e-9 >= next_decision
        if observe is None and not due:
            continue
        pods = []
        for i, r in enumerate(ready_at):
            if r <= now:
                pods.append(PodSample(f"engine-{i}", True, waiting_total / n_ready, running / n_ready,
                                      pod_done[i][0], pod_done[i][1]))
            else:
                pods.append(PodSample(f"engine-{i}", False))
        view = ClusterView(now, len(ready_at), n_ready, len(ready_at) - n_ready, waiting_total, running,
                           len(request_ends), tuple(pods))
        if observe is not None:
            observe(view)
        if due:
            next_decision += autoscaler.interval
            desired = autoscaler.desired(view)
            if desired != len(ready_at):
                events.append((now, "up" if desired > len(ready_at) else "down"))
                if desired > len(ready_at):
                    ready_at.extend([now + service.load_time] * (desired - len(ready_at)))
                    pod_done.extend([0.0, 0.0] for _ in range(desired - len(pod_done)))
                else:
                    del ready_at[desired:]  # newest first, like a StatefulSet
                    del pod_done[desired:]

    # Pairs still queued when the trace ends have waited at least this long: count them, or a fleet
    # that never serves its backlog would look as if it met the SLO.
    end = ticks * dt
    for arrival, pairs in waiting:
        hist[min(WAIT_BINS, int((end - arrival) / WAIT_BIN))] += pairs
        if end - arrival > slo_wait:
            slo_violating += pairs
    reversals = sum(
        1 for (t0, d0), (t1, d1) in zip(events, events[1:]) if d0 != d1 and t1 - t0 <= REVERSAL_WINDOW
    )
    admitted = sum(hist)  # admitted, or still queued at the end
    return Result(
        autoscaler=autoscaler.name,
        trace=trace.name,
        duration=trace.duration,
        replica_seconds=replica_seconds,
        p50_wait=_percentile(hist, 0.50),
        p99_wait=_percentile(hist, 0.99),
        slo_violation_pct=100.0 * slo_violating / admitted if admitted else 0.0,
        reversals=reversals,
        scale_events=len(events),
        max_replicas_used=max([initial_replicas] + [r for _, _, r, _ in timeline]),
        completed_pairs=completed,
        arrived_pairs=arrived_pairs,
        arrivals=arrivals,
        timeline=timeline,
    )


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 30:
        return max(0, int(round(rng.gauss(lam, math.sqrt(lam)))))
    limit = math.exp(-lam)
    k, p = 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1
