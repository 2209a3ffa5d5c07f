"""A tiny, random-weight Qwen3 reranker built locally, for tests and local mode.

The real Qwen3-Reranker is a ``Qwen3ForCausalLM`` whose "yes"/"no" logits make the score; vLLM
serves it as a sequence classifier via ``--hf-overrides``. This builds the same architecture at
toy size (2 layers, hidden 128, head_dim 64 -- vLLM's CPU attention needs 64), with a byte-level
BPE tokenizer trained on the spot that has every special token the reranker prompt uses and
single tokens for "yes" and "no". Nothing is downloaded. The result is deterministic (seeded),
so it can be cached by :func:`builder_fingerprint`.

Needs ``torch``, ``transformers`` and ``tokenizers`` (the engine image and the test environment
have them; the operator image does not, hence the local imports).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from .prompt import DEFAULT_INSTRUCTION

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]
VOCAB_SIZE = 2048
SEED = 20251124

# Multilingual, code-bearing training text: enough for BPE to learn useful merges for the
# English, Chinese and code inputs the tests score, and to make "yes"/"no" whole tokens.
_CORPUS = [
    DEFAULT_INSTRUCTION,
    "Judge whether the Document meets the requirements based on the Query and the Instruct provided.",
    'Note that the answer can only be "yes" or "no".',
    "<Instruct>: <Query>: <Document>: system user assistant",
    "The capital of France is Paris. Berlin is the capital of Germany.",
    "Kubernetes schedules pods onto nodes; a StatefulSet keeps stable network identities.",
    "vLLM serves large language models with paged attention and continuous batching.",
    "A reranker scores each document against the query and sorts them by relevance.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "The quick brown fox jumps over the lazy dog.",
    "def add(a, b):\n    return a + b\n",
    "for i in range(10):\n    print(i * i)\n",
    "import numpy as np\nx = np.zeros((3, 3))\n",
    "SELECT name, age FROM users WHERE age > 30 ORDER BY name;",
    "function fib(n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }",
    "中国的首都是北京。上海是中国最大的城市。",
    "机器学习是人工智能的一个分支，重排序模型用于搜索。",
    "今天天气很好，我们去公园散步吧。",
    "请判断文档是否满足查询的要求。",
]
_ANSWERS = ["yes", "no", "Yes", "No"]


def builder_fingerprint() -> str:
    """A short hash of this builder and the library versions it depends on (a cache key)."""
    import tokenizers
    import torch
    import transformers

    h = hashlib.sha256(Path(__file__).read_bytes())
    h.update(DEFAULT_INSTRUCTION.encode())  # part of the training corpus, written in the prompt module
    h.update(f"{torch.__version__}|{transformers.__version__}|{tokenizers.__version__}".encode())
    return h.hexdigest()[:16]


def _train_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # Lines that are just "yes"/"no" (no leading space) make those exact tokens frequent merges.
    lines = _CORPUS * 20 + [a for a in _ANSWERS for _ in range(200)]
    tok.train_from_iterator(lines, trainer=trainer)
    for word in ("yes", "no"):
        if tok.token_to_id(word) is None:
            raise RuntimeError(f"the tiny tokenizer has no single token for {word!r}")
    return tok


def _build(out: Path) -> None:
    # Everything is made here; make sure nothing even tries the hub.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

    tok = _train_tokenizer()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        model_max_length=32768,
    )
    fast.save_pretrained(out)

    config = Qwen3Config(
        vocab_size=tok.get_vocab_size(),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=64,
        max_position_embeddings=32768,
        # Wider than the default 0.02 so attention mixes the context into the last position and
        # different (instruction, query, document) triples get clearly different scores.
        initializer_range=0.2,
        tie_word_embeddings=False,
        eos_token_id=tok.token_to_id("<|im_end|>"),
        pad_token_id=tok.token_to_id("<|endoftext|>"),
        architectures=["Qwen3ForCausalLM"],
    )
    torch.manual_seed(SEED)
    model = Qwen3ForCausalLM(config).to(torch.float32).eval()
    _spread_answer_logits(model, fast)
    model.save_pretrained(out, safe_serialization=True)
    # Readable by an engine container running as another user (local mode mounts it).
    for p in [out, *out.iterdir()]:
        p.chmod(0o755 if p.is_dir() else 0o644)


def _spread_answer_logits(model, tokenizer) -> None:
    """Make the "yes" - "no" logit depend on the context, centred near zero.

    With random weights the two answer rows share a large component along the average final
    hidden state, which pins every score near 0 or 1. Setting ``w_no = w_yes - delta`` with
    ``delta`` orthogonal to that average (measured on a few formatted prompts) leaves only the
    context-dependent part, so scores spread over (0, 1) and instructions visibly move them.
    """
    import torch

    from rerank_operator.serving.prompt import format_pair

    prompts = [format_pair(q, d) for q, d in zip(_CORPUS, reversed(_CORPUS))]
    with torch.inference_mode():
        last = [model.model(torch.tensor([tokenizer(p, add_special_tokens=False)["input_ids"]]))
                .last_hidden_state[0, -1] for p in prompts]
    mean = torch.stack(last).mean(0)
    generator = torch.Generator().manual_seed(SEED + 1)
    delta = torch.randn(mean.shape, generator=generator)
    delta -= (delta @ mean) / (mean @ mean) * mean
    delta *= 3.0 / delta.norm()
    yes, no = tokenizer.convert_tokens_to_ids("yes"), tokenizer.convert_tokens_to_ids("no")
    with torch.no_grad():
        head = model.lm_head.weight
        head[no] = head[yes] - delta


def build_tiny_reranker(path: str | os.PathLike) -> Path:
    """Build the tiny reranker into ``path`` (a directory) unless it is already complete there.

    Written to a sibling temporary directory and renamed into place, so a crash never leaves a
    half-written model that a later run would trust; a lock file next to it makes concurrent
    callers (parallel test sessions, local mode) build it once.
    """
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fingerprint = builder_fingerprint()
    marker = path / "tiny-reranker.json"
    with open(path.parent / f".{path.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists() and json.loads(marker.read_text()).get("fingerprint") == fingerprint:
            return path
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
        try:
            _build(tmp)
            (tmp / "tiny-reranker.json").write_text(json.dumps({"fingerprint": fingerprint}))
            (tmp / "tiny-reranker.json").chmod(0o644)
            if path.exists():
                shutil.rmtree(path)
            tmp.rename(path)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return path


def default_cache_dir() -> Path:
    """Where the tests and local mode keep the built model (one per builder version)."""
    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rerank-operator"
    return root / f"tiny-qwen3-reranker-{builder_fingerprint()}"


if __name__ == "__main__":  # python -m rerank_operator.serving.tiny_model [DIR]
    import sys

    print(build_tiny_reranker(sys.argv[1] if len(sys.argv) > 1 else default_cache_dir()))
