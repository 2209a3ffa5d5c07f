"""vLLM ``/metrics`` text with chosen queue gauges, for test-controlled metric endpoints.

Starts from the real exposition text captured from a running vLLM
(``tests/fixtures/data/vllm_metrics.txt``) and only rewrites the values of
``vllm:num_requests_waiting`` / ``vllm:num_requests_running``, so everything else an endpoint
serves is what vLLM really serves.
"""

from __future__ import annotations

from pathlib import Path

VLLM_METRICS_FILE = Path(__file__).resolve().parents[2] / "fixtures" / "data" / "vllm_metrics.txt"


def real_vllm_metrics() -> str:
    return VLLM_METRICS_FILE.read_text()


def _sample_lines(text: str, family: str) -> list[int]:
    lines = text.splitlines()
    return [i for i, line in enumerate(lines) if line.startswith(family + "{") or line.startswith(family + " ")]


def with_queue(waiting: float, running: float, text: str | None = None) -> str:
    """The real text with the waiting/running totals set (first series gets the value, others 0)."""
    text = real_vllm_metrics() if text is None else text
    lines = text.splitlines()
    for family, value in (("vllm:num_requests_waiting", waiting), ("vllm:num_requests_running", running)):
        indices = _sample_lines(text, family)
        if not indices:
            raise AssertionError(f"{family} is not in the captured vLLM metrics")
        for n, i in enumerate(indices):
            series, _, _ = lines[i].rpartition(" ")
            lines[i] = f"{series} {float(value) if n == 0 else 0.0}"
    return "\n".join(lines) + "\n"


def independent_sum(text: str, family: str) -> float:
    """Sum of a family's sample values by plain line splitting: an oracle for the parser tests."""
    return sum(float(text.splitlines()[i].rpartition(" ")[2]) for i in _sample_lines(text, family))


class MetricEndpoints:
    """Test-controlled engine /metrics servers: one aiohttp server per pod IP, all serving the same queue
    depth (set ``waiting`` / ``running``). Used by the autoscaling integration tests and
    bench/autoscaler_latency.py, where kwok pods get loopback IPs a real server can bind."""

    def __init__(self, port: int = 8000) -> None:
        self.port = port
        self.waiting = 0.0
        self.running = 0.0
        self.runners: dict = {}  # pod IP -> aiohttp.web.AppRunner

    async def _metrics(self, request):
        from aiohttp import web

        return web.Response(text=with_queue(self.waiting, self.running), content_type="text/plain")

    async def serve(self, ip: str) -> None:
        from aiohttp import web

        if ip in self.runners:
            return
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        runner = web.AppRunner(app, shutdown_timeout=0.1)
        await runner.setup()
        await web.TCPSite(runner, ip, self.port).start()
        self.runners[ip] = runner

    async def close(self) -> None:
        for runner in self.runners.values():
            await runner.cleanup()
