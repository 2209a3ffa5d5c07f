"""The local control plane does what the rest of the suite relies on, checked against the real
components: scheduling and readiness on kwok nodes (GPU capacity included), loopback pod IPs,
garbage collection, CRD schema/CEL validation with status and scale subresources, RBAC of the
operator identity, and a teardown that leaves nothing behind."""

from __future__ import annotations

import http.server
import json
import ipaddress
import os
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from rerank_localdev import versions
from tests.fixtures.waiting import wait_for
from rerank_localdev.controlplane import (
    GPU_PRESENT_LABEL,
    KWOK_ANNOTATION,
    OPERATOR_USER,
    CommandError,
    LocalControlPlane,
    port_open,
)

pytestmark = pytest.mark.cluster


def deployment(name: str, replicas: int = 1, resources: dict | None = None) -> str:
    container = {"name": "app", "image": "registry.invalid/app:1", "ports": [{"containerPort": 8080}]}
    if resources:
        container["resources"] = resources
    return yaml.safe_dump({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container]}},
        },
    })


def is_ready(pod: client.V1Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def test_server_and_tools_report_the_pinned_versions(control_plane):
    # Helm's kubeVersion checks and `kubectl version` need real versions, not `v0.0.0-master`.
    info = client.VersionApi(control_plane.api_client()).get_code()
    assert info.git_version == versions.KUBERNETES
    assert control_plane.helm("version", "--short").stdout.startswith(versions.HELM)


def test_deployment_gets_a_running_ready_pod_on_a_kwok_node_with_a_reachable_loopback_ip(control_plane, namespace):
    control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=deployment("web"))
    control_plane.kubectl("rollout", "status", "-n", namespace, "deployment/web", "--timeout=60s")

    core = client.CoreV1Api(control_plane.api_client())
    [pod] = core.list_namespaced_pod(namespace, label_selector="app=web").items
    assert pod.status.phase == "Running" and is_ready(pod)
    node = core.read_node(pod.spec.node_name)
    assert node.metadata.annotations[KWOK_ANNOTATION] == "fake"
    apps = client.AppsV1Api(control_plane.api_client())
    assert apps.read_namespaced_deployment("web", namespace).status.ready_replicas == 1

    ip = ipaddress.ip_address(pod.status.pod_ip)
    assert ip.is_loopback and ip in ipaddress.ip_network(node.spec.pod_cidr)

    # A real server bound at the pod's IP answers there (and only there: 127.0.0.1 is a different address).
    class Hello(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = f"hello from {pod.metadata.name}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer((str(ip), 0), Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        with urllib.request.urlopen(f"http://{ip}:{port}/", timeout=5) as resp:
            assert resp.read().decode() == f"hello from {pod.metadata.name}"
        assert not port_open(port, "127.0.0.1")
    finally:
        server.shutdown()
        server.server_close()


def test_gpu_pods_land_only_on_gpu_nodes_and_too_large_a_request_stays_pending(control_plane, namespace):
    gpus = {"requests": {"nvidia.com/gpu": "2"}, "limits": {"nvidia.com/gpu": "2"}}
    # Four pods of two GPUs: with two CPU nodes among four, a scheduler ignoring GPUs would misplace some.
    control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=deployment("gpu", replicas=4, resources=gpus))
    control_plane.kubectl("rollout", "status", "-n", namespace, "deployment/gpu", "--timeout=60s")
    core = client.CoreV1Api(control_plane.api_client())
    pods = core.list_namespaced_pod(namespace, label_selector="app=gpu").items
    assert len(pods) == 4 and all(p.status.phase == "Running" and is_ready(p) for p in pods)
    for p in pods:
        node = core.read_node(p.spec.node_name)
        assert node.metadata.labels.get(GPU_PRESENT_LABEL) == "true", f"{p.metadata.name} on {node.metadata.name}"
        assert int(node.status.allocatable["nvidia.com/gpu"]) >= 2

    too_big = {"requests": {"nvidia.com/gpu": "9"}, "limits": {"nvidia.com/gpu": "9"}}
    control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=deployment("huge", resources=too_big))

    def failed_scheduling():
        events = core.list_namespaced_event(namespace, field_selector="reason=FailedScheduling").items
        return [e for e in events if e.involved_object.name.startswith("huge-")]

    [event, *_] = wait_for(failed_scheduling, what="a FailedScheduling event")
    assert "Insufficient nvidia.com/gpu" in event.message
    [pod] = core.list_namespaced_pod(namespace, label_selector="app=huge").items
    assert pod.status.phase == "Pending" and not pod.spec.node_name
    scheduled = next(c for c in pod.status.conditions if c.type == "PodScheduled")
    assert (scheduled.status, scheduled.reason) == ("False", "Unschedulable")


def test_deleting_an_owner_garbage_collects_its_dependents(control_plane, namespace):
    core = client.CoreV1Api(control_plane.api_client())
    apps = client.AppsV1Api(control_plane.api_client())

    # Built-in chain: Deployment -> ReplicaSet -> Pod, all linked by ownerReferences.
    control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=deployment("owned", replicas=2))
    control_plane.kubectl("rollout", "status", "-n", namespace, "deployment/owned", "--timeout=60s")
    [rs] = apps.list_namespaced_replica_set(namespace, label_selector="app=owned").items
    assert rs.metadata.owner_references[0].kind == "Deployment"
    control_plane.kubectl("delete", "-n", namespace, "deployment/owned", "--cascade=background", "--wait=false")
    wait_for(lambda: not apps.list_namespaced_replica_set(namespace, label_selector="app=owned").items,
             what="the ReplicaSet to be collected")
    wait_for(lambda: not core.list_namespaced_pod(namespace, label_selector="app=owned").items,
             what="the pods to be collected")

    # A hand-written ownerReference is honoured the same way (what the operator's children rely on).
    owner = core.create_namespaced_config_map(namespace, {"metadata": {"name": "owner"}})
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
    core.create_namespaced_secret(namespace, {"metadata": {"name": "dependent", "ownerReferences": [ref]}})
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "bystander"}})
    core.delete_namespaced_config_map("owner", namespace)
    wait_for(lambda: not core.list_namespaced_secret(namespace, field_selector="metadata.name=dependent").items,
             what="the dependent Secret to be collected")
    assert core.read_namespaced_config_map("bystander", namespace).metadata.name == "bystander"


WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.harness.rerank.io"},
    "spec": {
        "group": "harness.rerank.io",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
        "versions": [{
            "name": "v1",
            "served": True,
            "storage": True,
            "subresources": {
                "status": {},
                "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas",
                          "labelSelectorPath": ".status.selector"},
            },
            "schema": {"openAPIV3Schema": {
                "type": "object",
                "properties": {
                    "spec": {
                        "type": "object",
                        "required": ["size"],
                        "properties": {
                            "size": {"type": "string", "enum": ["small", "large"]},
                            "replicas": {"type": "integer", "minimum": 0, "default": 1},
                            "minReplicas": {"type": "integer"},
                            "maxReplicas": {"type": "integer"},
                        },
                        "x-kubernetes-validations": [{
                            "rule": "!has(self.minReplicas) || !has(self.maxReplicas) || self.minReplicas <= self.maxReplicas",
                            "message": "minReplicas must not exceed maxReplicas",
                        }],
                    },
                    "status": {"type": "object", "properties": {
                        "replicas": {"type": "integer"}, "selector": {"type": "string"}}},
                },
            }},
        }],
    },
}


def widget(name: str, **spec) -> dict:
    return {"apiVersion": "harness.rerank.io/v1", "kind": "Widget", "metadata": {"name": name}, "spec": spec}


def test_crd_with_subresources_is_established_and_its_schema_and_cel_rules_are_enforced(control_plane, namespace):
    control_plane.kubectl("apply", "-f", "-", input=yaml.safe_dump(WIDGET_CRD))
    try:
        control_plane.wait_crds_established("widgets.harness.rerank.io", timeout=30)
        custom = client.CustomObjectsApi(control_plane.api_client())
        args = ("harness.rerank.io", "v1", namespace, "widgets")

        created = custom.create_namespaced_custom_object(*args, widget("ok", size="small"))
        assert created["spec"]["replicas"] == 1  # structural-schema default applied by the API server

        # Scale subresource: kubectl scale writes .spec.replicas through /scale.
        control_plane.kubectl("scale", "-n", namespace, "widgets/ok", "--replicas=3")
        assert custom.get_namespaced_custom_object(*args, "ok")["spec"]["replicas"] == 3
        # Status subresource: status is written there, and spec changes sent with it are ignored.
        custom.patch_namespaced_custom_object_status(
            *args, "ok", {"spec": {"replicas": 7}, "status": {"replicas": 3, "selector": "app=ok"}})
        obj = custom.get_namespaced_custom_object(*args, "ok")
        assert obj["status"] == {"replicas": 3, "selector": "app=ok"} and obj["spec"]["replicas"] == 3
        scale = custom.get_namespaced_custom_object_scale(*args, "ok")
        assert (scale["spec"]["replicas"], scale["status"]["replicas"], scale["status"]["selector"]) == (3, 3, "app=ok")

        # OpenAPI schema violation, refused with the API server's own message naming the field.
        bad = control_plane.kubectl("apply", "-n", namespace, "-f", "-", check=False,
                                    input=yaml.safe_dump(widget("bad", size="huge")))
        assert bad.returncode != 0
        assert 'spec.size: Unsupported value: "huge"' in bad.stderr, bad.stderr

        # CEL rule violation (x-kubernetes-validations).
        with pytest.raises(ApiException) as refused:
            custom.create_namespaced_custom_object(*args, widget("cel", size="large", minReplicas=5, maxReplicas=2))
        assert refused.value.status == 422
        assert "minReplicas must not exceed maxReplicas" in refused.value.body
        names = [o["metadata"]["name"] for o in custom.list_namespaced_custom_object(*args)["items"]]
        assert names == ["ok"]
    finally:
        control_plane.kubectl("delete", "crd/widgets.harness.rerank.io", "--wait=false", check=False)


def test_operator_identity_is_bound_by_rbac(control_plane, namespace):
    operator = client.CoreV1Api(control_plane.api_client(control_plane.operator_kubeconfig))

    with pytest.raises(ApiException) as denied:
        operator.list_namespaced_config_map(namespace)
    assert denied.value.status == 403

    # A Role granting read-only access to ConfigMaps, bound to the operator's ServiceAccount.
    control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump_all([
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "reader"},
         "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "operator-reader"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
         "subjects": [{"kind": "ServiceAccount", "name": "rerank-operator", "namespace": "rerank-system"}]},
    ]))

    def can_list():
        try:
            return operator.list_namespaced_config_map(namespace) is not None
        except ApiException as exc:
            if exc.status != 403:
                raise
            return False

    wait_for(can_list, timeout=30, what="the RoleBinding to take effect")  # the RBAC authorizer's cache

    with pytest.raises(ApiException) as denied:
        operator.create_namespaced_config_map(namespace, {"metadata": {"name": "nope"}})
    assert denied.value.status == 403
    message = json.loads(denied.value.body)["message"]
    assert f'User "{OPERATOR_USER}" cannot create resource "configmaps"' in message, message

    # kubectl with the operator kubeconfig is denied the same way, with the same message.
    with pytest.raises(CommandError) as kubectl_denied:
        control_plane.kubectl("create", "configmap", "nope", "-n", namespace,
                              kubeconfig=control_plane.operator_kubeconfig)
    assert f'configmaps is forbidden: User "{OPERATOR_USER}"' in kubectl_denied.value.stderr
    # And cluster-scoped reads it was never granted stay forbidden.
    assert control_plane.kubectl("auth", "can-i", "list", "nodes",
                                 kubeconfig=control_plane.operator_kubeconfig, check=False).stdout.strip() == "no"


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def test_teardown_leaves_no_process_port_or_directory_even_when_the_body_fails():
    cp = LocalControlPlane(nodes=[{"name": "solo"}])
    with pytest.raises(RuntimeError, match="the test body failed"):
        with cp:
            pids, ports, directory = cp.pids(), list(cp.ports.values()), cp.dir
            assert len(pids) == 5 and all(Path(f"/proc/{p}").exists() for p in pids)
            assert all(port_open(p) for p in (cp.ports["etcd"], cp.ports["apiserver"]))
            assert "solo" in cp.kubectl("get", "nodes", "-o", "name").stdout
            assert directory is not None and directory.is_dir()
            raise RuntimeError("the test body failed")

    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not [p for p in ports if port_open(p)]
    assert not directory.exists()
    assert _processes_mentioning(str(directory)) == []


def test_pods_can_start_not_ready_for_a_runner_to_report_readiness():
    # Local mode's setting: kwok makes the pod Running with a loopback IP but leaves Ready to
    # whoever runs the containers, and does not undo what that runner reports.
    with LocalControlPlane(nodes=[{"name": "solo"}], pods_ready_on_start=False) as cp:
        core = client.CoreV1Api(cp.api_client())
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "probe-me"},
               "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
        core.create_namespaced_pod("default", pod)

        def running():
            p = core.read_namespaced_pod("probe-me", "default")
            return p if p.status.phase == "Running" and p.status.pod_ip else None

        p = wait_for(running, what="pod Running with an IP")
        assert ipaddress.ip_address(p.status.pod_ip).is_loopback
        conditions = {c.type: c for c in p.status.conditions}
        assert (conditions["Ready"].status, conditions["Ready"].reason) == ("False", "ContainersNotReady")
        assert conditions["ContainersReady"].status == "False"
        assert [s.ready for s in p.status.container_statuses] == [False]

        core.patch_namespaced_pod_status("probe-me", "default", {"status": {"conditions": [
            {"type": "Ready", "status": "True"}, {"type": "ContainersReady", "status": "True"}]}})
        time.sleep(3)  # give kwok the chance to (wrongly) rewrite it
        conditions = {c.type: c.status for c in core.read_namespaced_pod("probe-me", "default").status.conditions}
        assert (conditions["Ready"], conditions["ContainersReady"]) == ("True", "True")
