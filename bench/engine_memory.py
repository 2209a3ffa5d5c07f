"""Host memory of the CPU engine per process at tensor parallel sizes 1 and 2, and the two TPs' scores.

    .venv/bin/python bench/engine_memory.py [--tp 1,2] [--requests 5]

Starts the operator's CPU engine command (tests/fixtures/engine.py: the tiny random-weight Qwen3
reranker, float32, a 1 GiB KV cache per worker) at each tensor parallel size in turn, sends
``--requests`` rerank requests of 64 documents while it samples the resident memory of every
process of the engine (API server, engine core, each worker) every 0.2 s, and prints each one's
peak, their sum, the start time, and the largest score difference between the sizes. The sums of
RSS count shared library pages once per process, so they overstate a cgroup's charge a little.
resources/sizing.py's per-process terms come from these figures.
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fixtures import engine as engine_fixture  # noqa: E402

QUERY = "What is the capital of France?"
DOCUMENTS = [f"Document {i}: " + ("Paris is the capital of France. " if i % 3 == 0 else
                                  "The fox jumps over the dog. ") * (1 + i % 5) for i in range(64)]


def _engine_processes(port: int) -> list[psutil.Process]:
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if "--port" in cmdline and cmdline[cmdline.index("--port") + 1] == str(port):
            return [process, *process.children(recursive=True)]
    raise RuntimeError(f"no engine process listens on port {port}")


def measure(tp: int, request_count: int) -> tuple[float, dict[int, float], dict[str, int]]:
    """(seconds to /health, score by document index, peak RSS by process) for one engine at ``tp``."""
    spec = copy.deepcopy(engine_fixture.ENGINE_SPEC)
    spec["engine"]["tensorParallelSize"] = tp
    peaks: dict[str, int] = {}
    done = threading.Event()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="engine-memory-") as workdir, \
            engine_fixture.running_engine(Path(workdir), spec) as engine:
        up = time.monotonic() - started
        processes = _engine_processes(int(engine.base_url.rsplit(":", 1)[1]))

        def sample() -> None:
            while not done.is_set():
                for process in processes:
                    try:
                        key = f"{process.name()} (pid {process.pid})"
                        peaks[key] = max(peaks.get(key, 0), process.memory_info().rss)
                    except psutil.Error:
                        continue
                time.sleep(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        scores: dict[int, float] = {}
        try:
            for _ in range(request_count):
                response = requests.post(engine.url("/v1/rerank"), timeout=300,
                                         json={"model": engine.model, "query": QUERY, "documents": DOCUMENTS})
                response.raise_for_status()
                scores = {r["index"]: r["relevance_score"] for r in response.json()["results"]}
        finally:
            done.set()
            sampler.join()
    return up, scores, peaks


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tp", default="1,2", help="tensor parallel sizes, comma-separated (default 1,2)")
    parser.add_argument("--requests", type=int, default=5)
    args = parser.parse_args(argv)
    results = {}
    for tp in (int(t) for t in args.tp.split(",")):
        up, scores, peaks = measure(tp, args.requests)
        results[tp] = scores
        print(f"TP {tp}: /health after {up:.0f} s")
        for name, rss in sorted(peaks.items()):
            print(f"  {name:36s} peak RSS {rss / 2**30:5.2f} GiB")
        print(f"  {'sum':36s}          {sum(peaks.values()) / 2**30:5.2f} GiB", flush=True)
    sizes = sorted(results)
    for tp in sizes[1:]:
        difference = max(abs(results[tp][i] - results[sizes[0]][i]) for i in results[sizes[0]])
        print(f"largest |score at TP {tp} - score at TP {sizes[0]}| over {len(DOCUMENTS)} documents: {difference:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
