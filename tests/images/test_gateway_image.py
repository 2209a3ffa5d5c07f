"""The gateway image reranks through a real engine (the project's CPU vLLM with the tiny reranker) as uid
10002 with a read-only root filesystem and no capabilities, answering repeats from its cache."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest

from rerank_localdev.controlplane import free_ports
from rerank_operator.api.gateway import DEFAULT_GATEWAY_IMAGE
from rerank_operator.resources.gateway import GATEWAY_UID
from rerank_localdev import images
from tests.fixtures.gateway import metric_value

from .containers import built_image, image_config, running_container, wait_for_http

pytestmark = [pytest.mark.images, pytest.mark.vllm]

QUERY = "What is the capital of France?"
DOCUMENTS = ["Paris is the capital and largest city of France.", "The quick brown fox jumps over the lazy dog."]


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def test_the_api_default_names_the_image_make_images_builds() -> None:
    assert DEFAULT_GATEWAY_IMAGE == images.image_ref("gateway")


def test_gateway_container_reranks_through_the_engine_unprivileged(rerank_engine) -> None:
    ref = built_image("gateway")
    assert image_config(ref)["User"] == f"{GATEWAY_UID}:{GATEWAY_UID}"
    (port,) = free_ports(1)
    base = f"http://127.0.0.1:{port}"
    options = ["--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges"]
    args = ["--host", "127.0.0.1", "--port", str(port), "--engine", rerank_engine.base_url,
            "--served-model-name", rerank_engine.model, "--dns-interval", "0.5"]
    with running_container(ref, *args, options=options) as container:
        wait_for_http(container, base + "/health", timeout=60)
        body = {"model": rerank_engine.model, "query": QUERY, "documents": DOCUMENTS, "top_n": None,
                "max_tokens_per_doc": None}
        first = None
        for _ in range(60):  # until the gateway's first health check of the engine
            try:
                first = post(base + "/v2/rerank", body)
                break
            except urllib.error.HTTPError as exc:
                assert exc.code == 503, exc.read()
                time.sleep(0.5)
        assert first is not None and [r["index"] for r in first["results"]][0] == 0
        again = post(base + "/v2/rerank", body)
        assert again["results"] == first["results"] and again["meta"]["billed_units"]["search_units"] == 1
        metrics = urllib.request.urlopen(base + "/metrics", timeout=10).read().decode()
        assert metric_value(metrics, "rerank_gateway_pairs_total", source="cache") == len(DOCUMENTS)
