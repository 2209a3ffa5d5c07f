"""Compare the operator's queue-depth autoscaler with common vLLM autoscaling setups.

    .venv/bin/python bench/autoscaler_sim.py [--seed 7] [--load-time 120] [--target 32]

Runs a discrete-time simulation (``bench/autoscaler_simlib.py``) of a vLLM reranker fleet on a
step, a diurnal and a bursty trace, under:

* ``rerank-operator``: this project's policy -- the very ``decide`` function the operator runs --
  at its defaults, with a 30 s scale-up window, and with that window but no maxScaleUpFactor
  (what the factor buys);
* ``keda (production-stack)``: vLLM production-stack's KEDA default (num_requests_waiting,
  threshold 5, 15 s polling, 360 s cooldown, HPA 300 s scale-down window);
* ``kubeai``: KubeAI's autoscaler (10 s interval, 10 min moving average of in-flight requests
  divided by targetRequests, 30 s scale-down delay), once with the same per-replica target as
  the operator and once with KubeAI's default ``targetRequests: 100``;
* ``static peak``: a fixed fleet sized so the peak load runs at the target concurrency.

Prints replica-seconds, p50/p99 queue wait, SLO violations (share of pairs queued longer than
the SLO) and flaps (a scale in the opposite direction within 5 min of the previous one), then an
equal-latency comparison: the operator's target and both stabilization windows are swept, and for each
baseline the cheapest flap-free setting whose p99 wait is no worse than the baseline's is
compared on replica-seconds. Every autoscaler starts from the same fleet with its history
pre-filled (KubeAI's moving average, KEDA's and the operator's recommendation windows).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from autoscaler_simlib import (  # noqa: E402
    KedaProductionStack,
    KubeAI,
    ProjectPolicy,
    Result,
    ServiceModel,
    Static,
    bursty_trace,
    diurnal_trace,
    simulate,
    step_trace,
)

from rerank_operator.autoscaling.policy import AutoscalingPolicy, Recommendation  # noqa: E402

MIN_REPLICAS = 1
MAX_REPLICAS = 24
SWEEP_TARGETS = (24, 32, 48, 64, 96, 128, 160, 192)
SWEEP_DOWN_WINDOWS = (300, 600, 900)
SWEEP_UP_WINDOWS = (0, 15, 30)


def ours(target: float, initial: int, up_window: float = 0.0, down_window: float = 300.0,
         factor: float | None = 4.0, name: str | None = None) -> ProjectPolicy:
    # The recommendation history starts with the initial fleet, as if the operator had been
    # running it (KubeAI's moving average and KEDA's window are pre-filled the same way).
    return ProjectPolicy(
        AutoscalingPolicy(min_replicas=MIN_REPLICAS, max_replicas=MAX_REPLICAS, target_per_replica=target,
                          scale_up_stabilization_seconds=up_window,
                          scale_down_stabilization_seconds=down_window, max_scale_up_factor=factor),
        name=name or f"rerank-operator (t{target:g}, up {up_window:g}s, down {down_window:g}s)",
        history=(Recommendation(0.0, initial),),
    )


def steady_replicas(rate: float, service: ServiceModel, target: float) -> int:
    return max(MIN_REPLICAS, math.ceil(rate / service.throughput(target)))


def row(r: Result, baseline_rs: float | None = None) -> str:
    rel = "" if baseline_rs is None else f"{100 * (r.replica_seconds / baseline_rs - 1):+7.1f}%"
    return (
        f"  {r.autoscaler:<44} {r.replica_seconds:>11,.0f} {rel:>8} {r.p50_wait:>8.2f} {r.p99_wait:>8.2f}"
        f" {r.slo_violation_pct:>8.2f} {r.flaps:>6} {r.scale_events:>7} {r.max_replicas_used:>6}"
    )


HEADER = (
    f"  {'autoscaler':<44} {'replica-s':>11} {'vs first':>8} {'p50 (s)':>8} {'p99 (s)':>8}"
    f" {'SLO %':>8} {'flaps':>6} {'scales':>7} {'max n':>6}"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--load-time", type=float, default=120.0, help="model load time of a new replica (s)")
    parser.add_argument("--target", type=float, default=32.0, help="the operator's targetQueueDepthPerReplica")
    parser.add_argument("--up-window", type=float, default=30.0,
                        help="the operator's scaleUpStabilizationSeconds for the tuned rows")
    parser.add_argument("--slo", type=float, default=1.0, help="queue-wait SLO in seconds")
    parser.add_argument("--traces", default="step,diurnal,bursty")
    args = parser.parse_args()

    service = ServiceModel(load_time=args.load_time)
    traces = {"step": step_trace(), "diurnal": diurnal_trace(args.seed), "bursty": bursty_trace(args.seed)}
    print(
        f"service model: max_num_seqs={service.max_num_seqs}, throughput x_max*c/(c+k) with x_max={service.x_max:g} "
        f"pairs/s, k={service.k:g}; model load {service.load_time:g} s; replicas {MIN_REPLICAS}..{MAX_REPLICAS}; "
        f"SLO: queue wait <= {args.slo:g} s; seed {args.seed}"
    )
    summary: list[str] = []
    started = time.perf_counter()
    for name in args.traces.split(","):
        trace = traces[name]
        n0 = steady_replicas(trace.rate(0.0), service, args.target)
        inflight0 = n0 * service.concurrency_for(trace.rate(0.0) / n0)

        def run(autoscaler, initial: int | None = None) -> Result:
            # The same seed for every autoscaler: they all see the very same arrivals.
            return simulate(trace, autoscaler, service, initial or n0, seed=args.seed, slo_wait=args.slo)

        static = min(MAX_REPLICAS, steady_replicas(trace.peak_rate, service, args.target))
        results = [
            run(ours(args.target, n0, name="rerank-operator (defaults)")),
            run(ours(args.target, n0, up_window=args.up_window,
                     name=f"rerank-operator (scaleUpStab. {args.up_window:g}s)")),
            run(ours(args.target, n0, up_window=args.up_window, factor=None,
                     name=f"rerank-operator (scaleUpStab. {args.up_window:g}s, no factor)")),
            run(KedaProductionStack(MIN_REPLICAS, MAX_REPLICAS, recommendations=[(0.0, n0)])),
            run(KubeAI(MIN_REPLICAS, MAX_REPLICAS, 100, initial_average=inflight0,
                       name="kubeai (targetRequests=100, default)")),
            run(KubeAI(MIN_REPLICAS, MAX_REPLICAS, args.target, initial_average=inflight0,
                       name=f"kubeai (targetRequests={args.target:g})")),
            run(Static(static), initial=static),
        ]
        base = results[0].replica_seconds
        print(f"\ntrace {name}: {trace.duration / 3600:g} h, peak {trace.peak_rate:g} pairs/s")
        print(HEADER)
        for r in results:
            print(row(r, base))

        # Equal-latency comparison: the operator's target and stabilization windows are swept; for
        # each baseline, the cheapest flap-free setting that is no slower at p99 is compared on
        # replica-seconds.
        sweep = {(t, up, w): run(ours(float(t), n0, up_window=float(up), down_window=float(w)))
                 for up in SWEEP_UP_WINDOWS for w in SWEEP_DOWN_WINDOWS for t in SWEEP_TARGETS}
        print("  operator sweep (up window/down window: target replica-s/p99 s/flaps):")
        for up in SWEEP_UP_WINDOWS:
            for w in SWEEP_DOWN_WINDOWS:
                print(f"    {up:>2}s/{w:>3}s: " + ", ".join(
                    f"t{t} {s.replica_seconds:,.0f}/{s.p99_wait:.2f}/{s.flaps}"
                    for (t, uu, ww), s in sweep.items() if (uu, ww) == (up, w)))
        for baseline in results[3:6]:
            no_slower = [(k, s) for k, s in sweep.items() if s.p99_wait <= baseline.p99_wait]
            flap_free = [(k, s) for k, s in no_slower if s.flaps == 0]
            if not no_slower:
                line = (f"{name:<8} vs {baseline.autoscaler:<36}: no operator setting in the sweep reaches its "
                        f"p99 {baseline.p99_wait:.2f} s")
            else:
                (t, up, w), best = min(flap_free or no_slower, key=lambda ks: ks[1].replica_seconds)
                saving = 100 * (1 - best.replica_seconds / baseline.replica_seconds)
                line = (f"{name:<8} vs {baseline.autoscaler:<36}: target {t:>3}, up {up:>2}s, down {w:>3}s -> "
                        f"{best.replica_seconds:>9,.0f} vs {baseline.replica_seconds:>9,.0f} replica-s "
                        f"({saving:+.1f}% saved) at p99 {best.p99_wait:.2f} <= {baseline.p99_wait:.2f} s, "
                        f"flaps {best.flaps} vs {baseline.flaps}")
            summary.append(line)
    print("\nequal-or-better p99 wait, fewest replica-seconds among flap-free operator settings "
          "(positive = operator cheaper):")
    for line in summary:
        print("  " + line)
    print(f"\n(simulated in {time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
