"""The pod template every workload the operator makes shares: the component's labels, the pull secrets, and a
hash of the whole template as an annotation (a changed hash is what tells a rollout from a no-op), plus the
Deployment around it for the UI and the gateway."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping

from rerank_operator.api.v1alpha1 import RerankerDeploymentSpec

from . import labels as L
from .pull_secrets import add_image_pull_secrets


def template_hash(template: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:16]


def scrape_annotations(port: int) -> dict[str, str]:
    """The conventional `prometheus.io/*` pod annotations: a Prometheus without the Prometheus Operator finds the
    engines' and gateways' /metrics through them (a `kubernetes_sd_configs` pod job that keeps annotated pods)."""
    return {"prometheus.io/scrape": "true", "prometheus.io/port": str(port), "prometheus.io/path": "/metrics"}


def pod_template(name: str, component: str, pod_spec: dict[str, Any], spec: RerankerDeploymentSpec,
                 annotations: Mapping[str, str] | None = None) -> dict[str, Any]:
    """`pod_spec` (given the RerankerDeployment's pull secrets) under the component's labels, the given
    annotations and the template hash (which covers the annotations too)."""
    add_image_pull_secrets(pod_spec, spec)
    template: dict[str, Any] = {"metadata": {"labels": L.labels(name, component)}, "spec": pod_spec}
    if annotations:
        template["metadata"]["annotations"] = dict(annotations)
    template["metadata"]["annotations"] = {**(annotations or {}), L.TEMPLATE_HASH_ANNOTATION: template_hash(template)}
    return template


def deployment(body: Mapping[str, Any], child_name: str, component: str, replicas: int,
               template: dict[str, Any]) -> dict[str, Any]:
    name = body["metadata"]["name"]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": L.child_metadata(body, child_name, component),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": L.selector_labels(name, component)},
            "template": template,
        },
    }
