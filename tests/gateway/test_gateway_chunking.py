"""Windows over a long document's tokens, and how window scores make the document's score."""

from __future__ import annotations

import asyncio

import pytest

from rerank_gateway.chunking import ChunkingConfig, aggregate, split, window_bounds


def test_a_document_that_fits_is_one_window():
    assert window_bounds(10, 10, 3) == [(0, 10)]


def test_windows_overlap_cover_everything_and_the_last_ends_at_the_end():
    bounds = window_bounds(25, 10, 3)
    assert bounds == [(0, 10), (7, 17), (14, 24), (21, 25)]
    assert all(b[0] < a[1] for a, b in zip(bounds, bounds[1:]))  # each overlaps the previous


def test_aggregates():
    assert aggregate([0.1, 0.9, 0.5], "max", 3) == 0.9
    assert aggregate([0.1, 0.9, 0.5], "mean_top_k", 2) == pytest.approx(0.7)
    assert aggregate([0.4], "mean_top_k", 3) == 0.4


@pytest.mark.parametrize("kwargs", [dict(window_tokens=1), dict(window_tokens=8, overlap_tokens=8),
                                    dict(window_tokens=8, top_k=0)])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        ChunkingConfig(**kwargs)


def test_split_tokenizes_only_what_may_be_long():
    calls = []

    async def tokenize(text):
        calls.append(text)
        return list(range(len(text.split())))

    async def detokenize(tokens):
        return f"{tokens[0]}-{tokens[-1]}"

    config = ChunkingConfig(window_tokens=4, overlap_tokens=1)
    assert asyncio.run(split("abc", config, tokenize, detokenize)) == ["abc"] and not calls
    assert asyncio.run(split("w " * 9, config, tokenize, detokenize)) == ["0-3", "3-6", "6-8"]
