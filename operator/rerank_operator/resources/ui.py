"""The web UI: Deployment, Service and (optionally) Ingress `<name>-ui`.

The UI talks to the rerank endpoint Service like any other client and reads the deployment's
status from the `<name>-status` ConfigMap mounted as a file, so it needs no Kubernetes API access
(its pods run with no service account token).
"""

from __future__ import annotations

from typing import Any, Mapping

from rerank_operator.api.v1alpha1 import RerankerDeploymentSpec

from . import labels as L
from .pod_security import restricted_container_context
from .pod_template import deployment, pod_template
from .service_accounts import ui_service_account_name
from .services import endpoint_url
from .status_configmap import STATUS_KEY

UI_PORT = 7860
SERVICE_PORT = 80
STATUS_DIR = "/etc/rerank"
STATUS_FILE = f"{STATUS_DIR}/{STATUS_KEY}"
# The UI image's unprivileged user (images/ui/Dockerfile).
UI_UID = 10001
# Cheap, unauthenticated route of the Gradio server.
PROBE_PATH = "/gradio_api/app_id"


def ui_url(body: Mapping[str, Any], spec: RerankerDeploymentSpec) -> str | None:
    """Where people open the UI: the Ingress host when there is one, else the in-cluster Service."""
    if not spec.ui.enabled:
        return None
    ingress = spec.ui.ingress
    if ingress.enabled and ingress.host:
        scheme = "https" if ingress.tls is not None else "http"
        return f"{scheme}://{ingress.host}/"
    meta = body["metadata"]
    return f"http://{L.ui_name(meta['name'])}.{meta['namespace']}.svc:{SERVICE_PORT}/"


def ui_env(body: Mapping[str, Any], spec: RerankerDeploymentSpec) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        {"name": "RERANK_ENDPOINT", "value": endpoint_url(body, spec)},
        {"name": "RERANK_MODEL", "value": spec.model.effective_served_name},
        {"name": "RERANK_DEFAULT_INSTRUCTION", "value": spec.effective_instruction},
        {"name": "RERANK_MAX_DOCUMENTS", "value": str(spec.ui.max_documents)},
        {"name": "RERANK_STATUS_FILE", "value": STATUS_FILE},
        {"name": "GRADIO_SERVER_PORT", "value": str(UI_PORT)},
    ]
    auth = spec.ui.auth_secret_ref
    if auth is not None:
        for var, key in (("RERANK_UI_USERNAME", "username"), ("RERANK_UI_PASSWORD", "password")):
            env.append({"name": var, "valueFrom": {"secretKeyRef": {"name": auth.name, "key": key}}})
    return env


def build_ui_deployment(body: Mapping[str, Any], spec: RerankerDeploymentSpec) -> dict[str, Any]:
    name = body["metadata"]["name"]
    probe = {"httpGet": {"path": PROBE_PATH, "port": "http"}, "timeoutSeconds": 5}
    container = {
        "name": "ui",
        "image": spec.ui.container_image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "http", "containerPort": UI_PORT, "protocol": "TCP"}],
        "env": ui_env(body, spec),
        "volumeMounts": [
            {"name": "status", "mountPath": STATUS_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
        "readinessProbe": {**probe, "periodSeconds": 5, "failureThreshold": 3},
        "livenessProbe": {**probe, "periodSeconds": 20, "failureThreshold": 3, "initialDelaySeconds": 20},
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
        "securityContext": restricted_container_context(UI_UID, UI_UID),
    }
    pod_spec = {
        "serviceAccountName": ui_service_account_name(name),
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {"runAsNonRoot": True, "runAsUser": UI_UID, "runAsGroup": UI_UID, "fsGroup": UI_UID,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        "volumes": [
            # optional: the UI starts (health-probe-only banner) before the operator's first status write.
            {"name": "status", "configMap": {"name": L.status_configmap_name(name), "optional": True}},
            {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
        ],
    }
    return deployment(body, L.ui_name(name), L.UI, spec.ui.replicas, pod_template(name, L.UI, pod_spec, spec))


def build_ui_service(body: Mapping[str, Any], spec: RerankerDeploymentSpec) -> dict[str, Any]:
    name = body["metadata"]["name"]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": L.child_metadata(body, L.ui_name(name), L.UI),
        "spec": {
            "type": "ClusterIP",
            "selector": L.selector_labels(name, L.UI),
            "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def build_ui_ingress(body: Mapping[str, Any], spec: RerankerDeploymentSpec) -> dict[str, Any]:
    name = body["metadata"]["name"]
    ingress = spec.ui.ingress
    metadata = L.child_metadata(body, L.ui_name(name), L.UI)
    if ingress.annotations:
        metadata["annotations"] = dict(ingress.annotations)
    rule: dict[str, Any] = {
        "http": {"paths": [{
            "path": "/",
            "pathType": "Prefix",
            "backend": {"service": {"name": L.ui_name(name), "port": {"number": SERVICE_PORT}}},
        }]},
    }
    if ingress.host:
        rule["host"] = ingress.host
    ingress_spec: dict[str, Any] = {"rules": [rule]}
    if ingress.class_name:
        ingress_spec["ingressClassName"] = ingress.class_name
    if ingress.tls is not None:
        tls: dict[str, Any] = {"secretName": ingress.tls.secret_name}
        if ingress.host:
            tls["hosts"] = [ingress.host]
        ingress_spec["tls"] = [tls]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": metadata,
        "spec": ingress_spec,
    }
