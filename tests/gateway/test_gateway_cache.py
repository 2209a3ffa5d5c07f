"""The score cache: keys change with everything that decides a score; LRU bounded by bytes; TTL;
Redis (a real redis-server on loopback) and its outage degrading to pass-through."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from rerank_gateway import metrics
from rerank_gateway.cache import ENTRY_OVERHEAD_BYTES, LRUScoreCache, RedisScoreCache, pair_keys, query_key

BASE = ("model", "rev1", "instruction", None, "query", "document")


def pair_key(model, revision, instruction, max_tokens_per_doc, query, document):
    """The key the gateway looks one pair up by."""
    return pair_keys(model, revision, instruction, max_tokens_per_doc, [(query, document)])[0]


def run(coro):
    return asyncio.run(coro)


@pytest.mark.parametrize("position, other", [(0, "model2"), (1, "rev2"), (2, "other instruction"), (3, 128),
                                             (4, "query2"), (5, "document2")])
def test_every_part_of_a_pair_changes_its_key(position, other):
    changed = list(BASE)
    changed[position] = other
    assert pair_key(*changed) != pair_key(*BASE)
    assert pair_key(*BASE) == pair_key(*BASE)


def test_no_separator_collision():
    assert pair_key("m", "", "", None, "a\x1fb", "c") != pair_key("m", "", "", None, "a", "b\x1fc")


def test_lru_is_bounded_by_bytes_and_evicts_the_least_recently_used():
    per_entry = 16 + ENTRY_OVERHEAD_BYTES
    cache = LRUScoreCache(max_bytes=3 * per_entry, ttl_seconds=60)
    keys = [pair_key("m", "", "", None, "q", str(i)) for i in range(4)]
    run(cache.put_many({keys[0]: 0.0, keys[1]: 0.1, keys[2]: 0.2}))
    assert run(cache.get_many([keys[0]])) == [0.0]  # 0 is now the most recently used
    run(cache.put_many({keys[3]: 0.3}))
    assert run(cache.get_many(keys)) == [0.0, None, 0.2, 0.3]
    assert cache.bytes == 3 * per_entry == cache.bytes <= cache.max_bytes


def test_lru_entries_expire_after_the_ttl():
    now = [1000.0]
    cache = LRUScoreCache(max_bytes=10_000, ttl_seconds=5, clock=lambda: now[0])
    key = pair_key(*BASE)
    run(cache.put_many({key: 0.5}))
    now[0] += 4.9
    assert run(cache.get_many([key])) == [0.5]
    now[0] += 0.2
    assert run(cache.get_many([key])) == [None] and len(cache) == 0 and cache.bytes == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def redis_server(tmp_path: Path, password: str | None = None):
    """Debian's redis-server on a free loopback port, no persistence."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (scripts/bootstrap.sh installs it with WITH_TEST_SERVICES=1)")
    port = free_port()
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(tmp_path)]
    if password:
        args += ["--requirepass", password]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            if time.monotonic() > deadline:
                raise TimeoutError("redis-server did not listen")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0", process
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.redis
def test_redis_round_trip_with_a_password_and_ttl(tmp_path):
    with redis_server(tmp_path, password="s3cret") as (url, _):
        async def go():
            cache = RedisScoreCache(url, ttl_seconds=1, password="s3cret")
            key = pair_key(*BASE)
            await cache.put_many({key: 0.25})
            assert await cache.get_many([key, pair_key("x", "", "", None, "", "")]) == [0.25, None]
            ttl = await cache.client.ttl(RedisScoreCache.PREFIX + key)
            assert 0 < ttl <= 1
            await asyncio.sleep(1.2)
            assert await cache.get_many([key]) == [None]
            await cache.close()
        run(go())


@pytest.mark.redis
def test_redis_outage_is_a_miss_a_metric_and_a_log_line(tmp_path, caplog):
    with redis_server(tmp_path) as (url, process):
        async def go():
            cache = RedisScoreCache(url, ttl_seconds=60)
            key = pair_key(*BASE)
            await cache.put_many({key: 0.75})
            assert await cache.get_many([key]) == [0.75]
            process.terminate()
            process.wait(timeout=10)
            before = metrics.CACHE_ERRORS.labels(backend="redis")._value.get()
            assert await cache.get_many([key]) == [None]
            await cache.put_many({key: 0.5})  # no exception either
            assert metrics.CACHE_ERRORS.labels(backend="redis")._value.get() == before + 2
            await cache.close()
        run(go())
    assert any("Redis read failed" in r.getMessage() for r in caplog.records)


def test_pair_keys_are_the_query_digest_extended_by_each_document():
    # The format a shared Redis holds: gateways of one deployment must agree on it.
    pairs = [("q1", "d1"), ("q2", "d1"), ("q1", "d2"), ("q1", "d1"), ("q1", "é ü")]
    keys = pair_keys("m", "r", "i", 7, pairs)
    assert keys == [hashlib.blake2b(query_key("m", "r", "i", 7, q) + d.encode(), digest_size=16).digest()
                    for q, d in pairs]
    assert keys[0] == keys[3] and len(set(keys)) == 4
