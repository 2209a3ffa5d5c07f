"""Names, labels, selectors and owner references shared by every child of a RerankerDeployment."""

from __future__ import annotations

from typing import Any, Mapping

GROUP = "rerank.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "RerankerDeployment"
PLURAL = "rerankerdeployments"

APP_NAME = "reranker"
MANAGER = "rerank-operator"
ENGINE = "engine"
UI = "ui"
GATEWAY = "gateway"

# The pod template's hash, so that any change to what the pods run is visible on the pod and rolls it.
TEMPLATE_HASH_ANNOTATION = "rerank.io/template-hash"


def engine_name(name: str) -> str:
    return f"{name}-engine"


def headless_name(name: str) -> str:
    return f"{name}-engine-headless"


def engine_service_name(name: str) -> str:
    """The engines' own Service (behind the gateway): its DNS answer is the Ready engine pods."""
    return f"{name}-engine"


def gateway_name(name: str) -> str:
    return f"{name}-gateway"


def ui_name(name: str) -> str:
    return f"{name}-ui"


def status_configmap_name(name: str) -> str:
    return f"{name}-status"


def labels(name: str, component: str) -> dict[str, str]:
    """The app.kubernetes.io labels every child (and every pod) carries."""
    return {
        "app.kubernetes.io/name": APP_NAME,
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": MANAGER,
        "app.kubernetes.io/part-of": MANAGER,
    }


def selector_labels(name: str, component: str) -> dict[str, str]:
    """The immutable pod selector of a workload (a subset of `labels`, never to change)."""
    return {"app.kubernetes.io/instance": name, "app.kubernetes.io/component": component}


def selector_string(name: str, component: str = ENGINE) -> str:
    """The selector as a string (status.selector, used by the scale subresource and HPAs)."""
    return ",".join(f"{k}={v}" for k, v in selector_labels(name, component).items())


def owner_reference(body: Mapping[str, Any]) -> dict[str, Any]:
    meta = body["metadata"]
    return {
        "apiVersion": body.get("apiVersion", API_VERSION),
        "kind": body.get("kind", KIND),
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def child_metadata(body: Mapping[str, Any], name: str, component: str) -> dict[str, Any]:
    """metadata of a child object: in the CR's namespace, labelled, owned by the CR (so it is
    garbage-collected with it)."""
    return {
        "name": name,
        "namespace": body["metadata"]["namespace"],
        "labels": labels(body["metadata"]["name"], component),
        "ownerReferences": [owner_reference(body)],
    }
