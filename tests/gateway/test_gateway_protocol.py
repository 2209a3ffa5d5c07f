"""Request parsing: every shape real clients send is accepted, every bad one is a 4xx naming the field."""

from __future__ import annotations

import pytest

from rerank_gateway.protocol import BadRequest, Limits, decode_json, parse_rerank, parse_score
from rerank_gateway.responses import rerank_response


def bad(fn, *args) -> BadRequest:
    with pytest.raises(BadRequest) as info:
        fn(*args)
    assert 400 <= info.value.status < 500 and info.value.message
    return info.value


def test_langchain_nulls_are_not_set():
    # langchain-cohere's CohereRerank sends exactly these nulls.
    job = parse_rerank({"model": "m", "query": "q", "documents": ["a", "b"], "top_n": None,
                        "max_tokens_per_doc": None, "return_documents": None, "rank_fields": None})
    assert (job.top_n, job.max_tokens_per_doc, job.return_documents) == (None, None, None)
    assert job.pairs == [("q", "a"), ("q", "b")]


def test_object_documents_with_and_without_rank_fields():
    docs = [{"text": "Paris is in France", "title": "France"}, {"text": "Berlin", "title": "Germany"}]
    assert [d for _, d in parse_rerank({"query": "q", "documents": docs}).pairs] == ["Paris is in France", "Berlin"]
    ranked = parse_rerank({"query": "q", "documents": docs, "rank_fields": ["title", "text"]})
    assert ranked.pairs[0][1] == "title: France\ntext: Paris is in France"
    assert "documents[0].year" == bad(parse_rerank, {"query": "q", "documents": docs, "rank_fields": ["year"]}).param
    assert "documents[0].text" == bad(parse_rerank, {"query": "q", "documents": [{"body": "x"}]}).param


def test_return_documents_false_leaves_documents_out_and_results_keep_original_indices():
    docs = [{"text": "a", "id": 7}, {"text": "b", "id": 8}]
    job = parse_rerank({"query": "q", "documents": docs, "return_documents": False, "top_n": 1})
    body = rerank_response(job, "m", [0.1, 0.9], 5)
    assert body["results"] == [{"index": 1, "relevance_score": 0.9}]
    assert body["meta"]["billed_units"]["search_units"] == 1
    echoed = rerank_response(parse_rerank({"query": "q", "documents": docs}), "m", [0.1, 0.9], 5)
    assert [r["document"] for r in echoed["results"]] == [docs[1], docs[0]]  # objects come back as sent
    strings = rerank_response(parse_rerank({"query": "q", "documents": ["x"]}), "m", [0.5], 1)
    assert strings["results"][0]["document"] == {"text": "x"}


@pytest.mark.parametrize("body, param", [
    ({"documents": ["a"]}, "query"),
    ({"query": 3, "documents": ["a"]}, "query"),
    ({"query": "q"}, "documents"),
    ({"query": "q", "documents": []}, "documents"),
    ({"query": "q", "documents": {"a": 1}}, "documents"),
    ({"query": "q", "documents": ["a", 5]}, "documents[1]"),
    ({"query": "q", "documents": ["a"], "top_n": "2"}, "top_n"),
    ({"query": "q", "documents": ["a"], "top_n": -1}, "top_n"),
    ({"query": "q", "documents": ["a"], "top_n": True}, "top_n"),
    ({"query": "q", "documents": ["a"], "return_documents": "yes"}, "return_documents"),
    ({"query": "q", "documents": ["a"], "max_tokens_per_doc": 1.5}, "max_tokens_per_doc"),
    ({"query": "q", "documents": ["a"], "rank_fields": []}, "rank_fields"),
    ({"query": "q", "documents": ["a"], "model": 1}, "model"),
])
def test_wrong_types_name_the_field(body, param):
    assert bad(parse_rerank, body).param == param


def test_too_many_documents_and_oversized_texts_are_413():
    error = bad(parse_rerank, {"query": "q", "documents": ["a"] * 11}, Limits(max_documents=10))
    assert error.status == 413 and "at most 10" in error.message
    assert bad(parse_rerank, {"query": "q" * 20, "documents": ["a"]}, Limits(max_query_chars=10)).status == 413


def test_body_decoding():
    assert "UTF-8" in bad(decode_json, b'{"query": "\xff"}').message
    assert "JSON" in bad(decode_json, b'{"query": ').message
    assert "object" in bad(decode_json, b'[1, 2]').message
    assert decode_json('{"query": "café"}'.encode()) == {"query": "café"}


@pytest.mark.parametrize("left, right", [("queries", "documents"), ("text_1", "text_2"), ("data_1", "data_2"),
                                         ("queries", "items")])
def test_score_shapes(left, right):
    assert parse_score({left: "q", right: ["a", "b"]}).pairs == [("q", "a"), ("q", "b")]
    assert parse_score({left: ["q1", "q2"], right: ["a", "b"]}).pairs == [("q1", "a"), ("q2", "b")]
    assert bad(parse_score, {left: ["q1", "q2"], right: ["a", "b", "c"]}).param == left


def test_score_without_a_shape_says_which_fields():
    assert "queries" in bad(parse_score, {"query": "q", "documents": ["a"]}).message
