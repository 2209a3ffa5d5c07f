"""One table of RerankerDeployment specs, valid and invalid, shared by the unit tests (pydantic and
the CRD's OpenAPI schema via jsonschema) and the admission tests (the real API server).

``layer`` says which part of the CRD must refuse an invalid spec:

* ``schema``: the OpenAPI schema alone (types, enums, bounds, patterns, required) -- jsonschema
  refuses it too;
* ``cel``: a CEL rule (``x-kubernetes-validations``) -- jsonschema, which cannot run CEL, accepts it,
  which shows the rule is what stops it;
* ``server``: API-server-only schema semantics (list-map key uniqueness, strict unknown-field
  checks) that jsonschema does not model;
* ``decoding``: the schema refuses it (jsonschema too), but the API server's strict decoding speaks
  first, with "unknown field" (a map where a list of objects belongs).

``field`` is the path the refusal must name (the API server's error and pydantic's both).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any



@dataclass(frozen=True)
class Invalid:
    id: str
    spec: dict[str, Any]
    field: str
    layer: str  # schema | cel | server | decoding


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
    Invalid("min-replicas-negative", {"autoscaling": {"minReplicas": -1}}, "spec.autoscaling.minReplicas", "schema"),
    Invalid("scale-to-zero-without-gateway", {"autoscaling": {"enabled": True, "minReplicas": 0},
                                              "gateway": {"enabled": False}}, "spec.autoscaling.minReplicas", "cel"),
    Invalid("tolerance-one", {"autoscaling": {"tolerance": 1}}, "spec.autoscaling.tolerance", "schema"),
    Invalid("scale-up-factor-below-one", {"autoscaling": {"maxScaleUpFactor": 0.5}},
            "spec.autoscaling.maxScaleUpFactor", "schema"),
    Invalid("forecast-negative", {"autoscaling": {"forecastSeconds": -1}},
            "spec.autoscaling.forecastSeconds", "schema"),
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
    Invalid("runtime-class-not-a-name", {"scheduling": {"runtimeClassName": "NVIDIA runtime"}},
            "spec.scheduling.runtimeClassName", "schema"),
    Invalid("startup-timeout-under-a-minute", {"engine": {"startupTimeoutSeconds": 30}},
            "spec.engine.startupTimeoutSeconds", "schema"),
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
    # --- refused at admission what used to fail only one level down (children, pods, vLLM) ---
    Invalid("revision-is-a-flag", {"model": {"revision": "--trust-remote-code"}}, "spec.model.revision", "schema"),
    Invalid("revision-dot-dot", {"model": {"revision": "../../x"}}, "spec.model.revision", "schema"),
    Invalid("revision-double-slash", {"model": {"revision": "a//b"}}, "spec.model.revision", "schema"),
    Invalid("revision-trailing-dot", {"model": {"revision": "v1."}}, "spec.model.revision", "schema"),
    Invalid("revision-component-dot", {"model": {"revision": "refs/.hidden"}}, "spec.model.revision", "schema"),
    Invalid("revision-space", {"model": {"revision": "main branch"}}, "spec.model.revision", "schema"),
    Invalid("revision-lock", {"model": {"revision": "refs/heads/main.lock"}}, "spec.model.revision", "cel"),
    Invalid("env-value-and-value-from",
            {"engine": {"env": [{"name": "A", "value": "1", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]}},
            "spec.engine.env[0].valueFrom", "cel"),
    Invalid("env-value-from-empty", {"engine": {"env": [{"name": "A", "valueFrom": {}}]}},
            "spec.engine.env[0].valueFrom", "cel"),
    Invalid("env-value-from-two-sources",
            {"engine": {"env": [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"},
                                                            "secretKeyRef": {"name": "s", "key": "k"}}}]}},
            "spec.engine.env[0].valueFrom", "cel"),
    Invalid("env-field-path-unknown", {"engine": {"env": [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "spec.foo"}}}]}},
            "spec.engine.env[0].valueFrom.fieldRef.fieldPath", "schema"),
    Invalid("env-secret-without-key", {"engine": {"env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s"}}}]}},
            "spec.engine.env[0].valueFrom.secretKeyRef.key", "schema"),
    Invalid("env-resource-field-unknown",
            {"engine": {"env": [{"name": "A", "valueFrom": {"resourceFieldRef": {"resource": "limits.gpu"}}}]}},
            "spec.engine.env[0].valueFrom.resourceFieldRef.resource", "schema"),
    Invalid("env-name-with-equals", {"engine": {"env": [{"name": "A=B", "value": "1"}]}},
            "spec.engine.env[0].name", "schema"),
    Invalid("cpu-request-negative", {"engine": {"resources": {"requests": {"cpu": "-1"}}}},
            "spec.engine.resources.requests", "schema"),
    Invalid("memory-limit-negative", {"engine": {"resources": {"limits": {"memory": "-4Gi"}}}},
            "spec.engine.resources.limits", "schema"),
    Invalid("request-above-limit", {"engine": {"resources": {"requests": {"memory": "64Gi"}, "limits": {"memory": "32Gi"}}}},
            "spec.engine.resources.requests", "cel"),
    Invalid("cpu-request-above-limit", {"engine": {"resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1500m"}}}},
            "spec.engine.resources.requests", "cel"),
    Invalid("resource-name-invalid", {"engine": {"resources": {"requests": {"gpus": "1"}}}},
            "spec.engine.resources.requests", "cel"),
    Invalid("resource-name-with-space", {"engine": {"resources": {"limits": {"my memory": "1Gi"}}}},
            "spec.engine.resources.limits", "cel"),
    Invalid("extended-resource-without-limit", {"engine": {"resources": {"requests": {"example.com/fpga": "1"}}}},
            "spec.engine.resources.limits", "cel"),
    Invalid("extended-resource-fraction", {"engine": {"resources": {"requests": {"example.com/dev": "500m"},
                                                                  "limits": {"example.com/dev": "500m"}}}},
            "spec.engine.resources.limits", "cel"),
    Invalid("env-resource-field-other-container",
            {"engine": {"env": [{"name": "A", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu",
                                                                                 "containerName": "other"}}}]}},
            "spec.engine.env[0].valueFrom.resourceFieldRef.containerName", "schema"),
    Invalid("affinity-operator-unknown",
            {"scheduling": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "gpu", "operator": "Bogus"}]}]}}}}},
            "spec.scheduling.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0]"
            ".matchExpressions[0].operator", "schema"),
    Invalid("affinity-in-without-values",
            {"scheduling": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "gpu", "operator": "In"}]}]}}}}},
            "spec.scheduling.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0]"
            ".matchExpressions[0].values", "cel"),
    Invalid("affinity-without-terms",
            {"scheduling": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": []}}}}},
            "spec.scheduling.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms",
            "schema"),
    Invalid("anti-affinity-without-topology-key",
            {"scheduling": {"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"a": "b"}}}]}}}},
            "spec.scheduling.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey",
            "schema"),
    Invalid("affinity-weight-zero",
            {"scheduling": {"affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 0, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname"}}]}}}},
            "spec.scheduling.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight",
            "schema"),
    Invalid("affinity-gt-not-integer",
            {"scheduling": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "gpus", "operator": "Gt", "values": ["x"]}]}]}}}}},
            "spec.scheduling.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0]"
            ".matchExpressions[0].values", "cel"),
    Invalid("cpu-as-float", {"engine": {"resources": {"requests": {"cpu": 0.5}}}},
            "spec.engine.resources.requests.cpu", "schema"),
    Invalid("node-selector-key-invalid", {"scheduling": {"nodeSelector": {"gpu type": "h100"}}},
            "spec.scheduling.nodeSelector", "cel"),
    Invalid("node-selector-key-prefix-invalid", {"scheduling": {"nodeSelector": {"Example.com/gpu": "h100"}}},
            "spec.scheduling.nodeSelector", "cel"),
    Invalid("node-selector-value-invalid", {"scheduling": {"nodeSelector": {"gpu": "H100 80GB"}}},
            "spec.scheduling.nodeSelector.gpu", "schema"),
    Invalid("toleration-key-invalid", {"scheduling": {"tolerations": [{"key": "bad key", "operator": "Exists"}]}},
            "spec.scheduling.tolerations[0].key", "cel"),
    Invalid("toleration-value-without-key", {"scheduling": {"tolerations": [{"value": "v"}]}},
            "spec.scheduling.tolerations[0].operator", "cel"),
    Invalid("toleration-value-invalid", {"scheduling": {"tolerations": [{"key": "k", "value": "a b"}]}},
            "spec.scheduling.tolerations[0].value", "schema"),
    Invalid("cache-size-zero", {"cache": {"size": "0"}}, "spec.cache.size", "cel"),
    Invalid("cache-size-zero-gi", {"cache": {"size": "0Gi"}}, "spec.cache.size", "cel"),
    Invalid("cache-size-zero-int", {"cache": {"size": 0}}, "spec.cache.size", "cel"),
    Invalid("cache-size-negative", {"cache": {"size": "-5Gi"}}, "spec.cache.size", "schema"),
    Invalid("ingress-host-ip", {"ui": {"ingress": {"enabled": True, "host": "10.0.0.1"}}}, "spec.ui.ingress.host", "cel"),
    Invalid("ingress-annotation-key-invalid",
            {"ui": {"ingress": {"annotations": {"nginx.ingress.kubernetes.io/ bad": "x"}}}},
            "spec.ui.ingress.annotations", "cel"),
    Invalid("ingress-annotation-key-empty-name", {"ui": {"ingress": {"annotations": {"example.com/": "x"}}}},
            "spec.ui.ingress.annotations", "cel"),
    Invalid("pdb-over-100-percent", {"disruptionBudget": {"maxUnavailable": "150%"}},
            "spec.disruptionBudget.maxUnavailable", "schema"),
    Invalid("pdb-zero-percent", {"disruptionBudget": {"maxUnavailable": "0%"}},
            "spec.disruptionBudget.maxUnavailable", "schema"),
    Invalid("engine-image-whitespace", {"engine": {"image": "vllm/vllm-openai: v0.32.0"}}, "spec.engine.image", "schema"),
    Invalid("engine-image-uppercase-path", {"engine": {"image": "vllm/VLLM-openai:v0.32.0"}}, "spec.engine.image", "schema"),
    Invalid("ui-image-trailing-space", {"ui": {"image": "ghcr.io/rerank-operator/rerank-ui:0.1.0 "}}, "spec.ui.image", "schema"),
    Invalid("ui-image-bad-digest", {"ui": {"image": "ghcr.io/x/ui@sha256:abc"}}, "spec.ui.image", "schema"),
    Invalid("instruction-too-long", {"instruction": "é" * 2049}, "spec.instruction", "cel"),
    # --- pydantic strict types agree with the schema ---
    Invalid("replicas-numeric-string", {"replicas": "3"}, "spec.replicas", "schema"),
    Invalid("ui-enabled-yes", {"ui": {"enabled": "yes"}}, "spec.ui.enabled", "schema"),
    Invalid("autoscaling-enabled-string", {"autoscaling": {"enabled": "true"}}, "spec.autoscaling.enabled", "schema"),
    Invalid("tp-string", {"engine": {"tensorParallelSize": "2"}}, "spec.engine.tensorParallelSize", "schema"),
    Invalid("max-model-len-float", {"engine": {"maxModelLen": 1024.5}}, "spec.engine.maxModelLen", "schema"),
    Invalid("pdb-max-unavailable-float", {"disruptionBudget": {"maxUnavailable": 1.5}},
            "spec.disruptionBudget.maxUnavailable", "schema"),
    # A map in place of a list of objects: the API server's strict decoding reads its keys as unknown
    # fields of the list ("unknown field spec.engine.env.A") before its schema would say "must be of type array".
    Invalid("env-as-map", {"engine": {"env": {"A": "1"}}}, "spec.engine.env", "decoding"),
    Invalid("tolerations-as-object", {"scheduling": {"tolerations": {"key": "k"}}}, "spec.scheduling.tolerations",
            "decoding"),
    Invalid("extra-args-as-string", {"engine": {"extraArgs": "--enable-prefix-caching"}}, "spec.engine.extraArgs", "schema"),
    # --- API-server-only semantics ---
    Invalid("env-duplicate-name", {"engine": {"env": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]}},
            "spec.engine.env", "server"),
    Invalid("unknown-field", {"engine": {"gpus": 2}}, "spec.engine.gpus", "server"),
    Invalid("pull-secret-duplicate-name", {"imagePullSecrets": [{"name": "ghcr"}, {"name": "ghcr"}]},
            "spec.imagePullSecrets", "server"),
    Invalid("pull-secret-bad-name", {"imagePullSecrets": [{"name": "Registry_Creds"}]},
            "spec.imagePullSecrets[0].name", "schema"),
    Invalid("pull-secret-as-string", {"imagePullSecrets": "ghcr"}, "spec.imagePullSecrets", "schema"),
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
    # vLLM's CPU build runs tensor parallelism as worker processes (tests/serving: same scores as TP 1).
    Valid("cpu-with-tp-2", {"engine": {"device": "cpu", "tensorParallelSize": 2}},
          {"engine.device": "cpu", "engine.tensorParallelSize": 2}),
    Valid("gpu-pool-with-its-runtime-class", {"scheduling": {"runtimeClassName": "nvidia"},
                                              "engine": {"startupTimeoutSeconds": 10800}},
          {"scheduling.runtimeClassName": "nvidia", "engine.startupTimeoutSeconds": 10800}),
    Valid("scale-to-zero-behind-the-gateway", {"autoscaling": {"enabled": True, "minReplicas": 0}},
          {"autoscaling.minReplicas": 0, "gateway.enabled": True}),
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
                        "maxScaleUpStep": 2, "maxScaleUpFactor": 2.5, "forecastSeconds": 120},
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
    Valid("every-owned-flag-neighbour", {
        "engine": {"extraArgs": ["--enable-prefix-caching", "--max-logprobs=0", "--model-impl", "vllm",
                                 "--config-format", "hf", "--enable_chunked_prefill", "--max-num-partial-prefills=1",
                                 "-O3", "--kv-cache-dtype", "auto", "--compilation-config.level=3"]},
    }, {"engine.extraArgs": ["--enable-prefix-caching", "--max-logprobs=0", "--model-impl", "vllm",
                             "--config-format", "hf", "--enable_chunked_prefill", "--max-num-partial-prefills=1",
                             "-O3", "--kv-cache-dtype", "auto", "--compilation-config.level=3"]}),
    Valid("labels-tolerations-env-sources", {
        "model": {"revision": "refs/pr/12"},
        "engine": {"env": [{"name": "MY_NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                           {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
                           {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k", "optional": True}}},
                           {"name": "EMPTY", "value": ""}],
                   "resources": {"requests": {"cpu": "500m", "memory": "2Gi", "example.com/fpga": 1},
                                 "limits": {"memory": "2Gi", "example.com/fpga": "1"}},
                   "image": "registry.example.com:5000/team/vllm-openai:v0.32.0@sha256:"
                            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
        "scheduling": {"nodeSelector": {"kubernetes.io/arch": "amd64", "pool": ""},
                       "tolerations": [{"operator": "Exists"}, {"key": "example.com/dedicated", "value": "rerank",
                                                              "effect": "NoExecute", "tolerationSeconds": 60}]},
        "ui": {"ingress": {"enabled": True, "host": "*.example.com", "annotations": {"a": "b", "x.io/y_z": "1"}}},
        "disruptionBudget": {"maxUnavailable": "100%"},
        "cache": {"size": "1"},
    }, {"disruptionBudget.maxUnavailable": "100%"}),
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


# --- generated: every flag the operator owns, in the spellings vLLM's parser accepts --------------
# (tests/unit/api/test_api_engine_flags.py checks each one against vLLM's real parser: it reaches the
# owned flag there, or vLLM refuses the command line.)

# A value each owned flag's parser accepts and that differs from its default.
OWNED_FLAG_VALUES: dict[str, str | None] = {
    "--tensor-parallel-size": "4", "--port": "9000", "--max-model-len": "1024", "--gpu-memory-utilization": "0.5",
    "--max-num-seqs": "8", "--max-num-batched-tokens": "4096", "--dtype": "half", "--quantization": "fp8",
    "--runner": "generate", "--convert": "embed", "--chat-template-content-format": "openai",
    "--load-format": "dummy", "--hf-overrides": '{"is_original_qwen3_reranker": false}',
    "--pooler-config": '{"activation": false}', "--default-chat-template-kwargs": '{"enable_thinking": true}',
    "--quantization-config": '{"weight_bits": 4}', "--config": "/etc/vllm/config.yaml",
    # switches: no value
    "--trust-request-chat-template": None, "--no-trust-request-chat-template": None,
    "--skip-tokenizer-init": None, "--no-skip-tokenizer-init": None,
}
# Flags whose value is JSON: vLLM also takes a dotted sub-key (--hf-overrides.key=value).
JSON_FLAGS = ("--hf-overrides", "--pooler-config", "--default-chat-template-kwargs", "--quantization-config")


def owned_flag_spellings() -> list[tuple[str, str, list[str]]]:
    """(id, owned flag, extraArgs) for every owned flag in every spelling kind vLLM accepts:
    ``--flag value``, ``--flag=value``, ``_`` for ``-``, an abbreviation (one character short),
    a dotted sub-key (JSON-valued flags), and the short aliases."""
    from rerank_operator.api.engine_flags import OWNED_LONG_FLAGS

    out: list[tuple[str, str, list[str]]] = []
    for flag in OWNED_LONG_FLAGS:
        value = OWNED_FLAG_VALUES.get(flag, "x")
        tail = [] if value is None else [value]
        name = flag[2:]
        out.append((f"{name}-exact", flag, [flag, *tail]))
        if value is not None:
            out.append((f"{name}-equals", flag, [f"{flag}={value}"]))
        if "-" in name:
            out.append((f"{name}-underscores", flag, ["--" + name.replace("-", "_"), *tail]))
        out.append((f"{name}-abbreviated", flag, [flag[:-1], *tail]))
        if flag in JSON_FLAGS:
            out.append((f"{name}-dotted", flag, [f"{flag}.some_key=1"]))
            out.append((f"{name}-dotted-underscores", flag, ["--" + name.replace("-", "_") + ".some_key", "1"]))
    out += [
        ("tp-short", "--tensor-parallel-size", ["-tp", "4"]),
        ("tp-short-equals", "--tensor-parallel-size", ["-tp=4"]),
        ("tp-short-abbreviated", "--tensor-parallel-size", ["-t", "4"]),
        ("q-short", "--quantization", ["-q", "fp8"]),
        ("q-short-attached", "--quantization", ["-qfp8"]),
        ("q-short-equals", "--quantization", ["-q=fp8"]),
    ]
    return out


INVALID += [
    Invalid(f"extra-args-{case_id}", {"engine": {"extraArgs": ["--enable-prefix-caching", *args]}},
            "spec.engine.extraArgs", "cel")
    for case_id, _, args in owned_flag_spellings()
]


# --- generated from the CRD's schema: every list of objects and every free-text string ------------
# A misspelt field in a list item must be refused (the API server's strict decoding names it), and a
# string must not carry a NUL (environment variables and command lines, where it ends up, cannot).

def _minimal(schema: dict[str, Any]) -> Any:
    """A value the OpenAPI schema accepts, with only the required fields."""
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        return {name: _minimal(schema["properties"][name]) for name in schema.get("required", [])}
    if kind == "array":
        return [_minimal(schema["items"]) for _ in range(schema.get("minItems", 0))]
    if kind == "integer":
        return max(schema.get("minimum", 1), 1)
    if kind == "boolean":
        return False
    if kind == "string":
        for candidate in ("a", "a.example.com", "1"):
            if "pattern" not in schema or re.search(schema["pattern"], candidate):
                return candidate
    raise ValueError(f"no minimal value for {schema}")


def _placed(schema: dict[str, Any], path: tuple[str | int, ...], leaf: Any) -> Any:
    """``leaf`` at ``path`` (names, 0 for a list's first item, "x" for a map's key) inside minimal objects."""
    if not path:
        return leaf
    head, rest = path[0], path[1:]
    if schema.get("type") == "array":
        return [_placed(schema["items"], rest, leaf)]
    child = schema["properties"][head] if head in (schema.get("properties") or {}) else schema["additionalProperties"]
    return {**_minimal(schema), head: _placed(child, rest, leaf)}


def _schema_nodes(schema: dict[str, Any], path: tuple[str | int, ...] = ()):
    yield path, schema
    for name, child in (schema.get("properties") or {}).items():
        yield from _schema_nodes(child, (*path, name))
    if isinstance(schema.get("items"), dict):
        yield from _schema_nodes(schema["items"], (*path, 0))
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _schema_nodes(schema["additionalProperties"], (*path, "x"))


def _dotted(path: tuple[str | int, ...]) -> str:
    return "spec" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


def _slug(path: tuple[str | int, ...]) -> str:
    # Case ids also name the objects the admission tests try to create (a DNS-1035 label).
    return re.sub(r"[^a-z0-9]+", "-", ".".join(str(p) for p in path).lower()).strip("-")


def schema_generated_cases() -> list[Invalid]:
    from rerank_operator.api.crd import NO_NUL_PATTERN, spec_schema

    schema = spec_schema()
    cases: list[Invalid] = []
    for path, node in _schema_nodes(schema):
        if node.get("type") == "array" and node["items"].get("type") == "object" and node["items"].get("properties"):
            item = {**_minimal(node["items"]), "notAField": "x"}
            cases.append(Invalid(f"typo-in-{_slug(path)}", _placed(schema, path, [item]),
                                 f"{_dotted(path)}[0].notAField", "server"))
        if node.get("pattern") == NO_NUL_PATTERN:
            # In a list of strings or a map, pydantic names the list or map.
            owner = path[:-1] if path[-1] == 0 or path[-1] == "x" else path
            cases.append(Invalid(f"nul-in-{_slug(path)}", _placed(schema, path, "a\x00b"), _dotted(owner), "schema"))
    return cases


INVALID += schema_generated_cases()
