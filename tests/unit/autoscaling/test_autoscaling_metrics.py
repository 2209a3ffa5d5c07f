"""Parsing vLLM /metrics text, and scraping many pods concurrently over real HTTP servers."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
from aiohttp import web

from rerank_operator.autoscaling.metrics import (
    RUNNING,
    WAITING,
    PROMPT_TOKENS,
    REQUESTS_DONE,
    MetricsFormatError,
    MetricsValueError,
    ScrapeTarget,
    parse_engine_sample,
    scrape_engine_samples,
)

from tests.unit.autoscaling.engine_metrics_text import independent_sum, real_vllm_metrics, with_queue


def test_parses_real_vllm_metrics():
    text = real_vllm_metrics()
    depth = parse_engine_sample(text)
    assert depth.waiting == independent_sum(text, WAITING)
    assert depth.running == independent_sum(text, RUNNING)


def test_sums_across_label_sets_and_ignores_the_by_reason_breakdown():
    text = with_queue(7, 3)
    # A second engine in the same server, and the per-reason breakdown of the same waiting requests.
    text += (
        'vllm:num_requests_waiting{engine="1",model_name="qwen3-reranker"} 5.0\n'
        'vllm:num_requests_running{engine="1",model_name="qwen3-reranker"} 2.0\n'
        'vllm:num_requests_waiting_by_reason{engine="1",model_name="qwen3-reranker",reason="capacity"} 100.0\n'
    )
    depth = parse_engine_sample(text)
    assert (depth.waiting, depth.running, depth.total) == (12.0, 5.0, 17.0)


def test_reads_the_work_counters_summed_over_finish_reasons():
    text = real_vllm_metrics()
    sample = parse_engine_sample(text)
    assert sample.requests_done == independent_sum(text, REQUESTS_DONE) > 0
    assert sample.prompt_tokens == independent_sum(text, PROMPT_TOKENS) > 0


def test_counters_are_optional():
    sample = parse_engine_sample("vllm:num_requests_waiting 3\nvllm:num_requests_running 4\n")
    assert (sample.total, sample.requests_done, sample.prompt_tokens) == (7.0, None, None)


def _with_raw_value(family: str, raw: str) -> str:
    """The real text (queue 7 + 3) with the first sample of ``family`` set to ``raw``."""
    lines = with_queue(7, 3).splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith(family + "{"))
    lines[i] = lines[i].rpartition(" ")[0] + " " + raw
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("bad", ["NaN", "+Inf", "-Inf", "-3", "1e300"])
@pytest.mark.parametrize("family", [WAITING, RUNNING, REQUESTS_DONE, PROMPT_TOKENS])
def test_impossible_values_are_rejected(family, bad):
    with pytest.raises(MetricsValueError, match=family):
        parse_engine_sample(_with_raw_value(family, bad))


def test_not_prometheus_text_is_a_format_error():
    with pytest.raises(MetricsFormatError):
        parse_engine_sample("<html>502 Bad Gateway</html>\nthis is { not metrics\n")


def test_text_without_vllm_gauges_is_a_format_error():
    with pytest.raises(MetricsFormatError, match="num_requests_waiting"):
        parse_engine_sample("# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 1.5\n")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Endpoints:
    """Real aiohttp servers on 127.0.0.1 playing engine pods in different states."""

    def __init__(self, slow_seconds: float = 5.0, delay: float = 0.0):
        self.slow_seconds = slow_seconds
        self.delay = delay
        self.in_flight = 0
        self.max_in_flight = 0
        self.runner: web.AppRunner | None = None
        self.port = _free_port()

    async def _healthy(self, request: web.Request) -> web.Response:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
            depth = int(request.match_info["depth"])
            return web.Response(text=with_queue(depth, 1), content_type="text/plain")
        finally:
            self.in_flight -= 1

    async def _error(self, request: web.Request) -> web.Response:
        return web.Response(status=503, text="loading")

    async def _hang(self, request: web.Request) -> web.Response:
        await asyncio.sleep(self.slow_seconds)
        return web.Response(text=with_queue(1, 1))

    async def _garbage(self, request: web.Request) -> web.Response:
        return web.Response(text="not { metrics")

    async def _bytes(self, request: web.Request) -> web.Response:
        return web.Response(body=b"\xff\xfe\x00vllm:num_requests_waiting \xc3\x28 1\n", content_type="text/plain")

    async def _value(self, request: web.Request) -> web.Response:
        return web.Response(text=_with_raw_value(WAITING, request.match_info["value"]), content_type="text/plain")

    async def __aenter__(self) -> "Endpoints":
        app = web.Application()
        app.router.add_get("/ok/{depth}/metrics", self._healthy)
        app.router.add_get("/error/metrics", self._error)
        app.router.add_get("/hang/metrics", self._hang)
        app.router.add_get("/garbage/metrics", self._garbage)
        app.router.add_get("/bytes/metrics", self._bytes)
        app.router.add_get("/value/{value}/metrics", self._value)
        self.runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.runner.cleanup()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}/metrics"


def test_scrape_reports_each_pod_and_a_hung_pod_costs_one_timeout():
    async def scenario():
        async with Endpoints(slow_seconds=10) as ep:
            targets = [
                ScrapeTarget("a", ep.url("ok/5")),
                ScrapeTarget("b", ep.url("ok/9")),
                ScrapeTarget("refused", f"http://127.0.0.1:{_free_port()}/metrics"),
                ScrapeTarget("error", ep.url("error")),
                ScrapeTarget("hang-1", ep.url("hang")),
                ScrapeTarget("hang-2", ep.url("hang")),
                ScrapeTarget("garbage", ep.url("garbage")),
            ]
            started = time.perf_counter()
            outcomes = await scrape_engine_samples(targets, timeout=0.5, concurrency=16)
            return outcomes, time.perf_counter() - started

    outcomes, elapsed = asyncio.run(scenario())
    assert _totals(outcomes) == {"a": 6.0, "b": 10.0, "refused": None, "error": None,
                                 "hang-1": None, "hang-2": None, "garbage": None}
    assert {p: o.error for p, o in outcomes.items() if o.error} == {
        "refused": "connect", "error": "http_503", "hang-1": "timeout", "hang-2": "timeout", "garbage": "format",
    }
    # Two hung pods in parallel cost one timeout, not two (and nowhere near their 10 s).
    assert elapsed < 2.0


def _totals(outcomes):
    return {pod: (o.sample.total if o.sample is not None else None) for pod, o in outcomes.items()}


def test_one_pod_with_bad_bytes_or_values_costs_only_its_own_sample():
    bad_values = ["NaN", "+Inf", "-Inf", "-5", "1e300"]

    async def scenario():
        async with Endpoints() as ep:
            targets = [ScrapeTarget("good", ep.url("ok/5")), ScrapeTarget("bytes", ep.url("bytes"))]
            targets += [ScrapeTarget(f"value-{v}", ep.url(f"value/{v}")) for v in bad_values]
            return await scrape_engine_samples(targets, timeout=2, concurrency=16)

    outcomes = asyncio.run(scenario())
    assert _totals(outcomes)["good"] == 6.0
    assert {p: o.error for p, o in outcomes.items() if o.error} == {
        "bytes": "format", **{f"value-{v}": "bad_value" for v in bad_values},
    }


def test_scrape_of_many_pods_is_concurrent_and_bounded():
    async def scenario():
        async with Endpoints(delay=0.1) as ep:
            targets = [ScrapeTarget(f"engine-{i}", ep.url(f"ok/{i % 7}")) for i in range(300)]
            outcomes = await scrape_engine_samples(targets, timeout=10, concurrency=25)
            return outcomes, ep.max_in_flight

    outcomes, max_in_flight = asyncio.run(scenario())
    assert len(outcomes) == 300 and all(o.sample is not None for o in outcomes.values())
    assert sum(o.sample.total for o in outcomes.values()) == sum(i % 7 + 1 for i in range(300))
    # Concurrent (more than one request in flight at the endpoints) yet bounded by the semaphore.
    assert 1 < max_in_flight <= 25
