"""The chart's monitoring: the alerts (templates/prometheusrule.yaml) under Prometheus' own rule unit tests -- the
rendered rules pass `promtool check rules`, and `promtool test rules` runs data/alerts_test.yaml, which fires every
alert once and keeps it quiet once -- and the dashboard (templates/dashboard.yaml), which must be what
rerank_localdev.dashboard generates and may query only metrics the components expose. promtool is built from the Go module proxy like the other release tools
(rerank_localdev.tools, `make tools`); without Go these tests fail rather than skip."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from rerank_localdev import dashboard, tools

from .chart import DATA, NAMESPACE, REPO, VALUE_SETS, one, render

ALERT_TESTS = DATA / "alerts_test.yaml"
VLLM_METRICS = REPO / "tests" / "fixtures" / "data" / "vllm_metrics.txt"


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(tools.path("promtool")), *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def rule_groups(**rule_values: Any) -> list[dict[str, Any]]:
    values = {"metrics": {"prometheusRule": {"enabled": True, **rule_values}}}
    return one(render(values), "PrometheusRule")["spec"]["groups"]


def alert_names(groups: list[dict[str, Any]]) -> list[str]:
    return [rule["alert"] for group in groups for rule in group["rules"]]


def run_alert_tests(tmp_path: Path, groups: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    shutil.copy(ALERT_TESTS, tmp_path / ALERT_TESTS.name)
    return promtool("test", "rules", ALERT_TESTS.name, cwd=tmp_path)


def test_the_prometheus_rule_is_off_by_default_and_labelled_when_on() -> None:
    assert not [o for o in render() if o["kind"] == "PrometheusRule"]
    rule = one(render(VALUE_SETS["everything"]), "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "prometheus"


def test_the_rendered_rules_pass_promtool_check(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rule_groups()}, sort_keys=False))
    proc = promtool("check", "rules", "--lint=all", "--lint-fatal", "rules.yaml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(alert_names(rule_groups()))} rules found" in proc.stdout, proc.stdout


def test_every_alert_fires_and_keeps_quiet_in_promtools_unit_tests(tmp_path: Path) -> None:
    groups = rule_groups()
    proc = run_alert_tests(tmp_path, groups)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout, proc.stdout
    fired, quiet = set(), set()
    for case in yaml.safe_load(ALERT_TESTS.read_text())["tests"]:
        for check in case["alert_rule_test"]:
            (fired if check["exp_alerts"] else quiet).add(check["alertname"])
    names = set(alert_names(groups))
    assert fired == names, f"alerts never fired: {sorted(names - fired)}"
    assert quiet == names, f"alerts never checked quiet: {sorted(names - quiet)}"


@pytest.mark.parametrize(("rule_values", "failing"), [
    # A threshold raised past the test data's 20% of 5xx: the firing case no longer fires.
    ({"errorRatio": 0.5}, "RerankGatewayErrors"),
    # A longer hold before alerting: the case that expects RerankNoReadyEngine at 25 minutes sees none.
    ({"noReadyEngineFor": "30m"}, "RerankNoReadyEngine"),
    # A p99 threshold above the slow case's 4.975 s.
    ({"latencyP99Seconds": 5}, "RerankLatencyHigh"),
])
def test_the_unit_tests_catch_a_changed_rule(tmp_path: Path, rule_values: dict[str, Any], failing: str) -> None:
    proc = run_alert_tests(tmp_path, rule_groups(**rule_values))
    assert proc.returncode == 1, proc.stdout
    assert f"alertname: {failing}" in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def test_every_alert_has_a_runbook_in_the_monitoring_guide() -> None:
    guide = (REPO / "docs" / "guides" / "monitoring.md").read_text()
    for group in rule_groups():
        for rule in group["rules"]:
            page, anchor = rule["annotations"]["runbook_url"].rsplit("#", 1)
            assert page.endswith("/docs/guides/monitoring.md") and anchor == rule["alert"].lower()
            assert f"### {rule['alert']}\n" in guide, f"the monitoring guide has no runbook heading for {rule['alert']}"
            assert rule["labels"]["severity"] in ("critical", "warning")


# ---- the dashboard ---------------------------------------------------------------------------------------

def test_the_shipped_dashboard_is_the_generated_one() -> None:
    assert dashboard.OUTPUT.read_text() == dashboard.render(), \
        "charts/rerank-operator/dashboards/rerank-operator.json is stale: run python -m rerank_localdev.dashboard"
    assert dashboard.main(["check"]) == 0


def test_the_dashboard_configmap_is_off_by_default_and_carries_the_sidecars_label() -> None:
    assert not [o for o in render() if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-dashboard")]
    (configmap,) = [o for o in render(VALUE_SETS["everything"]) if o["kind"] == "ConfigMap"
                    and o["metadata"]["name"] == "rerank-operator-dashboard"]
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["namespace"] == "monitoring"
    assert configmap["metadata"]["annotations"] == {"grafana_folder": "Rerank"}
    assert json.loads(configmap["data"]["rerank-operator.json"]) == dashboard.build()
    default_namespace = one(render(sets=["metrics.dashboard.enabled=true"]), "ConfigMap")
    assert default_namespace["metadata"]["namespace"] == NAMESPACE


def known_metric_names() -> set[str]:
    """Every series name the engines (vLLM, as captured from a running one), the gateways and the operator
    expose, plus Prometheus' own `up`."""
    from prometheus_client import REGISTRY

    import rerank_operator.autoscaling.operator_metrics  # noqa: F401 (registers the autoscaler's metrics)
    import rerank_operator.reconcile.kube  # noqa: F401 (registers the API request counter)
    from rerank_gateway import metrics as gateway_metrics

    names = {"up"}
    for registry in (REGISTRY, gateway_metrics.REGISTRY):
        for family in registry.collect():
            names.add(family.name)
            names.update(sample.name for sample in family.samples)
            if family.type == "counter":
                names.add(family.name + "_total")
            if family.type == "histogram":
                names.add(family.name + "_bucket")
    names.update(re.findall(r"^(vllm:[a-z_]+)", VLLM_METRICS.read_text(), flags=re.M))
    return names


def metric_names(expr: str) -> set[str]:
    """The series names an expression reads: the project's and vLLM's families, and `up`."""
    return set(re.findall(r"(?<![\w:])(rerank_\w+|vllm:\w+|up)(?![\w:])", expr))


def test_every_dashboard_and_alert_query_names_metrics_that_exist() -> None:
    known = known_metric_names()
    exprs = [q.expr for q in dashboard.QUERIES]
    exprs += [rule["expr"] for group in rule_groups() for rule in group["rules"]]
    exprs += [v["query"]["query"] for v in dashboard.build()["templating"]["list"] if v["type"] == "query"]
    for expr in exprs:
        names = metric_names(expr)
        assert names, expr
        assert names <= known, f"{sorted(names - known)} in {expr}"
    assert metric_names("rate(rerank_gateway_requets_total[5m])") - known  # a misspelt name is caught


def test_the_dashboard_shows_what_a_platform_team_asks_for() -> None:
    built = dashboard.build()
    assert [v["name"] for v in built["templating"]["list"]] == ["datasource", "namespace", "rerankerdeployment"]
    titles = {p["title"] for p in built["panels"]}
    assert {"Requests per second", "Pairs per second", "Gateway latency", "Engine queue wait",
            "Waiting and running requests", "KV-cache use", "Score cache hit ratio", "Retries and errors by reason",
            "Replicas", "Demand and capacity", "Scale events"} <= titles
    for panel in built["panels"]:
        for target in panel.get("targets", []):
            # One RerankerDeployment at a time: each query is narrowed by the variables.
            assert "$rerankerdeployment" in target["expr"] and "$namespace" in target["expr"], target["expr"]
    assert len({(p["gridPos"]["y"], p["gridPos"]["x"]) for p in built["panels"]}) == len(built["panels"])


# ---- the kubernetes_sd job the monitoring guide offers instead of the PodMonitors ----------------------------------

def test_the_guides_scrape_job_is_valid_and_labels_as_the_pod_monitors_do(tmp_path: Path) -> None:
    guide = (REPO / "docs" / "guides" / "monitoring.md").read_text()
    (job,) = [block for block in re.findall(r"```yaml\n(.*?)```", guide, flags=re.S)
              if "kubernetes_sd_configs" in block]
    (scrape,) = yaml.safe_load(job)
    (tmp_path / "prometheus.yaml").write_text(yaml.safe_dump({"scrape_configs": [scrape]}))
    proc = promtool("check", "config", "--syntax-only", "prometheus.yaml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    targets = {r["target_label"]: r["source_labels"] for r in scrape["relabel_configs"] if "target_label" in r}
    monitor = one(render(sets=["metrics.podMonitors.enabled=true"]), "PodMonitor", "rerank-operator-engines")
    for relabeling in monitor["spec"]["podMetricsEndpoints"][0]["relabelings"]:
        assert targets[relabeling["targetLabel"]] == relabeling["sourceLabels"]
    assert {"namespace", "pod", "__address__", "__metrics_path__"} <= set(targets)
    # The address rewrite keeps the pod's IP and takes the annotated port.
    (address,) = [r for r in scrape["relabel_configs"] if r.get("target_label") == "__address__"]
    assert re.sub(address["regex"].replace("$", "\\$"), address["replacement"].replace("$", "\\"),
                  "10.1.2.3:8000;8123") == "10.1.2.3:8123"
