"""Sending a request's pairs to the engines: split across them when large, each piece sent again elsewhere when
an engine fails it.

Scoring is idempotent and pairs are independent, so both are safe: a piece an engine failed (refused, broke the
connection, timed out, answered 5xx or nonsense) is scored again by another Ready engine, up to `attempts` tries
per piece and within the request's `deadline`; the client sees the whole answer or one error that says which
engine failed how on every try. An engine's 4xx is the client's fault: it is raised at once (the other pieces are
cancelled) and passed to the client unchanged.

A request with at least twice `fan_out_pairs` pairs is split into pieces of at least `fan_out_pairs` pairs across
the Ready engines, sized so the engines end at one level of outstanding pairs (routing.split_evenly), and the
pieces are scored in parallel: a lone large request then takes about as long as its largest piece instead of as
long as one engine needs for all of it. Below the threshold the per-request cost of a piece outweighs what
parallel scoring saves (bench/fan_out.py).

An engine that timed out, broke a connection or answered 5xx is ejected (out of rotation until its /health answers
again): a vLLM whose engine process died answers 500 at once until its probes fail, and under least-outstanding
routing an engine that fails fast draws ever more requests. One that refused a connection is dropped until discovery
lists it again (it is leaving).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Awaitable, Callable

from . import metrics
from .engine import REFUSED, RESET, SERVER_ERROR, TIMEOUT, EngineError, gateway_error
from .routing import Engine, EnginePool, NoEngine

log = logging.getLogger(__name__)

# call(engine_url, first, end, timeout) scores the pairs [first, end) on that engine: (scores, prompt tokens).
PieceCall = Callable[[str, int, int, float], Awaitable[tuple[list[float], int]]]


@dataclass(frozen=True)
class DispatchConfig:
    attempts: int = 3  # tries per piece, the first included
    try_timeout: float = 300.0  # seconds one engine may take for one piece
    deadline: float = 900.0  # seconds for the whole request, every try included (each may take try_timeout)
    fan_out_pairs: int = 0  # the smallest piece of a split request; 0: never split


class Dispatcher:
    def __init__(self, pool: EnginePool, config: DispatchConfig):
        self.pool, self.config = pool, config

    async def score(self, pairs: int, call: PieceCall) -> tuple[list[float], int]:
        """The scores of ``pairs`` pairs in order, and the engines' prompt tokens."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.deadline
        size = self.config.fan_out_pairs
        if not size or pairs < 2 * size or len(self.pool.engines) < 2:
            return await self._piece(0, pairs, None, call, deadline)
        planned = await self.pool.acquire_split(pairs, size)
        if len(planned) > 1:
            metrics.SPLIT_REQUESTS.inc()
            metrics.SPLIT_PIECES.inc(len(planned))
        pieces, first = [], 0
        for engine, count in planned:
            pieces.append(asyncio.ensure_future(self._piece(first, first + count, engine, call, deadline)))
            first += count
        try:
            answers = await asyncio.gather(*pieces)
        except BaseException:
            # A 4xx, every try of a piece failed, or the client went away: the other pieces are not needed (their
            # connections are closed, which makes vLLM abort them).
            for piece in pieces:
                piece.cancel()
            await asyncio.gather(*pieces, return_exceptions=True)
            raise
        return [s for scores, _ in answers for s in scores], sum(tokens for _, tokens in answers)

    async def _piece(self, first: int, end: int, engine: Engine | None, call: PieceCall, deadline: float
                     ) -> tuple[list[float], int]:
        """Pairs [first, end) on ``engine`` (already counted; None: one is acquired), then on others as they fail."""
        loop = asyncio.get_running_loop()
        count = end - first
        failures: list[tuple[str, EngineError]] = []
        for attempt in range(1, self.config.attempts + 1):
            if engine is None:
                try:
                    async with asyncio.timeout(max(0.0, deadline - loop.time())):
                        engine = await self.pool.acquire(count, avoid=frozenset(url for url, _ in failures))
                except TimeoutError:
                    break
                except NoEngine as exc:
                    if not failures:
                        raise  # no engine Ready at all: the 503 with Retry-After
                    raise self._gave_up(failures, f"no engine was left to try ({exc.message})") from None
            try:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                return await call(engine.url, first, end, min(self.config.try_timeout, remaining))
            except EngineError as exc:
                if not exc.retryable:
                    raise
                failures.append((engine.url, exc))
                self._sideline(engine.url, exc)
                if attempt < self.config.attempts and deadline > loop.time():
                    log.warning("engine %s %s: sending %d pairs to another engine", engine.url, exc.detail, count)
                    metrics.child(metrics.ENGINE_RETRIES, exc.reason).inc()
            finally:
                self.pool.release(engine, count)
                engine = None
        raise self._gave_up(failures, f"the request's deadline of {self.config.deadline:g} s passed"
                            if deadline <= loop.time() else f"all {len(failures)} tries failed")

    def _sideline(self, url: str, exc: EngineError) -> None:
        if exc.reason == REFUSED:
            self.pool.drop(url)  # leaving: discovery lists it again if it is not
        elif exc.reason in (TIMEOUT, RESET, SERVER_ERROR):
            self.pool.eject(url)  # hung, dying or broken: back when its /health answers (at once if healthy)

    def _gave_up(self, failures: list[tuple[str, EngineError]], why: str) -> EngineError:
        last = failures[-1][1] if failures else None
        reason = last.reason if last else TIMEOUT
        metrics.child(metrics.ENGINE_FAILURES, reason).inc()
        tries = "; ".join(f"{url} {exc.detail}" for url, exc in failures) or "no engine was tried"
        status = 504 if reason == TIMEOUT else 502
        return gateway_error(status, f"No engine could score the request: {why} ({tries}).", reason, why)
