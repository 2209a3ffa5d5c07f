"""The gateway's Deployment and the Services around it: `<name>` follows spec.gateway.enabled, the
engines get a Ready-only headless Service, and the gateway's command carries what keys its cache."""

from __future__ import annotations

from rerank_gateway.config import from_args

from rerank_operator.api.v1alpha1 import parse_spec
from rerank_operator.resources.gateway import GATEWAY_UID, gateway_args

from rerank_operator.version import VERSION
from tests.unit.resources.builder_support import assert_known_fields, child, make_body


def gateway_container(body):
    (c,) = child(body, "Deployment", "rr-gateway")["spec"]["template"]["spec"]["containers"]
    return c


def test_the_endpoint_service_keeps_name_and_port_and_points_at_the_gateway():
    on, off = make_body({"service": {"port": 9000}}), make_body({"service": {"port": 9000}, "gateway": {"enabled": False}})
    svc_on, svc_off = child(on, "Service", "rr"), child(off, "Service", "rr")
    assert svc_on["spec"]["ports"] == svc_off["spec"]["ports"] == [
        {"name": "http", "port": 9000, "targetPort": "http", "protocol": "TCP"}]
    assert svc_on["spec"]["selector"]["app.kubernetes.io/component"] == "gateway"
    assert svc_off["spec"]["selector"]["app.kubernetes.io/component"] == "engine"
    gateway_pods = child(on, "Deployment", "rr-gateway")["spec"]["template"]["metadata"]["labels"]
    assert svc_on["spec"]["selector"].items() <= gateway_pods.items()


def test_the_engines_service_publishes_only_ready_pods():
    svc = child(make_body({"engine": {"port": 8100}}), "Service", "rr-engine")
    assert_known_fields(svc, "V1Service")
    assert svc["spec"]["clusterIP"] == "None" and not svc["spec"].get("publishNotReadyAddresses", False)
    assert svc["spec"]["ports"][0]["port"] == 8100
    assert svc["spec"]["selector"]["app.kubernetes.io/component"] == "engine"


def test_gateway_runs_unprivileged_with_a_read_only_root_and_no_token():
    dep = child(make_body(), "Deployment", "rr-gateway")
    assert_known_fields(dep, "V1Deployment")
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["image"] == f"ghcr.io/rerank-operator/rerank-gateway:{VERSION}"
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] and sc["runAsUser"] == GATEWAY_UID and sc["readOnlyRootFilesystem"]
    assert sc["capabilities"] == {"drop": ["ALL"]} and sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert sc["allowPrivilegeEscalation"] is False and pod["automountServiceAccountToken"] is False


def test_the_gateway_args_parse_and_carry_names_revision_instruction_and_limits():
    body = make_body({"model": {"name": "Qwen/Qwen3-Reranker-4B", "revision": "abc123", "aliases": ["reranker"]},
                      "instruction": "Find the clause", "engine": {"port": 8100},
                      "gateway": {"maxDocuments": 50, "holdSeconds": 30,
                                  "chunking": {"enabled": True, "windowTokens": 256, "overlapTokens": 32,
                                               "aggregate": "meanTopK", "topK": 2}}})
    args = gateway_container(body)["args"]
    config = from_args(args)  # the gateway itself accepts exactly what the operator writes
    assert config.model.served_names == ("Qwen/Qwen3-Reranker-4B", "Qwen3-Reranker-4B", "reranker")
    assert (config.model.revision, config.model.default_instruction) == ("abc123", "Find the clause")
    assert config.engine_dns == "rr-engine.search.svc:8100"
    assert (config.limits.max_documents, config.hold_seconds) == (50, 30)
    assert (config.chunking.window_tokens, config.chunking.overlap_tokens, config.chunking.aggregate,
            config.chunking.top_k) == (256, 32, "mean_top_k", 2)


def test_the_gateway_retries_within_the_engine_timeout_and_splits_large_requests():
    defaults = from_args(gateway_container(make_body({}))["args"]).dispatch
    assert (defaults.try_timeout, defaults.attempts, defaults.deadline, defaults.fan_out_pairs) == (120, 3, 360, 64)
    body = make_body({"gateway": {"engineTimeoutSeconds": 30, "fanOutPairs": 0}})
    dispatch = from_args(gateway_container(body)["args"]).dispatch
    # Every try may take its whole timeout; 0 turns splitting off.
    assert (dispatch.try_timeout, dispatch.deadline, dispatch.fan_out_pairs) == (30, 90, 0)


def test_redis_url_and_password_come_from_secrets():
    body = make_body({"gateway": {"cache": {"backend": "redis", "redis": {
        "urlSecretRef": {"name": "redis", "key": "url"}, "passwordSecretRef": {"name": "redis", "key": "password"}}}}})
    c = gateway_container(body)
    assert c["env"] == [
        {"name": "REDIS_URL", "valueFrom": {"secretKeyRef": {"name": "redis", "key": "url"}}},
        {"name": "REDIS_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "redis", "key": "password"}}}]
    config = from_args(c["args"], environ={"REDIS_URL": "redis://r:6379/0", "REDIS_PASSWORD": "pw"})
    assert config.cache == "redis" and config.redis_password == "pw"


def test_a_new_instruction_rolls_the_gateway():
    def hash_of(spec):
        return child(make_body(spec), "Deployment", "rr-gateway")["spec"]["template"]["metadata"]["annotations"]

    assert hash_of({"instruction": "a"}) != hash_of({"instruction": "b"})
    assert gateway_args(make_body(), parse_spec({})) == gateway_container(make_body())["args"]
