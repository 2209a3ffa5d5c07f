"""The engine's Services: `<name>` (the stable rerank endpoint) and `<name>-engine-headless`
(the StatefulSet's governing Service, giving each replica a DNS name)."""

from __future__ import annotations

from typing import Any, Mapping

from rerank_operator.api.v1alpha1 import RerankerDeploymentSpec

from . import labels as L
from .statefulset import PORT_NAME


def endpoint_url(body: Mapping[str, Any], spec: RerankerDeploymentSpec) -> str:
    meta = body["metadata"]
    return f"http://{meta['name']}.{meta['namespace']}.svc:{spec.service.port}/v1/rerank"


def build_service(body: Mapping[str, Any], spec: RerankerDeploymentSpec) -> dict[str, Any]:
    name = body["metadata"]["name"]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": L.child_metadata(body, name, L.ENGINE),
        "spec": {
            "type": "ClusterIP",
            "selector": L.selector_labels(name, L.ENGINE),
            "ports": [{"name": PORT_NAME, "port": spec.service.port, "targetPort": PORT_NAME, "protocol": "TCP"}],
        },
    }


def build_headless_service(body: Mapping[str, Any], spec: RerankerDeploymentSpec) -> dict[str, Any]:
    name = body["metadata"]["name"]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": L.child_metadata(body, L.headless_name(name), L.ENGINE),
        "spec": {
            "clusterIP": "None",
            # Replicas get their DNS records while still loading the model (useful for debugging
            # and for peers); the rerank endpoint above only routes to Ready pods.
            "publishNotReadyAddresses": True,
            "selector": L.selector_labels(name, L.ENGINE),
            "ports": [{"name": PORT_NAME, "port": spec.engine.port, "targetPort": PORT_NAME, "protocol": "TCP"}],
        },
    }
