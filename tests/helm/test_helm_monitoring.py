"""The chart's monitoring: the alerts (templates/prometheusrule.yaml) under Prometheus' own rule unit tests -- the
rendered rules pass `promtool check rules`, and `promtool test rules` runs data/alerts_test.yaml, which fires every
alert once and keeps it quiet once. promtool is built from the Go module proxy like the other release tools
(rerank_localdev.tools, `make tools`); without Go these tests fail rather than skip."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from rerank_localdev import tools

from .chart import DATA, REPO, VALUE_SETS, one, render

ALERT_TESTS = DATA / "alerts_test.yaml"


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


def test_every_alert_has_a_runbook_in_the_readme() -> None:
    readme = (REPO / "README.md").read_text()
    for group in rule_groups():
        for rule in group["rules"]:
            anchor = rule["annotations"]["runbook_url"].rsplit("#", 1)[1]
            assert anchor == rule["alert"].lower()
            assert f"#### {rule['alert']}\n" in readme, f"README has no runbook heading for {rule['alert']}"
            assert rule["labels"]["severity"] in ("critical", "warning")
