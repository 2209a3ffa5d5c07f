"""Read the queue depth of vLLM engine pods from their Prometheus ``/metrics``.

``parse_queue_depth`` turns exposition text into waiting + running request counts (summed over
label sets: one engine may report several ``engine``/``model_name`` series).
``scrape_queue_depths`` fetches many pods concurrently -- bounded by a semaphore, with a timeout
per pod -- so that hundreds of pods cost one round-trip time, not hundreds, and a hung pod
costs one timeout. A pod whose metrics cannot be read maps to ``None``; the policy treats it by
the HPA's missing-metrics rules.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from typing import Iterable, Mapping

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

WAITING = "vllm:num_requests_waiting"
RUNNING = "vllm:num_requests_running"


class MetricsFormatError(ValueError):
    """The text is not Prometheus exposition format, or has no vLLM queue gauges."""


@dataclass(frozen=True)
class QueueDepth:
    waiting: float
    running: float

    @property
    def total(self) -> float:
        return self.waiting + self.running


@dataclass(frozen=True)
class ScrapeTarget:
    pod: str
    url: str  # http://<podIP>:<port>/metrics


@dataclass(frozen=True)
class ScrapeOutcome:
    pod: str
    depth: QueueDepth | None
    error: str | None  # short reason when depth is None: timeout | http_<status> | connect | format
    seconds: float


def parse_queue_depth(text: str) -> QueueDepth:
    """Sum ``vllm:num_requests_waiting`` and ``vllm:num_requests_running`` over all label sets.

    Only these two families count; e.g. ``vllm:num_requests_waiting_by_reason`` is a breakdown of
    the same requests and is a separate family, so it is not added twice.
    """
    sums = {WAITING: 0.0, RUNNING: 0.0}
    seen: set[str] = set()
    try:
        for family in text_string_to_metric_families(_queue_gauge_lines(text)):
            if family.name in sums:
                seen.add(family.name)
                for sample in family.samples:
                    # A gauge family has only samples of its own name; be strict anyway.
                    if sample.name == family.name:
                        sums[family.name] += float(sample.value)
    except ValueError as exc:  # the parser raises ValueError on malformed lines
        raise MetricsFormatError(f"not Prometheus text format: {exc}") from exc
    if not seen:
        raise MetricsFormatError(f"neither {WAITING} nor {RUNNING} found")
    return QueueDepth(waiting=sums[WAITING], running=sums[RUNNING])


def _queue_gauge_lines(text: str) -> str:
    """Keeps only the two queue gauges (and their # HELP/# TYPE lines) before parsing.

    A vLLM /metrics page is tens of kB of histograms; parsing all of it for two gauges costs ~30 ms of CPU
    per scrape on a busy node, which adds up at hundreds of pods in one event loop. Lines that are neither
    comments nor well-formed samples are kept, so malformed text is still reported by the parser.
    """
    kept = []
    for line in text.splitlines():
        sample = _SAMPLE_NAME.match(line)
        if sample:
            if sample.group(1) in (WAITING, RUNNING):
                kept.append(line)
        elif line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 3 and parts[2] in (WAITING, RUNNING):
                kept.append(line)
        elif line.strip():
            kept.append(line)
    return "\n".join(kept) + "\n"


_SAMPLE_NAME = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]")


async def _scrape_one(
    session: aiohttp.ClientSession, target: ScrapeTarget, semaphore: asyncio.Semaphore, timeout: float
) -> ScrapeOutcome:
    async with semaphore:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                async with session.get(target.url) as response:
                    if response.status != 200:
                        return ScrapeOutcome(target.pod, None, f"http_{response.status}", time.perf_counter() - started)
                    text = await response.text()
            return ScrapeOutcome(target.pod, parse_queue_depth(text), None, time.perf_counter() - started)
        except TimeoutError:
            return ScrapeOutcome(target.pod, None, "timeout", time.perf_counter() - started)
        except aiohttp.ClientError:
            return ScrapeOutcome(target.pod, None, "connect", time.perf_counter() - started)
        except MetricsFormatError:
            return ScrapeOutcome(target.pod, None, "format", time.perf_counter() - started)


async def scrape_queue_depths(
    targets: Iterable[ScrapeTarget],
    *,
    timeout: float = 2.0,
    concurrency: int = 64,
    session: aiohttp.ClientSession | None = None,
) -> dict[str, ScrapeOutcome]:
    """Scrape every target at once (at most ``concurrency`` in flight); one outcome per pod name."""
    targets = list(targets)
    if not targets:
        return {}
    semaphore = asyncio.Semaphore(concurrency)
    own_session = session is None
    if own_session:
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=concurrency),
            # Engine pods are addressed by IP inside the cluster; a proxy from the environment
            # would only get in the way.
            trust_env=False,
        )
    try:
        outcomes = await asyncio.gather(*(_scrape_one(session, t, semaphore, timeout) for t in targets))
    finally:
        if own_session:
            await session.close()
    return {o.pod: o for o in outcomes}


def queue_depths(outcomes: Mapping[str, ScrapeOutcome]) -> dict[str, float | None]:
    """Pod name -> waiting + running, or ``None`` where the scrape failed."""
    return {pod: (o.depth.total if o.depth is not None else None) for pod, o in outcomes.items()}
