"""Drift repair: a child deleted or edited by someone else is put back within moments.

The operator watches its children of every kind (``resources.CHILD_KINDS``, selected by its
managed-by label). A child's deletion, or an edit by another field manager, wakes its owner: the
owner is reconciled (server-side apply of every child, forced) by a few workers. A slow periodic
pass over every RerankerDeployment stays as a safety net for changes no watch event reported
(e.g. while the operator was down, or a watch gap).

Who edited a child is read from its managedFields: the newest entry that is not a status write.
Our own applies and the controllers' bookkeeping (kube-controller-manager's revision annotations)
are not drift; anyone else's newer entry is, once per (manager, time) stamp, so that a foreign
field the operator does not own (a label someone added) costs one reconcile, not one per event.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable, Mapping

from rerank_operator.resources import labels as L

from .logs import object_ref

# Field managers whose writes to a child are never drift: controllers' bookkeeping.
CONTROLLERS = frozenset({"kube-controller-manager"})

Key = tuple[str, str]  # (namespace, name) of a RerankerDeployment

log = logging.getLogger(__name__)


def foreign_edit(child: Mapping[str, Any], manager: str) -> tuple[str, str] | None:
    """(manager, time) of the newest write to ``child`` by someone other than ``manager`` and the
    controllers, if that write is the newest one; None when the operator wrote last."""
    newest: tuple[str, str] | None = None
    newest_time = ""
    for entry in (child.get("metadata") or {}).get("managedFields") or []:
        if entry.get("subresource") == "status":
            continue
        time = entry.get("time") or ""
        if time >= newest_time:
            newest_time, newest = time, (entry.get("manager") or "", time)
    if newest is None or newest[0] == manager or newest[0] in CONTROLLERS:
        return None
    return newest


def owner_name(child: Mapping[str, Any]) -> str | None:
    for owner in (child.get("metadata") or {}).get("ownerReferences") or []:
        if owner.get("kind") == L.KIND and owner.get("apiVersion", "").startswith(L.GROUP + "/"):
            return owner.get("name")
    return None


class DriftRepair:
    """Reconciles woken RerankerDeployments (each at most once at a time, wakes while it runs
    coalesce into one more pass) and, as a safety net, every known one once per ``interval``."""

    def __init__(self, repair: Callable[[str, str, str], Awaitable[None]], *, manager: str,
                 interval: float, workers: int = 8):
        self.repair = repair  # (namespace, name, why) -> reconcile that object
        self.manager = manager
        self.interval = interval
        self.known: set[Key] = set()
        self._pending: dict[Key, str] = {}  # woken, not yet started: why
        self._running: set[Key] = set()
        self._ready = asyncio.Queue()
        self._stamps: dict[str, tuple[str, str]] = {}  # child uid -> foreign edit acted on
        self._tasks = [asyncio.get_running_loop().create_task(self._worker()) for _ in range(workers)]
        self._tasks.append(asyncio.get_running_loop().create_task(self._periodic()))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def track(self, namespace: str, name: str, present: bool) -> None:
        if present:
            self.known.add((namespace, name))
        else:
            self.known.discard((namespace, name))
            self._pending.pop((namespace, name), None)

    def child_event(self, event_type: str | None, child: Mapping[str, Any]) -> None:
        """A watch event of one of the operator's children."""
        meta = child.get("metadata") or {}
        owner = owner_name(child)
        if owner is None:
            return
        what = f"{child.get('kind')} {meta.get('name')}"
        if event_type == "DELETED":
            self._stamps.pop(meta.get("uid"), None)
            self.wake(meta.get("namespace"), owner, f"deleted {what}")
            return
        stamp = foreign_edit(child, self.manager)
        if stamp is None or self._stamps.get(meta.get("uid")) == stamp:
            return
        self._stamps[meta.get("uid")] = stamp
        self.wake(meta.get("namespace"), owner, f"{what} edited by {stamp[0]}")

    def wake(self, namespace: str, name: str, why: str) -> None:
        key = (namespace, name)
        if key in self._pending:
            return
        self._pending[key] = why
        if key not in self._running:
            self._ready.put_nowait(key)

    async def _worker(self) -> None:
        while True:
            key = await self._ready.get()
            why = self._pending.pop(key, None)
            if why is None or key in self._running:
                continue  # forgotten meanwhile, or queued again while running (requeued when done)
            self._running.add(key)
            try:
                await self.repair(key[0], key[1], why)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 -- the periodic pass is the retry; never stop a worker
                log.warning("drift repair (%s) failed: %s", why, exc, extra=object_ref(key[0], key[1]))
            finally:
                self._running.discard(key)
                if key in self._pending:
                    self._ready.put_nowait(key)

    async def _periodic(self) -> None:
        """Every known object once per interval, evenly spread."""
        while True:
            keys = sorted(self.known)
            if not keys:
                await asyncio.sleep(self.interval)
                continue
            pause = self.interval / len(keys)
            for namespace, name in keys:
                await asyncio.sleep(pause)
                if (namespace, name) in self.known:
                    self.wake(namespace, name, "periodic check")
