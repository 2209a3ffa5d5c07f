"""Routing by outstanding pairs, and holding requests while no engine is Ready."""

from __future__ import annotations

import asyncio
import random

import pytest

from rerank_gateway import metrics
from rerank_gateway.routing import EnginePool, NoEngine


def test_two_engines_the_less_loaded_one_gets_the_request():
    async def go():
        pool = EnginePool()
        pool.set_ready(["http://a", "http://b"])
        big = await pool.acquire(100)
        small = await pool.acquire(2)
        assert big.url != small.url
        assert (await pool.acquire(2)).url == small.url  # 4 outstanding there vs 100
        pool.release(big, 100)
        assert (await pool.acquire(1)).url == big.url
    asyncio.run(go())


def test_power_of_two_choices_never_picks_the_busiest_of_three():
    async def go():
        pool = EnginePool(rng=random.Random(0))
        pool.set_ready(["http://a", "http://b", "http://c"])
        pool.engines["http://a"].outstanding_pairs = 1000
        picks = [pool.pick().url for _ in range(300)]
        # a is picked only if drawn against itself, which sample() never does.
        assert "http://a" not in picks and {"http://b", "http://c"} <= set(picks)
    asyncio.run(go())


def test_a_held_request_is_served_when_an_engine_becomes_ready():
    async def go():
        pool = EnginePool(hold_seconds=5)
        waiting = asyncio.create_task(pool.acquire(7))
        await asyncio.sleep(0.05)
        assert (pool.held_requests, pool.held_pairs) == (1, 7)
        assert metrics.HELD_PAIRS._value.get() == 7
        pool.set_ready(["http://a"])
        engine = await asyncio.wait_for(waiting, 1)
        assert engine.url == "http://a" and pool.held_pairs == 0
    asyncio.run(go())


def test_holding_is_bounded_in_time_and_in_count():
    async def go():
        pool = EnginePool(hold_seconds=0.1, max_held=1, retry_after=7)
        first = asyncio.create_task(pool.acquire(1))
        await asyncio.sleep(0.02)
        with pytest.raises(NoEngine) as full:
            await pool.acquire(1)
        assert full.value.retry_after == 7 and "waiting" in full.value.message
        with pytest.raises(NoEngine, match="within 0.1 s"):
            await first
        assert pool.held_requests == 0
    asyncio.run(go())


def test_an_engine_that_refuses_is_dropped_and_the_request_goes_to_another():
    """An engine shutting down refuses connections before discovery drops it: the scorer tries another one."""
    from rerank_gateway.cache import NoCache
    from rerank_gateway.engine import EngineError
    from rerank_gateway.protocol import ScoringJob
    from rerank_gateway.scorer import ModelConfig, Scorer

    class Client:
        def __init__(self, failing: dict[str, EngineError]):
            self.failing, self.calls = failing, []

        async def score(self, url, model, pairs, instruction, max_tokens_per_doc, timeout=None):
            self.calls.append(url)
            if url in self.failing:
                raise self.failing[url]
            return [0.5] * len(pairs), 3

    async def go(failure: EngineError):
        pool = EnginePool(rng=random.Random(1))
        pool.set_ready(["http://leaving", "http://staying"])
        pool.engines["http://staying"].outstanding_pairs = 10  # the leaving engine is picked first (fewest pairs)
        client = Client({"http://leaving": failure})
        scorer = Scorer(pool, client, NoCache(), ModelConfig(served_names=("m",)))
        retries = metrics.ENGINE_RETRIES.labels(reason="refused")._value.get()
        result = await scorer.score(ScoringJob(kind="rerank", model="m", pairs=[("q", "d")]))
        return result, client.calls, pool, metrics.ENGINE_RETRIES.labels(reason="refused")._value.get() - retries

    refused = EngineError(502, b"refused", reason="refused")
    result, calls, pool, retries = asyncio.run(go(refused))
    assert calls == ["http://leaving", "http://staying"] and result.scores == [0.5] and retries == 1
    assert list(pool.engines) == ["http://staying"]  # until discovery lists it again

    # The client's fault is not sent again.
    answered = EngineError(400, b"bad request")
    with pytest.raises(EngineError):
        asyncio.run(go(answered))
