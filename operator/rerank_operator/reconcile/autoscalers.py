"""One autoscaling loop per RerankerDeployment that has ``spec.autoscaling.enabled``.

The loop itself is ``autoscaling.loop.autoscaler_daemon``; this module starts it when autoscaling
is switched on, stops it when switched off or the object is deleted, and hands it a small live
view of the object (name, namespace, ``spec.autoscaling``) that follows spec changes. The
operator supervises these tasks itself rather than through a per-object kopf daemon, because kopf
keeps a full live copy of every object of a resource that has a daemon -- autoscaled or not --
which at thousands of objects is most of the operator's memory.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable, Mapping

from .logs import object_ref

log = logging.getLogger(__name__)

Daemon = Callable[[Any, Mapping[str, Any], "Stopper", Any], Awaitable[None]]


class Stopper:
    """The stop flag the loop polls: falsy while running; ``await wait(t)`` sleeps up to t seconds
    or until stopped."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def __bool__(self) -> bool:
        return self._event.is_set()

    def set(self) -> None:
        self._event.set()

    async def wait(self, timeout: float | None = None) -> bool:
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except TimeoutError:
            pass
        return self._event.is_set()


def enabled(spec: Mapping[str, Any] | None) -> bool:
    return bool(((spec or {}).get("autoscaling") or {}).get("enabled"))


class Autoscalers:
    def __init__(self, api: Any, daemon: Daemon, *, stop_timeout: float = 10.0):
        self._api = api
        self._daemon = daemon
        self._stop_timeout = stop_timeout
        self._running: dict[tuple[str, str], tuple[asyncio.Task, Stopper, dict[str, Any]]] = {}

    def __contains__(self, key: tuple[str, str]) -> bool:
        return key in self._running

    def sync(self, namespace: str, name: str, spec: Mapping[str, Any] | None, deleting: bool = False) -> None:
        """Start, update or stop the loop of one object after it changed."""
        key = (namespace, name)
        if deleting or not enabled(spec):
            self.stop(key)
            return
        autoscaling = dict((spec or {}).get("autoscaling") or {})
        if key in self._running:
            self._running[key][2]["spec"]["autoscaling"] = autoscaling  # e.g. a new scrape interval
            return
        view = {"metadata": {"namespace": namespace, "name": name}, "spec": {"autoscaling": autoscaling}}
        stopper = Stopper()
        logger = logging.LoggerAdapter(log, {"object": f"{namespace}/{name}"})
        task = asyncio.get_running_loop().create_task(self._daemon(self._api, view, stopper, logger),
                                                      name=f"autoscaler {namespace}/{name}")
        self._running[key] = (task, stopper, view)
        task.add_done_callback(lambda _t, key=key: self._finished(key, _t))

    def _finished(self, key: tuple[str, str], task: asyncio.Task) -> None:
        entry = self._running.get(key)
        if entry is not None and entry[0] is task:
            del self._running[key]
        if not task.cancelled() and task.exception() is not None:
            log.error("autoscaler stopped: %r", task.exception(), extra=object_ref(key[0], key[1]))

    def stop(self, key: tuple[str, str]) -> None:
        entry = self._running.pop(key, None)
        if entry is None:
            return
        task, stopper, _ = entry
        stopper.set()
        # A pass in flight finishes (it may be writing the scale); one that hangs is cancelled.
        asyncio.get_running_loop().call_later(self._stop_timeout, task.cancel)

    async def close(self) -> None:
        entries = list(self._running.values())
        for key in list(self._running):
            self.stop(key)
        tasks = [task for task, _, _ in entries]
        if tasks:
            await asyncio.wait(tasks, timeout=self._stop_timeout)
            for task in tasks:
                task.cancel()
