"""The UI image serves its page and reranks through a real engine (the project's CPU vLLM with the tiny
reranker), as uid 10001 with a read-only root filesystem."""

from __future__ import annotations

import json
import urllib.request

import pytest
from gradio_client import Client

from rerank_localdev.controlplane import free_ports

from .containers import built_image, running_container, wait_for_http

pytestmark = [pytest.mark.images, pytest.mark.vllm]

QUERY = "What is the capital of France?"
DOCUMENTS = ["Paris is the capital and largest city of France.", "The quick brown fox jumps over the lazy dog.",
             "Berlin is the capital of Germany."]


def engine_scores(engine, query: str, documents: list[str]) -> list[float]:
    body = json.dumps({"model": engine.model, "query": query, "documents": documents}).encode()
    request = urllib.request.Request(engine.url("/v1/rerank"), data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        results = json.loads(response.read())["results"]
    return [score for _, score in sorted((r["index"], r["relevance_score"]) for r in results)]


def test_ui_container_serves_its_page_and_reranks_through_the_engine(rerank_engine) -> None:
    ref = built_image("ui")
    (port,) = free_ports(1)
    url = f"http://127.0.0.1:{port}/"
    env = {"RERANK_ENDPOINT": rerank_engine.url("/v1/rerank"), "RERANK_MODEL": rerank_engine.model,
           "RERANK_DEFAULT_INSTRUCTION": rerank_engine.default_instruction,
           "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port)}
    options = ["--read-only", "--tmpfs", "/tmp:rw,mode=1777"]
    for name, value in env.items():
        options += ["-e", f"{name}={value}"]
    with running_container(ref, options=options) as container:
        page = wait_for_http(container, url, timeout=120)
        assert "<title>Reranker</title>" in page or "Reranker" in page
        wait_for_http(container, url + "gradio_api/app_id", timeout=30)
        ui = Client(url, verbose=False)
        error, usage, table, _ = ui.predict(QUERY, "\n".join(DOCUMENTS), "", 0, api_name="/rerank")
        assert error == "", error
        rows = table["data"]
        expected = engine_scores(rerank_engine, QUERY, DOCUMENTS)
        # Rank, score, document, 1-based input position: the engine's scores, best first.
        assert [row[3] for row in rows] == sorted(range(1, 4), key=lambda p: -expected[p - 1])
        for _, score, text, position in rows:
            assert text == DOCUMENTS[position - 1]
            assert score == pytest.approx(expected[position - 1], abs=1e-4)
        assert usage.startswith("Ranked **3 documents**")
