"""Served scores equal Qwen3-Reranker's own recipe computed with transformers on the same weights.

The reference (tests/serving/reference.py) formats each pair with the model card's prompt and takes
P("yes") from the "no"/"yes" logits; the engine formats it with the score template the operator
passes as --chat-template. Equal scores (and equal prompt token counts) mean the engine sees the
same tokens: the format, the default instruction and a request's instruction all arrive intact.
"""

from __future__ import annotations

import pytest
import requests

from rerank_operator.serving.prompt import DEFAULT_INSTRUCTION, format_pair

from tests.serving.pairs import CUSTOM_INSTRUCTION, QUERIES
from tests.serving.reference import ReferenceScorer

TOLERANCE = 1e-3


@pytest.fixture(scope="module")
def reference(rerank_engine):
    return ReferenceScorer(rerank_engine.model_path)


def rerank(engine, query, documents, **extra):
    response = requests.post(engine.url("/v1/rerank"), json={"model": engine.model, "query": query,
                                                             "documents": documents, **extra}, timeout=120)
    assert response.status_code == 200, response.text
    body = response.json()
    scores = [None] * len(documents)
    for result in body["results"]:
        scores[result["index"]] = result["relevance_score"]
    return scores, body["usage"]["prompt_tokens"]


def prompt_tokens(reference, query, documents, instruction):
    return sum(len(reference.prompt_token_ids(format_pair(query, d, instruction))) for d in documents)


@pytest.mark.parametrize(("label", "extra", "instruction"), [
    ("deployment default (request without instruction)", {}, "<deployment>"),
    ("the model's own default instruction, sent explicitly", {"instruction": DEFAULT_INSTRUCTION}, DEFAULT_INSTRUCTION),
    ("a custom instruction", {"instruction": CUSTOM_INSTRUCTION}, CUSTOM_INSTRUCTION),
])
def test_served_scores_match_the_reference(rerank_engine, reference, label, extra, instruction):
    if instruction == "<deployment>":
        instruction = rerank_engine.default_instruction
    served, expected, pairs = [], [], 0
    for query, documents in QUERIES.items():
        scores, tokens = rerank(rerank_engine, query, documents, **extra)
        served += scores
        expected += reference.scores(query, documents, instruction)
        pairs += len(documents)
        # Same token count: the engine's prompt is token-for-token the reference prompt.
        assert tokens == prompt_tokens(reference, query, documents, instruction), label
    assert pairs >= 20
    worst = max(abs(s - e) for s, e in zip(served, expected))
    assert worst <= TOLERANCE, f"{label}: served scores differ from the reference by up to {worst:.2e}"


def test_instructions_change_scores_the_way_the_reference_predicts(rerank_engine, reference):
    query, documents = next(iter(QUERIES.items()))
    by_instruction = {}
    for instruction in (DEFAULT_INSTRUCTION, CUSTOM_INSTRUCTION, rerank_engine.default_instruction):
        served, _ = rerank(rerank_engine, query, documents, instruction=instruction)
        by_instruction[instruction] = (served, reference.scores(query, documents, instruction))
    base_served, base_expected = by_instruction[DEFAULT_INSTRUCTION]
    for instruction, (served, expected) in by_instruction.items():
        if instruction == DEFAULT_INSTRUCTION:
            continue
        predicted = [e - b for e, b in zip(expected, base_expected)]
        observed = [s - b for s, b in zip(served, base_served)]
        # The instruction matters for this model (the check below would be vacuous otherwise) ...
        assert max(abs(p) for p in predicted) > 20 * TOLERANCE
        # ... and the engine moves each score by what the reference predicts.
        assert max(abs(o - p) for o, p in zip(observed, predicted)) <= 2 * TOLERANCE


def test_the_deployment_instruction_applies_when_a_request_has_none(rerank_engine, reference):
    query, documents = list(QUERIES.items())[1]
    deployment = reference.scores(query, documents, rerank_engine.default_instruction)
    model_default = reference.scores(query, documents, DEFAULT_INSTRUCTION)
    assert max(abs(a - b) for a, b in zip(deployment, model_default)) > 20 * TOLERANCE
    # No instruction, an empty one (what a form sends), and the generic chat_template_kwargs spelling.
    for extra in ({}, {"instruction": ""}, {"chat_template_kwargs": {}}):
        served, _ = rerank(rerank_engine, query, documents, **extra)
        assert max(abs(s - e) for s, e in zip(served, deployment)) <= TOLERANCE, extra
    served, _ = rerank(rerank_engine, query, documents, chat_template_kwargs={"instruction": CUSTOM_INSTRUCTION})
    expected = reference.scores(query, documents, CUSTOM_INSTRUCTION)
    assert max(abs(s - e) for s, e in zip(served, expected)) <= TOLERANCE


def test_score_endpoint_matches_too(rerank_engine, reference):
    query, documents = list(QUERIES.items())[2]
    response = requests.post(rerank_engine.url("/v1/score"), json={
        "model": rerank_engine.model, "text_1": query, "text_2": documents, "instruction": CUSTOM_INSTRUCTION},
        timeout=120)
    assert response.status_code == 200, response.text
    served = [d["score"] for d in sorted(response.json()["data"], key=lambda d: d["index"])]
    expected = reference.scores(query, documents, CUSTOM_INSTRUCTION)
    assert max(abs(s - e) for s, e in zip(served, expected)) <= TOLERANCE
