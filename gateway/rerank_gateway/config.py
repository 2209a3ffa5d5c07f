"""The gateway's settings: command-line flags (the operator writes them into the Deployment), secrets
from the environment (the Redis password comes from a Secret as REDIS_PASSWORD)."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass

from .chunking import ChunkingConfig
from .dispatch import DispatchConfig
from .protocol import Limits
from .scorer import ModelConfig

MiB = 1024 * 1024


@dataclass(frozen=True)
class GatewayConfig:
    host: str = "0.0.0.0"
    port: int = 8000
    engines: tuple[str, ...] = ()  # fixed engine base URLs
    engine_dns: str | None = None  # host:port of the engines' headless Service
    dns_interval: float = 2.0
    engine_timeout: float = 300.0
    dispatch: DispatchConfig = DispatchConfig()
    model: ModelConfig = ModelConfig()
    limits: Limits = Limits()
    max_body_bytes: int = 16 * MiB
    cache: str = "memory"  # memory | redis | none
    cache_max_bytes: int = 256 * MiB
    cache_ttl_seconds: float = 86400.0
    redis_url: str | None = None
    redis_password: str | None = None
    chunking: ChunkingConfig | None = None
    hold_seconds: float = 120.0
    max_held: int = 256
    retry_after: int = 10
    routing: str = "least-outstanding"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rerank-gateway", description=__doc__)
    p.add_argument("--host", default="0.0.0.0")
    p.add_argument("--port", type=int, default=8000)
    engines = p.add_mutually_exclusive_group(required=True)
    engines.add_argument("--engine", action="append", metavar="URL", help="an engine's base URL (repeatable)")
    engines.add_argument("--engine-dns", metavar="HOST:PORT",
                         help="the engines' headless Service; its addresses are the Ready engines")
    p.add_argument("--dns-interval", type=float, default=2.0, help="seconds between DNS lookups (or health checks of --engine URLs)")
    p.add_argument("--engine-timeout", type=float, default=300.0,
                   help="seconds an engine may take for one request (or piece); then it is tried elsewhere")
    p.add_argument("--engine-attempts", type=int, default=3,
                   help="tries per request (or piece) when engines fail it, the first included")
    p.add_argument("--request-deadline", type=float, default=None,
                   help="seconds for a request's every try together (default: every try may take its whole "
                   "--engine-timeout)")
    p.add_argument("--fan-out-pairs", type=int, default=0,
                   help="split requests of at least twice this many pairs across engines, in pieces of at least "
                   "this many (0: never)")
    p.add_argument("--served-model-name", action="append", default=[],
                   help="the model's name (first) and aliases, as the engine serves them (repeatable)")
    p.add_argument("--model-revision", default="", help="part of every cache key: a new revision misses")
    p.add_argument("--default-instruction", default=None, help="the deployment's instruction (part of cache keys)")
    p.add_argument("--max-documents", type=int, default=1000)
    p.add_argument("--max-body-bytes", type=int, default=16 * MiB)
    p.add_argument("--cache", choices=["memory", "redis", "none"], default="memory")
    p.add_argument("--cache-max-bytes", type=int, default=256 * MiB)
    p.add_argument("--cache-ttl-seconds", type=float, default=86400.0)
    p.add_argument("--redis-url", default=None, help="default: $REDIS_URL (the operator sets it from a Secret)")
    p.add_argument("--chunk-window-tokens", type=int, default=0, help="0: long documents are not chunked")
    p.add_argument("--chunk-overlap-tokens", type=int, default=64)
    p.add_argument("--chunk-aggregate", choices=["max", "mean_top_k"], default="max")
    p.add_argument("--chunk-top-k", type=int, default=3)
    p.add_argument("--hold-seconds", type=float, default=120.0,
                   help="how long a request waits for a Ready engine before a 503")
    p.add_argument("--max-held", type=int, default=256, help="requests that may wait for a Ready engine at once")
    p.add_argument("--retry-after", type=int, default=10, help="Retry-After seconds on a 503")
    p.add_argument("--routing", choices=["least-outstanding", "random"], default="least-outstanding",
                   help="random is kube-proxy's choice, kept for comparison (bench/)")
    return p


def from_args(argv: list[str] | None = None, environ: dict[str, str] | None = None) -> GatewayConfig:
    environ = os.environ if environ is None else environ
    p = parser()
    a = p.parse_args(argv)
    a.redis_url = a.redis_url or environ.get("REDIS_URL")
    if a.cache == "redis" and not a.redis_url:
        p.error("--cache redis needs --redis-url (or REDIS_URL)")
    if a.request_deadline is None:
        a.request_deadline = a.engine_attempts * a.engine_timeout
    if a.engine_attempts < 1 or a.engine_timeout <= 0 or a.request_deadline <= 0 or a.fan_out_pairs < 0:
        p.error("--engine-attempts must be at least 1, --engine-timeout and --request-deadline positive, "
                "--fan-out-pairs 0 or more")
    chunks = None
    if a.chunk_window_tokens:
        try:
            chunks = ChunkingConfig(a.chunk_window_tokens, a.chunk_overlap_tokens, a.chunk_aggregate, a.chunk_top_k)
        except ValueError as exc:
            p.error(str(exc))
    return GatewayConfig(
        host=a.host, port=a.port, engines=tuple(a.engine or ()), engine_dns=a.engine_dns,
        dns_interval=a.dns_interval, engine_timeout=a.engine_timeout,
        dispatch=DispatchConfig(attempts=a.engine_attempts, try_timeout=a.engine_timeout,
                                deadline=a.request_deadline, fan_out_pairs=a.fan_out_pairs),
        model=ModelConfig(tuple(a.served_model_name), a.model_revision, a.default_instruction),
        limits=Limits(max_documents=a.max_documents), max_body_bytes=a.max_body_bytes,
        cache=a.cache, cache_max_bytes=a.cache_max_bytes, cache_ttl_seconds=a.cache_ttl_seconds,
        redis_url=a.redis_url, redis_password=environ.get("REDIS_PASSWORD") or None, chunking=chunks,
        hold_seconds=a.hold_seconds, max_held=a.max_held, retry_after=a.retry_after,
        routing=a.routing,
    )
