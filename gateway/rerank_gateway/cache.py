"""The pair-level score cache: keys, an in-process LRU bounded by bytes, and Redis.

A key is a hash of everything that decides a pair's score -- served model, revision, effective
instruction, per-document truncation, query, document -- so a change of model, revision or
instruction can never return an old score: it simply misses. Both backends take a TTL.

A backend never raises to the caller: a Redis outage answers "all misses" and drops writes
(pass-through to the engines), counts the error and logs it, at most once per `LOG_EVERY` seconds.
"""

from __future__ import annotations

import hashlib
import logging
import struct
import time
from collections import OrderedDict
from typing import Protocol, Sequence

import orjson

from . import metrics

log = logging.getLogger(__name__)

# Bytes one LRU entry costs beyond its key: the dict slot, the OrderedDict links, the tuple and
# two floats (measured with tracemalloc on CPython 3.11, rounded up).
ENTRY_OVERHEAD_BYTES = 200
LOG_EVERY = 30.0


def query_key(model: str, revision: str, instruction: str, max_tokens_per_doc: int | None, query: str) -> bytes:
    """A 16-byte digest of everything but the document (JSON, so no separator can collide); computed
    once per query, then extended per document by `pair_keys`."""
    material = orjson.dumps([model, revision, instruction, max_tokens_per_doc or 0, query])
    return hashlib.blake2b(material, digest_size=16).digest()


def pair_keys(model: str, revision: str, instruction: str, max_tokens_per_doc: int | None,
              pairs: Sequence[tuple[str, str]]) -> list[bytes]:
    """The 16-byte key of every (query, document) pair: the digest of `query_key(...)` followed by the
    document (the prefix has a fixed length, so the two are unambiguous). Each query's hash state is made
    once and copied per document (about twice as fast as a new hash per pair)."""
    states: dict[str, "hashlib._Hash"] = {}
    keys = []
    for query, document in pairs:
        state = states.get(query)
        if state is None:
            state = states[query] = hashlib.blake2b(
                query_key(model, revision, instruction, max_tokens_per_doc, query), digest_size=16)
        h = state.copy()
        h.update(document.encode())
        keys.append(h.digest())
    return keys


class ScoreCache(Protocol):
    name: str

    async def get_many(self, keys: Sequence[bytes]) -> list[float | None]: ...

    async def put_many(self, items: dict[bytes, float]) -> None: ...

    async def close(self) -> None: ...


class NoCache:
    name = "none"

    async def get_many(self, keys: Sequence[bytes]) -> list[float | None]:
        return [None] * len(keys)

    async def put_many(self, items: dict[bytes, float]) -> None:
        return None

    async def close(self) -> None:
        return None


class LRUScoreCache:
    """In-process, least recently used out first once `max_bytes` is reached."""

    name = "memory"

    def __init__(self, max_bytes: int, ttl_seconds: float, clock=time.monotonic):
        self.max_bytes = max_bytes
        self.ttl = ttl_seconds
        self.clock = clock
        self.bytes = 0
        self._entries: OrderedDict[bytes, tuple[float, float]] = OrderedDict()  # key -> (score, expires)

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def _cost(key: bytes) -> int:
        return len(key) + ENTRY_OVERHEAD_BYTES

    async def get_many(self, keys: Sequence[bytes]) -> list[float | None]:
        now = self.clock()
        found: list[float | None] = []
        for key in keys:
            entry = self._entries.get(key)
            if entry is None:
                found.append(None)
            elif entry[1] <= now:
                del self._entries[key]
                self.bytes -= self._cost(key)
                found.append(None)
            else:
                self._entries.move_to_end(key)
                found.append(entry[0])
        return found

    async def put_many(self, items: dict[bytes, float]) -> None:
        expires = self.clock() + self.ttl
        for key, score in items.items():
            if key in self._entries:
                self._entries.move_to_end(key)
            else:
                self.bytes += self._cost(key)
            self._entries[key] = (score, expires)
        while self.bytes > self.max_bytes and self._entries:
            old, _ = self._entries.popitem(last=False)
            self.bytes -= self._cost(old)
        metrics.CACHE_BYTES.set(self.bytes)

    async def close(self) -> None:
        return None


class RedisScoreCache:
    """Scores in Redis (shared by every gateway replica), 8-byte doubles under a key prefix."""

    name = "redis"
    PREFIX = b"rerank:score:"

    def __init__(self, url: str, ttl_seconds: float, password: str | None = None, timeout: float = 0.25):
        import redis.asyncio as redis  # only needed with this backend

        self.ttl = max(1, int(ttl_seconds))
        # A short timeout: a slow Redis must cost a request little more than a miss would.
        self.client = redis.Redis.from_url(url, password=password, socket_timeout=timeout,
                                           socket_connect_timeout=timeout, retry_on_timeout=False)
        self._last_log = -LOG_EVERY

    def _failed(self, what: str, exc: Exception) -> None:
        metrics.CACHE_ERRORS.labels(backend=self.name).inc()
        now = time.monotonic()
        if now - self._last_log >= LOG_EVERY:
            self._last_log = now
            log.warning("score cache: Redis %s failed (%s: %s); serving without the cache until it answers",
                        what, type(exc).__name__, exc)

    async def get_many(self, keys: Sequence[bytes]) -> list[float | None]:
        if not keys:
            return []
        try:
            values = await self.client.mget([self.PREFIX + k for k in keys])
        except Exception as exc:  # any client error: connection, timeout, protocol, auth
            self._failed("read", exc)
            return [None] * len(keys)
        return [struct.unpack("<d", v)[0] if v is not None and len(v) == 8 else None for v in values]

    async def put_many(self, items: dict[bytes, float]) -> None:
        if not items:
            return
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for key, score in items.items():
                    pipe.set(self.PREFIX + key, struct.pack("<d", score), ex=self.ttl)
                await pipe.execute()
        except Exception as exc:
            self._failed("write", exc)

    async def close(self) -> None:
        await self.client.aclose()
