"""The chart's Grafana dashboard, built with Grafana's foundation SDK and written to
charts/rerank-operator/dashboards/rerank-operator.json (the chart ships it as a ConfigMap for Grafana's sidecar,
`metrics.dashboard`). tests/helm/test_helm_monitoring.py fails when the shipped file differs from what this
module builds. Usage: `python -m rerank_localdev.dashboard [write|check]`.

One RerankerDeployment at a time (the `namespace` and `rerankerdeployment` variables). The engine and gateway
series carry `rerankerdeployment` (the PodMonitors' relabeling, or the monitoring guide's kubernetes_sd job); the
operator's autoscaler names it by `namespace` and `name`. Metric names are the gateway's
(rerank_gateway.metrics), the operator's (rerank_operator.autoscaling.operator_metrics) and vLLM's
(vllm.v1.metrics.loggers); `QUERIES` lists every expression, for the tests that run them on a real Prometheus.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.builders import prometheus, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import DashboardCursorSync, DataSourceRef, VariableRefresh, VariableSort

from .generated import write_or_check

REPO = Path(__file__).resolve().parents[2]
OUTPUT = REPO / "charts" / "rerank-operator" / "dashboards" / "rerank-operator.json"
UID = "rerank-operator"

DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
# The label selectors of the two kinds of series (Grafana substitutes the variables).
POD = 'namespace="$namespace", rerankerdeployment="$rerankerdeployment"'
OPERATOR = 'namespace="$namespace", name="$rerankerdeployment"'
RATE = "$__rate_interval"


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    unit: str
    queries: tuple[Query, ...]
    stacked: bool = False
    bars: bool = False
    width: int = 8


def quantiles(metric: str, legend: str) -> tuple[Query, ...]:
    return tuple(Query(f"histogram_quantile({q}, sum by (le) (rate({metric}_bucket{{{POD}}}[{RATE}])))",
                       f"{legend} p{int(q * 100)}") for q in (0.5, 0.99))


# (row title, panels): the dashboard top to bottom.
ROWS: tuple[tuple[str, tuple[Panel, ...]], ...] = (
    ("Traffic (gateway)", (
        Panel("Requests per second", "Client requests answered by the gateways, by HTTP status.", "reqps",
              (Query(f"sum by (code) (rate(rerank_gateway_requests_total{{{POD}}}[{RATE}]))", "{{code}}"),),
              stacked=True),
        Panel("Pairs per second", "Scored (query, document) pairs, by where the score came from.", "ops",
              (Query(f"sum by (source) (rate(rerank_gateway_pairs_total{{{POD}}}[{RATE}]))", "{{source}}"),),
              stacked=True),
        Panel("Gateway latency", "Time from request to response at the gateways (all rerank and score routes).",
              "s", quantiles("rerank_gateway_request_seconds", "gateway")),
        Panel("Score cache hit ratio", "Share of pairs answered from the score cache.", "percentunit",
              (Query(f'sum(rate(rerank_gateway_pairs_total{{{POD}, source="cache"}}[{RATE}])) / '
                     f"sum(rate(rerank_gateway_pairs_total{{{POD}}}[{RATE}]))", "hit ratio"),)),
        Panel("Held requests", "Requests waiting for a Ready engine (none Ready yet, or scaling from zero), and "
              "the Ready engines the gateways route to.", "short",
              (Query(f"sum(rerank_gateway_held_requests{{{POD}}})", "held requests"),
               Query(f"max(rerank_gateway_ready_engines{{{POD}}})", "Ready engines (gateway view)"))),
        Panel("Retries and errors by reason", "Requests (or pieces) sent again to another engine by how the "
              "engine failed, requests that ran out of tries, held requests answered 503 (by reason), engine "
              "answers that were not 2xx (by status) and score-cache failures.", "reqps",
              (Query(f"sum by (reason) (rate(rerank_gateway_engine_retries_total{{{POD}}}[{RATE}]))",
                     "retried: {{reason}}"),
               Query(f"sum by (reason) (rate(rerank_gateway_engine_failures_total{{{POD}}}[{RATE}]))",
                     "failed after retries: {{reason}}"),
               Query(f"sum by (reason) (rate(rerank_gateway_rejected_total{{{POD}}}[{RATE}]))",
                     "rejected: {{reason}}"),
               Query(f'sum by (code) (rate(rerank_gateway_engine_requests_total{{{POD}, code!~"2.."}}[{RATE}]))',
                     "engine answered {{code}}"),
               Query(f"sum by (backend) (rate(rerank_gateway_cache_errors_total{{{POD}}}[{RATE}]))",
                     "cache errors: {{backend}}")),
              bars=True),
    )),
    ("Engines (vLLM)", (
        Panel("Engine queue wait", "Time requests wait in the engines' queue before they are scheduled.", "s",
              quantiles("vllm:request_queue_time_seconds", "queue wait")),
        Panel("Waiting and running requests", "Engine requests (one per pair) queued and being computed, summed "
              "over the engine pods.", "short",
              (Query(f"sum(vllm:num_requests_waiting{{{POD}}})", "waiting"),
               Query(f"sum(vllm:num_requests_running{{{POD}}})", "running")), stacked=True),
        Panel("KV-cache use", "Share of each engine's KV-cache blocks in use.", "percentunit",
              (Query(f"vllm:kv_cache_usage_perc{{{POD}}}", "{{pod}}"),)),
        Panel("Prompt tokens per second", "Tokens prefilled by the engines: the work the pairs carry.", "short",
              (Query(f"sum by (pod) (rate(vllm:prompt_tokens_total{{{POD}}}[{RATE}]))", "{{pod}}"),),
              stacked=True),
        Panel("Engine requests per second", "Engine requests finished, by reason.", "reqps",
              (Query(f"sum by (finished_reason) (rate(vllm:request_success_total{{{POD}}}[{RATE}]))",
                     "{{finished_reason}}"),), stacked=True),
        Panel("Pods scraped", "Engine and gateway pods Prometheus reaches (up).", "short",
              (Query(f"sum by (component) (up{{{POD}}})", "{{component}} up"),)),
    )),
    ("Autoscaling (operator)", (
        Panel("Replicas", "The replicas the autoscaler decided on and the Ready engine pods it saw.", "short",
              (Query(f"max(rerank_autoscaler_desired_replicas{{{OPERATOR}}})", "desired"),
               Query(f"max(rerank_autoscaler_ready_replicas{{{OPERATOR}}})", "ready"),
               Query(f"max(rerank_autoscaler_scaling_limited{{{OPERATOR}}})", "ScalingLimited"))),
        Panel("Demand and capacity", "Smoothed arrival rate of prompt tokens against the learned capacity of one "
              "replica and of the Ready replicas together.", "short",
              (Query(f"max(rerank_autoscaler_demand_tokens_per_second{{{OPERATOR}}})", "demand"),
               Query(f"max(rerank_autoscaler_capacity_tokens_per_second{{{OPERATOR}}})", "capacity per replica"),
               Query(f"max(rerank_autoscaler_capacity_tokens_per_second{{{OPERATOR}}}) * "
                     f"max(rerank_autoscaler_ready_replicas{{{OPERATOR}}})", "capacity of the Ready replicas"))),
        Panel("Scale events", "Replica changes the autoscaler made, by direction, and its rejected engine "
              "scrapes by reason.", "short",
              (Query(f"sum by (direction) (increase(rerank_autoscaler_scale_events_total{{{OPERATOR}}}[{RATE}]))",
                     "scaled {{direction}}"),
               Query(f"sum by (reason) (increase(rerank_autoscaler_scrape_errors_total{{{OPERATOR}}}[{RATE}]))",
                     "scrape error: {{reason}}")),
              bars=True),
    )),
)

QUERIES: tuple[Query, ...] = tuple(q for _, panels in ROWS for panel in panels for q in panel.queries)


def _panel(panel: Panel) -> timeseries.Panel:
    builder = (timeseries.Panel().title(panel.title).description(panel.description).unit(panel.unit)
               .datasource(DATASOURCE).height(8).span(panel.width).min(0)
               .legend(common_builders.VizLegendOptions().show_legend(True).placement(common.LegendPlacement.BOTTOM)
                       .display_mode(common.LegendDisplayMode.LIST))
               .tooltip(common_builders.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI)
                        .sort(common.SortOrder.DESCENDING)))
    if panel.unit == "percentunit":
        builder = builder.max(1)
    if panel.stacked:
        builder = builder.stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL)).fill_opacity(20)
    if panel.bars:
        builder = builder.draw_style(common.GraphDrawStyle.BARS).fill_opacity(60)
    for i, query in enumerate(panel.queries):
        builder = builder.with_target(prometheus.Dataquery().expr(query.expr).legend_format(query.legend)
                                      .ref_id(chr(ord("A") + i)).range())
    return builder


def _variable(name: str, label: str, query: str) -> dashboard_builders.QueryVariable:
    return (dashboard_builders.QueryVariable(name).label(label).datasource(DATASOURCE)
            .query({"qryType": 1, "query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"})
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED).sort(VariableSort.ALPHABETICAL_ASC))


def build() -> dict:
    """The dashboard as Grafana's JSON model."""
    builder = (dashboard_builders.Dashboard("Rerank operator").uid(UID)
               .description("Per RerankerDeployment: the gateways' traffic, latency, score cache and errors; the "
                            "vLLM engines' queue and KV cache; the autoscaler's replicas, demand and scale events.")
               .tags(["rerank-operator", "vllm"]).time("now-3h", "now").refresh("30s").timezone("browser")
               .tooltip(DashboardCursorSync.CROSSHAIR).editable()
               .with_variable(dashboard_builders.DatasourceVariable("datasource").label("Data source")
                              .type("prometheus"))
               .with_variable(_variable("namespace", "Namespace",
                                        'label_values(up{component=~"engine|gateway"}, namespace)'))
               .with_variable(_variable("rerankerdeployment", "RerankerDeployment",
                                        'label_values(up{component=~"engine|gateway", namespace="$namespace"}, '
                                        "rerankerdeployment)")))
    for title, panels in ROWS:
        builder = builder.with_row(dashboard_builders.Row(title))
        for panel in panels:
            builder = builder.with_panel(_panel(panel))
    return json.loads(json.dumps(builder.build(), cls=JSONEncoder))


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    return write_or_check(argv, OUTPUT, render, "rerank_localdev.dashboard", "run `python -m rerank_localdev.dashboard write`")


if __name__ == "__main__":
    sys.exit(main())
