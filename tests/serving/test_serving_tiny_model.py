"""The locally built tiny Qwen3 reranker: the tokens the reranker prompt needs, a shape vLLM's CPU
backend serves, and deterministic weights."""

from __future__ import annotations

import json

import pytest

from rerank_operator.serving.prompt import format_pair
from rerank_operator.serving.tiny_model import SPECIAL_TOKENS, build_tiny_reranker, default_cache_dir


@pytest.fixture(scope="module")
def model_dir():
    return build_tiny_reranker(default_cache_dir())


def test_prompt_tokens_are_single_tokens(model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    for token in [*SPECIAL_TOKENS, "yes", "no"]:
        ids = tok(token, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1 and tok.convert_ids_to_tokens(ids) == [token], token
    # No BOS/EOS added around a prompt: vLLM tokenizes the rendered prompt with special tokens on.
    prompt = format_pair("q", "d")
    assert tok(prompt)["input_ids"] == tok(prompt, add_special_tokens=False)["input_ids"]
    assert tok.decode(tok(prompt)["input_ids"]) == prompt
    assert tok.decode(tok("中文 code() 😀")["input_ids"]) == "中文 code() 😀"


def test_architecture_is_a_qwen3_causal_lm_that_vllm_cpu_attention_accepts(model_dir):
    config = json.loads((model_dir / "config.json").read_text())
    assert config["architectures"] == ["Qwen3ForCausalLM"] and config["model_type"] == "qwen3"
    assert config["head_dim"] == 64
    # Room for the operator's default --max-model-len.
    assert config["max_position_embeddings"] >= 8192


def test_rebuilding_gives_identical_weights_and_tokenizer(model_dir, tmp_path):
    again = build_tiny_reranker(tmp_path / "again")
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert (again / name).read_bytes() == (model_dir / name).read_bytes(), name


def test_a_complete_build_is_reused(model_dir):
    before = (model_dir / "model.safetensors").stat().st_mtime_ns
    assert build_tiny_reranker(model_dir) == model_dir
    assert (model_dir / "model.safetensors").stat().st_mtime_ns == before
