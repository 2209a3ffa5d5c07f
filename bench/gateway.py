"""The rerank gateway's figures, side by side in one run.

    .venv/bin/python bench/gateway.py [--skip-engine] [--seconds 10] [--rounds 5] [--parts 1,1b,2,3,4,4b]

1. Added latency: the same 20-document rerank requests sent to the real CPU vLLM (the tests' tiny
   reranker, started from the operator's own command line) directly and through the gateway (cache
   off, so every pair reaches the engine), at concurrency 1 and 32: p50/p99 of each and the
   difference.
2. Gateway alone: requests/s of 20-pair requests against a STUB engine that answers at once
   (bench/stub_engine.py), the gateway pinned to one core, cache off and cache on (all hits).
3. Engine work saved: a replayed trace of rerank requests with a stated repeat rate, through the
   gateway with its default in-process cache, against the stub engine: pairs the engine scored over
   pairs requested.
4. Routing: p99 latency of least-outstanding (power of two choices) vs random routing over 2 and 4
   STUB engines that serve one request at a time at a fixed cost per pair, with mixed request sizes;
   and (4b) the same comparison simulated with the gateway's own pick() over 2-4 FIFO engines on a
   virtual clock, which no CPU contention can distort.

The load generator, the stubs and the gateway run on this machine's loopback; with 2 cores the
gateway is pinned to core 0 and the rest to core 1 where `taskset` exists.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "gateway"), str(ROOT / "operator")]

PY = sys.executable
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "gateway"), os.environ.get("PYTHONPATH", "")])}
TASKSET = shutil.which("taskset") if (os.cpu_count() or 1) >= 2 else None
GATEWAY_PIDS: dict[str, int] = {}


def cpu_seconds(pid: int) -> float:
    """CPU time a process has used (user + system): unlike wall time, not inflated by other load."""
    import psutil

    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pinned(core: int, argv: list[str]) -> list[str]:
    return [TASKSET, "-c", str(core), *argv] if TASKSET else argv


async def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as s:
        while True:
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with s.get(url) as r:
                    if r.status == 200:
                        return
            if time.monotonic() > deadline:
                raise TimeoutError(url)
            await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def process(argv: list[str], health: str):
    proc = subprocess.Popen(argv, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await wait_http(health)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextlib.asynccontextmanager
async def stub(ms_per_pair: float = 0.0):
    port = free_port()
    argv = pinned(1, [PY, str(ROOT / "bench" / "stub_engine.py"), "--port", str(port), "--ms-per-pair", str(ms_per_pair)])
    async with process(argv, f"http://127.0.0.1:{port}/health"):
        yield f"http://127.0.0.1:{port}"


@contextlib.asynccontextmanager
async def gateway(engines: list[str], *extra: str, model: str = "m"):
    port = free_port()
    args = [PY, "-m", "rerank_gateway", "--host", "127.0.0.1", "--port", str(port), "--served-model-name", model,
            "--dns-interval", "0.2", *extra]
    for e in engines:
        args += ["--engine", e]
    async with process(pinned(0, args), f"http://127.0.0.1:{port}/health") as proc:
        url = f"http://127.0.0.1:{port}"
        GATEWAY_PIDS[url] = proc.pid
        deadline = time.monotonic() + 30
        async with aiohttp.ClientSession() as s:
            while True:  # until every engine passed its health check
                async with s.get(url + "/health") as r:
                    if (await r.json())["ready_engines"] == len(engines):
                        break
                assert time.monotonic() < deadline
                await asyncio.sleep(0.1)
        yield url


async def load(url: str, bodies: list[dict], concurrency: int, path: str = "/v1/rerank") -> tuple[list[float], float]:
    """Send ``bodies`` with ``concurrency`` in flight; latencies (s) and the wall time."""
    latencies: list[float] = []
    queue = list(reversed(bodies))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def worker():
            while queue:
                body = queue.pop()
                start = time.perf_counter()
                async with session.post(url + path, json=body) as r:
                    await r.read()
                    assert r.status == 200, (r.status, await r.text())
                latencies.append(time.perf_counter() - start)
        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return latencies, time.perf_counter() - start


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ms(x: float) -> str:
    return f"{x * 1000:8.2f}"


def bodies(n: int, docs: int, model: str, tag: str = "") -> list[dict]:
    return [{"model": model, "query": f"query {tag}{i}: which city is the capital of France?",
             "documents": [f"document {j} of request {tag}{i}: Paris is a city on the Seine." for j in range(docs)]}
            for i in range(n)]


async def added_latency(args) -> None:
    from tests.fixtures.engine import running_engine

    print("\n== 1. added latency: real CPU vLLM, direct vs through the gateway (cache off), 20 documents ==")
    with tempfile.TemporaryDirectory() as tmp, running_engine(Path(tmp)) as engine:
        async with gateway([engine.base_url], "--cache", "none", model=engine.model) as gw:
            print(f"{'concurrency':>11} {'direct p50':>10} {'gw p50':>8} {'added p50':>9} {'direct p99':>10} "
                  f"{'gw p99':>8} {'added p99':>9}  (ms)")
            for concurrency, n in ((1, args.requests_c1), (32, args.requests_c32)):
                await load(engine.base_url, bodies(8, 20, engine.model, "warm"), 4)  # warm-up
                # Interleave rounds so drift on a shared machine hits both sides alike.
                direct, through = [], []
                for round_ in range(4):
                    d, _ = await load(engine.base_url, bodies(n // 4, 20, engine.model, f"d{concurrency}-{round_}-"),
                                      concurrency)
                    t, _ = await load(gw, bodies(n // 4, 20, engine.model, f"g{concurrency}-{round_}-"), concurrency)
                    direct += d
                    through += t
                d50, t50, d99, t99 = (statistics.median(direct), statistics.median(through), pct(direct, 0.99),
                                      pct(through, 0.99))
                print(f"{concurrency:>11} {ms(d50):>10} {ms(t50):>8} {ms(t50 - d50):>9} {ms(d99):>10} {ms(t99):>8} "
                      f"{ms(t99 - d99):>9}")


def score_bodies(n: int, docs: int, tag: str) -> list[dict]:
    return [{"model": "m", "queries": f"query {tag}{i}", "documents": [f"document {j} of {tag}{i}" for j in range(docs)]}
            for i in range(n)]


async def added_latency_stub(args) -> None:
    print("\n== 1b. added latency without the engine's noise: /score on a STUB engine (instant answers) directly "
          "vs through the gateway (cache off), 20 pairs ==")
    print(f"{'concurrency':>11} {'direct p50':>10} {'gw p50':>8} {'added p50':>9} {'direct p99':>10} "
          f"{'gw p99':>8} {'added p99':>9}  (ms)")
    async with stub() as engine, gateway([engine], "--cache", "none") as gw:
        for concurrency, n in ((1, 1000), (32, 4000)):
            await load(engine, score_bodies(100, 20, "warm"), 4, "/score")
            await load(gw, score_bodies(100, 20, "warm"), 4, "/score")
            direct, through = [], []
            for round_ in range(4):
                d, _ = await load(engine, score_bodies(n // 4, 20, f"d{concurrency}-{round_}-"), concurrency, "/score")
                t, _ = await load(gw, score_bodies(n // 4, 20, f"g{concurrency}-{round_}-"), concurrency, "/score")
                direct += d
                through += t
            d50, t50, d99, t99 = (statistics.median(direct), statistics.median(through), pct(direct, 0.99),
                                  pct(through, 0.99))
            print(f"{concurrency:>11} {ms(d50):>10} {ms(t50):>8} {ms(t50 - d50):>9} {ms(d99):>10} {ms(t99):>8} "
                  f"{ms(t99 - d99):>9}")


async def gateway_alone(args) -> None:
    print(f"\n== 2. gateway alone vs a STUB engine (instant answers), 20 pairs/request, gateway on one core, "
          f"concurrency 32, {args.rounds} rounds of {args.seconds / args.rounds:.1f} s each, medians ==")
    print("  (requests per gateway CPU-second is the one-core rate; wall requests/s is bounded by the load "
          "generator and the stub sharing the other core)")
    async with stub() as engine:
        for label, extra, repeat in (("cache off", ["--cache", "none"], False),
                                     ("cache on, all misses", [], False),
                                     ("cache on, all hits", [], True)):
            async with gateway([engine], *extra) as gw:
                per_round = 2000
                hot = bodies(50, 20, "m", "hot")
                if repeat:
                    await load(gw, hot, 8)
                else:  # warm-up with requests of their own
                    await load(gw, bodies(200, 20, "m", f"warm-{label}-"), 32)
                wall_rates, cpu_rates, lat, total = [], [], [], 0
                for round_ in range(args.rounds):
                    deadline = time.monotonic() + args.seconds / args.rounds
                    done, elapsed, cpu_before = 0, 0.0, cpu_seconds(GATEWAY_PIDS[gw])
                    while time.monotonic() < deadline:
                        batch = ([hot[i % 50] for i in range(per_round)] if repeat else
                                 bodies(per_round, 20, "m", f"{label}-{round_}-{done}-"))
                        latencies, wall = await load(gw, batch, 32)
                        done += len(latencies)
                        elapsed += wall
                        lat += latencies
                    cpu = cpu_seconds(GATEWAY_PIDS[gw]) - cpu_before
                    wall_rates.append(done / elapsed)
                    cpu_rates.append(done / cpu)
                    total += done
                print(f"  {label:<21} {statistics.median(cpu_rates):7.0f} requests per gateway CPU-second "
                      f"(rounds {', '.join(f'{r:.0f}' for r in cpu_rates)})   {statistics.median(wall_rates):6.0f} "
                      f"requests/s wall   p50 {ms(statistics.median(lat))} ms   p99 {ms(pct(lat, 0.99))} ms   "
                      f"({total} requests)")


def trace(n: int, repeat_rate: float, seed: int = 7) -> list[dict]:
    """Rerank requests of 10-40 candidates: with probability ``repeat_rate`` a request repeats an earlier
    query (a popular search; its candidates mostly the same, 80% of them), else a new query."""
    rng = random.Random(seed)
    corpus = [f"passage {i}: " + " ".join(rng.choice(["alpha", "beta", "gamma", "delta", "omega"]) for _ in range(30))
              for i in range(5000)]
    seen: list[tuple[str, list[str]]] = []
    requests = []
    for i in range(n):
        if seen and rng.random() < repeat_rate:
            query, docs = rng.choice(seen)
            docs = [d if rng.random() < 0.8 else rng.choice(corpus) for d in docs]
        else:
            query, docs = f"query {i}", rng.sample(corpus, rng.randint(10, 40))
            seen.append((query, docs))
        requests.append({"model": "m", "query": query, "documents": docs})
    return requests


async def work_saved(args) -> None:
    print("\n== 3. engine work saved on a replayed trace (STUB engine counts the pairs it scores) ==")
    for repeat_rate in (0.3, 0.6):
        requests = trace(args.trace_requests, repeat_rate)
        asked = sum(len(r["documents"]) for r in requests)
        async with stub() as engine:
            async with gateway([engine]) as gw:
                await load(gw, requests, 1)
            async with aiohttp.ClientSession() as s, s.get(engine + "/stats") as r:
                scored = (await r.json())["pairs"]
        print(f"  repeat rate {repeat_rate:.0%}: {len(requests)} requests, {asked} pairs asked, {scored} scored by "
              f"the engine -> {1 - scored / asked:.1%} engine work saved")


async def routing(args) -> None:
    print("\n== 4. routing p99: STUB engines serving one request at a time, 0.2 ms/pair; requests of 2-200 "
          "pairs (80% small), concurrency 16 ==")
    rng = random.Random(3)
    sizes = [rng.randint(2, 10) if rng.random() < 0.8 else rng.randint(100, 200) for _ in range(args.routing_requests)]
    print(f"  {'engines':>7} {'random p50':>10} {'random p99':>10} {'P2C p50':>8} {'P2C p99':>8}  (ms)")
    for n_engines in (2, 4):
        results = {}
        async with contextlib.AsyncExitStack() as stack:
            engines = [await stack.enter_async_context(stub(ms_per_pair=0.2)) for _ in range(n_engines)]
            for policy in ("random", "least-outstanding"):
                async with gateway(engines, "--cache", "none", "--routing", policy) as gw:
                    requests = [{"model": "m", "query": f"q{policy}{i}", "documents": [f"d{j}" for j in range(size)]}
                                for i, size in enumerate(sizes)]
                    results[policy], _ = await load(gw, requests, 16)
        r, p = results["random"], results["least-outstanding"]
        print(f"  {n_engines:>7} {ms(statistics.median(r)):>10} {ms(pct(r, 0.99)):>10} {ms(statistics.median(p)):>8} "
              f"{ms(pct(p, 0.99)):>8}")


def simulate_routing(policy: str, n_engines: int, sizes: list[int], ms_per_pair: float, load: float,
                     seed: int = 11) -> list[float]:
    """Latencies (ms) of ``sizes`` arriving as a Poisson stream at ``load`` x the engines' capacity,
    routed by the gateway's own EnginePool.pick (``policy``); each engine serves its queue FIFO."""
    import heapq

    from rerank_gateway.routing import EnginePool

    rng = random.Random(seed)
    pool = EnginePool(rng=random.Random(seed + 1), policy=policy)
    pool.set_ready([f"e{i}" for i in range(n_engines)])
    mean_service = ms_per_pair * statistics.mean(sizes)
    rate = load * n_engines / mean_service  # arrivals per ms
    free_at = {url: 0.0 for url in pool.engines}
    done: list[tuple[float, str, int]] = []  # (finish time, engine, pairs): releases in time order
    latencies, now = [], 0.0
    for size in sizes:
        now += rng.expovariate(rate)
        while done and done[0][0] <= now:
            _, url, pairs = heapq.heappop(done)
            pool.engines[url].outstanding_pairs -= pairs
        engine = pool.pick()
        engine.outstanding_pairs += size
        start = max(now, free_at[engine.url])
        free_at[engine.url] = start + size * ms_per_pair
        heapq.heappush(done, (free_at[engine.url], engine.url, size))
        latencies.append(free_at[engine.url] - now)
    return latencies


def routing_simulation(args) -> None:
    print("\n== 4b. routing p99, simulated (no CPU noise): the gateway's own pick() over FIFO engines at 0.2 ms/pair, "
          "Poisson arrivals, requests of 2-200 pairs (80% of 2-10) ==")
    rng = random.Random(3)
    sizes = [rng.randint(2, 10) if rng.random() < 0.8 else rng.randint(100, 200) for _ in range(50_000)]
    print(f"  {'engines':>7} {'load':>5} {'random p50':>10} {'random p99':>10} {'P2C p50':>8} {'P2C p99':>8} "
          f"{'p99 ratio':>9}  (ms)")
    for n_engines in (2, 3, 4):
        for load in (0.5, 0.8):
            r = simulate_routing("random", n_engines, sizes, 0.2, load)
            p = simulate_routing("least-outstanding", n_engines, sizes, 0.2, load)
            print(f"  {n_engines:>7} {load:>5.0%} {statistics.median(r):>10.2f} {pct(r, 0.99):>10.2f} "
                  f"{statistics.median(p):>8.2f} {pct(p, 0.99):>8.2f} {pct(r, 0.99) / pct(p, 0.99):>8.1f}x")


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--skip-engine", action="store_true", help="leave out part 1 (the real vLLM)")
    p.add_argument("--seconds", type=float, default=10.0, help="part 2: seconds per configuration")
    p.add_argument("--rounds", type=int, default=5, help="part 2: rounds per configuration (their median is shown)")
    p.add_argument("--requests-c1", type=int, default=200)
    p.add_argument("--requests-c32", type=int, default=640)
    p.add_argument("--trace-requests", type=int, default=2000)
    p.add_argument("--routing-requests", type=int, default=1500)
    p.add_argument("--parts", default="1,1b,2,3,4,4b", help="which parts to run (default: all)")
    args = p.parse_args()
    parts = set(args.parts.split(","))
    print(f"cores: {os.cpu_count()}, taskset: {'yes' if TASKSET else 'no'}, load average at start: "
          f"{os.getloadavg()[0]:.1f}")
    if "1" in parts and not args.skip_engine:
        await added_latency(args)
    if "1b" in parts:
        await added_latency_stub(args)
    if "2" in parts:
        await gateway_alone(args)
    if "3" in parts:
        await work_saved(args)
    if "4" in parts:
        await routing(args)
    if "4b" in parts:
        routing_simulation(args)
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    asyncio.run(main())
