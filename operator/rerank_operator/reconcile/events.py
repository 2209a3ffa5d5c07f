"""Kubernetes Events about a RerankerDeployment (created, updated, scaled, restored, failures).

Posted through the reconcile client's connection pool, in the background: an event is a courtesy
to the people looking at ``kubectl describe``, so it never delays or fails a reconcile.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from typing import Any, Mapping

from rerank_operator.autoscaling.state import to_rfc3339
from rerank_operator.resources import labels as L

from .kube import ApiError, KubeClient
from .logs import object_ref

COMPONENT = "rerank-operator"
MAX_MESSAGE = 1024

log = logging.getLogger(__name__)


def event_manifest(obj: Mapping[str, Any], type_: str, reason: str, message: str, now: float,
                   host: str = "") -> dict[str, Any]:
    meta = obj["metadata"]
    stamp = to_rfc3339(now)
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:16]}", "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": obj.get("apiVersion", L.API_VERSION), "kind": obj.get("kind", L.KIND),
            "name": meta["name"], "namespace": meta["namespace"], "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
        },
        "type": type_,
        "reason": reason,
        "message": message[:MAX_MESSAGE],
        "source": {"component": COMPONENT, **({"host": host} if host else {})},
        "reportingComponent": COMPONENT,
        "reportingInstance": host or COMPONENT,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }


class EventPoster:
    def __init__(self, kube: KubeClient, clock):
        self._kube = kube
        self._clock = clock
        self._host = socket.gethostname()
        self._pending: set[asyncio.Task] = set()

    def __call__(self, obj: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        event = event_manifest(obj, type_, reason, message, self._clock(), self._host)
        task = asyncio.get_running_loop().create_task(self._post(event))
        self._pending.add(task)  # keep a reference until done (the loop holds tasks weakly)
        task.add_done_callback(self._pending.discard)

    async def _post(self, event: dict[str, Any]) -> None:
        try:
            await self._kube.create("v1", "Event", event["metadata"]["namespace"], event)
        except ApiError as exc:
            involved = event["involvedObject"]
            log.warning("could not post event %s: %s", event["reason"], exc,
                        extra=object_ref(involved.get("namespace"), involved.get("name"), involved.get("kind")))

    async def drain(self) -> None:
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
