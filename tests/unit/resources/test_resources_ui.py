from __future__ import annotations

import json

import jsonschema

from rerank_operator.api.v1alpha1 import parse_spec
from rerank_operator.resources.status_configmap import status_document
from rerank_operator.resources.ui import ui_url
from rerank_ui.config import load_settings
from rerank_ui.status import STATUS_SCHEMA, parse_status

from tests.unit.resources.builder_support import assert_known_fields, child, children_of, make_body


def ui_container(body):
    (c,) = child(body, "Deployment", "rr-ui")["spec"]["template"]["spec"]["containers"]
    return c


def env(c):
    return {e["name"]: e for e in c["env"]}


def test_ui_deployment_points_at_the_endpoint_and_the_status_file():
    body = make_body({"service": {"port": 9000}, "model": {"servedModelName": "rerank"},
                      "instruction": "Find the clause that answers the question",
                      "ui": {"replicas": 2, "image": "registry.local/rerank-ui:1", "maxDocuments": 50}})
    dep = child(body, "Deployment", "rr-ui")
    assert_known_fields(dep, "V1Deployment")
    assert dep["metadata"]["name"] == "rr-ui" and dep["spec"]["replicas"] == 2
    c = ui_container(body)
    assert c["image"] == "registry.local/rerank-ui:1"
    e = env(c)
    assert e["RERANK_ENDPOINT"]["value"] == "http://rr.search.svc:9000/v1/rerank"
    assert e["RERANK_MODEL"]["value"] == "rerank"
    assert e["RERANK_DEFAULT_INSTRUCTION"]["value"] == "Find the clause that answers the question"
    assert e["RERANK_MAX_DOCUMENTS"]["value"] == "50"
    assert e["RERANK_STATUS_FILE"]["value"] == "/etc/rerank/status.json"
    assert e["GRADIO_SERVER_PORT"]["value"] == "7860"
    assert "RERANK_UI_USERNAME" not in e
    volumes = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    assert volumes["status"]["configMap"]["name"] == "rr-status"
    assert {"name": "status", "mountPath": "/etc/rerank", "readOnly": True} in c["volumeMounts"]


def test_the_ui_accepts_the_environment_the_operator_gives_it():
    body = make_body({"ui": {"authSecretRef": {"name": "ui-auth"}}})
    environ = {e["name"]: e.get("value", "secret-value") for e in ui_container(body)["env"]}
    settings = load_settings(environ)
    assert settings.endpoint == "http://rr.search.svc:8000/v1/rerank"
    assert str(settings.status_file) == "/etc/rerank/status.json"
    assert settings.auth == ("secret-value", "secret-value")


def test_ui_auth_comes_from_the_secret():
    e = env(ui_container(make_body({"ui": {"authSecretRef": {"name": "ui-auth"}}})))
    assert e["RERANK_UI_USERNAME"]["valueFrom"] == {"secretKeyRef": {"name": "ui-auth", "key": "username"}}
    assert e["RERANK_UI_PASSWORD"]["valueFrom"] == {"secretKeyRef": {"name": "ui-auth", "key": "password"}}


def test_ui_runs_unprivileged_with_a_read_only_root():
    body = make_body()
    c = ui_container(body)
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["runAsNonRoot"] is True and sc["runAsUser"] != 0
    assert sc["allowPrivilegeEscalation"] is False
    pod = child(body, "Deployment", "rr-ui")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes["tmp"] and {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]
    assert pod["automountServiceAccountToken"] is False


def test_ui_service_maps_80_to_gradio():
    svc = child(make_body(), "Service", "rr-ui")
    assert_known_fields(svc, "V1Service")
    assert svc["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    assert svc["spec"]["selector"] == child(make_body(), "Deployment", "rr-ui")["spec"]["selector"]["matchLabels"]
    assert {"name": "http", "containerPort": 7860, "protocol": "TCP"} in ui_container(make_body())["ports"]


def test_ingress_only_when_enabled_with_class_host_tls_and_annotations():
    assert "Ingress" not in [c["kind"] for c in children_of(make_body())]
    body = make_body({"ui": {"ingress": {"enabled": True, "className": "nginx", "host": "rerank.example.com",
                                         "tls": {"secretName": "rerank-tls"},
                                         "annotations": {"nginx.ingress.kubernetes.io/proxy-body-size": "8m"}}}})
    ing = child(body, "Ingress")
    assert_known_fields(ing, "V1Ingress")
    assert ing["metadata"]["name"] == "rr-ui"
    assert ing["metadata"]["annotations"] == {"nginx.ingress.kubernetes.io/proxy-body-size": "8m"}
    assert ing["spec"]["ingressClassName"] == "nginx"
    (rule,) = ing["spec"]["rules"]
    assert rule["host"] == "rerank.example.com"
    assert rule["http"]["paths"][0]["backend"] == {"service": {"name": "rr-ui", "port": {"number": 80}}}
    assert ing["spec"]["tls"] == [{"secretName": "rerank-tls", "hosts": ["rerank.example.com"]}]
    assert ui_url(body, parse_spec(body["spec"])) == "https://rerank.example.com/"


def test_ui_url_is_the_service_without_ingress_and_none_without_ui():
    body = make_body()
    assert ui_url(body, parse_spec(body["spec"])) == "http://rr-ui.search.svc:80/"
    off = make_body({"ui": {"enabled": False}})
    assert ui_url(off, parse_spec(off["spec"])) is None


def test_status_configmap_is_what_the_ui_parses():
    status = {"replicas": 3, "readyReplicas": 2, "desiredReplicas": 3,
              "conditions": [{"type": "Ready", "status": "False", "reason": "ReplicasNotReady",
                              "message": "2 of 3 engine replicas ready", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
    cm = child(make_body() | {"status": status}, "ConfigMap")
    assert_known_fields(cm, "V1ConfigMap")
    assert cm["metadata"]["name"] == "rr-status"
    doc = json.loads(cm["data"]["status.json"])
    assert doc == status_document(status)
    jsonschema.validate(doc, STATUS_SCHEMA)
    parsed = parse_status(cm["data"]["status.json"])
    assert (parsed.replicas, parsed.ready_replicas, parsed.desired_replicas) == (3, 2, 3)
    assert parsed.explanation == "2 of 3 engine replicas ready"


def test_status_configmap_before_any_status():
    parsed = parse_status(child(make_body(), "ConfigMap")["data"]["status.json"])
    assert (parsed.ready_replicas, parsed.desired_replicas) == (0, 0)
