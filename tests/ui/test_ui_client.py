"""The rerank client: request and response bodies, error bodies, and real failures from loopback test servers."""

import asyncio
import socket

import pytest
from rerank_ui_harness import Reply, closed_endpoint, echo_rerank, engine_test_server

from rerank_ui.client import (
    EndpointTimeout,
    EndpointUnreachable,
    EngineError,
    HealthProbe,
    InvalidResponse,
    RankedDocument,
    RerankClient,
    error_message_from_body,
    parse_rerank_response,
)


@pytest.mark.parametrize("body, expected", [
    ({"error": {"message": "The model `x` does not exist.", "type": "NotFoundError", "code": 404}},
     "The model `x` does not exist."),
    ({"object": "error", "message": "top_n must be >= 0", "type": "BadRequestError", "code": 400},
     "top_n must be >= 0"),
    ({"detail": "Not Found"}, "Not Found"),
    ({"detail": [{"loc": ["body", "documents"], "msg": "Field required", "type": "missing"},
                 {"loc": ["body", "query"], "msg": "Input should be a valid string"}]},
     "documents: Field required; query: Input should be a valid string"),
    ({"error": "engine overloaded"}, "engine overloaded"),
    ({"unexpected": True}, "fallback"),
    ("plain text", "fallback"),
    (None, "fallback"),
])
def test_error_message_from_body(body, expected):
    assert error_message_from_body(body, "fallback") == expected


def test_parse_rerank_response_sorts_and_fills_missing_documents():
    body = {
        "results": [
            {"index": 0, "relevance_score": 0.2, "document": {"text": "first"}},
            {"index": 2, "relevance_score": 0.9},
            {"index": 1, "relevance_score": 0.5, "document": "second as string"},
        ],
        "usage": {"total_tokens": 42},
    }
    ranked, tokens = parse_rerank_response(body, ["first", "second", "third"])
    assert ranked == [RankedDocument(2, 0.9, "third"), RankedDocument(1, 0.5, "second as string"),
                      RankedDocument(0, 0.2, "first")]
    assert tokens == 42


@pytest.mark.parametrize("body", [{"data": []}, [], {"results": [{"index": 0}]},
                                  {"results": [{"index": "x", "relevance_score": 1}]}])
def test_parse_rerank_response_refuses_other_shapes(body):
    with pytest.raises(InvalidResponse):
        parse_rerank_response(body, ["a"])


def test_usage_is_optional():
    assert parse_rerank_response({"results": []}, [])[1] is None


def run(coro):
    return asyncio.run(coro)


async def _rerank(client, *args, **kwargs):
    try:
        return await client.rerank(*args, **kwargs)
    finally:
        await client.aclose()


def test_request_body_is_the_vllm_rerank_request():
    with engine_test_server(echo_rerank) as (url, server):
        client = RerankClient(url, model="qwen3-reranker", timeout_seconds=5)
        response = run(_rerank(client, "q", ["a", "bb", "ccc"], top_n=2, instruction="Find code"))
    assert server.requests == [{
        "path": "/v1/rerank", "client_port": server.requests[0]["client_port"],
        "body": {"model": "qwen3-reranker", "query": "q", "documents": ["a", "bb", "ccc"], "top_n": 2,
                 "return_documents": True, "instruction": "Find code"},
    }]
    assert [r.index for r in response.results] == [0, 1]
    assert response.total_tokens == 7 and response.document_count == 3


def test_no_instruction_and_no_model_are_left_out_and_top_n_defaults_to_all():
    client = RerankClient("http://r:8000/v1/rerank")
    assert client.payload("q", ["a", "b"]) == {"query": "q", "documents": ["a", "b"], "top_n": 2,
                                                "return_documents": True}


def test_connections_are_reused_across_calls():
    async def twice(client):
        try:
            await client.rerank("q", ["a"])
            await client.rerank("q", ["b"])
        finally:
            await client.aclose()

    with engine_test_server(echo_rerank) as (url, server):
        run(twice(RerankClient(url, timeout_seconds=5)))
    ports = [r["client_port"] for r in server.requests]
    assert len(ports) == 2 and ports[0] == ports[1]  # one pooled keep-alive connection


def test_engine_error_carries_the_engines_message():
    vllm_400 = {"error": {"message": "top_n must be >= 0", "type": "BadRequestError", "param": None, "code": 400}}
    with engine_test_server(lambda body: Reply(400, vllm_400)) as (url, _):
        with pytest.raises(EngineError) as excinfo:
            run(_rerank(RerankClient(url, timeout_seconds=5), "q", ["a"]))
    assert (excinfo.value.status, excinfo.value.message) == (400, "top_n must be >= 0")


def test_non_json_success_is_an_invalid_response():
    with engine_test_server(lambda body: Reply(200, b"<html>a login page</html>")) as (url, _):
        with pytest.raises(InvalidResponse, match="non-JSON"):
            run(_rerank(RerankClient(url, timeout_seconds=5), "q", ["a"]))


def test_closed_port_is_reported_unreachable():
    async def probe(client):
        try:
            with pytest.raises(EndpointUnreachable) as excinfo:
                await client.rerank("q", ["a"])
            return excinfo.value, await client.health()
        finally:
            await client.aclose()

    error, health = run(probe(RerankClient(closed_endpoint(), timeout_seconds=5)))
    assert error.reason == "connection refused"
    assert not health.ok and "unreachable (connection refused)" in health.detail


def test_silent_server_is_reported_as_timeout():
    # A real listening socket that accepts connections but never answers, like a wedged engine.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        client = RerankClient(f"http://127.0.0.1:{listener.getsockname()[1]}/v1/rerank", timeout_seconds=0.5)
        with pytest.raises(EndpointTimeout) as excinfo:
            run(_rerank(client, "q", ["a"]))
        assert excinfo.value.seconds == 0.5


def test_trickling_answer_hits_the_overall_deadline():
    # Each byte arrives well within httpx's per-read timeout; only the whole-call deadline stops it.
    with engine_test_server(lambda body: Reply(200, {"results": []}, trickle_seconds=0.2)) as (url, server):
        with pytest.raises(EndpointTimeout):
            run(_rerank(RerankClient(url, timeout_seconds=0.6), "q", ["a"]))
    assert len(server.requests) == 1


def test_health_probe_reads_the_engines_health_route():
    async def probe(client):
        try:
            return await client.health()
        finally:
            await client.aclose()

    with engine_test_server(echo_rerank) as (url, _):
        assert run(probe(RerankClient(url))) == HealthProbe(True, "engine healthy")
        # A rerank URL whose server has no /health beside it (say, a gateway that routes only /rerank).
        other = run(probe(RerankClient(url, health_url=url.replace("/v1/rerank", "/v1/health"))))
    assert not other.ok and "HTTP 404" in other.detail
