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
