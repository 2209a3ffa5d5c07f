from __future__ import annotations

from rerank_operator.api.v1alpha1 import parse_spec
from rerank_operator.resources.services import endpoint_url

from tests.unit.resources.builder_support import assert_known_fields, child, make_body


def test_endpoint_service_routes_its_port_to_the_engines_http_port():
    body = make_body({"service": {"port": 9000}, "engine": {"port": 8100}, "gateway": {"enabled": False}})
    svc = child(body, "Service", "rr")
    assert_known_fields(svc, "V1Service")
    assert svc["spec"]["type"] == "ClusterIP"
    assert svc["spec"]["ports"] == [{"name": "http", "port": 9000, "targetPort": "http", "protocol": "TCP"}]
    assert svc["spec"]["selector"] == {"app.kubernetes.io/instance": "rr", "app.kubernetes.io/component": "engine"}
    assert endpoint_url(body, parse_spec(body["spec"])) == "http://rr.search.svc:9000/v1/rerank"


def test_headless_service_governs_the_statefulset_and_publishes_starting_pods():
    body = make_body()
    svc = child(body, "Service", "rr-engine-headless")
    assert_known_fields(svc, "V1Service")
    assert svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["publishNotReadyAddresses"] is True
    assert svc["spec"]["selector"] == child(body, "StatefulSet")["spec"]["selector"]["matchLabels"]
    assert child(body, "StatefulSet")["spec"]["serviceName"] == svc["metadata"]["name"]
    assert svc["metadata"]["ownerReferences"][0]["uid"] == "0b3c-uid"
