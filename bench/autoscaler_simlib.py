"""Discrete-time simulation of a pool of vLLM reranker replicas under an autoscaler.

Used by ``bench/autoscaler_sim.py``. The pieces:

* **Traces** (seeded): arrivals of rerank requests, each carrying a random number of
  query-document pairs; one pair is one engine request.
* **Service model** (vLLM-like, per replica): up to ``max_num_seqs`` pairs run at once; the
  replica's throughput grows with concurrency ``c`` as ``x_max * c / (c + k)`` (continuous
  batching amortises the fixed per-step cost) and saturates at ``max_num_seqs``; the rest wait.
  Requests are spread over ready replicas least-loaded-first, so the pool behaves as one FIFO
  queue in front of ``n`` replicas (a fluid approximation of join-shortest-queue). Queue wait is
  the time from arrival to admission into a running batch (vLLM's ``request_queue_time``).
* **Replicas**: a new replica costs replica-seconds from the moment it is asked for but serves
  only after ``load_time`` (model load); scaling down removes the newest replica first
  (StatefulSet order).
* **Autoscalers**: this project's policy (``rerank_operator.autoscaling.policy.decide``, the
  function the operator runs), the vLLM production-stack KEDA setup, KubeAI's autoscaler, and a
  static fleet sized for the peak.
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Protocol

from rerank_operator.autoscaling.policy import AutoscalingPolicy, PodLoad, Recommendation, decide

# ---------------------------------------------------------------------------------------------
# Service model


@dataclass(frozen=True)
class ServiceModel:
    max_num_seqs: int = 256  # vLLM --max-num-seqs: pairs running at once per replica
    x_max: float = 150.0  # pairs/s one replica approaches at full batch
    k: float = 32.0  # concurrency at which a replica reaches half of x_max
    load_time: float = 120.0  # seconds from "replica asked for" to "replica serving"

    def throughput(self, concurrency: float) -> float:
        """Pairs per second one replica completes with ``concurrency`` pairs running."""
        if concurrency <= 0:
            return 0.0
        return self.x_max * concurrency / (concurrency + self.k)

    def concurrency_for(self, rate: float) -> float:
        """Running pairs one replica needs to sustain ``rate`` pairs/s (inverse of throughput)."""
        if rate >= self.x_max:
            return math.inf
        return self.k * rate / (self.x_max - rate)


# ---------------------------------------------------------------------------------------------
# Traces: rate (pairs/s) as a function of time, turned into batched arrivals per tick.


@dataclass(frozen=True)
class Trace:
    name: str
    duration: float
    rate: Callable[[float], float]  # mean pairs/s at time t
    peak_rate: float
    mean_pairs_per_request: float = 40.0


def step_trace() -> Trace:
    def rate(t: float) -> float:
        return 600.0 if 900 <= t < 2700 else 100.0

    return Trace("step", 3600.0, rate, 600.0)


def diurnal_trace(seed: int) -> Trace:
    # A day compressed to 6 hours so the ramp rates stay realistic per hour of sim while the
    # run stays short; a slow random wobble (+-15 %) on top of the sine.
    rng = random.Random(seed)
    wobble = [rng.uniform(-0.15, 0.15) for _ in range(400)]
    period = 6 * 3600.0

    def rate(t: float) -> float:
        base = 60.0 + 640.0 * 0.5 * (1 - math.cos(2 * math.pi * t / period))
        i = int(t // 60)
        frac = (t % 60) / 60
        w = wobble[i % 400] * (1 - frac) + wobble[(i + 1) % 400] * frac
        return max(10.0, base * (1 + w))

    return Trace("diurnal", period, rate, 700.0 * 1.15)


def bursty_trace(seed: int) -> Trace:
    # A base load with bursts (3-6x, 30-180 s long, 2-15 min apart), like batch re-indexing jobs
    # or a traffic spike landing on the reranker.
    rng = random.Random(seed)
    duration = 2 * 3600.0
    bursts: list[tuple[float, float, float]] = []
    t = rng.uniform(120, 600)
    while t < duration:
        length = rng.uniform(30, 180)
        bursts.append((t, t + length, rng.uniform(3.0, 6.0)))
        t += length + rng.uniform(120, 900)
    base = 120.0

    def rate(t: float) -> float:
        for start, end, factor in bursts:
            if start <= t < end:
                return base * factor
        return base

    return Trace("bursty", duration, rate, base * max(f for _, _, f in bursts))


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


class Autoscaler(Protocol):
    name: str
    interval: float

    def desired(self, view: ClusterView) -> int: ...


@dataclass
class ProjectPolicy:
    """This project's autoscaler: the operator's ``decide`` on per-pod waiting+running gauges."""

    policy: AutoscalingPolicy
    interval: float = 5.0
    name: str = "rerank-operator"
    history: tuple[Recommendation, ...] = ()

    def desired(self, view: ClusterView) -> int:
        per_pod = (view.waiting + view.running) / view.ready if view.ready else 0.0
        pods = [PodLoad(f"engine-{i}", True, per_pod) for i in range(view.ready)]
        pods += [PodLoad(f"engine-{view.ready + i}", False) for i in range(view.loading)]
        d = decide(self.policy, view.spec_replicas, pods, self.history, view.now)
        self.history = d.history
        return d.desired_replicas


@dataclass
class KedaProductionStack:
    """vLLM production-stack's KEDA setup (docs/source/use_cases/autoscaling-keda.rst).

    A Prometheus trigger on ``vllm:num_requests_waiting`` (summed over pods) with threshold 5,
    i.e. an HPA External metric with an AverageValue target of 5 per replica. KEDA's
    ``pollingInterval: 15`` and ``cooldownPeriod: 360`` govern only activation and scale to/from
    zero, which a minReplicaCount >= 1 never uses; the replica count comes from the HPA KEDA
    creates: synced every 15 s, tolerance 0.1, no readiness correction for External metrics,
    default behavior (scale up by max(100 %, 4 pods) per 15 s; scale down to the max
    recommendation of the last 300 s). Prometheus scrapes every 15 s, so the HPA reads a sample
    up to 15 s old.
    """

    min_replicas: int
    max_replicas: int
    threshold: float = 5.0
    interval: float = 15.0
    scrape_interval: float = 15.0
    scrape_offset: float = 7.0
    tolerance: float = 0.1
    down_window: float = 300.0
    name: str = "keda (production-stack)"
    recommendations: list[tuple[float, int]] = field(default_factory=list)
    _sample: float = 0.0
    _next_scrape: float | None = None

    def observe(self, view: ClusterView) -> None:
        # Prometheus' scrape loop (called every tick): keeps the latest scraped value.
        if self._next_scrape is None:
            self._next_scrape = self.scrape_offset
        if view.now + 1e-9 >= self._next_scrape:
            self._sample = view.waiting
            self._next_scrape += self.scrape_interval

    def desired(self, view: ClusterView) -> int:
        current = view.spec_replicas
        usage = self._sample
        ratio = usage / (self.threshold * current)
        raw = current if abs(ratio - 1) <= self.tolerance else math.ceil(usage / self.threshold - 1e-9)
        raw = max(self.min_replicas, min(self.max_replicas, raw))
        self.recommendations = [(t, r) for t, r in self.recommendations if t > view.now - self.down_window]
        down_limit = max([raw] + [r for _, r in self.recommendations])
        self.recommendations.append((view.now, raw))
        desired = raw if raw > current else min(current, down_limit)
        desired = min(desired, current + max(current, 4))  # default scale-up policy per period
        return max(self.min_replicas, min(self.max_replicas, desired))


@dataclass
class KubeAI:
    """KubeAI's model autoscaler (internal/modelautoscaler, internal/modelscaler).

    Every ``interval`` (10 s) it adds the model's active (in-flight) requests to a simple moving
    average over ``time_window`` (10 min = 60 samples), asks for ``ceil(avg / targetRequests)``
    clamped to min/max, scales up at once, and scales down only after
    ``ceil(scaleDownDelaySeconds / interval)`` consecutive scale-down intents (default 30 s -> 3;
    the counter resets on any non-down intent).
    """

    min_replicas: int
    max_replicas: int
    target_requests: float
    interval: float = 10.0
    time_window: float = 600.0
    scale_down_delay: float = 30.0
    name: str = "kubeai"
    initial_average: float = 0.0
    _samples: deque = field(default_factory=deque)
    _consecutive_down: int = 0

    def __post_init__(self) -> None:
        n = math.ceil(self.time_window / self.interval)
        self._samples = deque([self.initial_average] * n, maxlen=n)

    def desired(self, view: ClusterView) -> int:
        self._samples.append(view.waiting + view.running)
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
class Static:
    replicas: int
    interval: float = 3600.0
    name: str = "static peak"

    def desired(self, view: ClusterView) -> int:
        return self.replicas


# ---------------------------------------------------------------------------------------------
# The simulation loop.

WAIT_BIN = 0.05  # seconds per histogram bin
WAIT_BINS = int(3600 / WAIT_BIN)


@dataclass
class Result:
    autoscaler: str
    trace: str
    replica_seconds: float
    p50_wait: float
    p99_wait: float
    slo_violation_pct: float
    flaps: int
    scale_events: int
    max_replicas_used: int
    completed_pairs: float
    timeline: list[tuple[float, int]] = field(default_factory=list)


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


def simulate(
    trace: Trace,
    autoscaler: Autoscaler,
    service: ServiceModel,
    initial_replicas: int,
    seed: int,
    dt: float = 0.25,
    slo_wait: float = 1.0,
    flap_window: float = 300.0,
) -> Result:
    rng = random.Random(seed)
    ready_at: list[float] = [0.0] * initial_replicas  # one entry per replica asked for
    waiting: deque[list[float]] = deque()  # FIFO cohorts [arrival_time, pairs]
    waiting_total = 0.0
    running = 0.0
    hist = [0.0] * (WAIT_BINS + 1)
    slo_violating = 0.0
    replica_seconds = 0.0
    completed = 0.0
    events: list[tuple[float, str]] = []
    timeline: list[tuple[float, int]] = [(0.0, initial_replicas)]
    next_decision = autoscaler.interval
    pairs_mean = trace.mean_pairs_per_request
    ticks = int(trace.duration / dt)

    for tick in range(ticks):
        now = tick * dt
        # Arrivals: Poisson requests, each with 1..2*mean-1 pairs (uniform), as one cohort.
        lam = trace.rate(now) * dt / pairs_mean
        n_req = _poisson(rng, lam)
        if n_req:
            pairs = sum(rng.randint(1, int(2 * pairs_mean - 1)) for _ in range(n_req))
            waiting.append([now, float(pairs)])
            waiting_total += pairs

        n_ready = sum(1 for r in ready_at if r <= now)
        # Serve: completions from the running batches, then admit from the queue (FIFO).
        if n_ready and running > 0:
            per = running / n_ready
            done = min(running, n_ready * service.throughput(per) * dt)
            running -= done
            completed += done
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

        view = ClusterView(now, len(ready_at), n_ready, len(ready_at) - n_ready, waiting_total, running)
        observe = getattr(autoscaler, "observe", None)
        if observe is not None:
            observe(view)
        if now + 1e-9 >= next_decision:
            next_decision += autoscaler.interval
            desired = autoscaler.desired(view)
            if desired != len(ready_at):
                direction = "up" if desired > len(ready_at) else "down"
                events.append((now, direction))
                if desired > len(ready_at):
                    ready_at.extend([now + service.load_time] * (desired - len(ready_at)))
                else:
                    del ready_at[desired:]  # newest first, like a StatefulSet
                timeline.append((now, desired))

    flaps = sum(
        1
        for (t0, d0), (t1, d1) in zip(events, events[1:])
        if d0 != d1 and t1 - t0 <= flap_window
    )
    admitted = sum(hist)
    return Result(
        autoscaler=autoscaler.name,
        trace=trace.name,
        replica_seconds=replica_seconds,
        p50_wait=_percentile(hist, 0.50),
        p99_wait=_percentile(hist, 0.99),
        slo_violation_pct=100.0 * slo_violating / admitted if admitted else 0.0,
        flaps=flaps,
        scale_events=len(events),
        max_replicas_used=max(r for _, r in timeline),
        completed_pairs=completed,
        timeline=timeline,
    )


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 30:
        return max(0, int(round(rng.gauss(lam, math.sqrt(lam)))))
    # Knuth's method; lam is small here (a few requests per tick).
    limit = math.exp(-lam)
    k, p = 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1
