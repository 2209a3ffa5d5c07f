"""One table of RerankerDeployment specs, valid and invalid, shared by the unit tests (pydantic and
the CRD's OpenAPI schema via jsonschema) and the admission tests (the real API server).

``layer`` says which part of the CRD must refuse an invalid spec:

* ``schema``: the OpenAPI schema alone (types, enums, bounds, patterns, required) -- jsonschema
  refuses it too;
* ``cel``: a CEL rule (``x-kubernetes-validations``) -- jsonschema, which cannot run CEL, accepts it,
  which shows the rule is what stops it;
* ``server``: API-server-only schema semantics (list-map key uniqueness, strict unknown-field
  checks) that jsonschema does not model.

``field`` is the path the refusal must name (the API server's error and pydantic's both).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Invalid:
    id: str
    spec: dict[str, Any]
    field: str
    layer: str  # schema | cel | server


@dataclass(frozen=True)
class Valid:
    id: str
    spec: dict[str, Any]
    expect: dict[str, Any] = field(default_factory=dict)  # dotted path -> value after defaulting


INVALID: list[Invalid] = [
    # --- OpenAPI schema: enums, bounds, patterns, required ---
    Invalid("tp-not-power-of-two", {"engine": {"tensorParallelSize": 3}}, "spec.engine.tensorParallelSize", "schema"),
    Invalid("tp-too-large", {"engine": {"tensorParallelSize": 16}}, "spec.engine.tensorParallelSize", "schema"),
    Invalid("dtype-unknown", {"engine": {"dtype": "fp16"}}, "spec.engine.dtype", "schema"),
    Invalid("gpu-mem-zero", {"engine": {"gpuMemoryUtilization": 0}}, "spec.engine.gpuMemoryUtilization", "schema"),
    Invalid("gpu-mem-over-one", {"engine": {"gpuMemoryUtilization": 1.5}}, "spec.engine.gpuMemoryUtilization", "schema"),
    Invalid("max-model-len-tiny", {"engine": {"maxModelLen": 64}}, "spec.engine.maxModelLen", "schema"),
    Invalid("quantization-unknown", {"engine": {"quantization": "int4"}}, "spec.engine.quantization", "schema"),
    Invalid("engine-port-privileged", {"engine": {"port": 80}}, "spec.engine.port", "schema"),
    Invalid("device-unknown", {"engine": {"device": "tpu"}}, "spec.engine.device", "schema"),
    Invalid("cpu-kv-cache-zero", {"engine": {"device": "cpu", "cpuKVCacheGiB": 0}}, "spec.engine.cpuKVCacheGiB", "schema"),
    Invalid("replicas-negative", {"replicas": -1}, "spec.replicas", "schema"),
    Invalid("service-port-too-big", {"service": {"port": 70000}}, "spec.service.port", "schema"),
    Invalid("cache-size-not-quantity", {"cache": {"size": "lots"}}, "spec.cache.size", "schema"),
    Invalid("memory-limit-not-quantity", {"engine": {"resources": {"limits": {"memory": "4 GB"}}}},
            "spec.engine.resources.limits", "schema"),
    Invalid("model-name-not-hf-id", {"model": {"name": "not a model id!"}}, "spec.model.name", "schema"),
    Invalid("pvc-without-claim", {"model": {"pvc": {"path": "models/x"}}}, "spec.model.pvc.claimName", "schema"),
    Invalid("pvc-absolute-path", {"model": {"pvc": {"claimName": "models", "path": "/etc"}}},
            "spec.model.pvc.path", "schema"),
    Invalid("hf-secret-bad-name", {"model": {"hfTokenSecretRef": {"name": "HF_Token"}}},
            "spec.model.hfTokenSecretRef.name", "schema"),
    Invalid("min-replicas-zero", {"autoscaling": {"minReplicas": 0}}, "spec.autoscaling.minReplicas", "schema"),
    Invalid("tolerance-one", {"autoscaling": {"tolerance": 1}}, "spec.autoscaling.tolerance", "schema"),
    Invalid("scale-up-factor-below-one", {"autoscaling": {"maxScaleUpFactor": 0.5}},
            "spec.autoscaling.maxScaleUpFactor", "schema"),
    Invalid("scrape-interval-zero", {"autoscaling": {"scrapeIntervalSeconds": 0}},
            "spec.autoscaling.scrapeIntervalSeconds", "schema"),
    Invalid("toleration-effect-unknown", {"scheduling": {"tolerations": [{"key": "k", "effect": "Sometimes"}]}},
            "spec.scheduling.tolerations[0].effect", "schema"),
    Invalid("ingress-host-invalid", {"ui": {"ingress": {"enabled": True, "host": "Bad_Host"}}},
            "spec.ui.ingress.host", "schema"),
    Invalid("ingress-tls-without-secret", {"ui": {"ingress": {"enabled": True, "host": "a.example.com", "tls": {}}}},
            "spec.ui.ingress.tls.secretName", "schema"),
    Invalid("ui-auth-without-name", {"ui": {"authSecretRef": {}}}, "spec.ui.authSecretRef.name", "schema"),
    Invalid("pdb-max-unavailable-word", {"disruptionBudget": {"maxUnavailable": "half"}},
            "spec.disruptionBudget.maxUnavailable", "schema"),
    Invalid("replicas-string", {"replicas": "two"}, "spec.replicas", "schema"),
    # --- CEL rules (cross-field) ---
    Invalid("autoscaling-min-above-max", {"autoscaling": {"minReplicas": 5, "maxReplicas": 2}},
            "spec.autoscaling.minReplicas", "cel"),
    Invalid("autoscaling-min-above-default-max", {"autoscaling": {"enabled": True, "minReplicas": 6}},
            "spec.autoscaling.minReplicas", "cel"),
    Invalid("ingress-enabled-without-host", {"ui": {"ingress": {"enabled": True}}}, "spec.ui.ingress.host", "cel"),
    Invalid("ingress-without-ui", {"ui": {"enabled": False, "ingress": {"enabled": True, "host": "a.example.com"}}},
            "spec.ui.ingress.enabled", "cel"),
    Invalid("pvc-with-revision", {"model": {"revision": "main", "pvc": {"claimName": "models"}}},
            "spec.model.revision", "cel"),
    Invalid("pvc-path-escapes", {"model": {"pvc": {"claimName": "models", "path": "a/../../etc"}}},
            "spec.model.pvc.path", "cel"),
    Invalid("batched-tokens-below-model-len", {"engine": {"maxNumBatchedTokens": 1024}},
            "spec.engine.maxNumBatchedTokens", "cel"),
    Invalid("batched-tokens-below-num-seqs",
            {"engine": {"maxModelLen": 512, "maxNumSeqs": 1024, "maxNumBatchedTokens": 768}},
            "spec.engine.maxNumBatchedTokens", "cel"),
    Invalid("cpu-with-tp-2", {"engine": {"device": "cpu", "tensorParallelSize": 2}},
            "spec.engine.tensorParallelSize", "cel"),
    Invalid("awq-with-float32", {"engine": {"quantization": "awq", "dtype": "float32"}}, "spec.engine.dtype", "cel"),
    Invalid("extra-args-repeat-tp", {"engine": {"extraArgs": ["--enable-prefix-caching", "--tensor-parallel-size=2"]}},
            "spec.engine.extraArgs", "cel"),
    Invalid("extra-args-repeat-port", {"engine": {"extraArgs": ["--port", "9000"]}}, "spec.engine.extraArgs", "cel"),
    Invalid("env-sets-hf-token", {"engine": {"env": [{"name": "HF_TOKEN", "value": "x"}]}}, "spec.engine.env", "cel"),
    Invalid("gpu-in-limits", {"engine": {"resources": {"limits": {"nvidia.com/gpu": 2}}}},
            "spec.engine.resources.limits", "cel"),
    Invalid("gpu-in-requests", {"engine": {"resources": {"requests": {"nvidia.com/gpu": "1"}}}},
            "spec.engine.resources.requests", "cel"),
    Invalid("toleration-exists-with-value",
            {"scheduling": {"tolerations": [{"key": "k", "operator": "Exists", "value": "v"}]}},
            "spec.scheduling.tolerations[0].value", "cel"),
    Invalid("toleration-seconds-without-noexecute",
            {"scheduling": {"tolerations": [{"key": "k", "effect": "NoSchedule", "tolerationSeconds": 30}]}},
            "spec.scheduling.tolerations[0].tolerationSeconds", "cel"),
    Invalid("pdb-max-unavailable-zero", {"disruptionBudget": {"maxUnavailable": 0}},
            "spec.disruptionBudget.maxUnavailable", "cel"),
    # --- API-server-only semantics ---
    Invalid("env-duplicate-name", {"engine": {"env": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]}},
            "spec.engine.env", "server"),
    Invalid("unknown-field", {"engine": {"gpus": 2}}, "spec.engine.gpus", "server"),
    # --- spec.gateway and model aliases ---
    Invalid("gateway-cache-backend-unknown", {"gateway": {"cache": {"backend": "memcached"}}},
            "spec.gateway.cache.backend", "schema"),
    Invalid("gateway-redis-without-server", {"gateway": {"cache": {"backend": "redis"}}}, "spec.gateway.cache.redis",
            "cel"),
    Invalid("gateway-overlap-not-below-window", {"gateway": {"chunking": {"windowTokens": 64, "overlapTokens": 64}}},
            "spec.gateway.chunking.overlapTokens", "cel"),
    Invalid("model-alias-repeated", {"model": {"aliases": ["reranker", "reranker"]}}, "spec.model.aliases", "server"),
]


VALID: list[Valid] = [
    Valid("gateway-redis-cache-and-chunking", {
        "model": {"aliases": ["reranker"]},
        "gateway": {"cache": {"backend": "redis", "redis": {"urlSecretRef": {"name": "redis", "key": "url"}}},
                    "chunking": {"enabled": True, "windowTokens": 512, "overlapTokens": 64, "aggregate": "meanTopK"}},
    }, {"gateway.enabled": True, "gateway.cache.ttlSeconds": 86400, "gateway.chunking.topK": 3,
        "gateway.holdSeconds": 300}),
    Valid("empty", {}, {
        "model.name": "Qwen/Qwen3-Reranker-0.6B",
        "engine.tensorParallelSize": 1,
        "engine.dtype": "auto",
        "engine.maxModelLen": 8192,
        "engine.gpuMemoryUtilization": 0.9,
        "engine.port": 8000,
        "engine.device": "gpu",
        "engine.cpuKVCacheGiB": 4,
        "replicas": 1,
        "autoscaling.enabled": False,
        "autoscaling.maxReplicas": 4,
        "cache.size": "50Gi",
        "service.port": 8000,
        "ui.enabled": True,
        "ui.ingress.enabled": False,
        "disruptionBudget.maxUnavailable": 1,
    }),
    Valid("8b-on-two-gpus", {
        "model": {"name": "Qwen/Qwen3-Reranker-8B", "revision": "5fa94080caafeaa45a15d11f969d7978e087a3db",
                  "servedModelName": "reranker", "hfTokenSecretRef": {"name": "hf-token"}},
        "engine": {"tensorParallelSize": 2, "dtype": "bfloat16", "maxModelLen": 32768, "gpuMemoryUtilization": 0.85,
                   "maxNumSeqs": 128, "maxNumBatchedTokens": 32768, "extraArgs": ["--enable-prefix-caching"],
                   "env": [{"name": "VLLM_LOGGING_LEVEL", "value": "DEBUG"},
                           {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
                   "resources": {"requests": {"cpu": "8", "memory": "64Gi"}, "limits": {"memory": "96Gi"}}},
        "instruction": "Given a legal question, retrieve the clauses that answer it",
        "replicas": 3,
        "autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 8, "targetQueueDepthPerReplica": 16,
                        "maxScaleUpStep": 2, "maxScaleUpFactor": 2.5},
        "scheduling": {"nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
                       "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                       "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                           {"weight": 100, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                                                               "labelSelector": {"matchLabels": {"a": "b"}}}}]}},
                       "priorityClassName": "inference-high"},
        "cache": {"size": "100Gi", "storageClassName": "fast-ssd"},
        "service": {"port": 80},
        "ui": {"replicas": 2, "authSecretRef": {"name": "ui-auth"}, "maxDocuments": 200,
               "ingress": {"enabled": True, "className": "nginx", "host": "rerank.example.com",
                           "tls": {"secretName": "rerank-tls"},
                           "annotations": {"cert-manager.io/cluster-issuer": "letsencrypt"}}},
        "disruptionBudget": {"maxUnavailable": "25%"},
    }, {
        "engine.tensorParallelSize": 2,
        "model.hfTokenSecretRef.key": "token",
        "ui.image": "ghcr.io/rerank-operator/rerank-ui:0.1.0",
        "autoscaling.scrapeIntervalSeconds": 5,
    }),
    Valid("air-gapped-pvc", {
        "model": {"name": "Qwen/Qwen3-Reranker-4B", "pvc": {"claimName": "models", "path": "qwen/Qwen3-Reranker-4B"}},
        "engine": {"quantization": "fp8", "dtype": "half"},
        "ui": {"enabled": False},
        "disruptionBudget": {"enabled": False},
    }, {"model.pvc.path": "qwen/Qwen3-Reranker-4B", "ui.ingress.enabled": False}),
    Valid("bitsandbytes-float32-and-zero-replicas", {
        "engine": {"quantization": "bitsandbytes", "dtype": "float32"},
        "replicas": 0,
        "autoscaling": {"minReplicas": 4, "maxReplicas": 4},
    }, {"replicas": 0}),
    Valid("cpu-engine", {
        "engine": {"device": "cpu", "dtype": "float32", "cpuKVCacheGiB": 8,
                   "resources": {"requests": {"cpu": "4", "memory": "12Gi"}, "limits": {"memory": "16Gi"}}},
    }, {"engine.device": "cpu", "engine.tensorParallelSize": 1, "engine.cpuKVCacheGiB": 8}),
    Valid("integer-quantities", {
        "engine": {"resources": {"requests": {"cpu": 4}}},
        "cache": {"size": "1.5Gi"},
        "disruptionBudget": {"maxUnavailable": 2},
    }, {"engine.resources.requests.cpu": 4}),
]


def leaf_paths(value: Any, path: str = "") -> set[str]:
    """Dotted paths of every leaf of a nested dict (``.spec.engine.dtype`` ...), to compare defaults field by field."""
    if isinstance(value, dict) and value:
        return set().union(*(leaf_paths(v, f"{path}.{k}") for k, v in value.items()))
    return {path}


def get_path(obj: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        obj = obj[part]
    return obj
