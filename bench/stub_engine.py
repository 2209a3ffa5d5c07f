"""A STUB engine for the gateway benchmarks (a stand-in, not vLLM): answers /score like vLLM's shape
with deterministic made-up scores, and counts the pairs it was asked for.

    python bench/stub_engine.py --port 9001 [--ms-per-pair 0] [--ms-per-request 0]

With --ms-per-pair > 0 it serves one request at a time (a FIFO queue, like one busy engine) and
spends that long per pair, so routing benchmarks see queueing; with 0 it answers at once, so the
gateway's own cost is what is measured. GET /stats returns {"pairs": n, "requests": n}.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json

from aiohttp import web


def fake_score(query: str, document: str) -> float:
    digest = hashlib.blake2b(f"{query}\x00{document}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") / 2**32


def build(ms_per_pair: float, ms_per_request: float) -> web.Application:
    stats = {"pairs": 0, "requests": 0}
    worker = asyncio.Lock()

    async def score(request: web.Request) -> web.Response:
        body = await request.json()
        documents = body["documents"]
        queries = body["queries"]
        queries = [queries] * len(documents) if isinstance(queries, str) else queries
        stats["pairs"] += len(documents)
        stats["requests"] += 1
        if ms_per_pair or ms_per_request:
            async with worker:
                await asyncio.sleep((ms_per_request + ms_per_pair * len(documents)) / 1000)
        data = [{"index": i, "object": "score", "score": fake_score(q, d)}
                for i, (q, d) in enumerate(zip(queries, documents))]
        return web.json_response({"id": "stub", "object": "list", "model": body.get("model"), "data": data,
                                  "usage": {"prompt_tokens": 10 * len(documents), "total_tokens": 10 * len(documents)}})

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="")

    async def get_stats(request: web.Request) -> web.Response:
        return web.Response(text=json.dumps(stats), content_type="application/json")

    app = web.Application(client_max_size=64 << 20)
    app.router.add_post("/score", score)
    app.router.add_get("/health", health)
    app.router.add_get("/stats", get_stats)
    return app


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ms-per-pair", type=float, default=0.0)
    p.add_argument("--ms-per-request", type=float, default=0.0)
    a = p.parse_args()
    web.run_app(build(a.ms_per_pair, a.ms_per_request), host="127.0.0.1", port=a.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
