"""What kopf keeps about each object: its last handled spec (the base of its update diffs) in
memory, the progress of retries in annotations.

kopf's default stores it in an annotation on the object, which costs one more write per object and
change (and one more watch event back) -- about a tenth of all the writes of a create. Nothing
depends on it surviving a restart here: an object whose base is unknown is handled as created,
and creating is the same idempotent reconcile as resuming (``status.observedGeneration`` tells
the users what was applied). The progress of retries stays in annotations (kopf wakes a retrying
object by touching them), but a handler that succeeds at once writes none: kopf's own
``<prefix>/kopf-managed`` marker, which it would write onto every object at its first handling,
is left out (it only helps an operator find its annotations under changing prefixes; ours is fixed).
"""

from __future__ import annotations

import json
from typing import Any

import kopf


class MemoryDiffBaseStorage(kopf.DiffBaseStorage):
    def __init__(self) -> None:
        super().__init__()
        self._essences: dict[str, str] = {}  # uid -> the essence as JSON (a fraction of the dict's memory)

    def fetch(self, *, body: kopf.Body) -> Any:
        raw = self._essences.get(body.get("metadata", {}).get("uid"))
        return None if raw is None else json.loads(raw)

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: Any) -> None:
        self._essences[body.get("metadata", {}).get("uid")] = json.dumps(essence, separators=(",", ":"))

    def forget(self, uid: str | None) -> None:
        self._essences.pop(uid, None)


class ProgressStorage(kopf.AnnotationsProgressStorage):
    """Retry progress in ``<prefix>/<handler>`` annotations, without kopf's marker annotation."""

    def _store_marker(self, prefix: str, patch: kopf.Patch, body: kopf.Body) -> None:
        pass
