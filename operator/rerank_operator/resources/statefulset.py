"""The engine StatefulSet `<name>-engine`: one vLLM pod per replica, `tensorParallelSize` GPUs each
(none with `spec.engine.device: cpu`, which runs vLLM's CPU build).

Why a StatefulSet: each replica keeps its own model cache volume (volumeClaimTemplate
"model-cache"), so a restarted or rescheduled pod finds the weights already downloaded. Pods are
started in parallel (no ordering is needed between replicas, and a model load takes minutes).

Replicas: always `spec.replicas`. That one field is the truth: `kubectl scale`, an HPA/KEDA (via
the scale subresource) or -- with `spec.autoscaling.enabled` -- the operator's autoscaler write it,
and the StatefulSet follows it.
"""

from __future__ import annotations

import math
import posixpath
from typing import Any, Mapping


from rerank_operator.api.v1alpha1 import GPU_RESOURCE, RerankerDeploymentSpec, effective_image
# The serving package owns the vLLM command line and vLLM's variables (both follow vLLM releases).
from rerank_operator.serving.engine_args import engine_command, vllm_env

from . import labels as L
from .pod_security import restricted_container_context
from .pod_template import pod_template, scrape_annotations
from .service_accounts import engine_service_account_name
from .sizing import engine_cpu_memory, shm_gib, startup_budget_seconds

CONTAINER = "engine"
PORT_NAME = "http"
CACHE_VOLUME = "model-cache"
CACHE_MOUNT = "/models"
HF_HOME = "/models/cache"
# Where a model PVC (spec.model.pvc) is mounted; the engine's --model points below it.
MODEL_PVC_VOLUME = "model"
MODEL_PVC_MOUNT = "/mnt/model"
SHM_VOLUME = "dshm"
TMP_VOLUME = "tmp"
# The engine's home on the cache volume, and the compile caches below it, named explicitly: the CPU
# engine image points them at /tmp (an emptyDir, gone with the pod) and torch's inductor defaults to
# /tmp whatever the image, so a pod replaced by a roll or an eviction compiled its kernels again.
HOME = "/models/home"
COMPILE_CACHE_ENV = {
    "XDG_CACHE_HOME": f"{HOME}/.cache",
    "VLLM_CACHE_ROOT": f"{HOME}/.cache/vllm",
    "TORCHINDUCTOR_CACHE_DIR": f"{HOME}/.cache/torchinductor",
    "TRITON_CACHE_DIR": f"{HOME}/.cache/triton",
}
# Non-root, as Pod Security "restricted" requires. The project's CPU engine image runs as 1000; the
# public vLLM images default to root, so the pod sets the user explicitly (their files are
# world-readable, and everything the engine writes is on the volumes below).
ENGINE_UID = 1000
ENGINE_GID = 1000
TMP_SIZE = "4Gi"
HEALTH_PATH = "/health"

# A model load (download + weights into GPU memory + warm-up) can take many minutes for the larger
# rerankers: the startup probe allows sizing.startup_budget_seconds, checked every 10 s.
STARTUP_PERIOD_SECONDS = 10
# Keep serving in-flight requests while the endpoints controller removes the pod from the
# Services: the preStop sleep covers that propagation delay, the grace period the drain after it.
PRESTOP_SLEEP_SECONDS = 10
TERMINATION_GRACE_SECONDS = 60
# GPU pools are commonly tainted so that only pods asking for GPUs land there (EKS and AKS GPU node
# groups, the GPU Operator's guides); a pod requesting nvidia.com/gpu tolerates that taint by default.
GPU_TOLERATION = {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}


def shm_size(tensor_parallel_size: int) -> str:
    """/dev/shm for the engine: NCCL and vLLM's worker processes exchange tensors through it, so it
    grows with the number of tensor-parallel workers (the container default of 64 MiB is far too small)."""
    return f"{shm_gib(tensor_parallel_size)}Gi"


def model_path(spec: RerankerDeploymentSpec) -> str | None:
    """The engine's --model when the weights are on a PVC (None: a Hugging Face id)."""
    if spec.model.pvc is None:
        return None
    return posixpath.join(MODEL_PVC_MOUNT, spec.model.pvc.path.strip("/")).rstrip("/")


def container_env(spec: RerankerDeploymentSpec) -> list[dict[str, Any]]:
    """The engine container's environment: where the caches are, the Hub token, vLLM's own variables,
    and last the user's spec.engine.env, which wins over any of them."""
    env: list[dict[str, Any]] = [
        {"name": "HF_HOME", "value": HF_HOME},
        {"name": "HOME", "value": HOME},
        # getpass.getuser() (torch's inductor cache) fails for a UID without a passwd entry.
        {"name": "USER", "value": "engine"},
        *({"name": name, "value": value} for name, value in COMPILE_CACHE_ENV.items()),
    ]
    token = spec.model.hf_token_secret_ref
    if token is not None:
        env.append({"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": token.name, "key": token.key}}})
    if spec.model.pvc is not None:
        # Air-gapped: the weights are on the claim; never reach out to the Hub.
        env.append({"name": "HF_HUB_OFFLINE", "value": "1"})
    seen = {e["name"] for e in env}
    for extra in vllm_env(spec):
        if extra["name"] not in seen:
            env.append(extra)
            seen.add(extra["name"])
    for user in spec.engine.env:  # the user's own variables last, so they win over derived ones
        item = user.to_k8s()
        env = [e for e in env if e["name"] != item["name"]]
        env.append(item)
    return env


def engine_resources(spec: RerankerDeploymentSpec) -> dict[str, Any]:
    sized = engine_cpu_memory(spec)
    requests, limits = sized["requests"], sized["limits"]
    if spec.engine.gpus:  # none on device cpu
        # Extended resources must have requests == limits; the count is the tensor-parallel size.
        requests[GPU_RESOURCE] = limits[GPU_RESOURCE] = str(spec.engine.gpus)
    return {"requests": requests, "limits": limits}


def engine_tolerations(spec: RerankerDeploymentSpec) -> list[dict[str, Any]]:
    """The user's tolerations, and on GPU engines the one for the nvidia.com/gpu taint of GPU pools
    (else the sample stays Pending there), unless the user's own list already speaks of that key."""
    tolerations = [t.to_k8s() for t in spec.scheduling.tolerations]
    if spec.engine.gpus and not any(t.key == GPU_RESOURCE for t in spec.scheduling.tolerations):
        tolerations.append(GPU_TOLERATION)
    return tolerations


def _probe(path: str, period: int, failures: int, timeout: int = 5) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": PORT_NAME},
        "periodSeconds": period,
        "failureThreshold": failures,
        "timeoutSeconds": timeout,
    }


def build_statefulset(body: Mapping[str, Any], spec: RerankerDeploymentSpec) -> dict[str, Any]:
    name = body["metadata"]["name"]
    tp = spec.engine.tensor_parallel_size
    mounts: list[dict[str, Any]] = [
        {"name": CACHE_VOLUME, "mountPath": CACHE_MOUNT},
        {"name": SHM_VOLUME, "mountPath": "/dev/shm"},
        {"name": TMP_VOLUME, "mountPath": "/tmp"},
    ]
    volumes: list[dict[str, Any]] = [
        {"name": SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": shm_size(tp)}},
        {"name": TMP_VOLUME, "emptyDir": {"sizeLimit": TMP_SIZE}},
    ]
    if spec.model.pvc is not None:
        mounts.append({"name": MODEL_PVC_VOLUME, "mountPath": MODEL_PVC_MOUNT, "readOnly": True})
        volumes.append({"name": MODEL_PVC_VOLUME,
                        "persistentVolumeClaim": {"claimName": spec.model.pvc.claim_name, "readOnly": True}})

    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": effective_image(spec.engine),
        "imagePullPolicy": "IfNotPresent",
        "command": engine_command(spec, model_path=model_path(spec)),
        "ports": [{"name": PORT_NAME, "containerPort": spec.engine.port, "protocol": "TCP"}],
        "env": container_env(spec),
        "resources": engine_resources(spec),
        "volumeMounts": mounts,
        "startupProbe": _probe(HEALTH_PATH, STARTUP_PERIOD_SECONDS,
                               math.ceil(startup_budget_seconds(spec) / STARTUP_PERIOD_SECONDS)),
        "readinessProbe": _probe(HEALTH_PATH, 5, 3),
        "livenessProbe": _probe(HEALTH_PATH, 15, 4, timeout=10),
        "lifecycle": {"preStop": {"sleep": {"seconds": PRESTOP_SLEEP_SECONDS}}},
        # Pod Security "restricted": non-root, no privilege escalation, no capabilities, the
        # runtime's seccomp profile; the image's filesystem read-only (HOME, caches and /tmp are volumes).
        "securityContext": restricted_container_context(ENGINE_UID, ENGINE_GID),
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    pod_spec: dict[str, Any] = {
        "serviceAccountName": engine_service_account_name(name),
        "automountServiceAccountToken": False,
        # fsGroup: the cache claim is writable by the engine's group; OnRootMismatch skips the
        # recursive chown of a large cache on every start.
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": ENGINE_UID,
            "runAsGroup": ENGINE_GID,
            "fsGroup": ENGINE_GID,
            "fsGroupChangePolicy": "OnRootMismatch",
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": volumes,
        "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
        "enableServiceLinks": False,  # thousands of Services would otherwise become env vars
    }
    scheduling = spec.scheduling
    if scheduling.node_selector:
        pod_spec["nodeSelector"] = dict(scheduling.node_selector)
    tolerations = engine_tolerations(spec)
    if tolerations:
        pod_spec["tolerations"] = tolerations
    if scheduling.runtime_class_name:
        pod_spec["runtimeClassName"] = scheduling.runtime_class_name
    if scheduling.affinity:
        pod_spec["affinity"] = scheduling.affinity.to_k8s()
    if scheduling.priority_class_name:
        pod_spec["priorityClassName"] = scheduling.priority_class_name

    template = pod_template(name, L.ENGINE, pod_spec, spec, scrape_annotations(spec.engine.port))

    claim_spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": spec.cache.size}},
    }
    if spec.cache.storage_class_name:
        claim_spec["storageClassName"] = spec.cache.storage_class_name

    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": L.child_metadata(body, L.engine_name(name), L.ENGINE),
        "spec": {
            "replicas": spec.replicas,
            "podManagementPolicy": "Parallel",
            "serviceName": L.headless_name(name),
            "selector": {"matchLabels": L.selector_labels(name, L.ENGINE)},
            "updateStrategy": {"type": "RollingUpdate"},
            # Caches go with the RerankerDeployment, but survive a scale-down (a later scale-up
            # finds the weights already there).
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete", "whenScaled": "Retain"},
            "template": template,
            "volumeClaimTemplates": [{
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": CACHE_VOLUME, "labels": L.labels(name, L.ENGINE)},
                "spec": claim_spec,
            }],
        },
    }
