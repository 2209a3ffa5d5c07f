"""Which engine gets a request: power of two choices by outstanding pairs, and holding while none is Ready.

kube-proxy picks a pod at random per connection; a 200-document request and a 2-document one then
weigh the same. Here each engine's load is the number of pairs sent to it and not yet answered;
a request goes to the less loaded of two engines drawn at random (with two engines, simply the
less loaded one), which keeps the p99 close to least-loaded without every gateway replica herding
onto the same engine.

With no Ready engine (scaled to zero, or all still loading the model), a request waits up to
`hold_seconds` in a queue of at most `max_held` requests; past either it is a 503 with
`Retry-After`. The held pairs are exported as a metric: demand the engines themselves cannot report.
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
        self._ready = asyncio.Event()
        self.held_requests = 0
        self.held_pairs = 0

    def set_ready(self, urls: Iterable[str]) -> None:
        """The Ready engines now (from discovery). A removed engine's in-flight requests finish."""
        urls = list(dict.fromkeys(urls))
        self.engines = {u: self.engines.get(u) or Engine(u) for u in urls}
        metrics.READY_ENGINES.set(len(self.engines))
        if self.engines:
            self._ready.set()
        else:
            self._ready.clear()

    def drop(self, url: str) -> None:
        """Stop routing to `url` (it refused a connection: shutting down) until discovery lists it again."""
        self.engines.pop(url, None)
        metrics.READY_ENGINES.set(len(self.engines))
        if not self.engines:
            self._ready.clear()

    def pick(self) -> Engine:
        engines = list(self.engines.values())
        if self.policy == "random":
            return self.rng.choice(engines)
        drawn = engines if len(engines) <= 2 else self.rng.sample(engines, 2)
        # Ties go either way at random, so idle engines share the load instead of the first taking it all.
        return min(drawn, key=lambda e: (e.outstanding_pairs, self.rng.random()))

    async def acquire(self, pairs: int) -> Engine:
        """An engine for a request of ``pairs`` pairs, its load counted until `release`."""
        while not self.engines:  # an engine may leave again between the wake-up and here
            await self._hold(pairs)
        engine = self.pick()
        engine.outstanding_pairs += pairs
        engine.outstanding_requests += 1
        metrics.child(metrics.OUTSTANDING_PAIRS, engine.url).set(engine.outstanding_pairs)
        return engine

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
