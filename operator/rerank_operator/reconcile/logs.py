"""The operator's log lines: each one about an object names it (namespace/name), as text or JSON.

kopf's own lines about an object carry a reference to it (``k8s_ref``); lines of this package pass
the same with ``extra=object_ref(namespace, name)``. The formatter prints it as a ``[namespace/name]``
prefix (text) or as an ``object`` field (JSON, one object per line, for log pipelines).
"""

from __future__ import annotations

import logging
from typing import Any

from rerank_operator.resources import labels as L

FORMATS = ("text", "json")


def object_ref(namespace: str | None, name: str | None, kind: str = L.KIND) -> dict[str, Any]:
    """``extra=`` for a log call about one object."""
    api_version = L.API_VERSION if kind == L.KIND else None
    return {"k8s_ref": {"apiVersion": api_version, "kind": kind, "namespace": namespace, "name": name}}


def configure(log_format: str, verbose: bool) -> None:
    """Root logging for the operator process (kopf's handler, with object references)."""
    import kopf

    if log_format not in FORMATS:
        raise ValueError(f"--log-format must be one of {', '.join(FORMATS)}, got {log_format!r}")
    if log_format == "json":
        kopf.configure(verbose=verbose, log_format=kopf.LogFormat.JSON, log_prefix=False)
    else:
        kopf.configure(verbose=verbose, log_format=kopf.LogFormat.FULL, log_prefix=True)
    if not verbose:
        for handler in logging.getLogger().handlers:
            handler.addFilter(quiet_watch_handlers)


def quiet_watch_handlers(record: logging.LogRecord) -> bool:
    """Drop kopf's "Handler 'child-…' succeeded" lines: one per watch event of every child (thousands
    a minute at scale) that say nothing; their failures still show."""
    if record.name == "kopf.objects" and record.levelno == logging.INFO:
        message = record.getMessage()
        return not (message.startswith("Handler '") and message.endswith("' succeeded."))
    return True
