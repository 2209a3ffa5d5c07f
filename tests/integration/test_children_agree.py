"""The CRD's admission and the children's own validation agree, on a large generated set of specs.

Each spec is drawn (seeded) from per-field pools of values a careless or hostile user might write,
valid and invalid. The RerankerDeployment is server-side dry-run created; then:

* refused by the API server -> pydantic refuses it too (the operator never sees what the API refuses,
  but code building specs must get the same answer);
* accepted -> pydantic accepts it, and every child the operator would write is accepted by a
  server-side dry-run create (StatefulSet, Deployment, Services, Ingress, PDB, ...). A child refused
  here is exactly the "accepted at kubectl apply, failed later" class the API must refuse itself.
"""

from __future__ import annotations

import copy
import json
import random
from typing import Any, Iterator

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException
from pydantic import ValidationError

from rerank_operator.api import crd as crdmod
from rerank_operator.api.v1alpha1 import API_VERSION, GROUP, KIND, PLURAL, VERSION, parse_spec
from rerank_operator.resources import desired_children
from tests.fixtures.cluster import fresh_namespace

pytestmark = pytest.mark.cluster

SEED = 20261129
COUNT = 300
HEX64 = "0123456789abcdef" * 4

# path -> candidate values (None: leave the field out). Mixed valid and invalid on purpose.
POOLS: dict[str, list[Any]] = {
    "model.name": [None, "Qwen/Qwen3-Reranker-4B", "org/m_1.x-y", "a", "bad name", "-lead/x"],
    "model.revision": [None, "main", "v1.0", "refs/pr/1", HEX64[:40], "a..b", "-x", "x.lock", "a/b/", "a.", "_ok"],
    "model.servedModelName": [None, "reranker", "a:b/c", ":bad"],
    "engine.image": [None, "vllm/vllm-openai:v0.32.0", "localhost:5000/x/y:tag", f"x/y@sha256:{HEX64}",
                     "X/Y", "a b", "a:b:c", "registry.io:80/a__b/c-d:1.0_x", "a@sha256:short"],
    "engine.dtype": [None, "half", "bfloat16", "float32"],
    "engine.quantization": [None, "fp8", "bitsandbytes"],
    "engine.device": [None, "cpu"],
    "engine.port": [None, 1024, 65535, 8080],
    "engine.extraArgs": [None, ["--enable-prefix-caching"], ["--max-logprobs=0"], ["--kv-cache-dtype", "auto"]],
    "engine.env": [
        None,
        [{"name": "A", "value": "1"}],
        [{"name": "B.c-d", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['a']"}}}],
        [{"name": "C", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu", "divisor": "1m"}}}],
        [{"name": "D", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k.k", "optional": True}}}],
        [{"name": "E", "value": "x", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
        [{"name": "F", "valueFrom": {"fieldRef": {"fieldPath": "status.podIPs", "apiVersion": "v1"}}}],
        [{"name": "G", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "containerName": "other"}}}],
    ],
    "engine.resources": [
        None,
        {"requests": {"cpu": "500m", "memory": "1Gi"}},
        {"limits": {"cpu": "2", "memory": "8Gi"}},
        {"requests": {"hugepages-2Mi": "1Gi"}, "limits": {"hugepages-2Mi": "1Gi"}},
        {"requests": {"ephemeral-storage": "10Gi"}},
        {"requests": {"example.com/dev": 2}, "limits": {"example.com/dev": "2"}},
        {"requests": {"example.com/dev": "500m"}, "limits": {"example.com/dev": "500m"}},
        {"requests": {"cpu": "1e3"}, "limits": {"memory": "1.5"}},
        {"requests": {"memory": "64Gi"}},
        {"limits": {"memory": "100Mi"}},
        {"requests": {"cpu": "0.0001"}},
        {"limits": {"kubernetes.io/foo": "1"}, "requests": {"kubernetes.io/foo": "1"}},
    ],
    "scheduling.nodeSelector": [None, {"a": "b"}, {"x.io/y": ""}, {"a": "b_c.d"}, {"k8s.io/" + "a" * 63: "v"},
                                {"a" * 64: "v"}],
    "scheduling.tolerations": [None, [{"operator": "Exists"}],
                               [{"key": "k", "operator": "Equal", "value": "v", "effect": "NoExecute",
                                 "tolerationSeconds": -5}],
                               [{"key": "k", "effect": "NoSchedule"}], [{"key": "k", "operator": "Exists",
                                                                          "effect": "PreferNoSchedule"}]],
    "scheduling.affinity": [None, {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "gpu", "operator": "In", "values": ["h100"]}]}]}}},
        {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "gpu", "operator": "Exists", "values": ["x"]}]}]}}},
        {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1", "n2"]}]}]}}},
        {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 100, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                                                "labelSelector": {"matchLabels": {"app": "x"}}}}]}},
        {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"topologyKey": "bad key", "labelSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]}}]}},
        {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "gpus", "operator": "Gt", "values": ["4"]}]}]}}},
        {"nodeAffinity": {"bogus": 1}}],
    "scheduling.priorityClassName": [None, "high"],
    "cache.size": [None, "1", "100Gi", "1.5Gi", "0.5", "1m", "0", 0, 10],
    "cache.storageClassName": [None, "fast"],
    "replicas": [None, 0, 3],
    "instruction": [None, "x" * 2048, "Given a question, find answers"],
    "service.port": [None, 1, 65535],
    "ui.enabled": [None, False],
    "ui.image": [None, "ghcr.io/a/b:1", "ghcr.io/A/b:1"],
    "ui.authSecretRef": [None, {"name": "auth"}],
    "ui.ingress": [None, {"enabled": True, "host": "a.example.com"},
                   {"enabled": True, "host": "*.example.com", "className": "nginx", "tls": {"secretName": "t"},
                    "annotations": {"nginx.ingress.kubernetes.io/proxy-body-size": "8m", "a": ""}},
                   {"enabled": True, "host": "1.2.3.4"}, {"enabled": True, "host": "a.example.com",
                                                          "annotations": {"Bad Key": "x"}}],
    "disruptionBudget.maxUnavailable": [None, 1, "1%", "100%", 5, "0%", "101%"],
    "disruptionBudget.enabled": [None, False],
}


def _set(spec: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = spec
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = copy.deepcopy(value)


def generated_specs() -> list[dict[str, Any]]:
    rng = random.Random(SEED)
    specs = []
    for _ in range(COUNT):
        spec: dict[str, Any] = {}
        # A few fields per spec, so that one invalid value does not hide every other field's check.
        for path in rng.sample(sorted(POOLS), 5):
            value = rng.choice(POOLS[path])
            if value is not None:
                _set(spec, path, value)
        specs.append(spec)
    return specs


@pytest.fixture(scope="module")
def agree_ns(control_plane) -> Iterator[str]:
    api = control_plane.api_client()
    try:
        crdmod.install_crd(api)
    finally:
        api.close()
    with fresh_namespace(control_plane, "t-agree-", {"rerank.io/test": "true"}) as name:
        yield name


def _dry_run_create(api: client.ApiClient, manifest: dict[str, Any]) -> None:
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    create = {
        "StatefulSet": apps.create_namespaced_stateful_set,
        "Deployment": apps.create_namespaced_deployment,
        "Service": core.create_namespaced_service,
        "ConfigMap": core.create_namespaced_config_map,
        "ServiceAccount": core.create_namespaced_service_account,
        "Ingress": client.NetworkingV1Api(api).create_namespaced_ingress,
        "PodDisruptionBudget": client.PolicyV1Api(api).create_namespaced_pod_disruption_budget,
    }[manifest["kind"]]
    create(manifest["metadata"]["namespace"], manifest, dry_run="All", field_validation="Strict")


def test_admission_and_the_childrens_validation_agree_on_generated_specs(control_plane, agree_ns):
    api = control_plane.api_client()
    custom = client.CustomObjectsApi(api)
    accepted = refused = 0
    disagreements: list[str] = []
    try:
        for index, spec in enumerate(generated_specs()):
            name = f"g-{index}"
            body = {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name}, "spec": spec}
            try:
                created = custom.create_namespaced_custom_object(GROUP, VERSION, agree_ns, PLURAL, body,
                                                                 dry_run="All", field_validation="Strict")
            except ApiException as exc:
                refused += 1
                try:
                    parse_spec(spec)
                    disagreements.append(f"API refused, pydantic accepted: {json.dumps(spec)}: "
                                         f"{json.loads(exc.body)['message']}")
                except ValidationError:
                    pass
                continue
            accepted += 1
            try:
                parsed = parse_spec(created["spec"])
            except ValidationError as exc:
                disagreements.append(f"API accepted, pydantic refused: {json.dumps(spec)}: {exc}")
                continue
            created["metadata"].setdefault("uid", "00000000-0000-0000-0000-000000000000")
            for child in desired_children(created, parsed, {}):
                try:
                    _dry_run_create(api, child)
                except ApiException as exc:
                    disagreements.append(f"accepted spec {json.dumps(spec)} -> {child['kind']} refused: "
                                         f"{json.loads(exc.body)['message']}")
    finally:
        api.close()
    assert not disagreements, f"{len(disagreements)} disagreements:\n" + "\n".join(disagreements[:40])
    # The pools make both outcomes common: the test exercises both sides.
    assert accepted > 60 and refused > 60, (accepted, refused)
