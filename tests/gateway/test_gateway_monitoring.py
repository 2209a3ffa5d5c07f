"""The dashboard and the alerts against the real components: a real Prometheus scrapes the real CPU vLLM engine
(tests/fixtures/engine.py) and a real gateway in front of it (tests/fixtures/gateway.py), labelled as the chart's
PodMonitors label them, while clients send rerank requests; the operator, which is not run here, is its own
metrics registry after an autoscaler pass (tests/fixtures/prometheus.py). Every dashboard query returns series,
every alert expression's selectors find theirs, and the engine's and gateway's /metrics pass `promtool check
metrics` (vLLM's only findings being its own names). The run's panels are drawn with rerank_localdev.dashboard_preview;
with RERANK_WRITE_DASHBOARD_PREVIEW=1 into docs/dashboard.png, the monitoring guide's picture."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

import pytest
import requests

from rerank_localdev import dashboard, dashboard_preview, tools
from tests.fixtures.engine import DEPLOYMENT_INSTRUCTION
from tests.fixtures.gateway import running_gateway
from tests.fixtures.prometheus import NAME, NAMESPACE, grafana, operator_exposition, query, running_prometheus, selectors
from tests.helm.chart import one, render
from tests.serving.pairs import QUERIES


RATE = "30s"  # Grafana's $__rate_interval here: requests to the CPU engine are seconds apart on a loaded machine


# Labelled counters of failures: a series appears with the first failure, so a healthy run has none.
ERROR_COUNTERS = ("rerank_gateway_rejected_total", "rerank_gateway_cache_errors_total",
                  "rerank_gateway_engine_retries_total", "rerank_gateway_engine_failures_total",
                  'rerank_gateway_engine_requests_total{namespace="$namespace", rerankerdeployment="$rerankerdeployment", '
                  'code!~"2.."}')


class OperatorStandIn(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        body = operator_exposition()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def target(url: str, component: str, pod: str) -> dict:
    return {"job_name": component, "static_configs": [{"targets": [urlparse(url).netloc], "labels": {
        "namespace": NAMESPACE, "rerankerdeployment": NAME, "component": component, "pod": pod}}]}


@pytest.fixture(scope="module")
def gateway(rerank_engine, tmp_path_factory):
    args = ["--engine", rerank_engine.base_url, "--served-model-name", rerank_engine.model,
            "--default-instruction", DEPLOYMENT_INSTRUCTION, "--dns-interval", "0.2"]
    with running_gateway(tmp_path_factory.mktemp("gateway"), args) as g:
        deadline = time.monotonic() + 30
        while requests.get(g.url("/health"), timeout=5).json()["ready_engines"] < 1:
            assert time.monotonic() < deadline, "the gateway never saw the engine ready"
            time.sleep(0.1)
        yield g


@pytest.fixture(scope="module")
def prometheus(rerank_engine, gateway, tmp_path_factory) -> Iterator[str]:
    operator = ThreadingHTTPServer(("127.0.0.1", 0), OperatorStandIn)
    threading.Thread(target=operator.serve_forever, daemon=True).start()
    stop = threading.Event()

    def clients() -> None:  # steady traffic, each query asked twice (the second from the score cache)
        queries = list(QUERIES.items())
        i = 0
        while not stop.is_set():
            question, documents = queries[(i // 2) % len(queries)]
            requests.post(gateway.url("/v1/rerank"), json={"model": rerank_engine.model, "documents": documents,
                                                            "query": f"{question} ({i // 2})"}, timeout=120)
            i += 1
            stop.wait(0.2)

    worker = threading.Thread(target=clients, daemon=True)
    worker.start()
    config = {"global": {"scrape_interval": "1s"}, "scrape_configs": [
        target(rerank_engine.base_url, "engine", f"{NAME}-engine-0"),
        target(gateway.base_url, "gateway", f"{NAME}-gateway-a"),
        {"job_name": "rerank-operator-metrics", "honor_labels": True,
         "static_configs": [{"targets": [f"127.0.0.1:{operator.server_address[1]}"],
                             "labels": {"namespace": "rerank-system", "pod": "rerank-operator-a"}}]},
    ]}
    try:
        with running_prometheus(tmp_path_factory.mktemp("prometheus"), config, targets=3, timeout=120) as url:
            # Requests answered in the rate window: a few seconds of traffic after three scrapes.
            deadline = time.monotonic() + 120
            while not query(url, 'sum(rate(rerank_gateway_pairs_total{source="engine"}[30s])) > 0') \
                    or not query(url, 'sum(rate(vllm:request_queue_time_seconds_count[30s])) > 0'):
                assert time.monotonic() < deadline, "no traffic reached Prometheus: " + " ".join(
                    line for line in requests.get(gateway.url("/metrics"), timeout=10).text.splitlines()
                    if line.startswith(("rerank_gateway_pairs", "rerank_gateway_requests_total")))
                time.sleep(1)
            yield url
    finally:
        stop.set()
        worker.join(timeout=130)
        operator.shutdown()


@pytest.mark.parametrize("panel_query", dashboard.QUERIES, ids=lambda q: q.expr[:70])
def test_every_dashboard_query_returns_series_from_the_real_engine_and_gateway(prometheus: str,
                                                                               panel_query: dashboard.Query) -> None:
    answer = query(prometheus, grafana(panel_query.expr, NAMESPACE, NAME, RATE))
    if any(counter in panel_query.expr for counter in ERROR_COUNTERS):
        return  # a valid query (query() checks the answer) with no series while nothing fails
    assert answer, panel_query.expr


def test_the_dashboard_sees_the_traffic(prometheus: str) -> None:
    pairs = query(prometheus, grafana(f"sum(rate(rerank_gateway_pairs_total{{{dashboard.POD}}}[30s]))",
                                      NAMESPACE, NAME))
    assert float(next(iter(pairs.values()))) > 0
    hit_ratio = next(q for q in dashboard.QUERIES if q.legend == "hit ratio")
    hits = query(prometheus, grafana(hit_ratio.expr, NAMESPACE, NAME, RATE))
    assert 0 <= float(next(iter(hits.values()))) <= 1
    running = query(prometheus, grafana(f"sum(vllm:num_requests_running{{{dashboard.POD}}}) + "
                                        f"sum(vllm:num_requests_waiting{{{dashboard.POD}}})", NAMESPACE, NAME))
    assert running


def test_every_alert_expression_evaluates_against_the_real_components(prometheus: str) -> None:
    groups = one(render({"metrics": {"prometheusRule": {"enabled": True}}}), "PrometheusRule")["spec"]["groups"]
    missing = []
    for rule in (rule for group in groups for rule in group["rules"]):
        query(prometheus, rule["expr"])
        missing += [f"{s} ({rule['alert']})" for s in selectors(rule["expr"]) if not query(prometheus, s)]
    # Counters with labels appear with their first increment: a healthy run has no 5xx, no rejected request, no
    # cache error, no failed API request. Everything else must be there.
    expected_absent = {'rerank_gateway_requests_total{code=~"5.."} (RerankGatewayErrors)',
                       'rerank_operator_api_requests_total{job="rerank-operator-metrics", code=~"0|5.."} '
                       "(RerankOperatorApiErrors)"}
    assert set(missing) <= expected_absent, missing


@pytest.mark.parametrize("component", ["engine", "gateway"])
def test_the_real_metrics_pass_promtool_check_metrics(rerank_engine, gateway, component: str) -> None:
    base = rerank_engine if component == "engine" else gateway
    text = requests.get(base.url("/metrics"), timeout=10).text
    proc = subprocess.run([str(tools.path("promtool")), "check", "metrics"], input=text, capture_output=True,
                          text=True, timeout=60)
    findings = (proc.stdout + proc.stderr).splitlines()
    if component == "engine":
        vllms_own = ("metric names should not contain ':'",
                     'vllm:iteration_tokens_total non-counter metrics should not have "_total" suffix')
        assert proc.returncode == 3 and all(line.endswith(vllms_own) for line in findings), findings
    else:
        assert proc.returncode == 0 and not findings, findings


def test_the_panels_draw_from_the_run(prometheus: str, tmp_path) -> None:
    time.sleep(20)  # a little history to draw
    output = dashboard_preview.OUTPUT if os.environ.get("RERANK_WRITE_DASHBOARD_PREVIEW") == "1" \
        else tmp_path / "dashboard.png"
    drawn = dashboard_preview.render(prometheus, NAMESPACE, NAME, output, minutes=1.5, rate_interval=RATE)
    assert drawn.read_bytes().startswith(b"\x89PNG") and drawn.stat().st_size > 50_000
