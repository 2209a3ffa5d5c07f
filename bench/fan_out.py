"""Splitting a large rerank request across engines (spec.gateway.fanOutPairs), side by side in one run.

    .venv/bin/python bench/fan_out.py [--runs 5] [--documents 1000] [--load-seconds 30] [--sizes 32,64,128,256]

Two real CPU vLLM engines (the tests' tiny random-weight Qwen3 reranker, float32, started from the operator's
own command line) each pinned to one core, and two gateways over both (cache off, so every pair reaches an
engine): one that splits (--fan-out-pairs, default the spec's default), one that never does. Printed:

1. Latency of a lone request of --documents documents of ~100 tokens: p50 (and min/max) of --runs runs per
   gateway, the two alternating, and the ratio unsplit / split.
2. Sensitivity: the same for smaller requests, split into pieces of at least half their size (so each is
   split in two), to show where a split stops paying for itself: the basis of the default threshold.
3. Throughput under a saturating load: 8 clients sending 200-document requests back to back for
   --load-seconds per gateway, the gateways alternating for --rounds rounds: median pairs/s of each, and
   their ratio (splitting must cost no throughput).

The gateways and the load generator share the two cores with the engines: absolute figures are this machine's;
the ratios are the result.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "gateway"), str(REPO / "operator")]

from rerank_operator.api.gateway import FAN_OUT_PAIRS  # noqa: E402
from tests.fixtures import engine as engine_fixture  # noqa: E402
from tests.fixtures.gateway import running_gateway  # noqa: E402

WORDS = ("river city harbour capital north market bridge museum winter railway garden treaty council coast "
         "valley century festival library province mountain island street castle industry language").split()


def documents(count: int, rng: random.Random) -> list[str]:
    # ~100 tokens each with the Qwen tokenizer (about 1.3 tokens per word of this vocabulary, plus numbers).
    return [f"Passage {i}: " + " ".join(rng.choice(WORDS) for _ in range(70)) for i in range(count)]


@contextlib.contextmanager
def pinned_engine(workdir: Path, cpu: int):
    """An engine whose every process and thread runs on ``cpu`` (inherited from this process at its start)."""
    everything = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        context = engine_fixture.running_engine(workdir)
        engine = context.__enter__()
    finally:
        os.sched_setaffinity(0, everything)
    try:
        yield engine
    finally:
        context.__exit__(None, None, None)


def rerank(gateway, model: str, query: str, docs: list[str]) -> float:
    started = time.perf_counter()
    response = requests.post(gateway.url("/v1/rerank"), json={"model": model, "query": query, "documents": docs},
                             timeout=600)
    response.raise_for_status()
    return time.perf_counter() - started


def lone_requests(gateways: dict, model: str, size: int, runs: int, rng: random.Random) -> dict[str, list[float]]:
    seconds: dict[str, list[float]] = {name: [] for name in gateways}
    for run in range(runs):
        order = list(gateways) if run % 2 == 0 else list(reversed(gateways))
        for name in order:
            docs = documents(size, rng)  # fresh text and query each time: no engine-side cache helps
            seconds[name].append(rerank(gateways[name], model, f"Which passage names a capital? {rng.random()}", docs))
    return seconds


def saturated_pairs_per_second(gateway, model: str, seconds: float, rng: random.Random) -> float:
    stop = time.monotonic() + seconds
    done = [0]
    lock = threading.Lock()

    def client(seed: int) -> None:
        local = random.Random(seed)
        while time.monotonic() < stop:
            docs = documents(200, local)
            rerank(gateway, model, f"Which passage names a capital? {local.random()}", docs)
            with lock:
                done[0] += len(docs)

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(rng.random(),)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return done[0] / (time.monotonic() - started)


def describe(values: list[float]) -> str:
    return f"p50 {statistics.median(values):6.2f} s (min {min(values):.2f}, max {max(values):.2f}, n={len(values)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--documents", type=int, default=1000)
    parser.add_argument("--fan-out-pairs", type=int, default=FAN_OUT_PAIRS)
    parser.add_argument("--sizes", default="32,64,128,256", help="request sizes of the sensitivity table ('': none)")
    parser.add_argument("--load-seconds", type=float, default=20)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of the saturating load")
    args = parser.parse_args()
    if len(os.sched_getaffinity(0)) < 2:
        sys.exit("needs two cores: one per engine")
    cpus = sorted(os.sched_getaffinity(0))[:2]
    rng = random.Random(0)
    with tempfile.TemporaryDirectory(prefix="fan-out-") as tmp:
        work = Path(tmp)
        (work / "a").mkdir(), (work / "b").mkdir(), (work / "g").mkdir()
        with pinned_engine(work / "a", cpus[0]) as a, pinned_engine(work / "b", cpus[1]) as b:
            common = ["--engine", a.base_url, "--engine", b.base_url, "--served-model-name", a.model,
                      "--cache", "none", "--engine-timeout", "600"]
            with running_gateway(work / "g", [*common, "--fan-out-pairs", str(args.fan_out_pairs)]) as split, \
                    running_gateway(work / "g", [*common, "--fan-out-pairs", "0"]) as whole:
                gateways = {"unsplit": whole, "split": split}
                lone_requests(gateways, a.model, 64, 1, rng)  # warm both engines and both gateways

                print(f"1. A lone request of {args.documents} documents (~100 tokens each), two engines of one "
                      f"core each; split: pieces of at least {args.fan_out_pairs} pairs")
                seconds = lone_requests(gateways, a.model, args.documents, args.runs, rng)
                for name, values in seconds.items():
                    print(f"   {name:8s} {describe(values)}")
                ratio = statistics.median(seconds["unsplit"]) / statistics.median(seconds["split"])
                print(f"   unsplit / split p50: {ratio:.2f}x")

                print("\n2. Sensitivity: requests split in two halves (gateway --fan-out-pairs = half the size)")
                print("   pairs   unsplit p50   split p50   unsplit/split")
                for size in [int(s) for s in args.sizes.split(",") if s]:
                    with running_gateway(work / "g", [*common, "--fan-out-pairs", str(size // 2)]) as halves:
                        table = lone_requests({"unsplit": whole, "split": halves}, a.model, size, args.runs, rng)
                    u, s = statistics.median(table["unsplit"]), statistics.median(table["split"])
                    print(f"   {size:5d}   {u:9.3f} s   {s:7.3f} s   {u / s:9.2f}x")

                print(f"\n3. Saturating load: 8 clients, 200-document requests, {args.load_seconds:g} s per gateway "
                      f"and round, {args.rounds} rounds alternating")
                rates: dict[str, list[float]] = {name: [] for name in gateways}
                for round_ in range(args.rounds):
                    for name in (list(gateways) if round_ % 2 == 0 else list(reversed(gateways))):
                        rates[name].append(saturated_pairs_per_second(gateways[name], a.model, args.load_seconds, rng))
                for name, values in rates.items():
                    print(f"   {name:8s} median {statistics.median(values):8.1f} pairs/s  "
                          f"(rounds: {', '.join(f'{v:.1f}' for v in values)})")
                print(f"   split / unsplit: {statistics.median(rates['split']) / statistics.median(rates['unsplit']):.3f}")


if __name__ == "__main__":
    main()
