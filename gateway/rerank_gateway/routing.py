"""Which engine gets a request: power of two choices by outstanding pairs, and holding while none is Ready.

kube-proxy picks a pod at random per connection; a 200-document request and a 2-document one then
weigh the same. Here each engine's load is the number of pairs sent to it and not yet answered;
a request goes to the less loaded of two engines drawn at random (with two engines, simply the
less loaded one), which keeps the p99 close to least-loaded without every gateway replica herding
onto the same engine.

With no Ready engine (scaled to zero, or all still loading the model), a request waits up to
`hold_seconds` in a queue of at most `max_held` requests; past either it is a 503 with
`Retry-After`. The held pairs are exported as a metric: demand the engines themselves cannot report.

An engine that failed a request (timed out, broke the connection, answered 5xx) is ejected: out of
rotation, whatever discovery says, until its `/health` answers again (discovery.watch_ejected). A hung
engine keeps its port and may stay Ready for a while; without this every gateway would keep sending it
requests that can only time out.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import Iterable

from . import metrics


class NoEngine(Exception):
    """No Ready engine in time (or the hold queue is full): a 503 with Retry-After."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


@dataclass
class Engine:
    url: str
    outstanding_pairs: int = 0
    outstanding_requests: int = 0


class EnginePool:
    def __init__(self, *, hold_seconds: float = 30.0, max_held: int = 256, retry_after: int = 10,
                 rng: random.Random | None = None, policy: str = "least-outstanding"):
        self.hold_seconds = hold_seconds
        self.max_held = max_held
        self.retry_after = retry_after
        self.rng = rng or random.Random()
        self.policy = policy  # least-outstanding (power of two choices) | random (kube-proxy's, for comparison)
        self.engines: dict[str, Engine] = {}
        self.discovered: list[str] = []  # what discovery lists, ejected engines included
        self.ejected: set[str] = set()
        self._ready = asyncio.Event()
        self.held_requests = 0
        self.held_pairs = 0

    def set_ready(self, urls: Iterable[str]) -> None:
        """The Ready engines now (from discovery). A removed engine's in-flight requests finish."""
        self.discovered = list(dict.fromkeys(urls))
        self.ejected &= set(self.discovered)  # an engine gone from discovery is forgotten
        self._route_to([u for u in self.discovered if u not in self.ejected])

    def drop(self, url: str) -> None:
        """Stop routing to `url` (it refused a connection: shutting down) until discovery lists it again."""
        self._route_to([u for u in self.engines if u != url])

    def eject(self, url: str) -> None:
        """Stop routing to `url` until `readmit` (its /health answered again), whatever discovery says."""
        if url in self.discovered:
            self.ejected.add(url)
        self._route_to([u for u in self.engines if u != url])

    def readmit(self, url: str) -> None:
        self.ejected.discard(url)
        if url in self.discovered and url not in self.engines:
            self._route_to([*self.engines, url])

    def _route_to(self, urls: list[str]) -> None:
        self.engines = {u: self.engines.get(u) or Engine(u) for u in urls}
        metrics.READY_ENGINES.set(len(self.engines))
        metrics.EJECTED_ENGINES.set(len(self.ejected))
        if self.engines:
            self._ready.set()
        else:
            self._ready.clear()

    def pick(self, avoid: frozenset[str] = frozenset()) -> Engine:
        """An engine by the policy; one in ``avoid`` (it failed this request already) only if there is no other."""
        engines = [e for e in self.engines.values() if e.url not in avoid] or list(self.engines.values())
        if self.policy == "random":
            return self.rng.choice(engines)
        drawn = engines if len(engines) <= 2 else self.rng.sample(engines, 2)
        # Ties go either way at random, so idle engines share the load instead of the first taking it all.
        return min(drawn, key=lambda e: (e.outstanding_pairs, self.rng.random()))

    async def acquire(self, pairs: int, avoid: frozenset[str] = frozenset()) -> Engine:
        """An engine for a request of ``pairs`` pairs, its load counted until `release`."""
        while not self.engines:  # an engine may leave again between the wake-up and here
            await self._hold(pairs)
        engine = self.pick(avoid)
        self._count(engine, pairs)
        return engine

    async def acquire_split(self, pairs: int, min_piece: int) -> list[tuple[Engine, int]]:
        """Engines and piece sizes for ``pairs`` pairs split across the Ready engines, each piece at least
        ``min_piece`` pairs: the least loaded engines are filled up to one level of outstanding pairs (water
        filling), so a busy engine gets a smaller piece or none. Each piece's load is counted until `release`."""
        while not self.engines:
            await self._hold(pairs)
        engines = sorted(self.engines.values(), key=lambda e: (e.outstanding_pairs, self.rng.random()))
        shares = split_evenly(pairs, [e.outstanding_pairs for e in engines], min_piece)
        pieces = [(e, n) for e, n in zip(engines, shares) if n]
        for engine, n in pieces:
            self._count(engine, n)
        return pieces

    def _count(self, engine: Engine, pairs: int) -> None:
        engine.outstanding_pairs += pairs
        engine.outstanding_requests += 1
        metrics.child(metrics.OUTSTANDING_PAIRS, engine.url).set(engine.outstanding_pairs)

    def release(self, engine: Engine, pairs: int) -> None:
        engine.outstanding_pairs -= pairs
        engine.outstanding_requests -= 1
        metrics.child(metrics.OUTSTANDING_PAIRS, engine.url).set(engine.outstanding_pairs)

    async def _hold(self, pairs: int) -> None:
        if self.held_requests >= self.max_held:
            metrics.REJECTED.labels(reason="queue_full").inc()
            raise NoEngine(f"No engine is ready and {self.held_requests} requests are already waiting for one; "
                           "retry later.", self.retry_after)
        self.held_requests += 1
        self.held_pairs += pairs
        self._export_held()
        try:
            await asyncio.wait_for(self._ready.wait(), self.hold_seconds)
        except asyncio.TimeoutError:
            metrics.REJECTED.labels(reason="timeout").inc()
            raise NoEngine(f"No engine became ready within {self.hold_seconds:g} s (the model may still be "
                           "loading); retry later.", self.retry_after) from None
        finally:
            self.held_requests -= 1
            self.held_pairs -= pairs
            self._export_held()

    def _export_held(self) -> None:
        metrics.HELD_REQUESTS.set(self.held_requests)
        metrics.HELD_PAIRS.set(self.held_pairs)


def split_evenly(pairs: int, loads: list[int], min_piece: int) -> list[int]:
    """Pairs per engine (``loads``: their outstanding pairs, ascending) so that the engines used end at one
    level of outstanding pairs, no piece smaller than ``min_piece`` (fewer engines rather than crumbs)."""
    min_piece = max(1, min_piece)
    for used in range(min(len(loads), pairs // min_piece), 1, -1):
        level = (pairs + sum(loads[:used])) / used
        shares = [int(level - load) for load in loads[:used]]
        if min(shares) < min_piece:
            continue
        for i in range(pairs - sum(shares)):  # what flooring left over, one pair each to the least loaded
            shares[i % used] += 1
        return shares + [0] * (len(loads) - used)
    return [pairs] + [0] * (len(loads) - 1)
