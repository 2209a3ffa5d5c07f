"""The dashboard's queries and the alerts' expressions on a real Prometheus server (built from the Go module proxy,
rerank_localdev.tools), scraping what the components really expose: the gateway's and the operator's own metric
registries, updated as requests and an autoscaler pass update them, and vLLM's /metrics as captured from a running
engine (tests/fixtures/data/vllm_metrics.txt). The targets get the labels the chart's PodMonitors and ServiceMonitor
give them. Each exposition also passes `promtool check metrics`."""

from __future__ import annotations

import re
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
import yaml
from prometheus_client import REGISTRY, generate_latest

from rerank_gateway import metrics as gateway_metrics
from rerank_localdev import dashboard, tools
from rerank_operator.autoscaling import operator_metrics
from rerank_operator.autoscaling.policy import AT_MAX_REPLICAS, ScalingDecision
from rerank_operator.reconcile.kube import API_REQUESTS

from .chart import REPO, one, render

VLLM_METRICS = REPO / "tests" / "fixtures" / "data" / "vllm_metrics.txt"
NAMESPACE, NAME = "search", "rr"


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
    gateway_metrics.ENGINE_RETRIES.inc()
    gateway_metrics.READY_ENGINES.set(1)
    gateway_metrics.HELD_REQUESTS.set(0)
    return gateway_metrics.exposition()


def operator_exposition() -> bytes:
    """The operator's default registry after an autoscaler pass that scaled up, held at maxReplicas."""
    decision = ScalingDecision(current_replicas=2, desired_replicas=3, recommended_replicas=4, reason="ScaleUp",
                               message="m", observed_queue_depth=12, ready_pods=2, missing_pods=0, pending_pods=0,
                               demand=900.0, capacity=400.0, limited_reason=AT_MAX_REPLICAS)
    operator_metrics.record(NAMESPACE, NAME, decision)
    operator_metrics.SCALE_EVENTS.labels(NAMESPACE, NAME, "up").inc()
    operator_metrics.SCRAPE_ERRORS.labels(NAMESPACE, NAME, "timeout").inc()
    API_REQUESTS.labels("GET", "rerankerdeployments", "200").inc(10)
    API_REQUESTS.labels("APPLY", "statefulsets", "0").inc()
    return generate_latest(REGISTRY)


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def query(url: str, expr: str) -> dict[str, str]:
    """An instant query's result: each series' labels (as text) -> its value."""
    answer = requests.get(f"{url}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert answer["status"] == "success", (expr, answer)
    return {str(r["metric"]): r["value"][1] for r in answer["data"]["result"]}


def scraped_thrice(url: str) -> bool:
    try:
        return query(url, "min(count_over_time(up[1m])) >= 3 and count(up == 1) == 3") != {}
    except requests.ConnectionError:
        return False


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("prometheus")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Exporter)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    config = workdir / "prometheus.yaml"
    config.write_text(yaml.safe_dump(scrape_config(f"127.0.0.1:{server.server_address[1]}")))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (workdir / "prometheus.log").open("w")
    proc = subprocess.Popen([str(tools.path("prometheus")), f"--config.file={config}",
                             f"--storage.tsdb.path={workdir / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not scraped_thrice(url):  # rates need two samples in their window
            assert proc.poll() is None and time.monotonic() < deadline, (workdir / "prometheus.log").read_text()
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        server.shutdown()
        log.close()


def grafana(expr: str) -> str:
    """The expression as Grafana sends it for the variables' values (a rate window of a few scrapes)."""
    return (expr.replace("$namespace", NAMESPACE).replace("$rerankerdeployment", NAME)
            .replace("$__rate_interval", "10s"))


@pytest.mark.parametrize("panel_query", dashboard.QUERIES, ids=lambda q: q.expr[:70])
def test_every_dashboard_query_returns_series_on_a_real_prometheus(prometheus: str,
                                                                   panel_query: dashboard.Query) -> None:
    assert query(prometheus, grafana(panel_query.expr)), panel_query.expr


def test_the_dashboards_variables_list_the_rerankerdeployment(prometheus: str) -> None:
    namespaces = requests.get(f"{prometheus}/api/v1/label/namespace/values",
                              params={"match[]": 'up{component=~"engine|gateway"}'}, timeout=10).json()
    assert namespaces["data"] == [NAMESPACE]
    names = requests.get(f"{prometheus}/api/v1/label/rerankerdeployment/values",
                         params={"match[]": f'up{{component=~"engine|gateway", namespace="{NAMESPACE}"}}'},
                         timeout=10).json()
    assert names["data"] == [NAME]


def selectors(expr: str) -> list[str]:
    """The vector selectors of an expression (a metric name and its label matchers)."""
    return [m.group(0) for m in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*\{[^}]*\}", expr)]


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
