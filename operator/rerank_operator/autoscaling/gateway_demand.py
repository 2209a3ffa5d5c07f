"""Demand while the engines are at zero replicas: only the gateway sees it.

With no engine pod there is no vLLM queue to read; the gateway holds the requests and exports the
pairs it holds as ``rerank_gateway_held_pairs``. This module reads that gauge from the Ready gateway
pods; the policy (``Observation.held_pairs``) wakes one replica from zero on it, and never scales to
zero while it is above zero.
"""

from __future__ import annotations

import asyncio
from typing import Iterable

import aiohttp

HELD_PAIRS = "rerank_gateway_held_pairs"
GATEWAY_PORT = 8000


def held_pairs(metrics_text: str) -> float:
    """The held pairs in a gateway's /metrics page (0 when absent)."""
    total = 0.0
    for line in metrics_text.splitlines():
        if line.startswith(HELD_PAIRS + " ") or line.startswith(HELD_PAIRS + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def scrape_held_pairs(session: aiohttp.ClientSession, urls: Iterable[str], timeout: float = 2.0) -> float:
    """Held pairs summed over the gateways at ``urls`` (a gateway that cannot be read counts 0: it
    cannot be holding anything it would tell us about)."""

    async def one(url: str) -> float:
        try:
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout)) as r:
                return held_pairs(await r.text()) if r.status == 200 else 0.0
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return 0.0

    return sum(await asyncio.gather(*(one(u) for u in urls)))
