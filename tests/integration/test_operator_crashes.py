"""The operator killed at the worst moments, against the real control plane.

Each test runs operator processes of its own (tests.integration.operator_fixture.start_operator),
watching only the test's namespace, and SIGKILLs them: no cleanup, as when a node dies.
"""

from __future__ import annotations

import asyncio

import pytest
from kubernetes import client

from rerank_operator.reconcile.kube import KubeClient, load_configuration
from rerank_operator.reconcile.reconciler import Reconciler
from rerank_operator.resources import labels as L
from tests.fixtures import waiting
from tests.integration.operator_fixture import crd_installed_once, start_operator  # noqa: F401

pytestmark = pytest.mark.cluster


def _reconcile_in_process(control_plane, body: dict) -> None:
    """What an operator's create handler does before it records that it finished."""
    async def run() -> None:
        kube = KubeClient(load_configuration(str(control_plane.admin_kubeconfig)))
        try:
            reconciler = Reconciler(kube, emit=lambda *_: None, sts_wait=0)
            await reconciler.reconcile(body)
        finally:
            await kube.close()
    asyncio.run(run())


def test_children_switched_off_while_the_operator_was_down_mid_create_are_deleted(control_plane, crd_installed_once,
                                                                                   namespace, tmp_path):
    custom = client.CustomObjectsApi(control_plane.api_client())
    net = client.NetworkingV1Api(control_plane.api_client())
    apps = client.AppsV1Api(control_plane.api_client())
    body = custom.create_namespaced_custom_object(L.GROUP, L.VERSION, namespace, L.PLURAL, {
        "apiVersion": L.API_VERSION, "kind": L.KIND, "metadata": {"name": "rr"},
        "spec": {"ui": {"ingress": {"enabled": True, "host": "rr.example.com"}}}})
    # The operator created every child and died before its create handler was recorded as done.
    _reconcile_in_process(control_plane, body)
    assert net.read_namespaced_ingress("rr-ui", namespace)
    # While it was down, the UI (and with it the Ingress) was switched off.
    custom.patch_namespaced_custom_object(L.GROUP, L.VERSION, namespace, L.PLURAL, "rr",
                                          {"spec": {"ui": {"enabled": False, "ingress": {"enabled": False}}}})

    operator = start_operator(control_plane, tmp_path / "operator.log", namespace=namespace)
    try:
        def gone() -> bool:
            names = [i.metadata.name for i in net.list_namespaced_ingress(namespace).items]
            names += [d.metadata.name for d in apps.list_namespaced_deployment(namespace).items]
            return not names
        waiting.wait_for(gone, 30, "the switched-off Ingress and UI deleted", interval=0.25,
                         context=lambda: operator.log_tail())
    finally:
        operator.stop()
