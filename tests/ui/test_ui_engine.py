"""The page wired to the project's real CPU vLLM reranker, driven through gradio_client as a script or
another service would."""

import pytest
from gradio_client import Client
from rerank_ui_harness import rerank_backend, running_ui, status_file  # noqa: F401 - rerank_backend is a fixture

from rerank_ui.config import Settings
from rerank_ui.examples import CHINESE_CSV, CODE_SEARCH, ENGLISH_RAG

pytestmark = pytest.mark.vllm


@pytest.fixture(scope="module")
def ui(rerank_backend, tmp_path_factory):  # noqa: F811
    status = status_file(tmp_path_factory.mktemp("status"), ready=1, desired=1, conditions=[
        {"type": "Ready", "status": "True", "reason": "Serving", "message": "all replicas ready"}])
    settings = Settings(endpoint=rerank_backend.endpoint, model=rerank_backend.model, status_file=status,
                        default_instruction=rerank_backend.default_instruction)
    with running_ui(settings) as url:
        yield Client(url, verbose=False)


def rerank(client, query, documents, instruction="", top_n=0):
    error, usage, table, chart = client.predict(query, documents, instruction, top_n, api_name="/rerank")
    return error, usage, table["data"], chart["data"]


def assert_ranked(rows, documents):
    ranks = [row[0] for row in rows]
    scores = [row[1] for row in rows]
    assert ranks == list(range(1, len(rows) + 1))
    assert scores == sorted(scores, reverse=True)
    for _, _, text, position in rows:
        assert text == documents[position - 1]  # Position is the document's 1-based input line


def test_ranks_the_chinese_csv_example(ui):
    error, usage, rows, chart = rerank(ui, CHINESE_CSV.query, CHINESE_CSV.documents_text)
    assert error == ""
    assert len(rows) == 6
    assert_ranked(rows, list(CHINESE_CSV.documents))
    assert sorted(row[3] for row in rows) == [1, 2, 3, 4, 5, 6]
    assert all(0.0 <= row[1] <= 1.0 for row in rows)
    assert usage.startswith("Ranked **6 documents** in **") and "tokens" in usage
    assert [bar[0] for bar in chart] == [f"#{n}" for n in range(1, 7)]
    assert [bar[1] for bar in chart] == pytest.approx([row[1] for row in rows], abs=1e-4)


def test_ranks_the_code_example(ui):
    error, _, rows, _ = rerank(ui, CODE_SEARCH.query, CODE_SEARCH.documents_text)
    assert error == ""
    assert_ranked(rows, list(CODE_SEARCH.documents))
    assert len(rows) == len(CODE_SEARCH.documents)


def test_top_n_returns_the_best_documents_only(ui):
    documents = list(ENGLISH_RAG.documents)
    _, _, everything, _ = rerank(ui, ENGLISH_RAG.query, ENGLISH_RAG.documents_text)
    error, usage, top, _ = rerank(ui, ENGLISH_RAG.query, ENGLISH_RAG.documents_text, top_n=2)
    assert error == ""
    assert len(top) == 2 and "showing the top 2" in usage
    assert_ranked(top, documents)
    assert [row[3] for row in top] == [row[3] for row in everything[:2]]


def test_instruction_reaches_the_reranker(ui):
    # The engine folds `instruction` into the Qwen3 reranker prompt, so another instruction changes the scores.
    query, documents = ENGLISH_RAG.query, ENGLISH_RAG.documents_text
    _, _, plain, _ = rerank(ui, query, documents, instruction="Judge whether the passage answers the question")
    _, _, other, _ = rerank(ui, query, documents, instruction="Judge whether the passage is about baking bread")
    by_position = lambda rows: sorted((row[3], row[1]) for row in rows)  # noqa: E731
    assert by_position(plain) != by_position(other)


def test_status_banner_reports_a_healthy_engine(ui):
    assert ui.predict(api_name="/status") == "✅ **Ready** — 1 of 1 replica ready"


def test_engine_rejection_is_shown_with_the_engines_reason(rerank_backend):  # noqa: F811
    settings = Settings(endpoint=rerank_backend.endpoint, model="no-such-model")
    with running_ui(settings) as url:
        error, usage, rows, _ = rerank(Client(url, verbose=False), "q", "a\nb")
    assert "The engine rejected the request (HTTP 4" in error
    assert "no-such-model" in error  # vLLM's own message names the unknown model
    assert rows == [] and usage == ""
