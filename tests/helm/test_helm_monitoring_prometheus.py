"""The dashboard's queries and the alerts' expressions on a real Prometheus server (built from the Go module proxy,
rerank_localdev.tools), scraping what the components really expose: the gateway's and the operator's own metric
registries, updated as requests and an autoscaler pass update them, and vLLM's /metrics as captured from a running
engine (tests/fixtures/data/vllm_metrics.txt). The targets get the labels the chart's PodMonitors and ServiceMonitor
give them. Each exposition also passes `promtool check metrics`."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from rerank_gateway import metrics as gateway_metrics
from rerank_localdev import dashboard, dashboard_preview, tools
from tests.fixtures.prometheus import NAME, NAMESPACE, grafana, operator_exposition, query, running_prometheus, selectors

from .chart import REPO, one, render

VLLM_METRICS = REPO / "tests" / "fixtures" / "data" / "vllm_metrics.txt"


def gateway_exposition() -> bytes:
    """The gateway's registry after more answered requests (so its counters move between scrapes)."""
    gateway_metrics.child(gateway_metrics.REQUESTS, "/v1/rerank", "200").inc(20)
    gateway_metrics.child(gateway_metrics.REQUESTS, "/v1/rerank", "503").inc()
    gateway_metrics.child(gateway_metrics.LATENCY, "/v1/rerank").observe(0.02)
    gateway_metrics.child(gateway_metrics.PAIRS, "engine").inc(8)
    gateway_metrics.child(gateway_metrics.PAIRS, "cache").inc(2)
    gateway_metrics.child(gateway_metrics.ENGINE_REQUESTS, "10.0.0.1:8000", "200").inc()
    gateway_metrics.child(gateway_metrics.ENGINE_REQUESTS, "10.0.0.1:8000", "500").inc()
    gateway_metrics.child(gateway_metrics.REJECTED, "timeout").inc()
    gateway_metrics.child(gateway_metrics.CACHE_ERRORS, "redis").inc()
    gateway_metrics.child(gateway_metrics.ENGINE_RETRIES, "timeout").inc()
    gateway_metrics.child(gateway_metrics.ENGINE_FAILURES, "5xx").inc()
    gateway_metrics.READY_ENGINES.set(1)
    gateway_metrics.HELD_REQUESTS.set(0)
    return gateway_metrics.exposition()


EXPOSITIONS: dict[str, Callable[[], bytes]] = {
    "/engine": VLLM_METRICS.read_bytes,
    "/gateway": gateway_exposition,
    "/operator": operator_exposition,
}


class Exporter(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        body = EXPOSITIONS[self.path]()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def scrape_config(exporter: str) -> dict:
    pod_labels = {"namespace": NAMESPACE, "rerankerdeployment": NAME}
    return {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {"job_name": "engine", "metrics_path": "/engine",
             "static_configs": [{"targets": [exporter], "labels": {**pod_labels, "component": "engine",
                                                                    "pod": f"{NAME}-engine-0"}}]},
            {"job_name": "gateway", "metrics_path": "/gateway",
             "static_configs": [{"targets": [exporter], "labels": {**pod_labels, "component": "gateway",
                                                                    "pod": f"{NAME}-gateway-a"}}]},
            # The operator's ServiceMonitor: job = the metrics Service's name, its own namespace/name honored.
            {"job_name": "rerank-operator-metrics", "metrics_path": "/operator", "honor_labels": True,
             "static_configs": [{"targets": [exporter], "labels": {"namespace": "rerank-system",
                                                                    "pod": "rerank-operator-a"}}]},
        ],
    }


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Exporter)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with running_prometheus(tmp_path_factory.mktemp("prometheus"),
                                scrape_config(f"127.0.0.1:{server.server_address[1]}"), targets=3) as url:
            yield url
    finally:
        server.shutdown()


@pytest.mark.parametrize("panel_query", dashboard.QUERIES, ids=lambda q: q.expr[:70])
def test_every_dashboard_query_returns_series_on_a_real_prometheus(prometheus: str,
                                                                   panel_query: dashboard.Query) -> None:
    assert query(prometheus, grafana(panel_query.expr, NAMESPACE, NAME)), panel_query.expr


def test_the_dashboards_variables_list_the_rerankerdeployment(prometheus: str) -> None:
    namespaces = requests.get(f"{prometheus}/api/v1/label/namespace/values",
                              params={"match[]": 'up{component=~"engine|gateway"}'}, timeout=10).json()
    assert namespaces["data"] == [NAMESPACE]
    names = requests.get(f"{prometheus}/api/v1/label/rerankerdeployment/values",
                         params={"match[]": f'up{{component=~"engine|gateway", namespace="{NAMESPACE}"}}'},
                         timeout=10).json()
    assert names["data"] == [NAME]


def test_every_alert_expression_evaluates_on_a_real_prometheus(prometheus: str) -> None:
    # The thresholds keep most alerts quiet on this stand-in: each must be a valid query whose every selector finds
    # a series (a misspelt metric or label would find none).
    groups = one(render({"metrics": {"prometheusRule": {"enabled": True}}}), "PrometheusRule")["spec"]["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert len(rules) == 10
    for rule in rules:
        query(prometheus, rule["expr"])
        for selector in selectors(rule["expr"]):
            assert query(prometheus, selector), f"{selector} (in {rule['alert']}) selects nothing"


@pytest.mark.parametrize("component", sorted(EXPOSITIONS))
def test_each_components_metrics_pass_promtool_check_metrics(component: str) -> None:
    proc = subprocess.run([str(tools.path("promtool")), "check", "metrics"], input=EXPOSITIONS[component]().decode(),
                          capture_output=True, text=True, timeout=60)
    findings = (proc.stdout + proc.stderr).splitlines()
    if component == "/engine":
        # vLLM's own naming, left as it is: its names carry a colon (Prometheus' lint reserves colons for
        # recording rules) and its histogram vllm:iteration_tokens_total ends in _total. Exit 3 is lint findings
        # only; a parse error would be exit 1.
        assert proc.returncode == 3 and findings, findings
        vllms_own = ("metric names should not contain ':'",
                     'vllm:iteration_tokens_total non-counter metrics should not have "_total" suffix')
        assert all(line.endswith(vllms_own) for line in findings), findings
    else:
        assert proc.returncode == 0 and not findings, findings


def test_the_panels_draw_from_prometheus(prometheus: str, tmp_path) -> None:
    drawn = dashboard_preview.render(prometheus, NAMESPACE, NAME, tmp_path / "dashboard.png", minutes=0.5)
    assert drawn.read_bytes().startswith(b"\x89PNG") and drawn.stat().st_size > 50_000
