"""The supervisor of the per-object autoscaling loops: started when enabled, following spec changes,
stopped when disabled or deleted. The loop is a stand-in recording what it was given (the real
loop runs against the API server in tests/integration/test_autoscaling.py)."""

from __future__ import annotations

import asyncio

from rerank_operator.reconcile.autoscalers import Autoscalers, Stopper


class RecordingLoop:
    def __init__(self):
        self.started: list[str] = []
        self.stopped: list[str] = []
        self.intervals: list[float] = []

    async def __call__(self, api, body, stopped, logger):
        name = body["metadata"]["name"]
        self.started.append(name)
        while not stopped:
            self.intervals.append(body["spec"]["autoscaling"].get("scrapeIntervalSeconds", 5))
            await stopped.wait(0.01)
        self.stopped.append(name)


def test_loops_follow_the_spec():
    loop = RecordingLoop()

    async def scenario():
        sup = Autoscalers(api=None, daemon=loop, stop_timeout=1)
        sup.sync("ns", "a", {"autoscaling": {"enabled": True, "scrapeIntervalSeconds": 5}})
        sup.sync("ns", "b", {"autoscaling": {"enabled": False}})
        sup.sync("ns", "c", {})
        await asyncio.sleep(0.05)
        assert loop.started == ["a"] and ("ns", "a") in sup and ("ns", "b") not in sup
        sup.sync("ns", "a", {"autoscaling": {"enabled": True, "scrapeIntervalSeconds": 2}})  # no restart
        await asyncio.sleep(0.05)
        assert loop.started == ["a"] and loop.intervals[-1] == 2
        sup.sync("ns", "a", {"autoscaling": {"enabled": False}})
        await asyncio.sleep(0.05)
        assert loop.stopped == ["a"] and ("ns", "a") not in sup
        sup.sync("ns", "a", {"autoscaling": {"enabled": True}})
        sup.sync("ns", "a", {"autoscaling": {"enabled": True}}, deleting=True)
        await asyncio.sleep(0.05)
        assert loop.stopped == ["a", "a"]
        sup.sync("ns", "d", {"autoscaling": {"enabled": True}})
        await asyncio.sleep(0.02)
        await sup.close()
        assert loop.stopped[-1] == "d"

    asyncio.run(scenario())


def test_a_hanging_loop_is_cancelled_after_the_stop_timeout():
    cancelled = []

    async def stubborn(api, body, stopped, logger):
        try:
            await asyncio.sleep(60)  # ignores the stop flag
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    async def scenario():
        sup = Autoscalers(api=None, daemon=stubborn, stop_timeout=0.05)
        sup.sync("ns", "a", {"autoscaling": {"enabled": True}})
        await asyncio.sleep(0.01)
        sup.stop(("ns", "a"))
        await asyncio.sleep(0.2)

    asyncio.run(scenario())
    assert cancelled == [True]


def test_stopper():
    async def scenario():
        stopper = Stopper()
        assert not stopper and await stopper.wait(0.01) is False
        asyncio.get_running_loop().call_later(0.01, stopper.set)
        assert await stopper.wait(5) is True and stopper

    asyncio.run(scenario())
