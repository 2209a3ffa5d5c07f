"""The engine's public API as the operator serves it: rerank in the Cohere/Jina shapes, score, and clear
4xx answers for bad requests."""

from __future__ import annotations

import pytest
import requests

from tests.serving.pairs import QUERIES

RERANK_PATHS = ["/v1/rerank", "/v2/rerank", "/rerank"]
QUERY, DOCUMENTS = next(iter(QUERIES.items()))


def post(engine, path, body, **kwargs):
    return requests.post(engine.url(path), json=body, timeout=120, **kwargs)


def rerank_body(engine, **extra):
    return {"model": engine.model, "query": QUERY, "documents": DOCUMENTS, **extra}


def error_message(response) -> str:
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    message = response.json()["error"]["message"]
    assert message
    return message


@pytest.mark.parametrize("path", RERANK_PATHS)
def test_rerank_returns_every_document_best_first(rerank_engine, path):
    response = post(rerank_engine, path, rerank_body(rerank_engine))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == rerank_engine.model and body["usage"]["prompt_tokens"] > 0
    results = body["results"]
    assert sorted(r["index"] for r in results) == list(range(len(DOCUMENTS)))
    scores = [r["relevance_score"] for r in results]
    assert scores == sorted(scores, reverse=True) and all(0.0 < s < 1.0 for s in scores)
    assert all(r["document"]["text"] == DOCUMENTS[r["index"]] for r in results)


def test_all_rerank_routes_agree(rerank_engine):
    ranked = [[(r["index"], r["relevance_score"]) for r in post(rerank_engine, p, rerank_body(rerank_engine)).json()["results"]]
              for p in RERANK_PATHS]
    assert ranked[0] == ranked[1] == ranked[2]


def test_top_n_keeps_the_best(rerank_engine):
    everything = post(rerank_engine, "/v1/rerank", rerank_body(rerank_engine)).json()["results"]
    top = post(rerank_engine, "/v1/rerank", rerank_body(rerank_engine, top_n=3)).json()["results"]
    assert [r["index"] for r in top] == [r["index"] for r in everything[:3]]
    more = post(rerank_engine, "/v1/rerank", rerank_body(rerank_engine, top_n=100)).json()["results"]
    assert len(more) == len(DOCUMENTS)


def test_return_documents_is_accepted_and_the_text_always_comes_back(rerank_engine):
    # vLLM accepts Cohere's/Jina's return_documents but always echoes the text: clients that ask
    # for no documents get them anyway (harmless, only bytes), clients that ask for them get them.
    for flag in (True, False):
        response = post(rerank_engine, "/v2/rerank", rerank_body(rerank_engine, return_documents=flag, top_n=2))
        assert response.status_code == 200, response.text
        assert all(r["document"]["text"] == DOCUMENTS[r["index"]] for r in response.json()["results"])


def test_many_documents_in_one_request(rerank_engine):
    documents = [f"Document {i}: " + ("Paris is in France. " if i % 8 == 0 else "An unrelated sentence. ") * (1 + i % 5)
                 for i in range(64)]
    response = post(rerank_engine, "/v1/rerank", {"model": rerank_engine.model, "query": QUERY, "documents": documents})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert sorted(r["index"] for r in results) == list(range(64))
    # Batching does not change a document's score: each equals its score scored alone.
    alone = post(rerank_engine, "/v1/rerank", {"model": rerank_engine.model, "query": QUERY, "documents": [documents[7]]})
    by_index = {r["index"]: r["relevance_score"] for r in results}
    assert by_index[7] == pytest.approx(alone.json()["results"][0]["relevance_score"], abs=1e-4)


@pytest.mark.parametrize("shape", [
    {"queries": QUERY, "documents": DOCUMENTS[:3]},
    {"text_1": QUERY, "text_2": DOCUMENTS[:3]},
    {"data_1": QUERY, "data_2": DOCUMENTS[:3]},
])
def test_score_pairs_in_each_request_shape(rerank_engine, shape):
    response = post(rerank_engine, "/score", {"model": rerank_engine.model, **shape})
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert [d["index"] for d in data] == [0, 1, 2] and all(0.0 < d["score"] < 1.0 for d in data)
    ranked = {r["index"]: r["relevance_score"]
              for r in post(rerank_engine, "/v1/rerank", rerank_body(rerank_engine)).json()["results"]}
    assert [d["score"] for d in data] == pytest.approx([ranked[i] for i in range(3)], abs=1e-4)


def test_empty_documents_are_a_400_with_a_reason(rerank_engine):
    response = post(rerank_engine, "/v1/rerank", rerank_body(rerank_engine, documents=[]))
    assert response.status_code == 400
    assert "at least one" in error_message(response).lower()


def test_a_document_over_the_context_length_is_a_400_naming_the_limit(rerank_engine):
    long_document = "word " * 9000  # > --max-model-len 8192 tokens on its own
    response = post(rerank_engine, "/v1/rerank", rerank_body(rerank_engine, documents=["short", long_document]))
    assert response.status_code == 400
    message = error_message(response)
    assert "maximum context length is 8192 tokens" in message


def test_malformed_json_is_a_400_with_a_reason(rerank_engine):
    response = requests.post(rerank_engine.url("/v1/rerank"), data=b'{"model": "x", "query": ',
                             headers={"Content-Type": "application/json"}, timeout=30)
    assert response.status_code == 400
    assert "json" in error_message(response).lower()


def test_a_missing_field_is_a_400_naming_it(rerank_engine):
    response = post(rerank_engine, "/v1/rerank", {"model": rerank_engine.model, "documents": DOCUMENTS})
    assert response.status_code == 400
    assert "query" in error_message(response)


def test_an_unknown_model_is_a_404_naming_it(rerank_engine):
    response = post(rerank_engine, "/v1/rerank", rerank_body(rerank_engine, model="no-such-model"))
    assert response.status_code == 404
    assert "no-such-model" in error_message(response)


def test_health_and_models(rerank_engine):
    assert requests.get(rerank_engine.url("/health"), timeout=10).status_code == 200
    models = requests.get(rerank_engine.url("/v1/models"), timeout=10).json()
    # The served name first, then the short name clients copy from tutorials.
    assert [m["id"] for m in models["data"]] == [rerank_engine.model, rerank_engine.model.rsplit("/", 1)[-1]]


def test_the_engine_runs_the_builders_command_with_only_model_and_port_swapped(rerank_engine):
    ran, built = rerank_engine.command, rerank_engine.builder_command
    assert len(ran) == len(built)
    differing = {built[i - 1] for i, (a, b) in enumerate(zip(ran, built)) if a != b}
    assert differing <= {"--model", "--port"}
    assert ran[ran.index("--model") + 1] == str(rerank_engine.model_path)
