"""vLLM ``/metrics`` text with chosen queue gauges and work counters, for test-controlled endpoints.

Starts from the real exposition text captured from a running vLLM
(``tests/fixtures/data/vllm_metrics.txt``) and only rewrites the values of
``vllm:num_requests_waiting`` / ``vllm:num_requests_running`` and, when given,
``vllm:request_success_total`` / ``vllm:prompt_tokens_total``, so everything else an endpoint
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


def with_queue(waiting: float, running: float, text: str | None = None, requests_done: float | None = None,
               prompt_tokens: float | None = None) -> str:
    """The real text with the waiting/running totals (and the counters, when given) set: the first
    series of each family gets the value, the others 0."""
    text = real_vllm_metrics() if text is None else text
    lines = text.splitlines()
    values = [("vllm:num_requests_waiting", waiting), ("vllm:num_requests_running", running)]
    if requests_done is not None:
        values.append(("vllm:request_success_total", requests_done))
    if prompt_tokens is not None:
        values.append(("vllm:prompt_tokens_total", prompt_tokens))
    for family, value in values:
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
    """Test-controlled engine /metrics servers: one aiohttp server per pod IP, all serving the same
    gauges and counters (set ``waiting`` / ``running`` / ``requests_done`` / ``prompt_tokens``), or
    for one IP the raw bytes in ``raw[ip]``. Used by the autoscaling integration tests and
    bench/autoscaler_latency.py, where kwok pods get loopback IPs a real server can bind."""

    def __init__(self, port: int = 8000) -> None:
        self.port = port
        self.waiting = 0.0
        self.running = 0.0
        self.requests_done = 0.0
        self.prompt_tokens = 0.0
        self.raw: dict[str, bytes] = {}
        self.runners: dict = {}  # pod IP -> aiohttp.web.AppRunner

    def advance(self, seconds: float, tokens_per_second: float, tokens_per_request: float = 200.0) -> None:
        """Each pod did ``tokens_per_second`` of work for ``seconds``: move the counters on."""
        self.prompt_tokens += tokens_per_second * seconds
        self.requests_done += tokens_per_second * seconds / tokens_per_request

    def _handler(self, ip: str):
        async def metrics(request):
            from aiohttp import web

            if ip in self.raw:
                return web.Response(body=self.raw[ip], content_type="text/plain")
            return web.Response(text=with_queue(self.waiting, self.running, requests_done=self.requests_done,
                                                prompt_tokens=self.prompt_tokens), content_type="text/plain")

        return metrics

    async def serve(self, ip: str) -> None:
        from aiohttp import web

        if ip in self.runners:
            return
        app = web.Application()
        app.router.add_get("/metrics", self._handler(ip))
        runner = web.AppRunner(app, shutdown_timeout=0.1)
        await runner.setup()
        await web.TCPSite(runner, ip, self.port).start()
        self.runners[ip] = runner

    async def close(self) -> None:
        for runner in self.runners.values():
            await runner.cleanup()
