"""The chart without a cluster: lint, the values schema, RBAC, the operator Deployment and the optional parts.

Where the chart must agree with the operator's code (CLI flags, child kinds, pod labels), the test asks
the code itself rather than repeating it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from rerank_operator.api.v1alpha1 import parse_spec
from rerank_operator.cli import _parser as operator_cli
from rerank_operator.reconcile.kube import KINDS
from rerank_operator.resources.children import all_child_refs, desired_children

from .chart import (CHART, DATA, KUBE_VERSION, MONITORING_CRDS, NAMESPACE, VALUE_SETS, find, helm, one, render,
                    template, values_args)

CRUD = {"create", "get", "list", "watch", "patch", "update", "delete"}
READ = {"get", "list", "watch"}
# (apiGroup, resource) -> verbs, in every watched namespace: exactly the calls the operator makes.
NAMESPACED_RULES = {
    ("rerank.io", "rerankerdeployments"): {"get", "list", "watch", "patch", "update"},
    ("rerank.io", "rerankerdeployments/status"): {"get", "patch", "update"},
    ("rerank.io", "rerankerdeployments/scale"): {"get", "patch", "update"},
    ("rerank.io", "rerankerdeployments/finalizers"): {"update"},
    ("apps", "statefulsets"): CRUD,
    ("apps", "deployments"): CRUD,
    ("", "services"): CRUD,
    ("", "configmaps"): CRUD,
    ("", "serviceaccounts"): CRUD,
    ("networking.k8s.io", "ingresses"): CRUD,
    ("policy", "poddisruptionbudgets"): CRUD,
    ("", "pods"): READ,
    ("", "pods/log"): {"get"},
    ("", "events"): {"create", "patch", "list"},
    ("events.k8s.io", "events"): {"create", "patch"},
}
CRD_READ = {("apiextensions.k8s.io", "customresourcedefinitions"): READ}
NODE_READ = {("", "nodes"): {"get", "list"}}
NAMESPACE_READ = {("", "namespaces"): {"list", "watch"}}


def rules_of(role: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    table: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        assert not rule.get("resourceNames") and not rule.get("nonResourceURLs"), rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                table.setdefault((group, resource), set()).update(rule["verbs"])
    return table


# ---- lint and values schema ----------------------------------------------------------------------


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_helm_lint_strict(value_set: str, tmp_path: Path) -> None:
    proc = helm("lint", "--strict", str(CHART), "--namespace", NAMESPACE, "--kube-version", KUBE_VERSION,
                *values_args(VALUE_SETS[value_set], tmp_path))
    assert "0 chart(s) failed" in proc.stdout, proc.stdout


def test_values_yaml_matches_its_schema_and_the_schema_is_draft7() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.Draft7Validator(schema).validate(yaml.safe_load((CHART / "values.yaml").read_text()))


# --set argument -> words the error must contain (the offending key and what was wrong).
BAD_VALUES = {
    "replicaCount=abc": ["replicaCount", "integer"],
    "replicaCount=-1": ["replicaCount", "0"],
    "logFormat=xml": ["logFormat"],
    "replicas=1": ["replicas"],  # a typo of replicaCount: unknown keys are refused, not ignored
    "logLevel=verbose": ["logLevel"],
    "image.pullPolicy=Sometimes": ["pullPolicy"],
    "image.digest=latest": ["digest"],
    "watchNamespaces={Team_A}": ["watchNamespaces"],
    "metrics.port=70000": ["port"],
    "metrics.serviceMonitor.interval=soon": ["interval"],
    "metrics.podMonitors.interval=soon": ["interval"],
    "metrics.podMonitors.enable=true": ["enable"],
    "sample.name=Bad_Name": ["name"],
    "networkPolicy.allowLabel.team=1": ["allowLabel"],
}


@pytest.mark.parametrize("bad", sorted(BAD_VALUES))
def test_schema_rejects_bad_values_with_a_message_naming_the_field(bad: str) -> None:
    proc = template(sets=[bad], check=False)
    assert proc.returncode != 0, f"--set {bad} was accepted"
    assert "values don't meet the specifications of the schema" in proc.stderr, proc.stderr
    for word in BAD_VALUES[bad]:
        assert word in proc.stderr, f"--set {bad}: {word!r} not in {proc.stderr!r}"


def test_a_service_monitor_without_the_metrics_service_is_refused() -> None:
    proc = template(sets=["metrics.enabled=false", "metrics.serviceMonitor.enabled=true"], check=False)
    assert proc.returncode != 0
    assert "metrics.serviceMonitor.enabled=true needs metrics.enabled=true" in proc.stderr


def test_every_value_is_documented_where_it_is_defined() -> None:
    # A key is documented by a comment right above it, or (a map) by comments on its own keys. The insides of
    # Kubernetes objects (resources, security contexts, the sample's spec) are documented by their parent.
    opaque = ("resources", "podSecurityContext", "securityContext", "spec", "allowLabel")
    lines = (CHART / "values.yaml").read_text().splitlines()
    undocumented, skip_below = [], None
    for i, line in enumerate(lines):
        match = re.match(r"^( *)([A-Za-z][\w./-]*):(.*)$", line)
        if not match:
            continue
        indent, key, rest = len(match[1]), match[2], match[3].strip()
        if skip_below is not None and indent > skip_below:
            continue
        skip_below = indent if key in opaque else None
        previous = next((l.strip() for l in reversed(lines[:i]) if l.strip()), "")
        if not previous.startswith("#") and rest not in ("",):
            undocumented.append(key)
    assert not undocumented, f"values without a comment: {undocumented}"


# ---- RBAC: least privilege, exactly what the code calls ---------------------------------------------


def workload_roles(objects: list[dict[str, Any]], kind: str = "Role") -> list[dict[str, Any]]:
    return [r for r in find(objects, kind) if not r["metadata"]["name"].endswith("-leader-election")]


def test_cluster_wide_rbac_is_exactly_the_operators_calls() -> None:
    objects = render()
    assert not workload_roles(objects) and not workload_roles(objects, "RoleBinding")
    role = one(objects, "ClusterRole")
    assert rules_of(role) == {**NAMESPACED_RULES, **CRD_READ, **NODE_READ}
    binding = one(objects, "ClusterRoleBinding")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": role["metadata"]["name"]}
    account = one(objects, "ServiceAccount")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account["metadata"]["name"],
                                    "namespace": NAMESPACE}]


def test_namespaced_rbac_grants_workloads_only_in_the_watched_namespaces() -> None:
    objects = render(VALUE_SETS["namespaced"])
    roles = workload_roles(objects)
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    for role in roles:
        assert rules_of(role) == NAMESPACED_RULES
    bindings = workload_roles(objects, "RoleBinding")
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    # What stays cluster-wide is discovery only: no nodes, no workloads.
    assert rules_of(one(objects, "ClusterRole")) == {**CRD_READ, **NAMESPACE_READ}


@pytest.mark.parametrize("value_set", ["defaults", "namespaced"])
def test_leader_election_may_touch_only_leases_in_the_release_namespace(value_set: str) -> None:
    objects = render(VALUE_SETS[value_set])
    (role,) = [r for r in find(objects, "Role") if r["metadata"]["name"].endswith("-leader-election")]
    assert role["metadata"]["namespace"] == NAMESPACE
    lease = next(a for a in operator_container(objects)["args"] if a.startswith("--lease-name="))
    assert role["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": [lease.split("=", 1)[1]],
         "verbs": ["get", "update"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
    ]
    (binding,) = [b for b in find(objects, "RoleBinding") if b["metadata"]["name"] == role["metadata"]["name"]]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"][0]["name"] == one(objects, "ServiceAccount")["metadata"]["name"]


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_rbac_has_no_wildcards_secrets_or_escalation(value_set: str) -> None:
    for role in find(render(VALUE_SETS[value_set]), "ClusterRole") + find(render(VALUE_SETS[value_set]), "Role"):
        for rule in role["rules"]:
            assert "*" not in rule["apiGroups"] + rule["resources"] + rule["verbs"], rule
            assert "secrets" not in rule["resources"], rule
            assert not {"escalate", "bind", "impersonate", "deletecollection"} & set(rule["verbs"]), rule


def test_rbac_covers_every_child_kind_the_operator_builds() -> None:
    # The operator's own list of child kinds and its own kind -> resource table.
    granted = rules_of(one(render(), "ClusterRole"))
    for ref in all_child_refs("demo"):
        group = ref.api_version.rpartition("/")[0]
        resource = KINDS[ref.kind][0]
        assert CRUD <= granted.get((group, resource), set()), f"{ref.kind}: {granted.get((group, resource))}"


# ---- the operator Deployment ------------------------------------------------------------------------


def operator_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_operator_arguments_are_understood_by_the_operator_cli(value_set: str) -> None:
    container = operator_container(render(VALUE_SETS[value_set]))
    assert container["command"] == ["rerank-operator", "run"]
    args = operator_cli().parse_args(["run", *container["args"]])  # exits (fails the test) on an unknown flag
    assert args.leader_elect and args.lease_namespace == NAMESPACE and args.lease_name
    assert args.liveness == "http://0.0.0.0:8080/healthz" and args.metrics_port == 9090
    watched = VALUE_SETS[value_set].get("watchNamespaces", [])
    assert args.namespace == watched
    assert args.all_namespaces == (not watched)
    assert args.verbose == (VALUE_SETS[value_set].get("logLevel") == "debug")


def test_operator_probes_hit_the_liveness_endpoint_it_serves() -> None:
    container = operator_container(render(sets=["healthPort=8181"]))
    port = next(p for p in container["ports"] if p["name"] == "health")["containerPort"]
    assert port == 8181 and "--liveness=http://0.0.0.0:8181/healthz" in container["args"]
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}


def test_two_operator_replicas_on_different_nodes_with_a_disruption_budget() -> None:
    objects = render()
    deployment = one(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    selector = deployment["spec"]["selector"]["matchLabels"]
    (term,) = deployment["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"] == {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": selector}}
    pdb = one(objects, "PodDisruptionBudget")
    assert pdb["spec"] == {"minAvailable": 1, "selector": {"matchLabels": selector},
                           "unhealthyPodEvictionPolicy": "AlwaysAllow"}
    env = {e["name"]: e for e in operator_container(objects)["env"]}
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    # One replica needs no budget (it would block every drain).
    assert not find(render(sets=["replicaCount=1"]), "PodDisruptionBudget")


def test_operator_runs_non_root_read_only_without_capabilities() -> None:
    objects = render()
    deployment = one(objects, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]} and security["privileged"] is False
    # The image's USER and the pod's uid agree, so runAsNonRoot never meets a surprise.
    dockerfile = (CHART.parents[1] / "images" / "operator" / "Dockerfile").read_text()
    assert re.search(r"^USER (\d+):", dockerfile, re.M)[1] == str(pod["securityContext"]["runAsUser"])
    assert container["resources"]["limits"]["memory"] and container["resources"]["requests"]["cpu"]
    assert one(objects, "ServiceAccount")["automountServiceAccountToken"] is False
    assert pod["automountServiceAccountToken"] is True  # only the operator pod talks to the API server


def test_image_reference_is_the_app_version_or_a_digest() -> None:
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    assert operator_container(render())["image"] == f"ghcr.io/rerank-operator/rerank-operator:{app_version}"
    digest = "sha256:" + "0" * 64
    assert operator_container(render(sets=[f"image.digest={digest}"]))["image"].endswith(f"@{digest}")


def test_metrics_service_and_optional_service_monitor() -> None:
    objects = render()
    service = one(objects, "Service")
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"}]
    assert service["spec"]["selector"] == one(objects, "Deployment")["spec"]["selector"]["matchLabels"]
    assert not find(objects, "ServiceMonitor")
    monitor = one(render(VALUE_SETS["everything"]), "ServiceMonitor")
    assert monitor["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "15s",
                                             "honorLabels": True}]
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    disabled = render(sets=["metrics.enabled=false"])
    assert not find(disabled, "Service") and "--metrics-port=0" in operator_container(disabled)["args"]


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_every_object_carries_the_standard_labels_and_a_namespace(value_set: str) -> None:
    cluster_scoped = {"ClusterRole", "ClusterRoleBinding"}
    for obj in render(VALUE_SETS[value_set]):
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "rerank-operator", obj["metadata"]
        assert labels["app.kubernetes.io/instance"] == "rerank-operator"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["helm.sh/chart"].startswith("rerank-operator-")
        assert ("namespace" in obj["metadata"]) == (obj["kind"] not in cluster_scoped), obj["metadata"]


def operator_pods(name: str = "demo", namespace: str = "team-a", spec: dict[str, Any] | None = None
                  ) -> dict[str, dict[str, Any]]:
    """The pod templates of the engine, gateway and UI the operator builds for one RerankerDeployment."""
    body = {"apiVersion": "rerank.io/v1alpha1", "kind": "RerankerDeployment",
            "metadata": {"name": name, "namespace": namespace, "uid": "0"}, "spec": spec or {}}
    children = {(c["kind"], c["metadata"]["name"]): c for c in desired_children(body, parse_spec(body["spec"]))}
    return {"engine": children["StatefulSet", f"{name}-engine"]["spec"]["template"],
            "gateway": children["Deployment", f"{name}-gateway"]["spec"]["template"],
            "ui": children["Deployment", f"{name}-ui"]["spec"]["template"]}


def test_pod_monitors_select_the_engines_and_gateways_the_operator_builds_in_the_watched_namespaces() -> None:
    assert not find(render(), "PodMonitor")
    monitors = {m["metadata"]["name"]: m for m in find(render(VALUE_SETS["everything"]), "PodMonitor")}
    assert sorted(monitors) == ["rerank-operator-engines", "rerank-operator-gateways"]
    pods = operator_pods(spec={"engine": {"port": 8123}})
    for component in ("engine", "gateway"):
        monitor = monitors[f"rerank-operator-{component}s"]
        assert monitor["metadata"]["namespace"] == NAMESPACE
        assert monitor["metadata"]["labels"]["release"] == "prometheus"
        spec = monitor["spec"]
        assert spec["namespaceSelector"] == {"matchNames": ["team-a", "team-b"]}
        selector = spec["selector"]["matchLabels"]
        assert [c for c, pod in pods.items() if matches(selector, pod["metadata"]["labels"])] == [component]
        (endpoint,) = spec["podMetricsEndpoints"]
        assert (endpoint["path"], endpoint["interval"]) == ("/metrics", "20s")
        # The named port exists on the pod, whatever port number the engine serves on.
        (container,) = pods[component]["spec"]["containers"]
        assert endpoint["port"] in {p["name"] for p in container["ports"]}
        # ... and it is the one the prometheus.io annotations name, for a Prometheus without the operator.
        annotations = pods[component]["metadata"]["annotations"]
        port = next(p["containerPort"] for p in container["ports"] if p["name"] == endpoint["port"])
        assert (annotations["prometheus.io/port"], annotations["prometheus.io/path"]) == (str(port), "/metrics")
        targets = {r["targetLabel"]: r["sourceLabels"] for r in endpoint["relabelings"]}
        assert targets == {"rerankerdeployment": ["__meta_kubernetes_pod_label_app_kubernetes_io_instance"],
                           "component": ["__meta_kubernetes_pod_label_app_kubernetes_io_component"]}
    # The chart's own pods (labelled managed-by Helm) are never scraped as engines or gateways.
    operator_pod = one(render(VALUE_SETS["everything"]), "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert not any(matches(m["spec"]["selector"]["matchLabels"], operator_pod) for m in monitors.values())


def strict(schema: Any) -> Any:
    """A CRD's OpenAPI schema as the API server's strict field validation reads it: an object with `properties`
    admits no other field (unless it says x-kubernetes-preserve-unknown-fields)."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items() if k != "properties"}
    if "properties" in schema:
        out["properties"] = {k: strict(v) for k, v in schema["properties"].items()}
        if not schema.get("x-kubernetes-preserve-unknown-fields") and "additionalProperties" not in schema:
            out["additionalProperties"] = False
    return out


@pytest.mark.parametrize("crd", MONITORING_CRDS)
def test_monitoring_objects_match_the_prometheus_operators_crds(crd: str) -> None:
    # Offline, what tests/helm/test_helm_cluster.py checks against a real API server: every field is known.
    (definition,) = [d for d in yaml.safe_load_all((DATA / f"{crd}.yaml").read_text()) if d]
    (version,) = [v for v in definition["spec"]["versions"] if v["name"] == "v1"]
    schema = strict(version["schema"]["openAPIV3Schema"])
    objects = find(render(VALUE_SETS["everything"]), definition["spec"]["names"]["kind"])
    assert objects
    for obj in objects:
        jsonschema.Draft4Validator(schema).validate({**obj, "metadata": {}})
    broken = {**objects[0], "spec": {**objects[0]["spec"], "namespaceSelectr": {}}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft4Validator(schema).validate({**broken, "metadata": {}})


def test_pod_monitors_look_in_every_namespace_when_the_operator_watches_the_whole_cluster() -> None:
    monitors = find(render(sets=["metrics.podMonitors.enabled=true"]), "PodMonitor")
    assert len(monitors) == 2 and all(m["spec"]["namespaceSelector"] == {"any": True} for m in monitors)


# ---- NetworkPolicy: judged against the pods the operator really builds ---------------------------


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def test_network_policy_admits_the_gateway_the_ui_the_operator_and_labelled_clients_only() -> None:
    objects = render(VALUE_SETS["everything"])
    policies = [p for p in find(objects, "NetworkPolicy") if p["metadata"]["name"].endswith("-engine-ingress")]
    assert sorted(p["metadata"]["namespace"] for p in policies) == ["team-a", "team-b"]
    policy = policies[0]["spec"]
    assert policy["policyTypes"] == ["Ingress"]

    body = {"apiVersion": "rerank.io/v1alpha1", "kind": "RerankerDeployment",
            "metadata": {"name": "demo", "namespace": "team-a", "uid": "0"}, "spec": {}}
    children = {(c["kind"], c["metadata"]["name"]): c for c in desired_children(body, parse_spec(body["spec"]), {})}
    engine = children["StatefulSet", "demo-engine"]["spec"]["template"]["metadata"]["labels"]
    ui = children["Deployment", "demo-ui"]["spec"]["template"]["metadata"]["labels"]
    gateway = children["Deployment", "demo-gateway"]["spec"]["template"]["metadata"]["labels"]
    assert matches(policy["podSelector"]["matchLabels"], engine)
    assert not matches(policy["podSelector"]["matchLabels"], ui)
    assert not matches(policy["podSelector"]["matchLabels"], gateway)  # the gateway is the open endpoint

    peers = policy["ingress"][0]["from"]
    operator_pod = one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    # Without a gateway the UI calls the engines themselves (the Service <name> selects them).
    no_gateway = {**body, "spec": {"gateway": {"enabled": False}}}
    service = next(c for c in desired_children(no_gateway, parse_spec(no_gateway["spec"]), {}) if c["kind"] == "Service"
                   and c["metadata"]["name"] == "demo")
    assert matches(service["spec"]["selector"], engine)
    allowed = {"gateway": gateway, "ui": ui, "client": {"rerank.io/engine-access": "true"}}
    for what, labels in allowed.items():
        assert any(matches(p["podSelector"]["matchLabels"], labels) and "namespaceSelector" not in p for p in peers), what
    assert any(matches(p["podSelector"]["matchLabels"], operator_pod)
               and p["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": NAMESPACE}} for p in peers)
    for stranger in ({}, {"app": "curl"}, engine, {**ui, "app.kubernetes.io/part-of": "something-else"}):
        assert not any(matches(p["podSelector"]["matchLabels"], stranger) for p in peers), stranger


def test_network_policy_admits_the_listed_scrapers() -> None:
    scraper = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
               "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}
    values = {"networkPolicy": {"enabled": True, "scrapers": [scraper]}}
    (policy,) = [p for p in find(render(values), "NetworkPolicy") if p["metadata"]["name"].endswith("-engine-ingress")]
    peers = policy["spec"]["ingress"][0]["from"]
    assert peers[-1] == scraper and len(peers) == 5
    default = [p for p in find(render(sets=["networkPolicy.enabled=true"]), "NetworkPolicy")
               if p["metadata"]["name"].endswith("-engine-ingress")]
    assert scraper not in default[0]["spec"]["ingress"][0]["from"]


def test_network_policy_closes_the_releases_own_pods_but_their_probe_and_metrics_ports() -> None:
    objects = render(VALUE_SETS["everything"])
    policy = one(objects, "NetworkPolicy", "rerank-operator")["spec"]
    for pod in (one(objects, "Deployment")["spec"]["template"], one(objects, "Pod")):
        assert matches(policy["podSelector"]["matchLabels"], pod["metadata"]["labels"])
    assert policy["ingress"] == [{"ports": [{"port": 8080, "protocol": "TCP"}, {"port": 9090, "protocol": "TCP"}]}]


def test_network_policy_defaults_to_the_release_namespace_when_cluster_wide() -> None:
    policies = find(render(sets=["networkPolicy.enabled=true"]), "NetworkPolicy")
    assert {(p["metadata"]["name"], p["metadata"]["namespace"]) for p in policies} == {
        ("rerank-operator-engine-ingress", NAMESPACE), ("rerank-operator", NAMESPACE)}


# ---- the sample and its `helm test` --------------------------------------------------------------


def test_sample_is_a_valid_reranker_deployment_only_when_enabled() -> None:
    assert not find(render(), "RerankerDeployment") and not find(render(), "Pod")
    sample = one(render(VALUE_SETS["sample"]), "RerankerDeployment")
    assert sample["apiVersion"] == "rerank.io/v1alpha1" and sample["metadata"]["name"] == "qwen3-reranker"
    parse_spec(sample["spec"])  # the operator's own model accepts it


def test_the_sample_runs_on_cpu_with_one_set() -> None:
    # What the README tells kind users without GPUs to pass: the free-form sample.spec carries it through.
    sample = one(render(VALUE_SETS["sample"], sets=["sample.spec.engine.device=cpu"]), "RerankerDeployment")
    engine = parse_spec(sample["spec"]).engine
    assert (engine.device, engine.gpus) == ("cpu", 0)


class StandInEngine(BaseHTTPRequestHandler):
    """Stands in for the endpoint's /v1/rerank (the real engine needs the model): answers a fixed ranking,
    cut to `top_n` when asked."""

    answer: tuple[int, Any] = (200, {})
    seen: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.seen.append(request)
        status, body = self.reply(request)
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def reply(self, request: dict[str, Any]) -> tuple[int, Any]:
        status, body = self.answer
        if status == 200 and request.get("top_n"):
            body = {**body, "results": body["results"][:request["top_n"]]}
        return status, body

    def log_message(self, *args: Any) -> None:
        pass


def run_test_hook(answer: tuple[int, Any], sets: list[str] | None = None, engine: type = StandInEngine
                  ) -> tuple[subprocess.CompletedProcess, list[dict[str, Any]]]:
    hook = one(render(VALUE_SETS["everything"], sets=sets or []), "Pod")
    assert hook["metadata"]["annotations"]["helm.sh/hook"] == "test"
    container = hook["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["RERANK_URL"] == "http://demo.rerank-system.svc:9000/v1/rerank"
    handler = type("Engine", (engine,), {"answer": answer, "seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env["RERANK_URL"] = f"http://127.0.0.1:{server.server_port}/v1/rerank"
        script = container["command"][2]
        proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    finally:
        server.shutdown()
    return proc, handler.seen


def ranking(*scores: float) -> dict[str, Any]:
    """The endpoint's answer for these per-document scores: best first, documents echoed."""
    documents = ["The Great Wall of China stretches across the northern border of historical China.",
                 "Paris is the capital and largest city of France.", "Bananas are a good source of potassium."]
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    return {"results": [{"index": i, "relevance_score": scores[i], "document": {"text": documents[i]}}
                        for i in order]}


def test_helm_test_hook_passes_when_the_relevant_document_ranks_first() -> None:
    proc, seen = run_test_hook((200, ranking(0.02, 0.97, 0.01)))
    assert proc.returncode == 0, proc.stderr
    assert seen[0]["model"] == "Qwen/Qwen3-Reranker-0.6B" and len(seen[0]["documents"]) == 3
    assert "Paris" in seen[0]["documents"][1]
    assert seen[1]["top_n"] == 1
    assert "ok: the relevant document ranks first" in proc.stdout


def test_helm_test_hook_fails_on_the_wrong_order() -> None:
    proc, _ = run_test_hook((200, ranking(0.9, 0.1, 0.05)))
    assert proc.returncode != 0 and "wrong order" in proc.stderr


def test_helm_test_hook_without_the_ranking_expectation_passes_any_consistent_order() -> None:
    # A random-weight model: any order, as long as the answer is a well-formed ranking.
    proc, _ = run_test_hook((200, ranking(0.9, 0.1, 0.05)), sets=["tests.expectRelevantFirst=false"])
    assert proc.returncode == 0, proc.stderr
    assert "not checked: whether the relevant document ranks first" in proc.stdout and "ranks 2 of 3" in proc.stdout


@pytest.mark.parametrize(("results", "complaint"), [
    ([{"index": 1, "relevance_score": 0.9}, {"index": 0, "relevance_score": 0.1}], "each of the 3 documents once"),
    ([{"index": 1, "relevance_score": 0.9}, {"index": 1, "relevance_score": 0.5}, {"index": 0, "relevance_score": 0.1}],
     "each of the 3 documents once"),
    ([{"index": 1, "relevance_score": 3.5}, {"index": 0, "relevance_score": 0.2}, {"index": 2, "relevance_score": 0.1}],
     "must be probabilities"),
    ([{"index": 0, "relevance_score": 0.1}, {"index": 1, "relevance_score": 0.9}, {"index": 2, "relevance_score": 0.2}],
     "best first"),
    ([{"index": 1, "relevance_score": 0.9, "document": {"text": "something else"}},
      {"index": 0, "relevance_score": 0.1}, {"index": 2, "relevance_score": 0.05}], "not its document"),
])
def test_helm_test_hook_fails_on_a_malformed_ranking_whatever_the_model(results, complaint) -> None:
    proc, _ = run_test_hook((200, {"results": results}), sets=["tests.expectRelevantFirst=false"])
    assert proc.returncode != 0 and complaint in proc.stderr, proc.stderr


def test_helm_test_hook_fails_when_top_n_disagrees() -> None:
    class Disagreeing(StandInEngine):
        def reply(self, request: dict[str, Any]) -> tuple[int, Any]:
            status, body = self.answer
            return status, ({**body, "results": body["results"][-1:]} if request.get("top_n") else body)

    proc, _ = run_test_hook((200, ranking(0.02, 0.97, 0.01)), engine=Disagreeing)
    assert proc.returncode != 0 and "top_n=1 must return the best document" in proc.stderr


def test_helm_test_hook_reports_an_engine_error_without_retrying() -> None:
    proc, seen = run_test_hook((400, {"error": "model not found"}))
    assert proc.returncode != 0 and "HTTP 400" in proc.stderr and "model not found" in proc.stderr
    assert len(seen) == 1


# The preStop `sleep` action (PodLifecycleSleepAction) is on by default from Kubernetes 1.30.
PRESTOP_SLEEP_ON_BY_DEFAULT_FROM = 30


def test_kube_version_floor_admits_no_release_without_the_pod_fields_used() -> None:
    """A preStop `sleep` on a 1.29 cluster is refused (or dropped) by the API server: the chart must not
    claim that release."""
    floor = re.fullmatch(r">=\s*1\.(\d+)\.0-0", yaml.safe_load((CHART / "Chart.yaml").read_text())["kubeVersion"])
    assert floor, "kubeVersion is not a plain '>=1.N.0-0' floor"
    body = {"apiVersion": "rerank.io/v1alpha1", "kind": "RerankerDeployment",
            "metadata": {"name": "rr", "namespace": "search", "uid": "u", "generation": 1}, "spec": {}}
    containers = [c for child in desired_children(body, parse_spec(body["spec"]))
                  for c in child.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])]
    used = any("sleep" in c.get("lifecycle", {}).get("preStop", {}) for c in containers)
    assert used, "no child uses a preStop sleep any more: drop this test"
    assert int(floor.group(1)) >= PRESTOP_SLEEP_ON_BY_DEFAULT_FROM
