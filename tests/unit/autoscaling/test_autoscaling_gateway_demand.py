"""Demand while at zero replicas, read from the gateway's own /metrics page."""

from __future__ import annotations

import asyncio

from rerank_gateway import metrics as gateway_metrics
from rerank_gateway.routing import EnginePool

from rerank_operator.autoscaling.gateway_demand import held_pairs


def test_held_pairs_are_read_from_a_real_gateway_metrics_page():
    async def go():
        pool = EnginePool(hold_seconds=5)
        waiting = asyncio.create_task(pool.acquire(12))
        await asyncio.sleep(0.02)
        page = gateway_metrics.exposition().decode()
        pool.set_ready(["http://engine"])
        await waiting
        return page, gateway_metrics.exposition().decode()

    held, served = asyncio.run(go())
    assert held_pairs(held) == 12 and held_pairs(served) == 0
    assert held_pairs("# nothing here\n") == 0
