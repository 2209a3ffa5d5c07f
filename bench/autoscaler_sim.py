"""The operator's autoscaler at its shipped defaults against the autoscalers people run vLLM with.

    python bench/autoscaler_sim.py [--seeds 1,2,3] [--traces all|held-out|NAME,...] [--plots DIR] [--sweep | --sweep-only]
                                   [--knobs forecast_seconds,...] [--set KNOB=VALUE ...] [--equal-service]
                                   [--headline [--no-baselines]] [--load-time S]

Simulates (``bench/autoscaler_simlib.py``) a vLLM reranker fleet -- model load 120 s, 1..24
replicas -- on eight traces (step, diurnal, heavy-tailed bursts, a flash crowd shorter than the
model load, a slow ramp, a change of request size at a constant request rate, a change of document
length at a constant pair rate, heavy-tailed request sizes) -- or, with ``--traces held-out``, on four
shapes never used to choose the defaults (batch jobs on and off, a retry storm after an outage, a
sawtooth, documents of two lengths coming and going) -- each with several seeds, under:

* ``rerank-operator (defaults)``: the operator's ``decide`` with ``AutoscalingPolicy()`` -- the
  CRD's defaults, one setting for every trace;
* ``kubeai``: in-flight HTTP requests counted in its proxy, 10 min moving average, targetRequests
  100, scale-down delay 30 s (its defaults);
* ``keda (production-stack, as shipped)``: the chart's ScaledObject (per-pod series of
  vllm:num_requests_waiting, threshold 5) through KEDA's Prometheus scaler and the HPA;
* ``hpa (num_requests_waiting, avg 5)``: the same trigger as a per-pod average, as it is meant.

Prints, per trace, the median over seeds of: replica-seconds (and the operator's saving against
each baseline), p50/p99 queue wait, the share of pairs that waited longer than the SLO (2 s in the
engine queue; pairs still queued when the trace ends count with the wait they have had), scale
events and reversals per hour (a scale opposite to the previous one within 10 min). Then the goal
check per trace and baseline: >= 25 % fewer replica-seconds, no larger SLO share, <= 1
reversal/hour -- and, where it is not met, whether anyone could meet it:

* the **work lower bound** at the baseline's SLO share (``work_lower_bound``: no policy, even one
  that knows the future, uses fewer replica-seconds); above the budget (0.75 x the baseline's
  replica-seconds) it proves the goal infeasible;
* **hindsight references**: a clairvoyant policy (knows the future arrival rate, pays the same
  model load, at several headrooms), every fixed fleet size, and fleets between two sizes (n + 1
  with one quarter or half of the trace at n: they save replica-seconds by letting the queue
  grow); the cheapest one with no larger SLO
  share and <= 1 reversal/hour shows the goal reachable -- if none is within the budget, the goal
  is out of reach of everything tried, though not proved impossible.

``--plots DIR`` writes one PNG per trace (load, replicas and oldest queued pair's wait over time;
the first seed; the clairvoyant at headroom 0.8 dashed). ``--sweep`` adds a sensitivity table of
the operator's main knobs (not the headline); ``--knobs`` limits it to some; ``--set`` runs the
whole comparison with one knob changed (a sensitivity run, labelled as such). ``--equal-service`` prints
only the cost at equal service: per trace, each baseline at the cheapest setting of its own knob that
misses the SLO no more often than the operator at its defaults (the baselines tuned per trace, so a
sensitivity table too). To iterate, ``--traces`` and ``--seeds`` take a subset.

``--headline`` prints only the headline, per trace (medians over seeds): the operator at its
defaults; each baseline at its defaults and at equal service (its own knob set per trace to the
cheapest setting that misses the SLO no more often than the operator); and the **distance to
hindsight** -- the operator's replica-seconds over those of the cheapest clairvoyant setting
(headroom, ``HINDSIGHT_HEADROOMS``) that misses the SLO no more often. 1.0 is as cheap as knowing the
future; the goal is <= 1.15 on every trace with <= 1 reversal per hour. Next to it, the same oracle
without foresight (it knows the arrival rate exactly, but only up to now) at the operator's SLO miss:
where even it stays above 1.15, the rest of the distance is the price of not seeing the future.
``--no-baselines`` leaves the baselines out (the operator and the distance only, a few times faster).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from dataclasses import replace
from functools import partial

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from autoscaler_simlib import (  # noqa: E402
    ALL_TRACES,
    HELD_OUT,
    TRACES,
    Clairvoyant,
    Static,
    HpaWaiting,
    KedaProductionStack,
    KubeAI,
    ProjectPolicy,
    Result,
    ServiceModel,
    Trace,
    simulate,
    work_lower_bound,
)

from rerank_operator.autoscaling.policy import AutoscalingPolicy  # noqa: E402

MIN_REPLICAS = 1
MAX_REPLICAS = 24
OURS = "rerank-operator (defaults)"


def initial_replicas(trace: Trace, service: ServiceModel, utilization: float) -> int:
    rate = trace.pair_rate(0.0)
    return max(MIN_REPLICAS, math.ceil(rate / (utilization * service.saturated_pairs(trace.tokens_per_pair(0.0)))))


def autoscalers(policy: AutoscalingPolicy) -> list:
    return [
        ProjectPolicy(policy, name=OURS),
        KubeAI(MIN_REPLICAS, MAX_REPLICAS),
        KedaProductionStack(MIN_REPLICAS, MAX_REPLICAS, 5.0),
        HpaWaiting(MIN_REPLICAS, MAX_REPLICAS, 5.0),
    ]


def run_trace(name: str, seeds: list[int], service: ServiceModel, policy: AutoscalingPolicy
              ) -> dict[str, list[Result]]:
    results: dict[str, list[Result]] = {}
    for seed in seeds:
        trace = ALL_TRACES[name](seed)
        n0 = initial_replicas(trace, service, AutoscalingPolicy().target_utilization)
        for autoscaler in autoscalers(policy):
            results.setdefault(autoscaler.name, []).append(simulate(trace, autoscaler, service, n0, seed=seed))
    return results


HEADROOMS = (0.7, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5)


def run_references(name: str, seeds: list[int], service: ServiceModel) -> dict[str, list[Result]]:
    """The hindsight references, one run per seed: the clairvoyant at each headroom, each fixed
    fleet size from MIN_REPLICAS up to the first that misses the SLO for (almost) no pair, and
    between each two of those sizes, the larger with one stretch at the smaller."""
    out: dict[str, list[Result]] = {}
    for seed in seeds:
        trace = ALL_TRACES[name](seed)
        n0 = initial_replicas(trace, service, AutoscalingPolicy().target_utilization)
        for h in HEADROOMS:
            oracle = Clairvoyant(trace, service, MIN_REPLICAS, MAX_REPLICAS, headroom=h)
            out.setdefault(f"clairvoyant {h:g}", []).append(simulate(trace, oracle, service, n0, seed=seed))
    largest = MIN_REPLICAS
    for largest in range(MIN_REPLICAS, MAX_REPLICAS + 1):
        runs = [simulate(ALL_TRACES[name](seed), Static(largest), service, largest, seed=seed) for seed in seeds]
        out[f"static {largest}"] = runs
        if med(r.slo_violation_pct for r in runs) < 0.05:
            break
    # Between two fixed sizes: n + 1 replicas with one stretch (a quarter or a half of the trace) at n.
    duration = ALL_TRACES[name](seeds[0]).duration
    for n in range(max(1, MIN_REPLICAS), largest):
        for a, b in ((0, 0.5), (0.25, 0.75), (0.5, 1.0), (0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0)):
            fleet = Static(n + 1, lower=(a * duration, b * duration))
            out[f"static {n + 1}, {n} over {a:g}-{b:g}"] = [
                simulate(ALL_TRACES[name](seed), fleet, service, n if a == 0 else n + 1, seed=seed) for seed in seeds]
    return out


def med(values) -> float:
    return statistics.median(list(values))


HEADER = (f"  {'autoscaler':<38} {'replica-s':>10} {'ours saves':>10} {'p50 s':>7} {'p99 s':>7} {'SLO %':>7}"
          f" {'scales/h':>8} {'revers./h':>9} {'max n':>5}")


def print_table(name: str, trace: Trace, results: dict[str, list[Result]], references: dict[str, list[Result]],
                service: ServiceModel) -> list[str]:
    ours = results[OURS]
    print(f"\ntrace {name}: {trace.duration / 3600:g} h, {trace.note}")
    print(HEADER)
    goal_lines = []
    cells = [f"{med(o.replica_seconds for o in ours):,.0f} / {med(o.slo_violation_pct for o in ours):.1f} % / "
             f"{med(o.reversals / o.hours for o in ours):.1f}"]
    for label, rs in results.items():
        saving = "" if label == OURS else f"{100 * med(1 - o.replica_seconds / r.replica_seconds for o, r in zip(ours, rs)):+.1f}%"
        print(f"  {label:<38} {med(r.replica_seconds for r in rs):>10,.0f} {saving:>10} "
              f"{med(r.p50_wait for r in rs):>7.2f} {med(r.p99_wait for r in rs):>7.2f} "
              f"{med(r.slo_violation_pct for r in rs):>7.2f} {med(r.scale_events / r.hours for r in rs):>8.1f} "
              f"{med(r.reversals / r.hours for r in rs):>9.2f} {max(r.max_replicas_used for r in rs):>5}")
        if label == OURS:
            continue
        saves = med(1 - o.replica_seconds / r.replica_seconds for o, r in zip(ours, rs))
        cells.append(f"{100 * saves:+.0f} % ({med(r.slo_violation_pct for r in rs):.1f} % / "
                     f"{med(r.reversals / r.hours for r in rs):.1f})")
        slo_ok = med(o.slo_violation_pct for o in ours) <= med(r.slo_violation_pct for r in rs) + 1e-9
        rev = med(o.reversals / o.hours for o in ours)
        met = saves >= 0.25 and slo_ok and rev <= 1.0
        verdict, budget, bound, best = feasibility(rs, references, service)
        goal_lines.append(
            f"{name:<17} vs {label:<38} saves {100 * saves:+6.1f}%  SLO {med(o.slo_violation_pct for o in ours):6.2f}% "
            f"vs {med(r.slo_violation_pct for r in rs):6.2f}%  reversals/h {rev:.2f}  -> "
            f"{'MET' if met else 'not met: ' + verdict}")
        FEASIBILITY_ROWS.append(
            f"| {name} | {label.split(' (')[0]} | {budget:,.0f} | {bound:,.0f} | "
            f"{'none' if best is None else f'{best[1]:,.0f} ({best[0]}, {best[2]:.1f} %)'} | "
            f"{'met' if met else verdict} |")
    MARKDOWN_ROWS.append(f"| {name} | " + " | ".join(cells) + " |")
    return goal_lines


MARKDOWN_ROWS: list[str] = []
FEASIBILITY_ROWS: list[str] = []


def feasibility(baseline: list[Result], references: dict[str, list[Result]], service: ServiceModel
                ) -> tuple[str, float, float, tuple[str, float, float] | None]:
    """Whether anyone could beat ``baseline`` by the goal's terms: the budget (0.75 x its
    replica-seconds), the work-conserving lower bound at its SLO share (a proof of infeasibility
    when above the budget), and the cheapest hindsight reference (clairvoyant or fixed fleet) that
    misses the SLO no more often and reverses at most once an hour (name, replica-seconds, SLO %),
    or None."""
    budget = 0.75 * med(r.replica_seconds for r in baseline)
    slo = med(r.slo_violation_pct for r in baseline)
    bound = med(work_lower_bound(r, service, MIN_REPLICAS, MAX_REPLICAS, slo) for r in baseline)
    fits = [(h, med(r.replica_seconds for r in rs), med(r.slo_violation_pct for r in rs))
            for h, rs in references.items()
            if med(r.slo_violation_pct for r in rs) <= slo + 1e-9 and med(r.reversals / r.hours for r in rs) <= 1.0]
    best = min(fits, key=lambda f: f[1]) if fits else None
    if bound > budget:
        verdict = "infeasible (work bound above budget)"
    elif best is None or best[1] > budget:
        verdict = "no hindsight reference reaches it"
    else:
        verdict = "a hindsight reference reaches it"
    return verdict, budget, bound, best


REFERENCE_IN_PLOTS = "clairvoyant 0.8"
SERVICE_LOAD_TIME = 120.0  # set by main() from --load-time, for the plots' titles


def plot(name: str, trace: Trace, results: dict[str, list[Result]], references: dict[str, list[Result]],
         directory: str, reference: str = REFERENCE_IN_PLOTS) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(10, 7.5), sharex=True)
    first = {label: rs[0] for label, rs in results.items()}
    ours = first[OURS]
    t = [p[0] / 60 for p in ours.timeline]
    axes[0].plot(t, [p[1] for p in ours.timeline], color="0.3", linewidth=0.8)
    axes[0].set_ylabel("pairs/s arriving")
    styles = {OURS: dict(color="tab:blue", linewidth=2.0)}
    for label, r in first.items():
        style = styles.get(label, dict(linewidth=1.0, alpha=0.85))
        tt = [p[0] / 60 for p in r.timeline]
        axes[1].step(tt, [p[2] for p in r.timeline], where="post", label=label, **style)
        axes[2].plot(tt, [p[3] for p in r.timeline], label=label, **style)
    ref = references[reference][0]
    for ax, column in ((axes[1], 2), (axes[2], 3)):
        draw = ax.step if column == 2 else ax.plot
        kwargs = {"where": "post"} if column == 2 else {}
        draw([p[0] / 60 for p in ref.timeline], [p[column] for p in ref.timeline], color="0.4", linestyle="--",
             linewidth=1.0, label=f"{reference} (knows the future; reference)", **kwargs)
    axes[1].set_ylabel("replicas (asked for)")
    axes[2].set_ylabel("oldest queued pair (s)")
    axes[2].set_yscale("symlog", linthresh=1.0)
    axes[2].set_xlabel("minutes")
    axes[1].legend(fontsize=8, loc="upper left")
    fig.suptitle(f"{name}: {trace.note} (model load {SERVICE_LOAD_TIME:g} s)")
    fig.tight_layout()
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"autoscaler-{name}.png")
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def sweep(names: list[str], seeds: list[int], service: ServiceModel, defaults: AutoscalingPolicy,
          knobs: list[str] | None = None) -> None:
    print("\nsensitivity (not the headline): one setting changed from the defaults; median over traces and seeds "
          "of the operator's replica-seconds relative to the defaults, median and worst SLO miss, worst reversals "
          "per hour")
    base = {n: _ours_only(n, seeds, service, defaults) for n in names}
    slo0 = [r.slo_violation_pct for n in names for r in base[n]]
    rev0 = [r.reversals / r.hours for n in names for r in base[n]]
    print(f"  defaults: SLO miss median {med(slo0):.2f}%, worst {max(slo0):.2f}%, worst reversals/h {max(rev0):.2f}")
    for knob, values in (("target_utilization", (0.7, 0.9)), ("demand_window_seconds", (30.0, 120.0)),
                         ("scale_down_stabilization_seconds", (300.0, 900.0)),
                         ("backlog_drain_seconds", (60.0, 120.0, 600.0)), ("max_scale_up_factor", (2.0, None)),
                         ("forecast_seconds", (60.0, 120.0, 180.0))):
        if knobs is not None and knob not in knobs:
            continue
        for v in values:
            policy = replace(defaults, **{knob: v})
            rel, slo, rev = [], [], []
            for n in names:
                for b, r in zip(base[n], _ours_only(n, seeds, service, policy)):
                    rel.append(r.replica_seconds / b.replica_seconds - 1)
                    slo.append(r.slo_violation_pct)
                    rev.append(r.reversals / r.hours)
            print(f"  {knob}={v}: replica-s {100 * med(rel):+.1f}%, SLO miss median {med(slo):.2f}%, worst "
                  f"{max(slo):.2f}%, worst reversals/h {max(rev):.2f}")


# Each baseline's own knob, from its default down to settings that scale up sooner (more replicas). KubeAI's
# targetRequests is an integer >= 1; the waiting-gauge threshold is a Kubernetes quantity ("500m").
BASELINE_KNOBS = (
    ("kubeai", "targetRequests", (100, 50, 30, 20, 15, 10, 7, 5, 4, 3, 2, 1),
     lambda v: KubeAI(MIN_REPLICAS, MAX_REPLICAS, float(v))),
    ("keda (production-stack)", "threshold", (5, 3, 2, 1.5, 1, 0.7, 0.5, 0.3, 0.2, 0.1),
     lambda v: KedaProductionStack(MIN_REPLICAS, MAX_REPLICAS, float(v))),
    ("hpa (num_requests_waiting)", "averageValue", (5, 3, 2, 1.5, 1, 0.7, 0.5, 0.3, 0.2, 0.1),
     lambda v: HpaWaiting(MIN_REPLICAS, MAX_REPLICAS, float(v))),
)


def cheapest_at_slo(tried: list[tuple[float, list[Result]]], slo_pct: float) -> tuple[float, list[Result]] | None:
    """Of (setting, runs over the seeds) pairs, the one with the fewest median replica-seconds among those
    whose median SLO miss is at most ``slo_pct``; None when no setting gets there."""
    fits = [(v, rs) for v, rs in tried if med(r.slo_violation_pct for r in rs) <= slo_pct + 1e-9]
    return min(fits, key=lambda vr: med(r.replica_seconds for r in vr[1])) if fits else None


def baselines_at_the_operators_slo(names: list[str], seeds: list[int], service: ServiceModel,
                                   policy: AutoscalingPolicy) -> None:
    """Cost at equal service: each baseline with its own knob set, per trace, to the cheapest setting
    (of ``BASELINE_KNOBS``) whose median SLO miss is no larger than the operator's at its defaults, and
    the operator's saving against that. A per-trace tuning of the baselines, so a sensitivity table."""
    print("\ncost at equal service (sensitivity, not the headline): per trace, each baseline at the cheapest "
          "setting of its own knob that misses the SLO no more often than the operator at its defaults; "
          "medians over seeds")
    rows = []
    counts = {"met": 0, "more": 0, "short": 0}
    for name in names:
        ours = _ours_only(name, seeds, service, policy)
        our_slo = med(o.slo_violation_pct for o in ours)
        our_rev = med(o.reversals / o.hours for o in ours)
        cells = []
        for label, knob, values, make in BASELINE_KNOBS:
            tried = [(value, runs_over_seeds(name, seeds, service, partial(make, value))) for value in values]
            match = cheapest_at_slo(tried, our_slo)
            if match is None:
                best_v, best = min(tried, key=lambda vr: med(r.slo_violation_pct for r in vr[1]))
                counts["more"] += 1
                verdict = (f"misses more at every setting (least: {med(r.slo_violation_pct for r in best):.1f} % at "
                           f"{knob} {best_v:g}, {med(r.replica_seconds for r in best):,.0f} replica-s)")
                cells.append(f"never ≤ {our_slo:.1f} % (least {med(r.slo_violation_pct for r in best):.1f} % at "
                             f"{best_v:g}, {100 * med(1 - o.replica_seconds / r.replica_seconds for o, r in zip(ours, best)):+.0f} %)")
            else:
                value, rs = match
                saves = med(1 - o.replica_seconds / r.replica_seconds for o, r in zip(ours, rs))
                ok = saves >= 0.25 and our_rev <= 1.0
                counts["met" if ok else "short"] += 1
                verdict = (f"{knob} {value:g}: {med(r.replica_seconds for r in rs):,.0f} replica-s, "
                           f"{med(r.slo_violation_pct for r in rs):.1f} % SLO miss -> operator saves {100 * saves:+.1f}%"
                           f"{'' if ok else ' (short of 25 %)'}")
                cells.append(f"{100 * saves:+.0f} % ({knob} {value:g}, {med(r.slo_violation_pct for r in rs):.1f} %)")
            print(f"  {name:<17} vs {label:<27} (operator {our_slo:.1f} % / {our_rev:.1f} rev/h): {verdict}")
        rows.append(f"| {name} | {med(o.replica_seconds for o in ours):,.0f} / {our_slo:.1f} % | " + " | ".join(cells) + " |")
    print(f"  {counts['met']} pairs: the operator saves >= 25 % at no larger SLO miss; {counts['more']}: the baseline "
          f"misses the SLO more often at every setting tried; {counts['short']}: it reaches the operator's SLO miss "
          "for less than 1/0.75 x the operator's replica-seconds")
    print("\nmarkdown rows (trace | operator replica-s / SLO miss | per baseline: the operator's saving (setting, "
          "its SLO miss)):")
    print("\n".join(rows))


def runs_over_seeds(name: str, seeds: list[int], service: ServiceModel, make_autoscaler) -> list[Result]:
    """One run per seed of the trace ``name``, each with a fresh autoscaler from ``make_autoscaler()``,
    starting from the replicas the defaults would size the trace's first load for."""
    out = []
    for seed in seeds:
        trace = ALL_TRACES[name](seed)
        n0 = initial_replicas(trace, service, AutoscalingPolicy().target_utilization)
        out.append(simulate(trace, make_autoscaler(), service, n0, seed=seed))
    return out


def _ours_only(name: str, seeds: list[int], service: ServiceModel, policy: AutoscalingPolicy) -> list[Result]:
    return runs_over_seeds(name, seeds, service, lambda: ProjectPolicy(policy, name=OURS))


# The clairvoyant's headroom, finely: the cheapest one at the operator's SLO miss is the hindsight reference.
HINDSIGHT_HEADROOMS = tuple(round(0.6 + 0.05 * i, 2) for i in range(19))  # 0.6 .. 1.5


def clairvoyant_at_slo(name: str, seeds: list[int], service: ServiceModel, slo_pct: float, foresight: bool = True
                       ) -> tuple[float, list[Result]] | None:
    """The cheapest clairvoyant headroom whose median SLO miss is at most ``slo_pct`` (None: none is).
    Without ``foresight``: the same oracle knowing the arrival rate only up to now (the best reacting)."""
    def make_oracle(trace: Trace, h: float) -> Clairvoyant:
        return Clairvoyant(trace, service, MIN_REPLICAS, MAX_REPLICAS, headroom=h, foresight=foresight)

    tried = []
    for h in HINDSIGHT_HEADROOMS:
        runs = []
        for seed in seeds:
            trace = ALL_TRACES[name](seed)
            n0 = initial_replicas(trace, service, AutoscalingPolicy().target_utilization)
            runs.append(simulate(trace, make_oracle(trace, h), service, n0, seed=seed))
        tried.append((h, runs))
    return cheapest_at_slo(tried, slo_pct)


def headline(names: list[str], seeds: list[int], service: ServiceModel, policy: AutoscalingPolicy,
             plots: str | None = None, baselines: bool = True) -> None:
    """Per trace: the operator, each baseline at its defaults and at equal service, the distance to hindsight.
    With ``plots``, one PNG per trace: the operator, the baselines at their defaults, and that clairvoyant."""
    print("\nheadline: medians over seeds; the operator at its defaults; each baseline at its defaults and at "
          "equal service (its own knob per trace at the operator's SLO miss); distance to hindsight = the "
          "operator's replica-s / the cheapest clairvoyant headroom with no larger SLO miss")
    rows = []
    for name in names:
        ours = _ours_only(name, seeds, service, policy)
        rs_ours = med(o.replica_seconds for o in ours)
        slo = med(o.slo_violation_pct for o in ours)
        rev = med(o.reversals / o.hours for o in ours)
        cells = []
        defaults = {OURS: ours}
        for label, knob, values, make in BASELINE_KNOBS if baselines else ():
            at_default = runs_over_seeds(name, seeds, service, partial(make, values[0]))
            defaults[label] = at_default
            tried = [(values[0], at_default)] + [
                (v, runs_over_seeds(name, seeds, service, partial(make, v))) for v in values[1:]]
            match = cheapest_at_slo(tried, slo)
            default_cell = (f"{med(r.replica_seconds for r in at_default):,.0f} / "
                            f"{med(r.slo_violation_pct for r in at_default):.1f} %")
            equal_cell = ("never" if match is None else
                          f"{med(r.replica_seconds for r in match[1]):,.0f} ({knob} {match[0]:g})")
            cells.append(f"{default_cell}; {equal_cell}")
        oracle = clairvoyant_at_slo(name, seeds, service, slo)
        reactor = clairvoyant_at_slo(name, seeds, service, slo, foresight=False)
        if oracle is None:
            distance, oracle_cell, reactor_cell = "n/a", "none at this SLO miss", "n/a"
        else:
            h, runs = oracle
            rs_oracle = med(r.replica_seconds for r in runs)
            distance = f"{rs_ours / rs_oracle:.2f}"
            oracle_cell = f"{rs_oracle:,.0f} (headroom {h:g}, {med(r.slo_violation_pct for r in runs):.1f} %)"
            reactor_cell = "none at this SLO miss" if reactor is None else (
                f"{med(r.replica_seconds for r in reactor[1]) / rs_oracle:.2f} (headroom {reactor[0]:g}, "
                f"{med(r.reversals / r.hours for r in reactor[1]):.1f} rev/h)")
        print(f"  {name:<17} operator {rs_ours:,.0f} replica-s / {slo:.2f} % SLO miss / {rev:.2f} rev/h; "
              f"clairvoyant {oracle_cell}; distance {distance}; the same oracle without foresight: {reactor_cell}")
        for (label, _, _, _), cell in zip(BASELINE_KNOBS, cells):
            print(f"  {'':<17}   {label:<27} defaults / equal service: {cell}")
        if plots and oracle is not None:
            reference = f"clairvoyant {oracle[0]:g}"
            print(f"  plot: {plot(name, ALL_TRACES[name](seeds[0]), defaults, {reference: oracle[1]}, plots, reference)}")
        rows.append(f"| {name} | {rs_ours:,.0f} / {slo:.1f} % / {rev:.1f} | " + " | ".join(cells)
                    + f" | {oracle_cell} | **{distance}** | {reactor_cell} |")
    print("\nmarkdown rows (trace | operator replica-s / SLO miss / reversals per h | per baseline: defaults "
          "replica-s / SLO miss; at equal service replica-s (setting) | cheapest clairvoyant at the operator's "
          "SLO miss | distance to hindsight | the oracle without foresight at the operator's SLO miss: its "
          "distance):")
    print("\n".join(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--traces", default="all",
                        help=f"all (the headline's), held-out ({', '.join(HELD_OUT)}: shapes never used to choose "
                             f"the defaults), or comma-separated, from: {', '.join(ALL_TRACES)}")
    parser.add_argument("--load-time", type=float, default=120.0, help="model load time of a new replica (s)")
    parser.add_argument("--plots", default=None, help="directory for one PNG per trace")
    parser.add_argument("--sweep", action="store_true", help="also print the sensitivity table")
    parser.add_argument("--sweep-only", action="store_true", help="print only the sensitivity table")
    parser.add_argument("--set", action="append", default=[], metavar="KNOB=VALUE",
                        help="run the operator with this setting changed from the defaults (e.g. forecast_seconds=120); "
                             "the output is then a sensitivity run, not the headline")
    parser.add_argument("--equal-service", action="store_true",
                        help="print only the cost at equal service: each baseline's own knob set per trace to "
                             "the operator's SLO miss (a sensitivity table)")
    parser.add_argument("--headline", action="store_true",
                        help="print only the headline: the operator, the baselines at their defaults and at "
                             "equal service, and the distance to hindsight, per trace")
    parser.add_argument("--no-baselines", action="store_true",
                        help="with --headline: only the operator and the distance to hindsight (faster)")
    parser.add_argument("--knobs", default=None,
                        help="with --sweep/--sweep-only: only these comma-separated knobs (e.g. forecast_seconds)")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    names = {"all": list(TRACES), "held-out": list(HELD_OUT)}.get(args.traces) or args.traces.split(",")
    unknown = [n for n in names if n not in ALL_TRACES]
    if unknown:
        parser.error(f"--traces: unknown {', '.join(unknown)}")
    service = ServiceModel(load_time=args.load_time)
    global SERVICE_LOAD_TIME
    SERVICE_LOAD_TIME = args.load_time
    policy = AutoscalingPolicy(min_replicas=MIN_REPLICAS, max_replicas=MAX_REPLICAS)
    for setting in args.set:
        knob, _, value = setting.partition("=")
        if knob not in AutoscalingPolicy.__dataclass_fields__ or knob in ("min_replicas", "max_replicas"):
            parser.error(f"--set {setting}: not a policy setting")
        policy = replace(policy, **{knob: None if value == "None" else float(value)})
    print(f"service model: max_num_seqs={service.max_num_seqs}, throughput x_max*c/(c+k) with x_max="
          f"{service.x_max:g} tokens/s, k={service.k:g}; model load {service.load_time:g} s; replicas "
          f"{MIN_REPLICAS}..{MAX_REPLICAS}; SLO: queue wait <= 2 s; seeds {seeds}; medians over seeds")
    print(f"operator defaults: {AutoscalingPolicy()}")
    if args.set:
        global OURS
        OURS = f"rerank-operator ({', '.join(args.set)})"
        print(f"NOT THE DEFAULTS (sensitivity run, not the headline): {', '.join(args.set)}")
    started = time.perf_counter()
    knobs = None if args.knobs is None else args.knobs.split(",")
    if args.headline:
        headline(names, seeds, service, policy, args.plots, baselines=not args.no_baselines)
        print(f"\n(simulated in {time.perf_counter() - started:.1f} s)")
        return
    if args.equal_service:
        baselines_at_the_operators_slo(names, seeds, service, policy)
        print(f"\n(simulated in {time.perf_counter() - started:.1f} s)")
        return
    if args.sweep_only:
        sweep(names, seeds, service, policy, knobs)
        print(f"\n(simulated in {time.perf_counter() - started:.1f} s)")
        return
    goals: list[str] = []
    for name in names:
        results = run_trace(name, seeds, service, policy)
        references = run_references(name, seeds, service)
        goals += print_table(name, ALL_TRACES[name](seeds[0]), results, references, service)
        print("  hindsight references (replica-s / SLO % / reversals per h): " + ";  ".join(
            f"{k}: {med(r.replica_seconds for r in rs):,.0f} / {med(r.slo_violation_pct for r in rs):.1f} / "
            f"{med(r.reversals / r.hours for r in rs):.1f}"
            for k, rs in references.items()))
        if args.plots:
            print(f"  plot: {plot(name, ALL_TRACES[name](seeds[0]), results, references, args.plots)}")
    print("\ngoal: >= 25% fewer replica-seconds than the baseline, no larger SLO share, <= 1 reversal/hour")
    for line in goals:
        print("  " + line)
    met = sum(1 for line in goals if line.endswith("MET"))
    infeasible = sum(1 for line in goals if "infeasible" in line)
    unreachable = sum(1 for line in goals if "no hindsight" in line)
    print(f"  {met} of {len(goals)} trace x baseline pairs met; of the rest, {infeasible} infeasible by the work "
          f"bound, {unreachable} reached by no hindsight reference, {len(goals) - met - infeasible - unreachable} "
          "reached by a hindsight reference")
    print("\nmarkdown rows (operator: replica-s / SLO miss / reversals per h; baselines: operator's saving "
          "(baseline's SLO miss / reversals per h)):")
    print("\n".join(MARKDOWN_ROWS))
    print("\nmarkdown feasibility rows (trace | baseline | budget = 0.75 x its replica-s | work lower bound at its "
          "SLO share | cheapest hindsight reference with no larger SLO share and <= 1 reversal/h | verdict):")
    print("\n".join(FEASIBILITY_ROWS))
    if args.sweep:
        sweep(names, seeds, service, policy, knobs)
    print(f"\n(simulated in {time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
