from __future__ import annotations

import asyncio
import copy

from rerank_operator.reconcile.drift import DriftRepair, content_digest


def _child(rv="1", uid="u1", owner="rr", **spec):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {
        "name": "rr", "namespace": "ns", "uid": uid, "resourceVersion": rv,
        "ownerReferences": [{"apiVersion": "rerank.io/v1alpha1", "kind": "RerankerDeployment", "name": owner}],
        "managedFields": [{"manager": "m", "time": f"t{rv}"}]},
        "spec": {"publishNotReadyAddresses": True, **spec}, "status": {"loadBalancer": {}}}


def test_the_digest_ignores_status_and_bookkeeping_but_not_content():
    base = _child()
    moved = copy.deepcopy(base)
    moved["status"] = {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}
    moved["metadata"]["resourceVersion"] = "9"
    moved["metadata"]["managedFields"] = []
    moved["metadata"]["annotations"] = {"deployment.kubernetes.io/revision": "3"}
    assert content_digest(moved) == content_digest(base)
    assert content_digest(_child(publishNotReadyAddresses=False)) != content_digest(base)


def _run(events, written=None):
    async def run():
        woken: list[str] = []

        async def repair(namespace, name, why):
            woken.append(why)

        drift = DriftRepair(repair, written=written or {}, interval=3600)
        for event_type, child in events:
            drift.child_event(event_type, child)
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        await drift.close()
        return woken
    return asyncio.run(run())


def test_a_foreign_edit_or_a_deletion_wakes_the_owner():
    edited = _child(rv="2", publishNotReadyAddresses=False)
    assert _run([("ADDED", _child()), ("MODIFIED", edited)]) == ["Service rr changed"]
    assert _run([("ADDED", _child()), ("DELETED", _child())]) == ["deleted Service rr"]


def test_status_moves_and_own_writes_are_not_drift():
    status_only = _child(rv="2")
    status_only["status"] = {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}
    ours = _child(rv="3", clusterIP="None")
    assert _run([("ADDED", _child()), ("MODIFIED", status_only), ("MODIFIED", ours)],
                written={("Service", "ns", "rr"): "3"}) == []
    # A child without our owner reference is someone else's.
    assert _run([("ADDED", _child(owner=None) | {"metadata": {"name": "x", "namespace": "ns"}}),
                 ("DELETED", {"kind": "Service", "metadata": {"name": "x", "namespace": "ns"}})]) == []


def test_wakes_while_a_repair_runs_coalesce_into_one_more_pass():
    async def run():
        calls = 0
        release = asyncio.Event()

        async def repair(namespace, name, why):
            nonlocal calls
            calls += 1
            await release.wait()

        drift = DriftRepair(repair, written={}, interval=3600, workers=4)
        drift.wake("ns", "rr", "first")
        await asyncio.sleep(0.05)
        for i in range(5):
            drift.wake("ns", "rr", f"again {i}")
        await asyncio.sleep(0.05)
        assert calls == 1  # never two passes of one object at once
        release.set()
        await asyncio.sleep(0.1)
        await drift.close()
        return calls

    assert asyncio.run(run()) == 2
