"""The operator against the real control plane: children, updates, drift repair, garbage collection,
the scale subresource, status, and a spec the cluster cannot run.

The operator runs as its own process (tests.integration.operator_fixture); kwok plays the nodes
and turns scheduled pods Ready; the hostPath provisioner of local mode binds the engine's cache claims.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Callable

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from rerank_localdev.volumes import provision_pending
from tests.fixtures import waiting
from tests.integration.operator_fixture import DRIFT_INTERVAL, crd_installed_once, op_namespace, operator  # noqa: F401

pytestmark = pytest.mark.cluster

GROUP, VERSION, PLURAL = "rerank.io", "v1alpha1", "rerankerdeployments"


class Cluster:
    def __init__(self, control_plane, namespace: str):
        self.cp = control_plane
        self.ns = namespace
        api = control_plane.api_client()
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.policy = client.PolicyV1Api(api)
        self.net = client.NetworkingV1Api(api)
        self.custom = client.CustomObjectsApi(api)

    def create(self, name: str, spec: dict[str, Any]) -> dict:
        return self.custom.create_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL, {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "RerankerDeployment",
            "metadata": {"name": name}, "spec": spec})

    def rrd(self, name: str) -> dict:
        return self.custom.get_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL, name)

    def patch(self, name: str, spec: dict[str, Any]) -> dict:
        return self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL, name, {"spec": spec})

    def conditions(self, name: str) -> dict[str, dict]:
        return {c["type"]: c for c in (self.rrd(name).get("status") or {}).get("conditions") or []}

    def events(self, name: str, kind: str = "RerankerDeployment") -> list:
        return [e for e in self.core.list_namespaced_event(self.ns).items
                if e.involved_object.kind == kind and e.involved_object.name == name]

    def read(self, fn: Callable, name: str):
        try:
            return fn(name, self.ns)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise


def wait_for(check: Callable[[], Any], timeout: float, what: str, operator=None) -> Any:
    # Children and status are written piecewise: a half-written object is "not yet".
    context = (lambda: f"operator log:\n{operator.log_tail()}") if operator is not None else None
    return waiting.wait_for(check, timeout, what, interval=0.25, retry_on=(AssertionError, KeyError, TypeError),
                            context=context)


@pytest.fixture
def cluster(control_plane, op_namespace) -> Cluster:
    return Cluster(control_plane, op_namespace)


def owned_by(obj, rrd: dict) -> bool:
    refs = obj.metadata.owner_references or []
    return any(r.uid == rrd["metadata"]["uid"] and r.controller and r.block_owner_deletion for r in refs)



def wait_for_event(cluster, name: str, reason: str, operator) -> None:
    # Events are posted after the change they report, so they may trail the object read just before.
    wait_for(lambda: reason in [e.reason for e in cluster.events(name)], 15, f"a {reason} event", operator)

def test_apply_creates_every_child_and_a_current_status(cluster, operator):
    spec = {"model": {"name": "Qwen/Qwen3-Reranker-4B", "hfTokenSecretRef": {"name": "hf"}},
            "engine": {"tensorParallelSize": 2, "maxModelLen": 4096},
            "replicas": 2, "service": {"port": 9000},
            "ui": {"ingress": {"enabled": True, "className": "nginx", "host": "rerank.example.com"}}}
    cluster.create("rr", spec)
    rrd = cluster.rrd("rr")

    sts = wait_for(lambda: cluster.read(cluster.apps.read_namespaced_stateful_set, "rr-engine"), 30,
                   "the engine StatefulSet", operator)
    assert owned_by(sts, rrd)
    assert sts.spec.replicas == 2 and sts.spec.pod_management_policy == "Parallel"
    assert sts.spec.service_name == "rr-engine-headless"
    (engine,) = sts.spec.template.spec.containers
    assert engine.resources.limits["nvidia.com/gpu"] == "2"
    assert engine.command[engine.command.index("--tensor-parallel-size") + 1] == "2"
    assert engine.command[engine.command.index("--max-model-len") + 1] == "4096"
    assert {e.name: e for e in engine.env}["HF_TOKEN"].value_from.secret_key_ref.name == "hf"
    assert sts.spec.volume_claim_templates[0].metadata.name == "model-cache"

    def all_children():
        return all([
            cluster.read(cluster.core.read_namespaced_service, "rr"),
            cluster.read(cluster.core.read_namespaced_service, "rr-engine-headless"),
            cluster.read(cluster.apps.read_namespaced_deployment, "rr-ui"),
            cluster.read(cluster.core.read_namespaced_service, "rr-ui"),
            cluster.read(cluster.net.read_namespaced_ingress, "rr-ui"),
            cluster.read(cluster.policy.read_namespaced_pod_disruption_budget, "rr-engine"),
            cluster.read(cluster.core.read_namespaced_config_map, "rr-status"),
            cluster.read(cluster.apps.read_namespaced_deployment, "rr-gateway"),
            cluster.read(cluster.core.read_namespaced_service, "rr-engine"),
        ])

    wait_for(all_children, 30, "all children", operator)
    svc = cluster.core.read_namespaced_service("rr", cluster.ns)
    assert (svc.spec.ports[0].port, svc.spec.ports[0].target_port) == (9000, "http")
    # The endpoint is the gateway, which finds the Ready engines through the headless Service rr-engine.
    assert svc.spec.selector["app.kubernetes.io/component"] == "gateway"
    gateway = cluster.apps.read_namespaced_deployment("rr-gateway", cluster.ns)
    args = gateway.spec.template.spec.containers[0].args
    assert args[args.index("--engine-dns") + 1] == f"rr-engine.{cluster.ns}.svc:8000"
    engines = cluster.core.read_namespaced_service("rr-engine", cluster.ns)
    assert engines.spec.cluster_ip == "None" and not engines.spec.publish_not_ready_addresses
    assert cluster.core.read_namespaced_service("rr-engine-headless", cluster.ns).spec.cluster_ip == "None"
    ui = cluster.apps.read_namespaced_deployment("rr-ui", cluster.ns)
    ui_env = {e.name: e.value for e in ui.spec.template.spec.containers[0].env}
    assert ui_env["RERANK_ENDPOINT"] == f"http://rr.{cluster.ns}.svc:9000/v1/rerank"
    ingress = cluster.net.read_namespaced_ingress("rr-ui", cluster.ns)
    assert ingress.spec.rules[0].host == "rerank.example.com" and ingress.spec.ingress_class_name == "nginx"
    for obj in (svc, ui, ingress, cluster.policy.read_namespaced_pod_disruption_budget("rr-engine", cluster.ns)):
        assert owned_by(obj, rrd), obj.metadata.name
        assert obj.metadata.labels["app.kubernetes.io/instance"] == "rr"

    status = wait_for(lambda: (s := cluster.rrd("rr").get("status") or {}).get("observedGeneration") == 1 and s,
                      30, "status.observedGeneration", operator)
    assert status["endpoint"] == f"http://rr.{cluster.ns}.svc:9000/v1/rerank"
    assert status["uiURL"] == "http://rerank.example.com/"
    assert status["selector"] == "app.kubernetes.io/instance=rr,app.kubernetes.io/component=engine"
    assert status["desiredReplicas"] == 2
    assert {c["type"] for c in status["conditions"]} >= {"Ready", "Progressing", "Degraded"}
    # The server-side apply identity is the operator's.
    assert any(m.manager == "rerank-operator" and m.operation == "Apply" for m in sts.metadata.managed_fields)
    wait_for_event(cluster, "rr", "Created", operator)


def test_spec_update_propagates_and_switched_off_children_go(cluster, operator):
    cluster.create("rr", {"ui": {"ingress": {"enabled": True, "host": "a.example.com"}}})
    wait_for(lambda: cluster.read(cluster.net.read_namespaced_ingress, "rr-ui"), 30, "the ingress", operator)
    before = cluster.apps.read_namespaced_stateful_set("rr-engine", cluster.ns)

    cluster.patch("rr", {"engine": {"maxNumSeqs": 64}, "ui": {"enabled": False, "ingress": {"enabled": False}},
                       "disruptionBudget": {"enabled": False}})

    def rolled():
        sts = cluster.apps.read_namespaced_stateful_set("rr-engine", cluster.ns)
        cmd = sts.spec.template.spec.containers[0].command
        return cmd[cmd.index("--max-num-seqs") + 1] == "64" and sts

    sts = wait_for(rolled, 30, "the new engine command", operator)
    hash_key = "rerank.io/template-hash"
    assert sts.spec.template.metadata.annotations[hash_key] != before.spec.template.metadata.annotations[hash_key]
    wait_for(lambda: not any([
        cluster.read(cluster.apps.read_namespaced_deployment, "rr-ui"),
        cluster.read(cluster.core.read_namespaced_service, "rr-ui"),
        cluster.read(cluster.net.read_namespaced_ingress, "rr-ui"),
        cluster.read(cluster.core.read_namespaced_config_map, "rr-status"),
        cluster.read(cluster.policy.read_namespaced_pod_disruption_budget, "rr-engine"),
    ]), 30, "the UI, ingress and PDB to be deleted", operator)
    status = wait_for(lambda: (s := cluster.rrd("rr")["status"]).get("observedGeneration") == 2 and s, 30,
                      "observedGeneration 2", operator)
    assert "uiURL" not in status
    wait_for_event(cluster, "rr", "Updated", operator)


def test_deleted_or_edited_children_are_restored(cluster, operator):
    cluster.create("rr", {"service": {"port": 8080}})
    svc = wait_for(lambda: cluster.read(cluster.core.read_namespaced_service, "rr"), 30, "the Service", operator)
    sts = wait_for(lambda: cluster.read(cluster.apps.read_namespaced_stateful_set, "rr-engine"), 30, "the StatefulSet")
    wait_for(lambda: cluster.read(cluster.core.read_namespaced_config_map, "rr-status"), 30, "the status ConfigMap")

    cluster.core.delete_namespaced_service("rr", cluster.ns)
    cluster.apps.delete_namespaced_stateful_set("rr-engine", cluster.ns, propagation_policy="Background")
    # Someone edits a field the operator owns.
    cluster.core.patch_namespaced_service("rr-engine-headless", cluster.ns,
                                          {"spec": {"publishNotReadyAddresses": False}})
    cluster.core.patch_namespaced_config_map("rr-status", cluster.ns, {"data": {"status.json": "{}"}})

    new_svc = wait_for(lambda: (s := cluster.read(cluster.core.read_namespaced_service, "rr"))
                       and s.metadata.uid != svc.metadata.uid and s, 4 * DRIFT_INTERVAL + 10, "the Service back", operator)
    assert new_svc.spec.ports[0].port == 8080
    wait_for(lambda: (s := cluster.read(cluster.apps.read_namespaced_stateful_set, "rr-engine"))
             and s.metadata.uid != sts.metadata.uid, 4 * DRIFT_INTERVAL + 10, "the StatefulSet back", operator)
    wait_for(lambda: cluster.core.read_namespaced_service("rr-engine-headless", cluster.ns)
             .spec.publish_not_ready_addresses is True, 4 * DRIFT_INTERVAL + 10, "the edit reverted", operator)
    wait_for(lambda: json.loads(cluster.core.read_namespaced_config_map("rr-status", cluster.ns)
                                .data["status.json"]).get("conditions"), 4 * DRIFT_INTERVAL + 10,
             "the status file rewritten", operator)
    wait_for_event(cluster, "rr", "Restored", operator)


def test_deleting_the_reranker_deployment_collects_its_children(cluster, operator):
    cluster.create("rr", {})
    wait_for(lambda: cluster.read(cluster.apps.read_namespaced_deployment, "rr-ui"), 30, "the UI", operator)
    cluster.custom.delete_namespaced_custom_object(GROUP, VERSION, cluster.ns, PLURAL, "rr")

    def labelled():
        selector = "app.kubernetes.io/instance=rr"
        return (cluster.core.list_namespaced_service(cluster.ns, label_selector=selector).items
                + cluster.apps.list_namespaced_stateful_set(cluster.ns, label_selector=selector).items
                + cluster.apps.list_namespaced_deployment(cluster.ns, label_selector=selector).items
                + cluster.core.list_namespaced_config_map(cluster.ns, label_selector=selector).items
                + cluster.policy.list_namespaced_pod_disruption_budget(cluster.ns, label_selector=selector).items)

    wait_for(lambda: not labelled(), 60, "garbage collection of every child")


def test_kubectl_scale_reaches_the_statefulset_and_ready_follows_the_pods(cluster, operator, tmp_path):
    cluster.create("rr", {"replicas": 1, "ui": {"enabled": False}})
    wait_for(lambda: cluster.read(cluster.apps.read_namespaced_stateful_set, "rr-engine"), 30, "the StatefulSet",
             operator)
    cluster.cp.kubectl("-n", cluster.ns, "scale", "rrd/rr", "--replicas", "3")
    wait_for(lambda: cluster.apps.read_namespaced_stateful_set("rr-engine", cluster.ns).spec.replicas == 3, 30,
             "StatefulSet replicas 3", operator)
    wait_for_event(cluster, "rr", "Scaled", operator)

    def ready():
        # Local mode's provisioner stands in for a storage class: the cache claims get volumes,
        # then the scheduler places the pods on the kwok GPU nodes, which turn them Ready.
        provision_pending(cluster.core, cluster.ns, tmp_path)
        status = cluster.rrd("rr").get("status") or {}
        conditions = {c["type"]: c for c in status.get("conditions") or []}
        return conditions.get("Ready", {}).get("status") == "True" and (status, conditions)

    # One read: the counts and the conditions the operator wrote together.
    status, conditions = wait_for(ready, 90, "Ready=True", operator)
    assert conditions["Progressing"]["status"] == "False"
    assert (status["replicas"], status["readyReplicas"], status["desiredReplicas"]) == (3, 3, 3)
    # The scale subresource reports the same.
    scale = cluster.custom.get_namespaced_custom_object_scale(GROUP, VERSION, cluster.ns, PLURAL, "rr")
    assert scale["status"]["replicas"] == 3 and scale["status"]["selector"] == status["selector"]


def test_a_spec_no_node_can_run_is_degraded_once_and_recovers_when_a_node_fits(cluster, operator, control_plane):
    pool = f"pool-{uuid.uuid4().hex[:6]}"
    cluster.create("rr", {"engine": {"tensorParallelSize": 8}, "scheduling": {"nodeSelector": {"rerank-test/pool": pool}},
                          "ui": {"enabled": False}})
    degraded = wait_for(lambda: (c := cluster.conditions("rr").get("Degraded")) and c["status"] == "True" and c, 30,
                        "Degraded=True", operator)
    assert degraded["reason"] == "InsufficientGPUs"
    assert "tensorParallelSize is 8" in degraded["message"]
    assert cluster.conditions("rr")["Ready"]["status"] == "False"
    # The children exist all the same (a cluster autoscaler may add a fitting node).
    assert cluster.read(cluster.apps.read_namespaced_stateful_set, "rr-engine")

    # No hot loop: across three drift checks the object is not rewritten and one warning was posted.
    wait_for(lambda: cluster.rrd("rr")["status"].get("replicas") == 1, 30, "the Pending pod counted", operator)
    time.sleep(1)
    version = cluster.rrd("rr")["metadata"]["resourceVersion"]
    time.sleep(3 * DRIFT_INTERVAL + 1)
    assert cluster.rrd("rr")["metadata"]["resourceVersion"] == version
    warnings = [e for e in cluster.events("rr") if e.type == "Warning"]
    assert [(e.reason, e.count or 1) for e in warnings] == [("InsufficientGPUs", 1)]

    control_plane.add_node(f"kwok-{pool}", gpus=8, labels={"rerank-test/pool": pool})
    wait_for(lambda: cluster.conditions("rr")["Degraded"]["status"] == "False", 15 + 2 * DRIFT_INTERVAL + 10,
             "Degraded=False once a node fits", operator)


def test_observed_generation_keeps_up_with_quick_replicas_patches(cluster, operator, tmp_path):
    # Each patch makes StatefulSet events (pods come and go) that race the reconcile of the next one.
    cluster.create("rr", {"replicas": 1, "ui": {"enabled": False}})
    wait_for(lambda: cluster.rrd("rr").get("status", {}).get("observedGeneration") == 1, 30, "generation 1", operator)
    for replicas in (3, 0, 2, 4, 1, 3, 0, 2, 1, 4, 2, 3):
        cluster.patch("rr", {"replicas": replicas})
        time.sleep(0.3)
    generation = cluster.rrd("rr")["metadata"]["generation"]
    assert generation == 13

    def current():
        provision_pending(cluster.core, cluster.ns, tmp_path)
        return cluster.rrd("rr")["status"]["observedGeneration"] == generation
    wait_for(current, 15, "observedGeneration == generation", operator)
    # And it stays there while the pods settle.
    for _ in range(8):
        assert cluster.rrd("rr")["status"]["observedGeneration"] == generation
        time.sleep(0.5)


def test_a_hand_edited_service_port_is_set_back(cluster, operator):
    cluster.create("rr", {"ui": {"enabled": False}})
    wait_for(lambda: cluster.read(cluster.core.read_namespaced_service, "rr"), 30, "the Service", operator)
    cluster.cp.kubectl("-n", cluster.ns, "patch", "service", "rr", "--type=json",
                       "-p", '[{"op": "replace", "path": "/spec/ports/0/port", "value": 9999}]')

    def repaired():
        ports = cluster.core.read_namespaced_service("rr", cluster.ns).spec.ports
        return [(p.name, p.port) for p in ports] == [("http", 8000)]
    wait_for(repaired, 4 * DRIFT_INTERVAL + 10, "the Service port set back", operator)
    wait_for(lambda: cluster.conditions("rr")["Degraded"]["status"] == "False", 10, "not Degraded", operator)


def test_engine_pods_refused_by_admission_make_the_deployment_degraded(cluster, operator):
    # A PriorityClass that does not exist: the spec is valid, but the Priority admission plugin refuses
    # every engine pod; only the StatefulSet controller's FailedCreate events say so.
    cluster.create("rr", {"ui": {"enabled": False}, "scheduling": {"priorityClassName": "no-such-priority"}})

    def degraded():
        condition = cluster.conditions("rr").get("Degraded") or {}
        return condition.get("status") == "True" and condition.get("reason") == "PodCreationFailed" and condition

    condition = wait_for(degraded, 4 * DRIFT_INTERVAL + 30, "Degraded PodCreationFailed", operator)
    assert "no PriorityClass with name no-such-priority" in condition["message"], condition
    wait_for_event(cluster, "rr", "PodCreationFailed", operator)
