"""The `<name>-status` ConfigMap: the RerankerDeployment's status as the UI reads it.

The UI never talks to the Kubernetes API (it needs no RBAC); the operator writes this key and the
UI Deployment mounts it (see rerank_ui.status for the reader). Shape of `status.json`:

    {"replicas": 2, "readyReplicas": 1, "desiredReplicas": 2,
     "conditions": [{"type": "Ready", "status": "False", "reason": "ReplicasNotReady",
                     "message": "1 of 2 engine replicas ready", "lastTransitionTime": "..."}, ...]}

(the status' counts and its conditions as they are; the UI picks the message to show).
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from . import labels as L

STATUS_KEY = "status.json"


def status_document(status: Mapping[str, Any] | None) -> dict[str, Any]:
    status = status or {}
    return {
        "replicas": int(status.get("replicas") or 0),
        "readyReplicas": int(status.get("readyReplicas") or 0),
        "desiredReplicas": int(status.get("desiredReplicas") or 0),
        "conditions": [dict(c) for c in status.get("conditions") or []],
    }


def render_status(status: Mapping[str, Any] | None) -> str:
    return json.dumps(status_document(status), sort_keys=True)


def build_status_configmap(body: Mapping[str, Any], status: Mapping[str, Any] | None) -> dict[str, Any]:
    name = body["metadata"]["name"]
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": L.child_metadata(body, L.status_configmap_name(name), L.UI),
        "data": {STATUS_KEY: render_status(status)},
    }
