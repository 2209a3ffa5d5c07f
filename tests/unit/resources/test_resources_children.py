from __future__ import annotations

import pytest

from rerank_operator.resources import ChildRef, retired_children
from rerank_operator.resources import labels as L

from tests.unit.resources.builder_support import assert_known_fields, child, children_of, make_body


def refs(body):
    return [(c["kind"], c["metadata"]["name"]) for c in children_of(body)]


def retired(body):
    return retired_children(body, children_of(body))


def test_default_spec_children():
    assert sorted(refs(make_body())) == sorted([
        ("ServiceAccount", "rr-engine"), ("ServiceAccount", "rr-ui"), ("Service", "rr"), ("Service", "rr-engine-headless"), ("StatefulSet", "rr-engine"),
        ("PodDisruptionBudget", "rr-engine"), ("ConfigMap", "rr-status"), ("Deployment", "rr-ui"),
        ("Service", "rr-ui"), ("Service", "rr-engine"), ("Deployment", "rr-gateway"),
    ])
    assert retired(make_body()) == [ChildRef("networking.k8s.io/v1", "Ingress", "rr-ui"),
                                    ChildRef("policy/v1", "PodDisruptionBudget", "rr-gateway")]


def test_switched_off_children_are_retired():
    body = make_body({"ui": {"enabled": False}, "disruptionBudget": {"enabled": False}, "gateway": {"enabled": False}})
    assert sorted(refs(body)) == [("Service", "rr"), ("Service", "rr-engine-headless"),
                                  ("ServiceAccount", "rr-engine"), ("StatefulSet", "rr-engine")]
    assert {(r.kind, r.name) for r in retired(body)} == {
        ("ServiceAccount", "rr-ui"), ("PodDisruptionBudget", "rr-engine"), ("ConfigMap", "rr-status"), ("Deployment", "rr-ui"),
        ("Service", "rr-ui"), ("Ingress", "rr-ui"), ("Service", "rr-engine"), ("Deployment", "rr-gateway"),
        ("PodDisruptionBudget", "rr-gateway")}


@pytest.mark.parametrize("spec", [{}, {"ui": {"ingress": {"enabled": True, "host": "a.example.com"}}}])
def test_every_child_is_owned_labelled_and_namespaced(spec):
    body = make_body(spec, name="team-a", namespace="ml")
    for c in children_of(body):
        meta = c["metadata"]
        assert meta["namespace"] == "ml"
        assert meta["ownerReferences"] == [{"apiVersion": "rerank.io/v1alpha1", "kind": "RerankerDeployment",
                                            "name": "team-a", "uid": "0b3c-uid", "controller": True,
                                            "blockOwnerDeletion": True}]
        assert meta["labels"]["app.kubernetes.io/instance"] == "team-a"
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "rerank-operator"
        assert meta["labels"]["app.kubernetes.io/component"] in ("engine", "ui", "gateway")


def test_pdb_max_unavailable_and_selector():
    body = make_body({"disruptionBudget": {"maxUnavailable": "25%"}})
    pdb = child(body, "PodDisruptionBudget")
    assert_known_fields(pdb, "V1PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == "25%"
    assert pdb["spec"]["selector"] == child(body, "StatefulSet")["spec"]["selector"]
    assert child(make_body(), "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    # An engine stuck unready never blocks a drain (the chart's own budget: tests/helm).
    assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


def test_two_gateway_pods_get_a_budget_of_one_unavailable_and_one_gets_none():
    body = make_body({"gateway": {"replicas": 2}})
    budgets = {c["metadata"]["name"]: c for c in children_of(body) if c["kind"] == "PodDisruptionBudget"}
    gateway = budgets["rr-gateway"]
    assert_known_fields(gateway, "V1PodDisruptionBudget")
    assert gateway["spec"]["maxUnavailable"] == 1
    assert gateway["spec"]["selector"] == child(body, "Deployment", "rr-gateway")["spec"]["selector"]
    assert gateway["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    # One pod: nothing to protect. Budgets switched off: none for the gateway either, and it is retired.
    assert "rr-gateway" not in {c["metadata"]["name"] for c in children_of(make_body())
                                if c["kind"] == "PodDisruptionBudget"}
    off = make_body({"gateway": {"replicas": 2}, "disruptionBudget": {"enabled": False}})
    assert ChildRef("policy/v1", "PodDisruptionBudget", "rr-gateway") in retired(off)


def test_a_spec_pydantic_rejects_raises_with_the_field_named():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="tensor_parallel_size|tensorParallelSize"):
        children_of(make_body({"engine": {"tensorParallelSize": 3}}))


@pytest.mark.parametrize(("kind", "child_name", "port"), [
    ("StatefulSet", "rr-engine", 8000), ("StatefulSet", "rr-engine", 8123), ("Deployment", "rr-gateway", 8000)])
def test_engine_and_gateway_pods_carry_the_prometheus_scrape_annotations(kind, child_name, port):
    # A Prometheus without the Prometheus Operator keeps pods annotated prometheus.io/scrape and scrapes the port
    # and path they name; both components serve /metrics on their http port.
    spec = {"engine": {"port": port}} if port != 8000 else None
    template = child(make_body(spec), kind, child_name)["spec"]["template"]
    annotations = template["metadata"]["annotations"]
    (container,) = template["spec"]["containers"]
    http = next(p["containerPort"] for p in container["ports"] if p["name"] == "http")
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(http) == str(port if kind == "StatefulSet" else 8000)
    assert annotations["prometheus.io/path"] == "/metrics"
    assert L.TEMPLATE_HASH_ANNOTATION in annotations


def test_the_ui_is_not_annotated_for_scraping():
    template = child(make_body({"ui": {"enabled": True}}), "Deployment", "rr-ui")["spec"]["template"]
    assert "prometheus.io/scrape" not in template["metadata"]["annotations"]
