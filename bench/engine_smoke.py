"""A smoke test of one running engine: run it on a GPU host or node before trusting a release.

    python bench/engine_smoke.py --url http://127.0.0.1:8000 --model Qwen/Qwen3-Reranker-0.6B \
        [--max-model-len 8192] [--pid PID] [--memory-limit-gib 12] [--grace 60]

Start the engine first the way the operator's pod does: the StatefulSet's command line and environment
(`kubectl get sts <name>-engine -o yaml`), as uid 1000 with a read-only root filesystem, no capabilities,
/tmp and the model cache as writable volumes, and the hub off once the weights are cached, e.g.
``docker run --gpus all --user 1000:1000 --read-only --cap-drop ALL --tmpfs /tmp --shm-size 4g ...``.
Then point this script at it. Each check prints PASS or FAIL with its figures; the exit status is 0 only
when every check passed:

1. ``/health`` answers 200;
2. ``/v1/rerank``, ``/rerank`` and ``/v2/rerank`` answer with one score in [0, 1] per document, best first,
   for instructions a prompt template could mangle (quotes, braces, Jinja markers, a newline, non-ASCII);
3. a document longer than ``--max-model-len`` tokens is refused with a 400, not a 5xx;
4. 256 documents in one request get 256 results;
5. a burst of 32 concurrent requests gets no 5xx;
6. ``/metrics`` has the four ``vllm:`` series the operator's autoscaler reads;
7. memory: with ``--pid`` (the engine's main process; for a container, ``docker inspect -f
   '{{.State.Pid}}'``) the peak resident memory of its process tree, against ``--memory-limit-gib`` (the
   pod's limit); the GPUs' used memory from ``nvidia-smi`` where there is one;
8. with ``--pid``: SIGTERM, and the engine exits within ``--grace`` seconds (the pod's grace period).

tests/images/test_engine_image.py runs it against the CPU engine image started that way, so it cannot rot.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import psutil
import requests

# The series the autoscaler reads (rerank_operator/autoscaling/metrics.py).
AUTOSCALER_SERIES = ("vllm:num_requests_waiting", "vllm:num_requests_running", "vllm:request_success_total",
                     "vllm:prompt_tokens_total")
ROUTES = ("/v1/rerank", "/rerank", "/v2/rerank")
TRICKY_INSTRUCTIONS = (
    'Judge "relevance" to the {query}, then answer',
    "{{ instruction }} {% if x %}raw Jinja{% endif %}",
    "Line one\nline two: Ärzte, 東京, émigré",
)
QUERY = "What is the capital of France?"
DOCUMENTS = ["Paris is the capital and largest city of France.", "The quick brown fox jumps over the lazy dog.",
             "Berlin is the capital of Germany."]


@dataclass
class Check:
    name: str
    passed: bool
    detail: str


def _post(url: str, body: dict, timeout: float = 300) -> requests.Response:
    return requests.post(url, json=body, timeout=timeout)


def _scores_problem(response: requests.Response, documents: int) -> str | None:
    """What is wrong with a rerank answer, or None."""
    if response.status_code != 200:
        return f"HTTP {response.status_code}: {response.text[:200]}"
    results = response.json().get("results") or []
    scores = [r["relevance_score"] for r in results]
    if sorted(r["index"] for r in results) != list(range(documents)):
        return f"{len(results)} results for {documents} documents"
    if not all(0.0 <= s <= 1.0 for s in scores):
        return f"scores outside [0, 1]: {scores}"
    if scores != sorted(scores, reverse=True):
        return f"not best first: {scores}"
    return None


def check_health(url: str) -> Check:
    response = requests.get(url + "/health", timeout=10)
    return Check("health", response.status_code == 200, f"/health: HTTP {response.status_code}")


def check_routes(url: str, model: str) -> Check:
    problems = []
    for route in ROUTES:
        for instruction in TRICKY_INSTRUCTIONS:
            body = {"model": model, "query": QUERY, "documents": DOCUMENTS, "instruction": instruction,
                    "return_documents": True}
            problem = _scores_problem(_post(url + route, body), len(DOCUMENTS))
            if problem:
                problems.append(f"{route} with {instruction[:20]!r}: {problem}")
    return Check("rerank routes", not problems,
                 "; ".join(problems) or f"{len(ROUTES)} routes x {len(TRICKY_INSTRUCTIONS)} instructions answered")


def check_too_long(url: str, model: str, max_model_len: int) -> Check:
    document = "word " * (max_model_len + 256)
    response = _post(url + "/v1/rerank", {"model": model, "query": QUERY, "documents": [document]})
    return Check("document over max-model-len", response.status_code == 400,
                 f"HTTP {response.status_code}: {response.text[:160]}")


def check_many_documents(url: str, model: str, count: int = 256) -> Check:
    documents = [f"Document {i}: " + DOCUMENTS[i % len(DOCUMENTS)] for i in range(count)]
    started = time.monotonic()
    problem = _scores_problem(_post(url + "/v1/rerank", {"model": model, "query": QUERY, "documents": documents}),
                              count)
    return Check(f"{count} documents", problem is None, problem or f"{time.monotonic() - started:.1f} s")


def check_burst(url: str, model: str, concurrency: int = 32) -> Check:
    body = {"model": model, "query": QUERY, "documents": DOCUMENTS}
    started = time.monotonic()
    with ThreadPoolExecutor(concurrency) as pool:
        codes = list(pool.map(lambda _: _post(url + "/v1/rerank", body).status_code, range(concurrency)))
    errors = [c for c in codes if c >= 500]
    return Check(f"burst of {concurrency}", not errors and codes.count(200) == concurrency,
                 f"status codes {sorted(set(codes))}, {time.monotonic() - started:.1f} s")


def check_metrics(url: str) -> Check:
    text = requests.get(url + "/metrics", timeout=10).text
    present = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line.startswith("vllm:")}
    missing = [s for s in AUTOSCALER_SERIES if s not in present]
    return Check("autoscaler series", not missing, f"missing {missing}" if missing else ", ".join(AUTOSCALER_SERIES))


def _tree_rss(pid: int) -> int:
    root = psutil.Process(pid)
    total = 0
    for process in [root, *root.children(recursive=True)]:
        try:
            total += process.memory_info().rss
        except psutil.Error:
            continue
    return total


def check_memory(pid: int | None, limit_gib: float | None, peak_rss: int) -> Check:
    parts, passed = [], True
    if pid is not None:
        parts.append(f"peak RSS of the engine's processes {peak_rss / 2**30:.2f} GiB")
        if limit_gib is not None:
            passed = peak_rss <= limit_gib * 2**30
            parts.append(f"limit {limit_gib:g} GiB")
    if shutil.which("nvidia-smi"):
        used = subprocess.run(["nvidia-smi", "--query-gpu=index,memory.used,memory.total", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=30).stdout.strip().replace("\n", "; ")
        parts.append(f"GPU memory used: {used}")
    else:
        parts.append("no nvidia-smi: no GPU memory to report")
    return Check("memory", passed, ", ".join(parts))


def check_sigterm(pid: int, grace: float) -> Check:
    process = psutil.Process(pid)
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except psutil.TimeoutExpired:
        return Check("SIGTERM", False, f"still running {grace:g} s after SIGTERM")
    return Check("SIGTERM", True, f"exited {time.monotonic() - started:.1f} s after SIGTERM (grace {grace:g} s)")


def run_checks(url: str, model: str, *, max_model_len: int = 8192, pid: int | None = None,
               memory_limit_gib: float | None = None, grace: float = 60.0) -> list[Check]:
    """Every check, in order (SIGTERM last: it stops the engine). The memory peak is sampled during the others."""
    url = url.rstrip("/")
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while pid is not None and not done.is_set():
            try:
                peak[0] = max(peak[0], _tree_rss(pid))
            except psutil.Error:
                return
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    checks = [check_health(url)]
    try:
        checks += [check_routes(url, model), check_too_long(url, model, max_model_len),
                   check_many_documents(url, model), check_burst(url, model), check_metrics(url)]
    finally:
        done.set()
        sampler.join()
    checks.append(check_memory(pid, memory_limit_gib, peak[0]))
    if pid is not None:
        checks.append(check_sigterm(pid, grace))
    return checks


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the engine's base URL, e.g. http://127.0.0.1:8000")
    parser.add_argument("--model", required=True, help="the served model name (spec.model.servedModelName or name)")
    parser.add_argument("--max-model-len", type=int, default=8192, help="spec.engine.maxModelLen (default 8192)")
    parser.add_argument("--pid", type=int, help="the engine's main process: memory, then SIGTERM")
    parser.add_argument("--memory-limit-gib", type=float, help="the pod's memory limit, in GiB")
    parser.add_argument("--grace", type=float, default=60.0, help="the pod's termination grace period (default 60 s)")
    args = parser.parse_args(argv)
    checks = run_checks(args.url, args.model, max_model_len=args.max_model_len, pid=args.pid,
                        memory_limit_gib=args.memory_limit_gib, grace=args.grace)
    for check in checks:
        print(f"{'PASS' if check.passed else 'FAIL'}  {check.name}: {check.detail}")
    print(json.dumps({"passed": sum(c.passed for c in checks), "failed": sum(not c.passed for c in checks)}))
    return 0 if all(c.passed for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
