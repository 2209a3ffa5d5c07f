"""spec.gateway: the rerank gateway in front of the engines.

The gateway is on by default: it is what makes the Cohere/LangChain/litellm clients work (null
optionals, object documents, ``meta``), answers repeated pairs from its score cache, and routes by
outstanding pairs. Off, the Service ``<name>`` points at the engines directly, as before.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from .base import _cel, _Model, _object
from .core import SecretKeyRef
from ..version import image as release_image

DEFAULT_GATEWAY_IMAGE = release_image("gateway")
# Below ~2 x 64 pairs a split saves less than a piece costs the engines (bench/fan_out.py).
FAN_OUT_PAIRS = 64


class GatewayRedisSpec(_Model):
    """Where the shared score cache lives when spec.gateway.cache.backend is redis."""

    url_secret_ref: SecretKeyRef = Field(
        description="Secret key holding the Redis URL (redis://host:6379/0 or rediss:// for TLS); a Secret "
        "because URLs often embed credentials.",
    )
    password_secret_ref: SecretKeyRef | None = Field(
        default=None, description="Secret key holding the Redis password (AUTH), if the URL does not carry it.",
    )


class GatewayCacheSpec(_Model):
    """The pair-level score cache (key: model, revision, instruction, query, document)."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        _cel("!has(self.backend) || self.backend != 'redis' || has(self.redis)",
             "spec.gateway.cache.redis is required when spec.gateway.cache.backend is redis", field_path=".redis"),
    ]})

    backend: Literal["memory", "redis", "none"] = Field(
        default="memory",
        description="memory: an LRU in each gateway pod, bounded by memoryMiB. redis: one cache shared by every "
        "gateway pod (and kept across restarts); a Redis outage only means misses. none: no cache.",
    )
    memory_mi_b: int = Field(
        default=256, ge=1, le=65536, alias="memoryMiB",
        description="Memory the in-process cache may hold, in MiB (about 230 bytes per cached pair).",
    )
    ttl_seconds: int = Field(
        default=86400, ge=1, le=31536000,
        description="How long a cached score is served. Scores never go stale on a model, revision or "
        "instruction change (those are part of the key); the TTL bounds memory for one-off pairs.",
    )
    redis: GatewayRedisSpec | None = Field(default=None, description="The Redis server (backend redis).")

    @model_validator(mode="after")
    def _redis_needs_server(self) -> "GatewayCacheSpec":
        if self.backend == "redis" and self.redis is None:
            raise ValueError("spec.gateway.cache.redis is required when spec.gateway.cache.backend is redis")
        return self


class GatewayChunkingSpec(_Model):
    """Scoring documents longer than the model's context in overlapping windows (opt-in)."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        _cel("!has(self.windowTokens) || !has(self.overlapTokens) || self.overlapTokens < self.windowTokens",
             "spec.gateway.chunking.overlapTokens must be less than windowTokens", field_path=".overlapTokens"),
    ]})

    enabled: bool = Field(
        default=False,
        description="Cut documents longer than windowTokens (by the model's own tokenizer) into overlapping "
        "windows, score each, and report the document's score under its original index. Off: such a document "
        "is the engine's 400 (longer than maxModelLen) or scored whole.",
    )
    window_tokens: int = Field(
        default=1024, ge=16, le=131072,
        description="Tokens per window. Keep it below engine.maxModelLen minus the prompt and query tokens.",
    )
    overlap_tokens: int = Field(
        default=128, ge=0, le=131071,
        description="Tokens shared by consecutive windows, so a passage cut by one boundary is whole in a window.",
    )
    aggregate: Literal["max", "meanTopK"] = Field(
        default="max",
        description="The document's score: max (its best window) or meanTopK (mean of its best topK windows).",
    )
    top_k: int = Field(default=3, ge=1, le=64, description="Windows averaged by aggregate meanTopK.")

    @model_validator(mode="after")
    def _overlap_below_window(self) -> "GatewayChunkingSpec":
        if self.overlap_tokens >= self.window_tokens:
            raise ValueError("spec.gateway.chunking.overlapTokens must be less than windowTokens")
        return self


class GatewaySpec(_Model):
    """The rerank gateway: Cohere-compatible API, score cache, routing, holding while engines start."""

    enabled: bool = Field(
        default=True,
        description="Deploy the gateway (Deployment <name>-gateway) and point the Service <name> at it; the "
        "engines then get the headless Service <name>-engine. Off: <name> points at the engines directly.",
    )
    # No default in the schema, as for spec.ui.image: unset, the gateway follows the operator's release.
    image: str | None = Field(
        default=None, min_length=1, max_length=512,
        description="Container image of the gateway. Default: the operator's own release of the project's "
        f"rerank-gateway image ({DEFAULT_GATEWAY_IMAGE} in this release), so upgrading the operator upgrades the "
        "gateway; set it to pin one.")

    @property
    def container_image(self) -> str:
        """The gateway container's image: spec.gateway.image, else this release's."""
        return self.image or DEFAULT_GATEWAY_IMAGE
    replicas: int = Field(default=1, ge=1, le=50, description="Gateway pods.")
    max_documents: int = Field(default=1000, ge=1, le=100000,
                               description="Most documents in one request; more is a 413 naming the limit.")
    max_request_mi_b: int = Field(default=16, ge=1, le=1024, alias="maxRequestMiB",
                                  description="Largest request body in MiB; larger is a 413.")
    hold_seconds: int = Field(
        default=300, ge=0, le=3600,
        description="How long a request waits for a Ready engine (none yet, or scaled to zero and loading the "
        "model) before a 503 with Retry-After.",
    )
    max_held_requests: int = Field(default=256, ge=0, le=100000,
                                   description="Requests that may wait for a Ready engine at once; more are a 503.")
    engine_timeout_seconds: int = Field(
        default=120, ge=1, le=86400,
        description="How long one engine may take for a request (or a piece of a split one). Past it the engine "
        "is taken out of rotation until its /health answers again and the pairs are scored by another engine; "
        "every failure of an engine (refused, reset, 5xx, timeout) is retried the same way, up to 3 tries within "
        "3 times this. Raise it for CPU engines scoring very large requests.",
    )
    fan_out_pairs: int = Field(
        default=FAN_OUT_PAIRS, ge=0, le=100000,
        description="Requests with at least twice this many pairs to score (cache misses) are split across the "
        "Ready engines in pieces of at least this many, scored in parallel and merged in order: a lone large "
        "request takes about as long as its largest piece. 0: never split.",
    )
    cache: GatewayCacheSpec = _object(GatewayCacheSpec, "The score cache.")
    chunking: GatewayChunkingSpec = _object(GatewayChunkingSpec, "Long documents in windows (off by default).")
