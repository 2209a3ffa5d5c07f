"""Drift repair: a child deleted or edited by someone else is put back within moments.

The operator watches its children of every kind (``resources.CHILD_KINDS``, selected by its
managed-by label). A child's deletion, or an edit by another field manager, wakes its owner: the
owner is reconciled (server-side apply of every child, forced) by a few workers. A slow periodic
pass over every RerankerDeployment stays as a safety net for changes no watch event reported
(e.g. while the operator was down, or a watch gap).

Which events are drift: a child's content (all but its status and bookkeeping metadata) changed
since its last event, to a resourceVersion other than the one the operator's own last write of it
produced. Status updates by the controllers, their revision annotations, and the operator's own
applies are not drift. (managedFields cannot tell: an edit that sets a field to its zero value,
e.g. ``publishNotReadyAddresses: false``, leaves no entry of its author.)
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from typing import Any, Awaitable, Callable, Mapping

from rerank_operator.resources import labels as L

from .logs import object_ref

# Metadata that changes without anyone editing the object's content.
_BOOKKEEPING = ("resourceVersion", "managedFields", "generation", "creationTimestamp", "uid", "selfLink")
# Annotations the controllers keep on the children (the Deployment controller's revision).
_CONTROLLER_ANNOTATIONS = ("deployment.kubernetes.io/revision",)

Key = tuple[str, str]  # (namespace, name) of a RerankerDeployment
PERIODIC = "periodic check"

log = logging.getLogger(__name__)


def content_digest(child: Mapping[str, Any]) -> bytes:
    """A digest of what a child is, as opposed to what it reports (status) or bookkeeping."""
    meta = dict(child.get("metadata") or {})
    for key in _BOOKKEEPING:
        meta.pop(key, None)
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k not in _CONTROLLER_ANNOTATIONS}
    meta["annotations"] = annotations
    content = {k: v for k, v in child.items() if k not in ("status", "metadata")}
    content["metadata"] = meta
    return hashlib.blake2b(json.dumps(content, sort_keys=True, default=str).encode(), digest_size=16).digest()


def owner_name(child: Mapping[str, Any]) -> str | None:
    for owner in (child.get("metadata") or {}).get("ownerReferences") or []:
        if owner.get("kind") == L.KIND and owner.get("apiVersion", "").startswith(L.GROUP + "/"):
            return owner.get("name")
    return None


class DriftRepair:
    """Reconciles woken RerankerDeployments (each at most once at a time, wakes while it runs
    coalesce into one more pass) and, as a safety net, every known one once per ``interval``."""

    def __init__(self, repair: Callable[[str, str, str], Awaitable[None]], *,
                 written: Mapping[tuple[str, str, str], str | None], interval: float, workers: int = 8):
        self.repair = repair  # (namespace, name, why) -> reconcile that object
        self.written = written  # (kind, namespace, name) -> resourceVersion of the operator's last write
        self.interval = interval
        self.known: set[Key] = set()
        self._pending: dict[Key, str] = {}  # woken, not yet started: why
        self._running: set[Key] = set()
        self._ready = asyncio.Queue()
        self._digests: dict[str, bytes] = {}  # child uid -> content_digest at its last event
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
        uid = meta.get("uid")
        what = f"{child.get('kind')} {meta.get('name')}"
        if event_type == "DELETED":
            self._digests.pop(uid, None)
            self.wake(meta.get("namespace"), owner, f"deleted {what}")
            return
        digest = content_digest(child)
        previous, self._digests[uid] = self._digests.get(uid), digest
        if previous is None or previous == digest:
            return  # first sight (a creation: made to spec), or only its status moved
        if self.written.get((child.get("kind"), meta.get("namespace"), meta.get("name"))) == meta.get("resourceVersion"):
            return  # our own write
        self.wake(meta.get("namespace"), owner, f"{what} changed")

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
            await self._run(key, why)

    async def _run(self, key: Key, why: str) -> None:
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
        """Every known object once per interval, evenly spread, one at a time and apart from the
        workers: however slow the API server, the pass never queues up ahead of a real drift."""
        while True:
            keys = sorted(self.known)
            if not keys:
                await asyncio.sleep(self.interval)
                continue
            pause = self.interval / len(keys)
            for key in keys:
                await asyncio.sleep(pause)
                if key in self.known and key not in self._running and key not in self._pending:
                    await self._run(key, PERIODIC)
