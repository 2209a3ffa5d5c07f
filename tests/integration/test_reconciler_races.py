"""The Reconciler against the real API server, with writes of others interleaved at the worst moment.

No operator process here: the tests drive one Reconciler in-process, in a namespace the session's
operator does not watch, and make a competing write happen between its read and its write (the
race that concurrent StatefulSet events and reconciles produce in the operator).
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

import pytest

from rerank_operator.reconcile.kube import KubeClient, load_configuration
from rerank_operator.reconcile.reconciler import Reconciler
from rerank_operator.resources import labels as L
from tests.integration.operator_fixture import crd_installed_once  # noqa: F401

pytestmark = pytest.mark.cluster


class InterleavingKube(KubeClient):
    """The real client; ``before_status_write`` runs once, just before the first status write
    reaches the API server (a stand-in for another writer winning the race)."""

    before_status_write: Callable[[], Awaitable[None]] | None = None

    async def merge_patch(self, api_version, kind, namespace, name, patch, subresource=None, **kwargs):
        if self.before_status_write is not None and subresource == "status":
            hook, self.before_status_write = self.before_status_write, None
            await hook()
        return await super().merge_patch(api_version, kind, namespace, name, patch, subresource, **kwargs)


async def _with_reconciler(control_plane, test: Callable[[InterleavingKube, Reconciler], Awaitable[Any]]) -> Any:
    kube = InterleavingKube(load_configuration(str(control_plane.admin_kubeconfig)))
    try:
        return await test(kube, Reconciler(kube, emit=lambda *_: None))
    finally:
        await kube.close()


def test_a_stale_status_refresh_never_moves_observed_generation_backwards(control_plane, crd_installed_once,
                                                                         namespace):
    async def test(kube: InterleavingKube, reconciler: Reconciler) -> None:
        await kube.create(L.API_VERSION, L.KIND, namespace, {
            "apiVersion": L.API_VERSION, "kind": L.KIND, "metadata": {"name": "rr"}, "spec": {"replicas": 1}})
        await kube.merge_patch(L.API_VERSION, L.KIND, namespace, "rr", {"status": {"observedGeneration": 1}},
                               subresource="status")

        async def reconcile_of_generation_2() -> None:
            # After the refresh read the object: a spec change, reconciled and claimed in full.
            await kube.merge_patch(L.API_VERSION, L.KIND, namespace, "rr", {"spec": {"replicas": 3}})
            await kube.merge_patch(L.API_VERSION, L.KIND, namespace, "rr", {"status": {"observedGeneration": 2}},
                                   subresource="status")

        kube.before_status_write = reconcile_of_generation_2
        await reconciler.refresh_status(namespace, "rr", None)
        assert kube.before_status_write is None, "the race did not happen"
        final = await kube.get(L.API_VERSION, L.KIND, namespace, "rr")
        assert final["metadata"]["generation"] == 2
        assert final["status"]["observedGeneration"] == 2

    asyncio.run(_with_reconciler(control_plane, test))


def test_a_stale_reconcile_never_moves_observed_generation_backwards(control_plane, crd_installed_once, namespace):
    async def test(kube: InterleavingKube, reconciler: Reconciler) -> None:
        await kube.create(L.API_VERSION, L.KIND, namespace, {
            "apiVersion": L.API_VERSION, "kind": L.KIND, "metadata": {"name": "rr"},
            "spec": {"replicas": 1, "ui": {"enabled": False}}})
        stale = await kube.get(L.API_VERSION, L.KIND, namespace, "rr")

        async def newer_reconcile() -> None:
            await kube.merge_patch(L.API_VERSION, L.KIND, namespace, "rr", {"spec": {"replicas": 2}})
            await kube.merge_patch(L.API_VERSION, L.KIND, namespace, "rr", {"status": {"observedGeneration": 2}},
                                   subresource="status")

        kube.before_status_write = newer_reconcile
        reconciler.sts_wait = 0
        await reconciler.reconcile(stale)  # claims generation 1
        final = await kube.get(L.API_VERSION, L.KIND, namespace, "rr")
        assert final["status"]["observedGeneration"] == 2

    asyncio.run(_with_reconciler(control_plane, test))


def _engine_statefulset(namespace: str, resource_version: str, ready: int) -> dict:
    """A read of the engine StatefulSet as a watch event carries it: 3 replicas, ``ready`` of them Ready."""
    return {"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": L.engine_name("rr"), "namespace": namespace, "uid": "engine-uid",
                         "resourceVersion": resource_version, "generation": 1},
            "spec": {"replicas": 3},
            "status": {"observedGeneration": 1, "replicas": 3, "readyReplicas": ready, "updatedReplicas": 3,
                       "currentRevision": "r1", "updateRevision": "r1"}}


def test_a_stale_statefulset_event_never_moves_ready_replicas_backwards(control_plane, crd_installed_once,
                                                                       namespace):
    # The operator's StatefulSet events and engine pod events refresh the status concurrently; the pod
    # event's refresh reads the StatefulSet afresh, so an older event's copy can arrive after it.
    async def test(kube: InterleavingKube, reconciler: Reconciler) -> None:
        await kube.create(L.API_VERSION, L.KIND, namespace, {
            "apiVersion": L.API_VERSION, "kind": L.KIND, "metadata": {"name": "rr"},
            "spec": {"replicas": 3, "ui": {"enabled": False}}})

        async def later_read_published_first() -> None:
            await reconciler.refresh_status(namespace, "rr", _engine_statefulset(namespace, "12", ready=3))

        kube.before_status_write = later_read_published_first
        await reconciler.refresh_status(namespace, "rr", _engine_statefulset(namespace, "10", ready=2))
        assert kube.before_status_write is None, "the race did not happen"
        status = (await kube.get(L.API_VERSION, L.KIND, namespace, "rr"))["status"]
        ready = {c["type"]: c["status"] for c in status["conditions"]}["Ready"]
        assert (status["readyReplicas"], ready) == (3, "True")

    asyncio.run(_with_reconciler(control_plane, test))
