"""Retries and fan-out (rerank_gateway.dispatch) against scripted engines: which engine gets which pairs, what
is sent again after which failure, what the client sees when every try fails. The real engines' side of it is
in test_gateway_engine.py (a split request scores the same as an unsplit one) and tests/node (faults)."""

from __future__ import annotations

import asyncio
import random

import orjson
import pytest

from rerank_gateway import metrics
from rerank_gateway.dispatch import DispatchConfig, Dispatcher
from rerank_gateway.engine import REFUSED, RESET, TIMEOUT, EngineError, gateway_error
from rerank_gateway.routing import EnginePool, split_evenly


def failure(reason: str) -> EngineError:
    if reason == "5xx":
        return EngineError(500, b'{"error": "EngineCore died"}', detail="answered 500: EngineCore died")
    if reason == "4xx":
        return EngineError(400, b'{"error": "too long"}', detail="answered 400")
    status = 504 if reason == TIMEOUT else 502
    return gateway_error(status, "scripted", reason, {TIMEOUT: "did not answer within 1 s", RESET: "broke the "
                         "connection", REFUSED: "could not be reached"}.get(reason, reason))


class Engines:
    """Scripted engines: ``fail[url]`` is a list of failures raised by that engine's next calls (then it scores);
    a score is the pair's index, so order and completeness are visible."""

    def __init__(self, fail: dict[str, list[str]] | None = None, delay: float = 0.0):
        self.fail = {url: list(reasons) for url, reasons in (fail or {}).items()}
        self.delay = delay
        self.calls: list[tuple[str, int, int]] = []
        self.cancelled: list[str] = []

    async def __call__(self, url: str, first: int, end: int, timeout: float):
        self.calls.append((url, first, end))
        try:
            await asyncio.sleep(self.delay)
        except asyncio.CancelledError:
            self.cancelled.append(url)
            raise
        if self.fail.get(url):
            raise failure(self.fail[url].pop(0))
        return [float(i) for i in range(first, end)], end - first


def pool_of(*urls: str) -> EnginePool:
    pool = EnginePool(rng=random.Random(0), hold_seconds=0.5)
    pool.set_ready(urls)
    return pool


def retries(reason: str) -> float:
    return metrics.ENGINE_RETRIES.labels(reason=reason)._value.get()


@pytest.mark.parametrize("reason", [REFUSED, RESET, TIMEOUT, "5xx", "invalid"])
def test_an_engine_failure_is_scored_again_on_another_engine(reason):
    async def go():
        pool = pool_of("http://a", "http://b")
        pool.engines["http://b"].outstanding_pairs = 5  # a is picked first
        engines = Engines({"http://a": [reason]})
        before = retries(reason)
        scores, tokens = await Dispatcher(pool, DispatchConfig()).score(3, engines)
        return pool, engines, scores, tokens, retries(reason) - before

    pool, engines, scores, tokens, counted = asyncio.run(go())
    assert scores == [0.0, 1.0, 2.0] and tokens == 3 and counted == 1
    assert [url for url, *_ in engines.calls] == ["http://a", "http://b"]
    # Leaving (refused): dropped until discovery lists it again. Hung or dying: ejected until /health answers.
    # A 5xx too (a vLLM whose engine process died answers 500 at once, and would draw the traffic); a wrong
    # answer leaves the engine in rotation.
    assert ("http://a" in pool.engines) == (reason == "invalid")
    assert ("http://a" in pool.ejected) == (reason in (TIMEOUT, RESET, "5xx"))
    assert all(e.outstanding_pairs == (5 if e.url == "http://b" else 0) for e in pool.engines.values())


def test_the_clients_fault_is_passed_through_and_never_sent_again():
    async def go():
        engines = Engines({"http://a": ["4xx"], "http://b": ["4xx"]})
        with pytest.raises(EngineError) as raised:
            await Dispatcher(pool_of("http://a", "http://b"), DispatchConfig()).score(2, engines)
        return raised.value, engines

    error, engines = asyncio.run(go())
    assert error.status == 400 and error.body == b'{"error": "too long"}' and len(engines.calls) == 1


def test_when_every_try_fails_the_client_gets_one_error_naming_each_engine_and_how():
    async def go():
        engines = Engines({"http://a": [TIMEOUT], "http://b": ["5xx"], "http://c": ["5xx"]})
        pool = pool_of("http://a", "http://b", "http://c")
        before = metrics.ENGINE_FAILURES.labels(reason="5xx")._value.get()
        with pytest.raises(EngineError) as raised:
            await Dispatcher(pool, DispatchConfig(attempts=3)).score(1, engines)
        return raised.value, engines, metrics.ENGINE_FAILURES.labels(reason="5xx")._value.get() - before

    error, engines, counted = asyncio.run(go())
    message = orjson.loads(error.body)["error"]["message"]
    assert sorted(url for url, *_ in engines.calls) == ["http://a", "http://b", "http://c"]  # each once
    assert "all 3 tries failed" in message
    assert "http://a did not answer within 1 s" in message and "http://b answered 500: EngineCore died" in message
    assert "http://c answered 500" in message
    last = engines.calls[-1][0]
    assert (error.status, counted) == ((504, 0) if last == "http://a" else (502, 1))  # named by the last try

    async def none_left():
        engines = Engines({"http://a": [TIMEOUT], "http://b": [RESET]})  # both ejected
        with pytest.raises(EngineError) as raised:
            await Dispatcher(pool_of("http://a", "http://b"), DispatchConfig()).score(1, engines)
        return raised.value

    message = orjson.loads(asyncio.run(none_left()).body)["error"]["message"]
    assert "no engine was left to try (No engine became ready within 0.5 s" in message
    assert "did not answer within 1 s" in message and "broke the connection" in message


def test_a_retry_waits_for_an_engine_when_all_are_out_of_rotation_and_the_deadline_bounds_it():
    async def go():
        pool = pool_of("http://a")
        engines = Engines({"http://a": [TIMEOUT]})
        dispatcher = Dispatcher(pool, DispatchConfig(deadline=5))

        async def readmit_soon():
            await asyncio.sleep(0.2)
            assert pool.engines == {}  # ejected: the retry is held, not sent to the hung engine
            pool.readmit("http://a")

        readmit = asyncio.create_task(readmit_soon())
        scores, _ = await dispatcher.score(2, engines)
        await readmit
        return scores, engines

    scores, engines = asyncio.run(go())
    assert scores == [0.0, 1.0] and len(engines.calls) == 2

    async def out_of_time():
        engines = Engines({"http://a": [TIMEOUT] * 5}, delay=0.1)
        dispatcher = Dispatcher(pool_of("http://a", "http://b"), DispatchConfig(attempts=10, deadline=0.25))
        with pytest.raises(EngineError) as raised:
            await dispatcher.score(1, lambda url, *rest: engines("http://a", *rest))
        return raised.value

    error = asyncio.run(out_of_time())
    assert "deadline of 0.25 s passed" in orjson.loads(error.body)["error"]["message"]


def test_an_ejected_engine_is_back_only_after_readmit_whatever_discovery_says():
    pool = pool_of("http://a", "http://b")
    pool.eject("http://a")
    pool.set_ready(["http://a", "http://b"])  # still Ready to Kubernetes: hung, not dead
    assert list(pool.engines) == ["http://b"] and metrics.EJECTED_ENGINES._value.get() == 1
    pool.readmit("http://a")
    assert set(pool.engines) == {"http://a", "http://b"} and not pool.ejected
    pool.eject("http://a")
    pool.set_ready(["http://b"])  # gone from discovery: forgotten, not readmitted later
    pool.readmit("http://a")
    assert list(pool.engines) == ["http://b"] and not pool.ejected


@pytest.mark.parametrize("pairs,loads,min_piece,expected", [
    (1000, [0, 0], 64, [500, 500]),
    (1000, [0, 0, 0], 64, [334, 333, 333]),
    (1000, [0, 400], 64, [700, 300]),  # both end at 700 outstanding
    (1000, [0, 2000], 64, [1000, 0]),  # the busy engine would get nothing: all on the idle one
    (100, [0, 0, 0, 0], 64, [100, 0, 0, 0]),  # pieces would be smaller than 64
    (200, [0, 0, 0, 0], 64, [67, 67, 66, 0]),
    (130, [0, 10], 64, [130, 0]),  # the second piece would be 60
])
def test_split_evenly_fills_the_least_loaded_engines_to_one_level(pairs, loads, min_piece, expected):
    shares = split_evenly(pairs, loads, min_piece)
    assert shares == expected and sum(shares) == pairs


def test_a_large_request_is_split_across_engines_and_merged_in_order():
    async def go():
        pool = pool_of("http://a", "http://b", "http://c")
        engines = Engines(delay=0.05)
        before = metrics.SPLIT_PIECES._value.get()
        dispatcher = Dispatcher(pool, DispatchConfig(fan_out_pairs=100))
        small = await dispatcher.score(199, engines)  # below twice the threshold: one engine
        engines.calls.clear()
        scores, tokens = await dispatcher.score(1000, engines)
        return small, scores, tokens, engines, metrics.SPLIT_PIECES._value.get() - before, pool

    small, scores, tokens, engines, pieces, pool = asyncio.run(go())
    assert small[0] == [float(i) for i in range(199)]
    assert scores == [float(i) for i in range(1000)] and tokens == 1000 and pieces == 3
    assert sorted(end - first for _, first, end in engines.calls) == [333, 333, 334]
    assert len({url for url, *_ in engines.calls}) == 3
    assert all(e.outstanding_pairs == 0 and e.outstanding_requests == 0 for e in pool.engines.values())


def test_a_failed_piece_is_scored_again_and_the_others_are_kept():
    async def go():
        pool = pool_of("http://a", "http://b")
        engines = Engines({"http://a": [RESET]})
        scores, _ = await Dispatcher(pool, DispatchConfig(fan_out_pairs=10)).score(40, engines)
        return scores, engines

    scores, engines = asyncio.run(go())
    assert scores == [float(i) for i in range(40)]
    # Two pieces first, then a's piece once more, on b (a is ejected).
    assert len(engines.calls) == 3 and engines.calls[2][0] == "http://b"
    assert engines.calls[2][1:] == next(c[1:] for c in engines.calls[:2] if c[0] == "http://a")


def test_a_4xx_piece_or_a_client_that_leaves_cancels_the_other_pieces():
    async def go(cancel_from_outside: bool):
        pool = pool_of("http://a", "http://b")
        slow = Engines(delay=5)
        fast_fail = Engines({"http://a": ["4xx"]})

        async def call(url, first, end, timeout):
            return await (fast_fail if url == "http://a" else slow)(url, first, end, timeout)

        task = asyncio.create_task(Dispatcher(pool, DispatchConfig(fan_out_pairs=10)).score(40, call if not
                                   cancel_from_outside else slow))
        if cancel_from_outside:
            await asyncio.sleep(0.1)
            task.cancel()
        with pytest.raises((EngineError, asyncio.CancelledError)):
            await task
        return slow.cancelled, pool

    cancelled, pool = asyncio.run(go(False))
    assert cancelled == ["http://b"]
    cancelled, pool = asyncio.run(go(True))
    assert sorted(cancelled) == ["http://a", "http://b"]
    assert all(e.outstanding_pairs == 0 for e in pool.engines.values())
