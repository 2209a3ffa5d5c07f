"""The aiohttp application: routes, error mapping, startup and shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from typing import Any, Awaitable, Callable

import orjson
import uvloop
from aiohttp import web

from . import metrics
from .cache import LRUScoreCache, NoCache, RedisScoreCache, ScoreCache
from .config import GatewayConfig, from_args
from .discovery import watch_dns, watch_ejected, watch_health
from .engine import EngineClient, EngineError
from .http1 import Http1Pool
from .protocol import BadRequest, decode_json, parse_rerank, parse_score
from .responses import error_body, rerank_response, score_response
from .routing import EnginePool, NoEngine
from .scorer import Scorer

log = logging.getLogger("rerank_gateway")

RERANK_ROUTES = ("/v1/rerank", "/v2/rerank", "/rerank")
SCORE_ROUTES = ("/score", "/v1/score")

# How often an engine ejected after a failure is asked for /health: it is back in rotation within about this.
EJECTED_PROBE_SECONDS = 1.0

CONFIG = web.AppKey("config", GatewayConfig)
POOL = web.AppKey("pool", EnginePool)
SCORER = web.AppKey("scorer", Scorer)


def make_cache(config: GatewayConfig) -> ScoreCache:
    if config.cache == "redis":
        return RedisScoreCache(config.redis_url or "", config.cache_ttl_seconds, config.redis_password)
    if config.cache == "memory":
        return LRUScoreCache(config.cache_max_bytes, config.cache_ttl_seconds)
    return NoCache()


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> web.Response:
    # orjson: encoding a 20-document answer with the standard json module cost more than the rest of
    # the gateway's work on it (bench/gateway.py); the output is the same UTF-8 JSON.
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json", headers=headers)


async def _read_body(request: web.Request) -> dict[str, Any]:
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise BadRequest(f"The request body is larger than {request.app[CONFIG].max_body_bytes} bytes.",
                         status=413) from None
    return decode_json(raw)


def _measured(route_of: Callable[[web.Request], str]):
    def wrap(handler: Callable[[web.Request], Awaitable[web.Response]]):
        async def measured(request: web.Request) -> web.Response:
            start = time.perf_counter()
            route = route_of(request)
            response = await _answer(handler, request)
            metrics.child(metrics.REQUESTS, route, str(response.status)).inc()
            metrics.child(metrics.LATENCY, route).observe(time.perf_counter() - start)
            return response
        return measured
    return wrap


async def _answer(handler, request: web.Request) -> web.Response:
    """Map every failure to a status: the client's (4xx, field named), the engine's (as it sent it),
    none ready (503 + Retry-After)."""
    try:
        return await handler(request)
    except BadRequest as exc:
        return _json(exc.status, error_body(exc.status, exc.message, exc.param))
    except EngineError as exc:
        return web.Response(status=exc.status, body=exc.body, headers={"Content-Type": exc.content_type})
    except NoEngine as exc:
        return _json(503, error_body(503, exc.message), headers={"Retry-After": str(exc.retry_after)})
    except Exception:
        log.exception("unexpected error on %s", request.path)
        return _json(500, error_body(500, "Internal gateway error (logged)."))


@_measured(lambda r: r.path)
async def rerank(request: web.Request) -> web.Response:
    job = parse_rerank(await _read_body(request), request.app[CONFIG].limits)
    result = await request.app[SCORER].score(job)
    return _json(200, rerank_response(job, result.model, result.scores, result.prompt_tokens))


@_measured(lambda r: r.path)
async def score(request: web.Request) -> web.Response:
    job = parse_score(await _read_body(request), request.app[CONFIG].limits)
    result = await request.app[SCORER].score(job)
    return _json(200, score_response(result.model, result.scores, result.prompt_tokens))


async def health(request: web.Request) -> web.Response:
    # Alive and serving; with no Ready engine requests are held, not refused, so this stays 200.
    return _json(200, {"status": "ok", "ready_engines": len(request.app[POOL].engines),
                       "held_requests": request.app[POOL].held_requests})


async def models(request: web.Request) -> web.Response:
    names = request.app[CONFIG].model.served_names
    return _json(200, {"object": "list", "data": [{"id": n, "object": "model", "owned_by": "rerank-operator"}
                                                  for n in names]})


async def prometheus(request: web.Request) -> web.Response:
    return web.Response(body=metrics.exposition(), headers={"Content-Type": "text/plain; version=0.0.4"})


def build_app(config: GatewayConfig, *, cache: ScoreCache | None = None, pool: EnginePool | None = None) -> web.Application:
    app = web.Application(client_max_size=config.max_body_bytes)
    app[CONFIG] = config
    app[POOL] = pool or EnginePool(hold_seconds=config.hold_seconds, max_held=config.max_held,
                                   retry_after=config.retry_after, policy=config.routing)
    cache = cache or make_cache(config)

    async def lifecycle(app: web.Application):
        http = Http1Pool(timeout=config.engine_timeout)  # kept-alive connections to the engines
        app[SCORER] = Scorer(app[POOL], EngineClient(http), cache, config.model, config.chunking, config.dispatch)
        watchers = [asyncio.create_task(watch_ejected(app[POOL], EJECTED_PROBE_SECONDS))]
        if config.engine_dns:
            host, _, port = config.engine_dns.rpartition(":")
            watchers.append(asyncio.create_task(watch_dns(app[POOL], host, int(port), config.dns_interval)))
        elif config.engines:
            watchers.append(asyncio.create_task(watch_health(app[POOL], list(config.engines), config.dns_interval)))
        yield
        for watcher in watchers:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        http.close()
        await cache.close()

    app.cleanup_ctx.append(lifecycle)
    for path in RERANK_ROUTES:
        app.router.add_post(path, rerank)
    for path in SCORE_ROUTES:
        app.router.add_post(path, score)
    app.router.add_get("/health", health)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/metrics", prometheus)
    return app


def main(argv: list[str] | None = None) -> int:
    config = from_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # libuv's event loop: the gateway is all socket I/O, and uvloop's loop costs less CPU per request
    # than asyncio's own (bench/gateway.py).
    loop = uvloop.new_event_loop()
    # handler_cancellation: a client that goes away cancels its request, whose connections to the engines are
    # closed, which makes vLLM abort the scoring. On SIGTERM, requests in flight finish (shutdown_timeout) while
    # no new connection is accepted.
    web.run_app(build_app(config), host=config.host, port=config.port, access_log=None, loop=loop,
                handler_cancellation=True, shutdown_timeout=config.dispatch.deadline,
                print=lambda *_: log.info("listening on %s:%d", config.host, config.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
