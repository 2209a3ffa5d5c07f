"""The engine's /metrics: the queue gauges the autoscaler reads, live, and the captured fixture text
(tests/fixtures/data/vllm_metrics.txt) still matching what the pinned engine serves."""

from __future__ import annotations

import requests
from prometheus_client.parser import text_string_to_metric_families

from rerank_operator.autoscaling.metrics import RUNNING, WAITING, parse_engine_sample

from tests.fixtures.engine import METRICS_FILE, metrics_under_load


def families(text: str) -> dict[str, set[frozenset]]:
    """Family name -> label-name sets of its samples, for the vllm:num_requests_* gauges."""
    out: dict[str, set[frozenset]] = {}
    for family in text_string_to_metric_families(text):
        if family.name.startswith("vllm:num_requests_"):
            assert family.type == "gauge", family.name
            out[family.name] = {frozenset(s.labels) for s in family.samples}
    return out


def test_queue_gauges_count_requests_in_flight(rerank_engine):
    idle = requests.get(rerank_engine.url("/metrics"), timeout=10)
    assert idle.status_code == 200
    assert parse_engine_sample(idle.text).total == 0
    busy = metrics_under_load(rerank_engine, clients=8, documents=32, timeout=60)
    depth = parse_engine_sample(busy)
    assert depth.waiting > 0 and depth.running > 0, depth
    labels = families(busy)
    assert labels[WAITING] == labels[RUNNING] == {frozenset({"engine", "model_name"})}
    assert f'model_name="{rerank_engine.model}"' in busy


def test_captured_fixture_has_the_live_engines_gauges(rerank_engine):
    live = requests.get(rerank_engine.url("/metrics"), timeout=10).text
    captured = METRICS_FILE.read_text()
    assert families(captured) == families(live)
    assert parse_engine_sample(captured).total > 0  # captured under load, so the parser tests see non-zero values
