"""The gateway in front of the real CPU vLLM engine: real clients (Cohere SDK v1 and v2, LangChain's
CohereRerank, litellm), the seed's request, the score cache against the engine's own counters,
long documents in windows, routing, holding while no engine is ready, bad input, large requests split
across engines, and engines that hang or break connections under a steady client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests

from rerank_gateway.chunking import window_bounds
from tests.docs.manual import client_snippets
from tests.fixtures.engine import DEPLOYMENT_INSTRUCTION
from tests.fixtures.gateway import free_port, metric_value, running_gateway
from tests.fixtures.relay import FaultyRelay
from tests.serving.pairs import QUERIES

REPO = Path(__file__).resolve().parents[2]
QUERY, DOCUMENTS = next(iter(QUERIES.items()))
RERANK_PATHS = ["/v1/rerank", "/v2/rerank", "/rerank"]


def short_name(engine) -> str:
    return engine.model.rsplit("/", 1)[-1]


def gateway_args(engine, *extra: str) -> list[str]:
    return ["--engine", engine.base_url, "--served-model-name", engine.model, "--served-model-name",
            short_name(engine), "--default-instruction", DEPLOYMENT_INSTRUCTION, "--dns-interval", "0.2", *extra]


@pytest.fixture(scope="module")
def gateway(rerank_engine, tmp_path_factory):
    with running_gateway(tmp_path_factory.mktemp("gateway"),
                         gateway_args(rerank_engine, "--max-documents", "100", "--max-body-bytes", str(1 << 20))) as g:
        wait_ready(g)
        yield g


def wait_ready(gateway, engines: int = 1, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while requests.get(gateway.url("/health"), timeout=5).json()["ready_engines"] < engines:
        assert time.monotonic() < deadline, "the gateway never saw the engine ready"
        time.sleep(0.1)


def engine_pairs_done(engine) -> float:
    """Pairs the engine has finished (one engine request per pair)."""
    return metric_value(requests.get(engine.url("/metrics"), timeout=10).text, "vllm:request_success_total")


def post(base, path, body, **kw):
    return requests.post(base.url(path), json=body, timeout=300, **kw)


def direct_scores(engine, query, documents, instruction=DEPLOYMENT_INSTRUCTION):
    r = post(engine, "/score", {"model": engine.model, "queries": query, "documents": documents,
                                "instruction": instruction})
    assert r.status_code == 200, r.text
    return [d["score"] for d in sorted(r.json()["data"], key=lambda d: d["index"])]


def unique(text: str) -> str:
    # Each test's own pairs: the module's gateway keeps its cache across tests.
    return f"{text} [{uuid.uuid4().hex[:8]}]"


@pytest.mark.parametrize("path", RERANK_PATHS)
def test_rerank_through_the_gateway_equals_the_engine(rerank_engine, gateway, path):
    through = post(gateway, path, {"model": rerank_engine.model, "query": QUERY, "documents": DOCUMENTS})
    direct = post(rerank_engine, path, {"model": rerank_engine.model, "query": QUERY, "documents": DOCUMENTS})
    assert through.status_code == 200, through.text
    body = through.json()
    assert body["model"] == rerank_engine.model and body["meta"]["billed_units"]["search_units"] == 1
    assert [r["index"] for r in body["results"]] == [r["index"] for r in direct.json()["results"]]
    assert [r["relevance_score"] for r in body["results"]] == pytest.approx(
        [r["relevance_score"] for r in direct.json()["results"]], abs=1e-5)
    assert all(r["document"]["text"] == DOCUMENTS[r["index"]] for r in body["results"])


def test_the_seed_request_verbatim_with_the_short_model_name(rerank_engine, gateway):
    # The tutorial's client sends the short name; the engine serves it too, the gateway maps it.
    body = {"model": short_name(rerank_engine), "query": "What is the capital of France?",
            "documents": ["Paris is the capital and largest city of France.",
                          "The quick brown fox jumps over the lazy dog.", "Berlin is the capital of Germany."],
            "top_n": 2}
    for target in (gateway, rerank_engine):
        response = post(target, "/v1/rerank", body)
        assert response.status_code == 200, response.text
        assert len(response.json()["results"]) == 2


def test_a_repeated_request_is_answered_from_the_cache_without_the_engine(rerank_engine, gateway):
    body = {"model": rerank_engine.model, "query": unique(QUERY), "documents": DOCUMENTS}
    first = post(gateway, "/v1/rerank", body).json()
    before_engine, before_cached = engine_pairs_done(rerank_engine), gateway.metric("rerank_gateway_pairs_total",
                                                                                    source="cache")
    again = post(gateway, "/v1/rerank", body).json()
    assert engine_pairs_done(rerank_engine) == before_engine
    assert gateway.metric("rerank_gateway_pairs_total", source="cache") == before_cached + len(DOCUMENTS)
    assert again["results"] == first["results"]


def test_a_partial_hit_sends_only_the_misses_and_keeps_the_order(rerank_engine, gateway):
    query = unique(QUERY)
    post(gateway, "/v1/rerank", {"model": rerank_engine.model, "query": query, "documents": DOCUMENTS[:3]})
    mixed = [DOCUMENTS[5], DOCUMENTS[0], DOCUMENTS[4], DOCUMENTS[2], DOCUMENTS[1], DOCUMENTS[3]]
    before = engine_pairs_done(rerank_engine)
    response = post(gateway, "/score", {"model": rerank_engine.model, "queries": query, "documents": mixed})
    assert response.status_code == 200, response.text
    assert engine_pairs_done(rerank_engine) == before + 3  # DOCUMENTS[3:6] only
    got = [d["score"] for d in response.json()["data"]]
    assert got == pytest.approx(direct_scores(rerank_engine, query, mixed), abs=1e-5)


def test_a_new_instruction_is_never_served_an_old_score(rerank_engine, gateway):
    query = unique(QUERY)
    body = {"model": rerank_engine.model, "query": query, "documents": DOCUMENTS[:2]}
    post(gateway, "/v1/rerank", body)
    before = engine_pairs_done(rerank_engine)
    other = post(gateway, "/v1/rerank", {**body, "instruction": "Find documents written in Chinese"}).json()
    assert engine_pairs_done(rerank_engine) == before + 2
    scores = {r["index"]: r["relevance_score"] for r in other["results"]}
    assert [scores[0], scores[1]] == pytest.approx(
        direct_scores(rerank_engine, query, DOCUMENTS[:2], "Find documents written in Chinese"), abs=1e-5)


def test_cohere_fields_nulls_objects_and_return_documents(rerank_engine, gateway):
    nulls = {"model": rerank_engine.model, "query": QUERY, "documents": DOCUMENTS, "top_n": None,
             "max_tokens_per_doc": None, "return_documents": None, "rank_fields": None}
    assert post(gateway, "/v2/rerank", nulls).status_code == 200
    objects = [{"text": d, "id": i} for i, d in enumerate(DOCUMENTS[:3])]
    response = post(gateway, "/v1/rerank", {"model": rerank_engine.model, "query": QUERY, "documents": objects})
    assert response.status_code == 200, response.text
    assert all(r["document"] == objects[r["index"]] for r in response.json()["results"])
    titled = [{"title": "France", "body": DOCUMENTS[0]}, {"title": "Fox", "body": DOCUMENTS[4]}]
    response = post(gateway, "/v1/rerank", {"model": rerank_engine.model, "query": QUERY, "documents": titled,
                                            "rank_fields": ["title", "body"], "return_documents": False})
    assert response.status_code == 200, response.text
    assert all("document" not in r for r in response.json()["results"])


def test_the_cohere_sdk_v1_and_v2(rerank_engine, gateway):
    import cohere

    v2 = cohere.ClientV2(api_key="unused", base_url=gateway.base_url)
    response = v2.rerank(model=short_name(rerank_engine), query=QUERY, documents=DOCUMENTS, top_n=3)
    assert len(response.results) == 3 and response.meta.billed_units.search_units == 1
    assert response.results[0].relevance_score >= response.results[1].relevance_score

    v1 = cohere.Client(api_key="unused", base_url=gateway.base_url)
    old = v1.rerank(model=rerank_engine.model, query=QUERY, documents=[{"text": d} for d in DOCUMENTS],
                    return_documents=True, top_n=2)
    assert [r.index for r in old.results] == [r.index for r in response.results[:2]]
    assert old.results[0].document.text == DOCUMENTS[old.results[0].index]


def test_langchain_cohere_rerank(rerank_engine, gateway):
    from langchain_cohere import CohereRerank
    from langchain_core.documents import Document

    reranker = CohereRerank(model=rerank_engine.model, cohere_api_key="unused", base_url=gateway.base_url, top_n=3)
    documents = [Document(page_content=d) for d in DOCUMENTS]
    compressed = reranker.compress_documents(documents, QUERY)
    assert len(compressed) == 3
    scores = [d.metadata["relevance_score"] for d in compressed]
    assert scores == sorted(scores, reverse=True)


LITELLM_SCRIPT = """
import json, sys, litellm
r = litellm.rerank(model="cohere/" + sys.argv[2], query=sys.argv[3], documents=json.loads(sys.argv[4]), top_n=2,
                   api_base=sys.argv[1], api_key="unused")
print(json.dumps([[x["index"], x["relevance_score"]] for x in r.results]))
"""


def test_litellm(rerank_engine, gateway):
    python = REPO / os.environ.get("CLIENTS_VENV", ".venv-clients") / "bin" / "python"
    if not python.exists():
        pytest.skip("litellm's venv is missing (WITH_TEST_SERVICES=1 scripts/bootstrap.sh builds it)")
    done = subprocess.run([str(python), "-c", LITELLM_SCRIPT, gateway.base_url, rerank_engine.model, QUERY,
                           json.dumps(DOCUMENTS)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    direct = post(gateway, "/v1/rerank", {"model": rerank_engine.model, "query": QUERY, "documents": DOCUMENTS,
                                          "top_n": 2}).json()["results"]
    assert [i for i, _ in results] == [r["index"] for r in direct]


@pytest.mark.parametrize("client", ["cohere", "langchain_cohere", "litellm"])
def test_the_rerank_api_guides_client_snippets_as_written(rerank_engine, gateway, client):
    """The manual's snippets (docs/guides/rerank-api.md), pointed at this gateway and its model's names."""
    code = client_snippets(gateway.base_url, rerank_engine.model, short_name(rerank_engine))[client]
    python = Path(sys.executable)
    if client == "litellm":  # litellm has a venv of its own (.venv-clients)
        python = REPO / os.environ.get("CLIENTS_VENV", ".venv-clients") / "bin" / "python"
        if not python.exists():
            pytest.skip("litellm's venv is missing (WITH_TEST_SERVICES=1 scripts/bootstrap.sh builds it)")
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip(), "each snippet prints what it got"


@pytest.mark.parametrize("send, status, words", [
    (dict(data=b'{"query": "\xff", "documents": ["a"]}'), 400, "UTF-8"),
    (dict(data=b'{"query": '), 400, "JSON"),
    (dict(json={"query": 5, "documents": ["a"]}), 400, "'query'"),
    (dict(json={"query": "q", "documents": ["a"] * 101}), 413, "at most 100"),
    (dict(data=b'{"query": "q", "documents": ["' + b"x" * (2 << 20) + b'"]}'), 413, "larger than"),
])
def test_bad_input_is_a_4xx_with_a_reason(gateway, send, status, words):
    response = requests.post(gateway.url("/v1/rerank"), headers={"Content-Type": "application/json"}, timeout=60,
                             **send)
    assert response.status_code == status, response.text
    assert words in response.json()["error"]["message"]


def test_the_engines_own_4xx_is_passed_through_unchanged(rerank_engine, gateway):
    unknown = {"model": "no-such-model", "queries": QUERY, "documents": DOCUMENTS[:2]}
    through, direct = post(gateway, "/score", unknown), post(rerank_engine, "/score", unknown)
    assert through.status_code == direct.status_code == 404
    assert through.json() == direct.json()
    too_long = {"model": rerank_engine.model, "query": QUERY, "documents": ["short", "word " * 9000]}
    through = post(gateway, "/v1/rerank", too_long)
    assert through.status_code == 400 and "maximum context length" in through.json()["error"]["message"]


def test_a_long_document_scores_the_max_of_its_windows(rerank_engine, tmp_path):
    window, overlap = 48, 12
    document = " ".join(["The weather was mild and the market was quiet."] * 12 + [DOCUMENTS[0]] +
                        ["Nothing else happened that day in the small town."] * 12)
    with running_gateway(tmp_path, gateway_args(rerank_engine, "--chunk-window-tokens", str(window),
                                                "--chunk-overlap-tokens", str(overlap))) as g:
        wait_ready(g)
        response = post(g, "/v1/rerank", {"model": rerank_engine.model, "query": QUERY,
                                          "documents": [DOCUMENTS[4], document]})
        assert response.status_code == 200, response.text
        by_index = {r["index"]: r["relevance_score"] for r in response.json()["results"]}
        assert g.metric("rerank_gateway_chunked_documents_total") == 1
    tokens = post(rerank_engine, "/tokenize", {"model": rerank_engine.model, "prompt": document,
                                               "add_special_tokens": False}).json()["tokens"]
    bounds = window_bounds(len(tokens), window, overlap)
    assert len(bounds) > 3
    windows = [post(rerank_engine, "/detokenize", {"model": rerank_engine.model, "tokens": tokens[a:b]}).json()["prompt"]
               for a, b in bounds]
    assert by_index[1] == pytest.approx(max(direct_scores(rerank_engine, QUERY, windows)), abs=1e-5)
    assert by_index[0] == pytest.approx(direct_scores(rerank_engine, QUERY, [DOCUMENTS[4]])[0], abs=1e-5)


def test_least_outstanding_routing_over_two_engine_addresses(rerank_engine, tmp_path):
    # One vLLM process reached at two loopback addresses is two engines to the gateway (the engine
    # listens on 0.0.0.0): a big request occupies one, the small ones that follow go to the other.
    port = rerank_engine.base_url.rsplit(":", 1)[1]
    a, b = f"http://127.0.0.1:{port}", f"http://127.0.0.2:{port}"
    args = ["--engine", a, "--engine", b, "--served-model-name", rerank_engine.model, "--cache", "none",
            "--dns-interval", "0.2"]
    with running_gateway(tmp_path, args) as g:
        wait_ready(g, engines=2)
        big = {"model": rerank_engine.model, "query": unique(QUERY),
               "documents": [f"{i}: " + "a long unrelated sentence about nothing " * 60 for i in range(256)]}
        worker = threading.Thread(target=post, args=(g, "/v1/rerank", big))
        worker.start()
        deadline = time.monotonic() + 30
        while g.metric("rerank_gateway_outstanding_pairs") < 256:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        busy = a if g.metric("rerank_gateway_outstanding_pairs", engine=a) == 256 else b
        idle = b if busy == a else a
        # Four small requests at once, while the big one is outstanding: each sees 256 pairs on one
        # engine and at most 6 on the other.
        small = [threading.Thread(target=post, args=(g, "/v1/rerank", {
            "model": rerank_engine.model, "query": unique(QUERY), "documents": DOCUMENTS[:2]})) for _ in range(4)]
        for t in small:
            t.start()
        deadline = time.monotonic() + 30
        while g.metric("rerank_gateway_outstanding_pairs", engine=idle) < 8:
            assert time.monotonic() < deadline, "the small requests were not routed while the big one ran"
            time.sleep(0.01)
        assert g.metric("rerank_gateway_outstanding_pairs", engine=busy) == 256
        for t in [worker, *small]:
            t.join(timeout=300)
        assert g.metric("rerank_gateway_engine_requests_total", engine=idle, code="200") == 4
        assert g.metric("rerank_gateway_engine_requests_total", engine=busy, code="200") == 1


def test_hold_then_serve_when_the_first_engine_becomes_ready(rerank_engine, tmp_path):
    port = free_port()
    args = ["--engine", f"http://127.0.0.1:{port}", "--served-model-name", rerank_engine.model,
            "--dns-interval", "0.2", "--hold-seconds", "60", "--max-held", "1"]
    with running_gateway(tmp_path, args) as g:
        answers = {}
        body = {"model": rerank_engine.model, "query": QUERY, "documents": DOCUMENTS[:3]}
        worker = threading.Thread(target=lambda: answers.setdefault("first", post(g, "/v1/rerank", body)))
        worker.start()
        deadline = time.monotonic() + 10
        while g.metric("rerank_gateway_held_pairs") != 3:
            assert time.monotonic() < deadline, "the request was not held"
            time.sleep(0.05)
        # The queue holds one request: the next is refused at once, with Retry-After.
        refused = post(g, "/v1/rerank", body)
        assert refused.status_code == 503 and int(refused.headers["Retry-After"]) > 0
        engine_port = int(rerank_engine.base_url.rsplit(":", 1)[1])
        with FaultyRelay(port, engine_port):
            worker.join(timeout=60)
        assert answers["first"].status_code == 200, answers["first"].text
        assert g.metric("rerank_gateway_held_pairs") == 0


def test_a_request_held_too_long_is_a_503_with_retry_after(rerank_engine, tmp_path):
    args = ["--engine", f"http://127.0.0.1:{free_port()}", "--dns-interval", "0.2", "--hold-seconds", "0.5",
            "--retry-after", "15"]
    with running_gateway(tmp_path, args) as g:
        response = post(g, "/v1/rerank", {"query": QUERY, "documents": DOCUMENTS[:1]})
        assert response.status_code == 503 and response.headers["Retry-After"] == "15"
        assert "within 0.5 s" in response.json()["error"]["message"]


def two_engines(engine, tmp_path, *extra: str):
    """A gateway over two engines: the real one directly, and the same one through a FaultyRelay."""
    relay_port = free_port()
    relay = FaultyRelay(relay_port, int(engine.base_url.rsplit(":", 1)[1]))
    relayed = f"http://127.0.0.1:{relay_port}"
    args = ["--engine", engine.base_url, "--engine", relayed, "--served-model-name", engine.model,
            "--default-instruction", DEPLOYMENT_INSTRUCTION, "--cache", "none", *extra]
    return relay, relayed, running_gateway(tmp_path, args)


def test_a_split_request_scores_and_orders_exactly_like_the_unsplit_one(rerank_engine, tmp_path):
    documents = [f"{i}: {d}" for i in range(6) for d in DOCUMENTS]
    relay, relayed, gateway = two_engines(rerank_engine, tmp_path, "--fan-out-pairs", "8")
    with relay, gateway as g:
        wait_ready(g, engines=2)
        body = {"model": rerank_engine.model, "query": QUERY, "documents": documents, "top_n": 7}
        split = post(g, "/v1/rerank", body)
        assert split.status_code == 200, split.text
        assert g.metric("rerank_gateway_split_requests_total") == 1
        assert g.metric("rerank_gateway_split_pieces_total") == 2
        assert g.metric("rerank_gateway_engine_requests_total", engine=relayed, code="200") == 1
        assert g.metric("rerank_gateway_engine_requests_total", engine=rerank_engine.base_url, code="200") == 1
        whole = direct_scores(rerank_engine, QUERY, documents)
        # One document over maxModelLen in one piece: the engine's 400, as unsplit; the other piece is cancelled.
        too_long = post(g, "/v1/rerank", {**body, "documents": [*documents, "word " * 9000]})
        assert too_long.status_code == 400 and "maximum context length" in too_long.json()["error"]["message"]
        assert g.metric("rerank_gateway_split_requests_total") == 2
    results = split.json()["results"]
    # top_n after the merge: the 7 best of all documents, not of one piece.
    ranked = sorted(range(len(documents)), key=lambda i: -whole[i])[:7]
    assert [r["index"] for r in results] == ranked
    assert [r["relevance_score"] for r in results] == pytest.approx([whole[i] for i in ranked], abs=1e-6)


class SteadyClient:
    """Small requests back to back from two threads; every answer that is not a 200 is kept."""

    def __init__(self, gateway, model: str):
        self.gateway, self.model = gateway, model
        self.sent, self.failed = 0, []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(2)]

    def _run(self) -> None:
        while not self._stop.is_set():
            body = {"model": self.model, "query": unique(QUERY), "documents": DOCUMENTS[:3]}
            try:
                response = post(self.gateway, "/v1/rerank", body)
                ok, what = response.status_code == 200, f"{response.status_code} {response.text[:300]}"
            except requests.RequestException as exc:
                ok, what = False, repr(exc)
            self.sent += 1
            if not ok:
                self.failed.append(what)

    def __enter__(self) -> "SteadyClient":
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=60)

    def __exit__(self, *exc) -> None:
        self.stop()


def wait_for(condition, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_an_engine_that_hangs_or_breaks_connections_costs_the_clients_nothing(rerank_engine, tmp_path):
    # --dns-interval 3600: the fixed list's own health checks run once, at the start, so what takes the hung
    # engine out of rotation and puts it back is the gateway's ejection alone (as with DNS discovery, where a
    # hung pod stays Ready until its probes fail).
    relay, relayed, gateway = two_engines(rerank_engine, tmp_path, "--engine-timeout", "2", "--dns-interval", "3600")
    with relay, gateway as g, SteadyClient(g, rerank_engine.model) as client:
        wait_ready(g, engines=2)
        wait_for(lambda: g.metric("rerank_gateway_engine_requests_total", engine=relayed, code="200") >= 3,
                 "the relayed engine got no requests")
        relay.mode = "hang"
        wait_for(lambda: g.metric("rerank_gateway_ejected_engines") == 1, "the hung engine was not ejected")
        assert g.metric("rerank_gateway_engine_retries_total", reason="timeout") >= 1
        answered = g.metric("rerank_gateway_engine_requests_total", engine=rerank_engine.base_url, code="200")
        time.sleep(3)  # out of rotation: every request goes to the other engine, none waits for a timeout
        assert g.metric("rerank_gateway_engine_requests_total", engine=rerank_engine.base_url, code="200") > answered
        assert g.metric("rerank_gateway_engine_requests_total", engine=relayed, code="timeout") <= 2

        relay.mode = "relay"  # it answers again: back in rotation within a probe or two
        wait_for(lambda: g.metric("rerank_gateway_ejected_engines") == 0, "the engine was not readmitted", 10)
        before = g.metric("rerank_gateway_engine_requests_total", engine=relayed, code="200")
        wait_for(lambda: g.metric("rerank_gateway_engine_requests_total", engine=relayed, code="200") > before,
                 "the readmitted engine got no requests")

        relay.mode = "cut"  # dying mid-answer: the pairs are scored again on the other engine
        wait_for(lambda: g.metric("rerank_gateway_engine_retries_total", reason="reset") >= 1,
                 "no answer was cut")
        relay.mode = "relay"
        wait_for(lambda: g.metric("rerank_gateway_ejected_engines") == 0, "the engine was not readmitted", 10)
        client.stop()
        assert g.metric("rerank_gateway_engine_failures_total") == 0
    assert client.sent > 20 and client.failed == [], client.failed[:3]
