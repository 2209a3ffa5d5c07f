"""The rerank gateway's Deployment `<name>-gateway` (pure).

The gateway finds the engines by resolving the headless Service `<name>-engine` (Ready pods only),
so its pods need no Kubernetes API access and run with no service account token. Its command line
carries everything that decides a cached score (served names, revision, effective instruction), so
changing any of them rolls the gateway -- and the cache keys change with them.
"""

from __future__ import annotations

from typing import Any, Mapping

from rerank_operator.api.v1alpha1 import RerankerDeploymentSpec
from rerank_operator.serving.engine_args import served_model_names

from . import labels as L
from .pod_security import restricted_container_context
from .pod_template import deployment, pod_template, scrape_annotations

GATEWAY_PORT = 8000
# A gateway pod being replaced keeps serving until kube-proxy and the ingress controllers have stopped sending
# it new connections (they learn of the deletion through the EndpointSlice, within a few seconds); in-flight
# requests then finish in the grace period (aiohttp's graceful shutdown on SIGTERM).
PRESTOP_SLEEP_SECONDS = 5
# The gateway image's unprivileged user (images/gateway/Dockerfile).
GATEWAY_UID = 10002
MiB = 1024 * 1024


def engine_dns(body: Mapping[str, Any], spec: RerankerDeploymentSpec) -> str:
    meta = body["metadata"]
    return f"{L.engine_service_name(meta['name'])}.{meta['namespace']}.svc:{spec.engine.port}"


def gateway_args(body: Mapping[str, Any], spec: RerankerDeploymentSpec) -> list[str]:
    g = spec.gateway
    args = ["--port", str(GATEWAY_PORT), "--engine-dns", engine_dns(body, spec)]
    for name in served_model_names(spec):
        args += ["--served-model-name", name]
    args += [
        "--model-revision", spec.model.revision or "",
        "--default-instruction", spec.effective_instruction,
        "--max-documents", str(g.max_documents),
        "--max-body-bytes", str(g.max_request_mi_b * MiB),
        "--cache", g.cache.backend,
        "--cache-max-bytes", str(g.cache.memory_mi_b * MiB),
        "--cache-ttl-seconds", str(g.cache.ttl_seconds),
        "--hold-seconds", str(g.hold_seconds),
        "--max-held", str(g.max_held_requests),
        # The gateway's own tries (3) and deadline (every try may take its whole timeout).
        "--engine-timeout", str(g.engine_timeout_seconds),
        "--fan-out-pairs", str(g.fan_out_pairs),
    ]
    if g.chunking.enabled:
        aggregate = {"max": "max", "meanTopK": "mean_top_k"}[g.chunking.aggregate]
        args += ["--chunk-window-tokens", str(g.chunking.window_tokens),
                 "--chunk-overlap-tokens", str(g.chunking.overlap_tokens),
                 "--chunk-aggregate", aggregate, "--chunk-top-k", str(g.chunking.top_k)]
    return args


def gateway_env(spec: RerankerDeploymentSpec) -> list[dict[str, Any]]:
    redis = spec.gateway.cache.redis
    if spec.gateway.cache.backend != "redis" or redis is None:
        return []
    env = [{"name": "REDIS_URL", "valueFrom": {"secretKeyRef": {"name": redis.url_secret_ref.name,
                                                                 "key": redis.url_secret_ref.key}}}]
    if redis.password_secret_ref is not None:
        env.append({"name": "REDIS_PASSWORD", "valueFrom": {"secretKeyRef": {
            "name": redis.password_secret_ref.name, "key": redis.password_secret_ref.key}}})
    return env


def build_gateway_deployment(body: Mapping[str, Any], spec: RerankerDeploymentSpec) -> dict[str, Any]:
    name = body["metadata"]["name"]
    probe = {"httpGet": {"path": "/health", "port": "http"}, "timeoutSeconds": 3}
    # The in-process cache is most of the memory: the limit follows it.
    memory_limit_mib = 256 + (spec.gateway.cache.memory_mi_b if spec.gateway.cache.backend == "memory" else 0) * 2
    container = {
        "name": "gateway",
        "image": spec.gateway.container_image,
        "imagePullPolicy": "IfNotPresent",
        "args": gateway_args(body, spec),
        "ports": [{"name": "http", "containerPort": GATEWAY_PORT, "protocol": "TCP"}],
        "readinessProbe": {**probe, "periodSeconds": 5, "failureThreshold": 3},
        "livenessProbe": {**probe, "periodSeconds": 20, "failureThreshold": 3},
        "lifecycle": {"preStop": {"sleep": {"seconds": PRESTOP_SLEEP_SECONDS}}},
        "resources": {"requests": {"cpu": "250m", "memory": "128Mi"}, "limits": {"memory": f"{memory_limit_mib}Mi"}},
        "securityContext": restricted_container_context(GATEWAY_UID, GATEWAY_UID),
    }
    # Only when there is any: the API server drops an empty list, and the child must read back as written.
    if env := gateway_env(spec):
        container["env"] = env
    pod_spec = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
    }
    return deployment(body, L.gateway_name(name), L.GATEWAY, spec.gateway.replicas,
                      pod_template(name, L.GATEWAY, pod_spec, spec, scrape_annotations(GATEWAY_PORT)))
