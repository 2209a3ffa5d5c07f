"""Every child of full-featured RerankerDeployments, applied into a namespace that enforces Pod Security
"restricted" on the real API server: the StatefulSet and Deployment controllers get their pods admitted,
and kwok runs them. A control (the same engine pod running as root) is refused there, so the namespace
really enforces, and the operator's status reads that refusal as Degraded PodSecurityViolation.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from kubernetes import client

from rerank_operator.api import crd as crdmod
from rerank_operator.api.v1alpha1 import API_VERSION, GROUP, KIND, PLURAL, VERSION, parse_spec
from rerank_operator.reconcile.status import POD_SECURITY_VIOLATION, pod_creation_failure
from rerank_operator.resources import desired_children
from rerank_operator.resources import labels as L
from rerank_localdev.volumes import provision_pending
from tests.fixtures.cluster import fresh_namespace
from tests.fixtures.waiting import wait_for
from tests.unit.api.admission_cases import VALID

pytestmark = pytest.mark.cluster

RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "latest",
              "rerank.io/test": "true"}
# Full-featured specs of the shared table: GPUs with selectors, tolerations, affinity, env sources,
# an Ingress with TLS and auth; the CPU engine; a model on a PVC; extended resources and labels.
SPECS = {c.id: c.spec for c in VALID if c.id in ("8b-on-two-gpus", "cpu-engine", "air-gapped-pvc",
                                                 "labels-tolerations-env-sources")}


@pytest.fixture(scope="module")
def restricted_ns(control_plane) -> Iterator[str]:
    api = control_plane.api_client()
    try:
        crdmod.install_crd(api)
    finally:
        api.close()
    with fresh_namespace(control_plane, "t-restricted-", RESTRICTED) as name:
        yield name


@pytest.fixture(scope="module")
def api(control_plane) -> Iterator[client.ApiClient]:
    api = control_plane.api_client()
    yield api
    api.close()


def _create_cr(api: client.ApiClient, namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    body = {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name}, "spec": copy.deepcopy(spec)}
    return client.CustomObjectsApi(api).create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)


def _apply(control_plane, children: list[dict[str, Any]]) -> None:
    items = {"apiVersion": "v1", "kind": "List", "items": children}
    control_plane.kubectl("apply", "--server-side", "--field-manager=rerank-operator", "-f", "-",
                          input=json.dumps(items))


def _events(api: client.ApiClient, namespace: str, kind: str, name: str) -> list[dict[str, Any]]:
    core = client.CoreV1Api(api)
    found = core.list_namespaced_event(namespace, field_selector=f"involvedObject.kind={kind},involvedObject.name={name}")
    return api.sanitize_for_serialization(found.items)


def _pods(api: client.ApiClient, namespace: str, instance: str, component: str) -> list[Any]:
    selector = f"app.kubernetes.io/instance={instance},app.kubernetes.io/component={component}"
    return client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=selector).items


@pytest.mark.parametrize("case_id", sorted(SPECS))
def test_every_child_is_admitted_and_its_pods_run_under_restricted(case_id, control_plane, api, restricted_ns,
                                                                   tmp_path: Path):
    name = f"psa-{case_id}"[:45].rstrip("-")
    body = _create_cr(api, restricted_ns, name, SPECS[case_id])
    children = desired_children(body, parse_spec(body["spec"]), {})
    core = client.CoreV1Api(api)
    # Local stand-in for a storage provisioner, so that engine pods with cache claims get scheduled.
    for priority in {(body["spec"].get("scheduling") or {}).get("priorityClassName")} - {None}:
        # Pods naming a PriorityClass that does not exist are refused by the Priority admission plugin.
        try:
            client.SchedulingV1Api(api).create_priority_class({"metadata": {"name": priority}, "value": 1000})
        except client.ApiException as exc:
            if exc.status != 409:
                raise
    if case_id == "air-gapped-pvc":
        core.create_namespaced_persistent_volume_claim(restricted_ns, {
            "metadata": {"name": "models"},
            "spec": {"accessModes": ["ReadOnlyMany"], "resources": {"requests": {"storage": "1Gi"}}}})

    _apply(control_plane, children)

    sts = next(c for c in children if c["kind"] == "StatefulSet")
    want_engine = sts["spec"]["replicas"]
    deployments = {c["metadata"]["name"]: c["spec"]["replicas"] for c in children if c["kind"] == "Deployment"}
    want_ui = deployments.get(L.ui_name(name), 0)
    want_gateway = deployments.get(L.gateway_name(name), 0)

    def admitted() -> bool:
        provision_pending(core, restricted_ns, tmp_path)
        return len(_pods(api, restricted_ns, name, L.ENGINE)) == want_engine and \
            len(_pods(api, restricted_ns, name, L.UI)) == want_ui and \
            len(_pods(api, restricted_ns, name, L.GATEWAY)) == want_gateway

    wait_for(admitted, timeout=60, what=f"{want_engine} engine, {want_ui} UI and {want_gateway} gateway pods of {name} "
             "to be admitted",
             context=lambda: str([e["message"] for e in _events(api, restricted_ns, "StatefulSet", L.engine_name(name))]))
    refused = [e["message"] for e in _events(api, restricted_ns, "StatefulSet", L.engine_name(name))
               if e["reason"] == "FailedCreate"]
    assert not refused, refused

    def running() -> bool:
        provision_pending(core, restricted_ns, tmp_path)
        pods = [p for component in (L.ENGINE, L.UI, L.GATEWAY) for p in _pods(api, restricted_ns, name, component)]
        return all(p.status.phase == "Running" for p in pods)

    if case_id != "labels-tolerations-env-sources":  # its example.com/fpga exists on no node: admitted, not scheduled
        wait_for(running, timeout=90, what=f"the pods of {name} to run on kwok nodes")
    for pod in _pods(api, restricted_ns, name, L.ENGINE) + _pods(api, restricted_ns, name, L.UI):
        assert pod.spec.automount_service_account_token is False
        assert pod.spec.service_account_name in (L.engine_name(name), L.ui_name(name))
        assert pod.spec.security_context.run_as_non_root is True
    for pod in _pods(api, restricted_ns, name, L.GATEWAY):  # needs no API access: no token at all
        assert pod.spec.automount_service_account_token is False
        assert pod.spec.security_context.run_as_non_root is True


def test_a_root_engine_is_refused_there_and_reported_as_a_pod_security_violation(control_plane, api, restricted_ns):
    name = "psa-root-control"
    body = _create_cr(api, restricted_ns, name, {"engine": {"device": "cpu"}, "ui": {"enabled": False}})
    children = desired_children(body, parse_spec(body["spec"]), {})
    sts = next(c for c in children if c["kind"] == "StatefulSet")
    pod = sts["spec"]["template"]["spec"]
    del pod["securityContext"]
    del pod["containers"][0]["securityContext"]  # what the engine pod was before: the image's root user
    _apply(control_plane, children)

    def refusal() -> list[dict[str, Any]]:
        return [e for e in _events(api, restricted_ns, "StatefulSet", L.engine_name(name)) if e["reason"] == "FailedCreate"]

    events = wait_for(refusal, timeout=60, what="the StatefulSet controller's FailedCreate event")
    assert "violates PodSecurity" in events[0]["message"], events[0]["message"]
    assert not _pods(api, restricted_ns, name, L.ENGINE)
    failure = pod_creation_failure(events, time.time())
    assert failure is not None and failure.reason == POD_SECURITY_VIOLATION
