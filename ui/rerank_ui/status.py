"""What the page knows about the engine: the operator's status file plus a cheap /health probe.

The UI never talks to the Kubernetes API. The operator writes the deployment's state into the ConfigMap
`<name>-status`, key `status.json`, mounted in the UI pod at RERANK_STATUS_FILE (/etc/rerank/status.json).
Its shape (STATUS_SCHEMA below; every key optional, unknown keys ignored):

    {
      "replicas": 3,          # engine pods that exist           (RerankerDeployment .status.replicas)
      "readyReplicas": 1,     # engine pods that serve requests  (.status.readyReplicas)
      "desiredReplicas": 3,   # what the deployment heads for    (.status.desiredReplicas; falls back to replicas)
      "conditions": [         # .status.conditions, copied as they are
        {"type": "Ready", "status": "False", "reason": "ModelLoading",
         "message": "model loading", "lastTransitionTime": "2026-01-01T00:00:00Z"},
        {"type": "Progressing", "status": "True", "reason": "ScalingUp", "message": "model loading"},
        {"type": "Degraded", "status": "False", "reason": "AsExpected", "message": ""}
      ]
    }

The banner reads the counts and, for its headline, the message of the condition that explains a
deployment not (fully) serving: Degraded=True first, then Ready=False/Unknown, then Progressing=True.
With 1 of 3 ready and the conditions above it shows "⏳ **Model loading** — 1 of 3 replicas ready".
ConfigMap volumes update in place (atomic symlink swap) within about a minute; the page re-reads the file
on every banner refresh. A missing or malformed file falls back to the health probe alone.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rerank_ui.client import HealthProbe

STATUS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "status.json of a RerankerDeployment, as read by the rerank UI",
    "type": "object",
    "properties": {
        "replicas": {"type": "integer", "minimum": 0},
        "readyReplicas": {"type": "integer", "minimum": 0},
        "desiredReplicas": {"type": "integer", "minimum": 0},
        "conditions": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["type", "status"],
                "properties": {
                    "type": {"type": "string", "minLength": 1},
                    "status": {"enum": ["True", "False", "Unknown"]},
                    "reason": {"type": "string"},
                    "message": {"type": "string"},
                    "lastTransitionTime": {"type": "string"},
                    "observedGeneration": {"type": "integer"},
                },
            },
        },
    },
}


@dataclass(frozen=True)
class Condition:
    type: str
    status: str
    """"True", "False" or "Unknown", as in Kubernetes."""
    reason: str = ""
    message: str = ""


@dataclass(frozen=True)
class DeploymentStatus:
    ready_replicas: int
    desired_replicas: int
    replicas: int = 0
    conditions: tuple[Condition, ...] = ()

    def condition(self, type_: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)

    @property
    def degraded(self) -> bool:
        degraded = self.condition("Degraded")
        return degraded is not None and degraded.status == "True"

    @property
    def explanation(self) -> str:
        """Why the deployment is not (fully) serving, in the operator's words; "" when nothing is wrong."""
        for type_, bad_status in (("Degraded", ("True",)), ("Ready", ("False", "Unknown")),
                                  ("Progressing", ("True",))):
            cond = self.condition(type_)
            if cond is not None and cond.status in bad_status:
                return cond.message or _words(cond.reason)
        return ""


def _words(reason: str) -> str:
    """A CamelCase condition reason as words: "ModelLoading" -> "model loading"."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", reason).lower()


def parse_status(text: str) -> DeploymentStatus:
    """Parse the operator's status.json; raises ValueError when it is not that shape."""
    body = json.loads(text)
    if not isinstance(body, dict):
        raise ValueError("status file is not a JSON object")

    def count(key: str) -> int | None:
        value = body.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{key} must be a non-negative integer, got {value!r}")
        return value

    raw_conditions = body.get("conditions")
    if raw_conditions is None:
        raw_conditions = []
    if not isinstance(raw_conditions, list):
        raise ValueError("conditions must be a list")
    conditions = []
    for item in raw_conditions:
        if not (isinstance(item, dict) and isinstance(item.get("type"), str)
                and isinstance(item.get("status"), str)):
            raise ValueError(f"a condition needs string `type` and `status`, got {str(item)[:120]}")
        reason, message = item.get("reason"), item.get("message")
        conditions.append(Condition(
            type=item["type"], status=item["status"],
            reason=reason if isinstance(reason, str) else "",
            message=message.strip() if isinstance(message, str) else "",
        ))

    ready = count("readyReplicas") or 0
    replicas = count("replicas")
    desired = count("desiredReplicas")
    if desired is None:
        desired = replicas if replicas is not None else ready
    return DeploymentStatus(ready_replicas=ready, desired_replicas=desired, replicas=replicas or 0,
                            conditions=tuple(conditions))


def read_status_file(path: Path | None) -> DeploymentStatus | None:
    """The mounted status, or None when there is none (or it is being rewritten / unreadable)."""
    if path is None:
        return None
    try:
        return parse_status(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        # A missing or broken file must not break the page: the health probe still tells the person
        # whether the engine answers.
        return None


class StatusMonitor:
    """Combines the status file with a health probe, caching the probe for `ttl_seconds` so that many open
    pages refreshing their banner do not turn into many probes."""

    def __init__(self, probe: Callable[[], Awaitable[HealthProbe]], status_file: Path | None, *,
                 ttl_seconds: float = 5.0, clock: Callable[[], float] = time.monotonic):
        self._probe = probe
        self._status_file = status_file
        self._ttl = ttl_seconds
        self._clock = clock
        self._lock = asyncio.Lock()
        self._cached: tuple[float, HealthProbe] | None = None

    async def health(self) -> HealthProbe:
        async with self._lock:  # concurrent banners wait for one probe instead of each sending their own
            now = self._clock()
            if self._cached is None or now - self._cached[0] >= self._ttl:
                self._cached = (now, await self._probe())
            return self._cached[1]

    async def snapshot(self) -> tuple[DeploymentStatus | None, HealthProbe]:
        # The file is a small ConfigMap key on a local volume; reading it off-loop still costs nothing.
        status = await asyncio.to_thread(read_status_file, self._status_file)
        return status, await self.health()
