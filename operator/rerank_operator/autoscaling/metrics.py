"""Read what the autoscaler needs from vLLM engine pods' Prometheus ``/metrics``.

``parse_engine_sample`` turns exposition text into one :class:`EngineSample`: the queue gauges
(``vllm:num_requests_waiting`` / ``_running``) and the work counters
(``vllm:request_success_total``: engine requests finished -- for rerank one query-document pair
each; ``vllm:prompt_tokens_total``: tokens prefilled, i.e. the work those pairs carried), each
summed over its label sets. ``scrape_engine_samples`` fetches many pods concurrently -- bounded by
a semaphore, with a timeout per pod -- so that hundreds of pods cost one round-trip time and a hung
pod costs one timeout.

Every failure is the failing pod's alone: a pod that times out, answers non-200, answers bytes
that are not UTF-8 or not Prometheus text, or reports a value that cannot be a queue length or a
counter (NaN, +-Inf, negative, beyond ``MAX_VALUE``) maps to an outcome with ``sample=None`` and a
short ``error`` reason, which the loop counts in ``rerank_autoscaler_scrape_errors_total``. The
other pods' samples are unaffected, and the policy treats the bad pod by the HPA's missing-metrics
rules.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from dataclasses import dataclass
from typing import Iterable

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

WAITING = "vllm:num_requests_waiting"
RUNNING = "vllm:num_requests_running"
REQUESTS_DONE = "vllm:request_success_total"
PROMPT_TOKENS = "vllm:prompt_tokens_total"
_FAMILIES = (WAITING, RUNNING, REQUESTS_DONE, PROMPT_TOKENS)
# No engine holds 10^15 requests or has prefilled 10^15 tokens; a larger value is a broken exporter,
# and would overflow the status fields it ends up in.
MAX_VALUE = 1e15
# Bytes read from one /metrics answer at most (vLLM's page is ~100 kB); more is not an engine.
MAX_BODY_BYTES = 8 * 1024 * 1024

# Outcome reasons (label values of the scrape-errors counter).
TIMEOUT = "timeout"
CONNECT = "connect"
FORMAT = "format"  # not UTF-8, not Prometheus text, or no vLLM queue gauges
BAD_VALUE = "bad_value"  # NaN, +-Inf, negative or beyond MAX_VALUE
TOO_LARGE = "too_large"


class MetricsFormatError(ValueError):
    """The text is not Prometheus exposition format, or has no vLLM queue gauges."""

    reason = FORMAT


class MetricsValueError(MetricsFormatError):
    """A vLLM gauge or counter has a value that cannot be real (NaN, +-Inf, negative, huge)."""

    reason = BAD_VALUE


@dataclass(frozen=True)
class EngineSample:
    """One engine pod's /metrics at one moment.

    ``requests_done`` / ``prompt_tokens`` are counters (``None`` when the engine does not export
    them); the policy turns consecutive samples into rates.
    """

    waiting: float
    running: float
    requests_done: float | None = None
    prompt_tokens: float | None = None

    @property
    def total(self) -> float:
        """Waiting + running engine requests (pairs in flight)."""
        return self.waiting + self.running


@dataclass(frozen=True)
class ScrapeTarget:
    pod: str
    url: str  # http://<podIP>:<port>/metrics


@dataclass(frozen=True)
class ScrapeOutcome:
    pod: str
    sample: EngineSample | None
    error: str | None  # reason when sample is None: timeout | connect | http_<status> | format | bad_value | ...
    seconds: float


def parse_engine_sample(text: str) -> EngineSample:
    """Sum each of the four families over its label sets; reject values no engine can report.

    Only these families count; e.g. ``vllm:num_requests_waiting_by_reason`` is a breakdown of the
    same requests and a separate family, so it is not added twice.
    """
    sums = dict.fromkeys(_FAMILIES, 0.0)
    seen: set[str] = set()
    try:
        for family in text_string_to_metric_families(_wanted_lines(text)):
            for sample in family.samples:
                if sample.name not in sums:  # e.g. a counter's _created sample
                    continue
                value = float(sample.value)
                if not math.isfinite(value) or value < 0 or value > MAX_VALUE:
                    raise MetricsValueError(f"{sample.name} = {sample.value!r} is not a possible value")
                seen.add(sample.name)
                sums[sample.name] += value
    except MetricsValueError:
        raise
    except ValueError as exc:  # the parser raises ValueError on malformed lines
        raise MetricsFormatError(f"not Prometheus text format: {exc}") from exc
    if WAITING not in seen and RUNNING not in seen:
        raise MetricsFormatError(f"neither {WAITING} nor {RUNNING} found")
    if any(v > MAX_VALUE for v in sums.values()):
        raise MetricsValueError("a summed vLLM metric exceeds any possible value")
    return EngineSample(
        waiting=sums[WAITING], running=sums[RUNNING],
        requests_done=sums[REQUESTS_DONE] if REQUESTS_DONE in seen else None,
        prompt_tokens=sums[PROMPT_TOKENS] if PROMPT_TOKENS in seen else None,
    )


def _wanted_lines(text: str) -> str:
    """Keeps only the four families (and their # HELP/# TYPE lines) before parsing.

    A vLLM /metrics page is tens of kB of histograms; parsing all of it costs ~30 ms of CPU per
    scrape on a busy node, which adds up at hundreds of pods in one event loop. Lines that are
    neither comments nor well-formed samples are kept, so malformed text is still reported.
    """
    kept = []
    for line in text.splitlines():
        sample = _SAMPLE_NAME.match(line)
        if sample:
            if sample.group(1) in _FAMILIES:
                kept.append(line)
        elif line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 3 and parts[2] in _FAMILIES:
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

        def outcome(sample: EngineSample | None, error: str | None) -> ScrapeOutcome:
            return ScrapeOutcome(target.pod, sample, error, time.perf_counter() - started)

        try:
            async with asyncio.timeout(timeout):
                async with session.get(target.url) as response:
                    if response.status != 200:
                        return outcome(None, f"http_{response.status}")
                    body = await response.content.read(MAX_BODY_BYTES + 1)
            if len(body) > MAX_BODY_BYTES:
                return outcome(None, TOO_LARGE)
            return outcome(parse_engine_sample(body.decode("utf-8")), None)
        except TimeoutError:
            return outcome(None, TIMEOUT)
        except (aiohttp.ClientError, OSError):
            return outcome(None, CONNECT)
        except UnicodeDecodeError:
            return outcome(None, FORMAT)
        except MetricsFormatError as exc:
            return outcome(None, exc.reason)


async def scrape_engine_samples(
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
