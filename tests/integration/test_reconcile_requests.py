"""The requests one reconcile costs the API server, against the real control plane.

No operator process: one Reconciler in-process, its client recording each request it sends. At a
thousand objects every request per object counts (the operator's speed is the API server's)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from rerank_operator.reconcile.kube import KubeClient, load_configuration
from rerank_operator.reconcile.reconciler import Reconciler
from rerank_operator.resources import labels as L
from tests.integration.operator_fixture import crd_installed_once  # noqa: F401

pytestmark = pytest.mark.cluster


class RecordingKube(KubeClient):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.sent: list[tuple[str, str]] = []

    async def request(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        self.sent.append((method, path))
        return await super().request(method, path, **kwargs)


def _run(control_plane, test) -> Any:
    async def run() -> Any:
        kube = RecordingKube(load_configuration(str(control_plane.admin_kubeconfig)))
        try:
            # No watch feeds it the StatefulSet's events here: no waiting for them.
            return await test(kube, Reconciler(kube, emit=lambda *_: None, sts_wait=0))
        finally:
            await kube.close()
    return asyncio.run(run())


def _create(kube: KubeClient, namespace: str, spec: dict[str, Any]) -> Any:
    return kube.create(L.API_VERSION, L.KIND, namespace,
                       {"apiVersion": L.API_VERSION, "kind": L.KIND, "metadata": {"name": "rr"}, "spec": spec})


def test_a_new_object_costs_its_applies_and_one_status_write(control_plane, crd_installed_once, namespace):
    async def test(kube: RecordingKube, reconciler: Reconciler) -> None:
        body = await _create(kube, namespace, {"replicas": 0, "ui": {"replicas": 0}})
        kube.sent.clear()
        result = await reconciler.reconcile(body)
        assert result.failure is None and result.status["observedGeneration"] == 1
        # Nothing to retire can exist for a spec that never changed: no read of the switched-off Ingress;
        # the StatefulSet was just made: no pods to list (any made since report in their own events).
        assert not any("/ingresses" in p or p.endswith("/pods") for _, p in kube.sent), kube.sent
        writes = [(m, p) for m, p in kube.sent if m != "GET"]
        assert len(writes) == len(result.applied) + 2, writes  # + its status + the UI's status ConfigMap

    _run(control_plane, test)


def test_no_pods_are_listed_while_the_statefulset_controller_reports_none(control_plane, crd_installed_once,
                                                                        namespace):
    async def test(kube: RecordingKube, reconciler: Reconciler) -> None:
        body = await _create(kube, namespace, {"replicas": 0, "ui": {"replicas": 0}})
        await reconciler.reconcile(body)
        for _ in range(300):  # the controller's first status (the apply below returns it)
            sts = await kube.get("apps/v1", "StatefulSet", namespace, "rr-engine")
            if (sts.get("status") or {}).get("observedGeneration"):
                break
            await asyncio.sleep(0.1)
        kube.sent.clear()
        await reconciler.reconcile(await kube.get(L.API_VERSION, L.KIND, namespace, "rr"))
        assert not any(m == "GET" and p.endswith("/pods") for m, p in kube.sent), kube.sent

        # A pod's own event still looks at the pods (it is one).
        kube.sent.clear()
        pod = {"metadata": {"name": "rr-engine-0", "namespace": namespace}, "status": {"phase": "Pending"}}
        await reconciler.refresh_pod_status(namespace, "rr", pod)
        assert any(m == "GET" and p.endswith("/pods") for m, p in kube.sent), kube.sent

    _run(control_plane, test)


def test_a_changed_object_still_looks_for_switched_off_children(control_plane, crd_installed_once, namespace):
    async def test(kube: RecordingKube, reconciler: Reconciler) -> None:
        await _create(kube, namespace, {"replicas": 0, "ui": {"replicas": 0}})
        body = await kube.merge_patch(L.API_VERSION, L.KIND, namespace, "rr", {"spec": {"replicas": 1}})
        assert body["metadata"]["generation"] == 2
        kube.sent.clear()
        await reconciler.reconcile(body)
        assert any(m == "GET" and "/ingresses/rr-ui" in p for m, p in kube.sent), kube.sent

    _run(control_plane, test)
