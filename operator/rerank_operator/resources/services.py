"""The Services: `<name>` (the stable rerank endpoint: the gateway's pods, or the engines' when the
gateway is off), `<name>-engine-headless` (the StatefulSet's governing Service, giving each replica a
DNS name) and, with the gateway, `<name>-engine` (how the gateway finds the Ready engines)."""

from __future__ import annotations

from typing import Any, Mapping

from rerank_operator.api.v1alpha1 import RerankerDeploymentSpec

from . import labels as L
from .statefulset import PORT_NAME


def endpoint_url(body: Mapping[str, Any], spec: RerankerDeploymentSpec) -> str:
    meta = body["metadata"]
    return f"http://{meta['name']}.{meta['namespace']}.svc:{spec.service.port}/v1/rerank"


def build_service(body: Mapping[str, Any], spec: RerankerDeploymentSpec) -> dict[str, Any]:
    """`<name>` keeps its name and port whichever pods serve it, so clients change nothing when the
    gateway is switched on or off."""
    name = body["metadata"]["name"]
    target = L.GATEWAY if spec.gateway.enabled else L.ENGINE
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": L.child_metadata(body, name, L.ENGINE),
        "spec": {
            "type": "ClusterIP",
            "selector": L.selector_labels(name, target),
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


def build_engine_service(body: Mapping[str, Any], spec: RerankerDeploymentSpec) -> dict[str, Any]:
    """Headless and without unready addresses (publishNotReadyAddresses left at its default, false, so
    the object reads back as written): a DNS lookup of it is the list of Ready engine pods, which is all
    the gateway needs to route (no Kubernetes API access, no RBAC)."""
    name = body["metadata"]["name"]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": L.child_metadata(body, L.engine_service_name(name), L.ENGINE),
        "spec": {
            "clusterIP": "None",
            "selector": L.selector_labels(name, L.ENGINE),
            "ports": [{"name": PORT_NAME, "port": spec.engine.port, "targetPort": PORT_NAME, "protocol": "TCP"}],
        },
    }
