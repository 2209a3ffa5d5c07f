"""Drift repair within seconds: every kind of child, deleted or edited by hand, is put back by
the watches, not by the periodic pass (this operator's pass is an hour apart)."""

from __future__ import annotations

import time

import pytest
from kubernetes import client, dynamic

from rerank_operator.api.v1alpha1 import parse_spec
from rerank_operator.resources import CHILD_KINDS, desired_children
from rerank_operator.resources import labels as L
from tests.fixtures import waiting
from tests.integration.operator_fixture import crd_installed_once, start_operator  # noqa: F401

pytestmark = pytest.mark.cluster

REPAIR_WITHIN = 5.0
MANAGED_BY = "app.kubernetes.io/managed-by"


def test_every_deleted_or_edited_child_is_back_within_seconds(control_plane, crd_installed_once, namespace, tmp_path):
    api = control_plane.api_client()
    resources = {c.kind: dynamic.DynamicClient(api).resources.get(api_version=c.api_version, kind=c.kind)
                 for c in CHILD_KINDS}
    custom = client.CustomObjectsApi(api)
    core = client.CoreV1Api(api)
    operator = start_operator(control_plane, tmp_path / "operator.log", namespace=namespace, drift_interval=3600)
    try:
        body = {"apiVersion": L.API_VERSION, "kind": L.KIND, "metadata": {"name": "rr", "namespace": namespace},
                "spec": {"replicas": 0, "ui": {"replicas": 0, "ingress": {"enabled": True, "host": "rr.example.com"}}}}
        created = custom.create_namespaced_custom_object(L.GROUP, L.VERSION, namespace, L.PLURAL, body)
        expected = len(desired_children(created, parse_spec(created["spec"])))
        context = operator.log_tail

        def children() -> dict[tuple[str, str], str]:
            found = {}
            for kind, resource in resources.items():
                for item in resource.get(namespace=namespace, label_selector=f"{MANAGED_BY}={L.MANAGER}").items:
                    found[(kind, item.metadata.name)] = item.metadata.uid
            return found
        every = waiting.wait_for(lambda: (c := children()) and len(c) == expected and c, 30,
                                 f"all {expected} children",
                                 context=context)
        assert {kind for kind, _ in every} == set(resources), "a child kind is not made by this spec"
        time.sleep(1)  # let the creation's own events pass

        for (kind, name), uid in sorted(every.items()):
            resources[kind].delete(name=name, namespace=namespace, body={"propagationPolicy": "Background"})
            started = time.monotonic()
            waiting.wait_for(lambda: (uids := children()).get((kind, name)) not in (None, uid), REPAIR_WITHIN,
                             f"{kind} {name} re-created", interval=0.05, context=context)
            print(f"{kind} {name} back in {time.monotonic() - started:.2f} s")

        # Hand edits of fields the operator owns.
        core.patch_namespaced_service("rr-engine-headless", namespace, {"spec": {"publishNotReadyAddresses": False}})
        waiting.wait_for(lambda: core.read_namespaced_service("rr-engine-headless", namespace)
                         .spec.publish_not_ready_addresses is True, REPAIR_WITHIN, "the Service edit reverted",
                         interval=0.05, context=context)
        core.patch_namespaced_config_map("rr-status", namespace, {"data": {"status.json": "{}"}})
        waiting.wait_for(lambda: core.read_namespaced_config_map("rr-status", namespace).data["status.json"] != "{}",
                         REPAIR_WITHIN, "the status ConfigMap rewritten", interval=0.05, context=context)
        apps = client.AppsV1Api(api)
        apps.patch_namespaced_deployment("rr-ui", namespace, {"spec": {"replicas": 3}})
        waiting.wait_for(lambda: apps.read_namespaced_deployment("rr-ui", namespace).spec.replicas == 0,
                         REPAIR_WITHIN, "the UI replicas set back", interval=0.05, context=context)
    finally:
        operator.stop()


