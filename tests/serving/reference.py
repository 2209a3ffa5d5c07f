"""Reference Qwen3-Reranker scores computed with transformers, independently of vLLM.

Follows the model card's recipe: tokenize the formatted prompt, run the causal LM, take the
logits of the "no" and "yes" tokens at the last position, score = softmax(...)[yes]. Runs in
float32 on the CPU.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from rerank_operator.serving.prompt import format_pair


class ReferenceScorer:
    def __init__(self, model_path: str | Path):
        self.model_path = str(model_path)

    @cached_property
    def _model(self):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(self.model_path)
        model = AutoModelForCausalLM.from_pretrained(self.model_path, dtype=torch.float32).eval()
        return tokenizer, model

    def prompt_token_ids(self, prompt: str) -> list[int]:
        tokenizer, _ = self._model
        return tokenizer(prompt, add_special_tokens=False)["input_ids"]

    def score(self, query: str, document: str, instruction: str | None = None, *, default: str | None = None) -> float:
        import torch

        tokenizer, model = self._model
        ids = self.prompt_token_ids(format_pair(query, document, instruction, default=default))
        no_id, yes_id = tokenizer.convert_tokens_to_ids("no"), tokenizer.convert_tokens_to_ids("yes")
        with torch.inference_mode():
            logits = model(torch.tensor([ids])).logits[0, -1]
        pair = torch.stack([logits[no_id], logits[yes_id]]).float()
        return torch.softmax(pair, dim=0)[1].item()

    def scores(self, query: str, documents: list[str], instruction: str | None = None, *,
               default: str | None = None) -> list[float]:
        return [self.score(query, d, instruction, default=default) for d in documents]
