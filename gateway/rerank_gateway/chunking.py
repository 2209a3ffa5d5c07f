"""Long documents in overlapping windows of the model's own tokens (opt-in).

A document longer than `window_tokens` is cut into windows of that many tokens, each starting
`window_tokens - overlap_tokens` after the last, so a passage that straddles a cut is whole in one
window. Each window is scored as its own pair; the document's score is the best window's (`max`),
or the mean of the best `top_k` (`mean_top_k`, which rewards documents relevant in several places).

Tokens come from the engine's `/tokenize` and `/detokenize`, so the windows are cut by exactly the
tokenizer that will score them and the gateway loads no model files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Awaitable, Callable, Literal, Sequence

Aggregate = Literal["max", "mean_top_k"]


@dataclass(frozen=True)
class ChunkingConfig:
    window_tokens: int
    overlap_tokens: int = 64
    aggregate: Aggregate = "max"
    top_k: int = 3

    def __post_init__(self) -> None:
        if self.window_tokens < 2:
            raise ValueError(f"window_tokens must be at least 2, got {self.window_tokens}")
        if not 0 <= self.overlap_tokens < self.window_tokens:
            raise ValueError(f"overlap_tokens must be in [0, window_tokens), got {self.overlap_tokens}")
        if self.top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {self.top_k}")


def window_bounds(n_tokens: int, window: int, overlap: int) -> list[tuple[int, int]]:
    """[start, end) token ranges covering ``n_tokens``: one range if it fits, else overlapping windows
    the last of which ends at the document's end."""
    if n_tokens <= window:
        return [(0, n_tokens)]
    stride = window - overlap
    bounds = []
    start = 0
    while True:
        end = min(start + window, n_tokens)
        bounds.append((start, end))
        if end == n_tokens:
            return bounds
        start += stride


def aggregate(scores: Sequence[float], how: Aggregate, top_k: int) -> float:
    if how == "max":
        return max(scores)
    best = sorted(scores, reverse=True)[:top_k]
    return sum(best) / len(best)


def may_need_chunking(document: str, window_tokens: int) -> bool:
    """False when the document surely fits: a byte-level BPE token covers at least one UTF-8 byte."""
    return len(document.encode("utf-8")) > window_tokens


async def split(document: str, config: ChunkingConfig, tokenize: Callable[[str], Awaitable[list[int]]],
                detokenize: Callable[[list[int]], Awaitable[str]]) -> list[str]:
    """The texts a document is scored as: itself if it fits, else its windows."""
    if not may_need_chunking(document, config.window_tokens):
        return [document]
    tokens = await tokenize(document)
    bounds = window_bounds(len(tokens), config.window_tokens, config.overlap_tokens)
    if len(bounds) == 1:
        return [document]
    return [await detokenize(tokens[a:b]) for a, b in bounds]
