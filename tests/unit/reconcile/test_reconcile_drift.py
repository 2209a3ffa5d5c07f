from __future__ import annotations

import asyncio

from rerank_operator.reconcile.drift import DriftRepair, foreign_edit

OURS = "rerank-operator"


def _child(*entries, uid="u1", owner="rr"):
    return {"kind": "Service", "metadata": {
        "name": "rr", "namespace": "ns", "uid": uid,
        "ownerReferences": [{"apiVersion": "rerank.io/v1alpha1", "kind": "RerankerDeployment", "name": owner}],
        "managedFields": [{"manager": m, "operation": op, "time": t, **({"subresource": sub} if sub else {})}
                          for m, op, t, sub in entries]}}


def test_only_a_newest_write_by_someone_else_is_drift():
    ours_last = _child((OURS, "Apply", "2026-01-01T00:00:02Z", None), ("kubectl-patch", "Update", "2026-01-01T00:00:01Z", None))
    assert foreign_edit(ours_last, OURS) is None
    theirs_last = _child((OURS, "Apply", "2026-01-01T00:00:01Z", None), ("kubectl-patch", "Update", "2026-01-01T00:00:02Z", None))
    assert foreign_edit(theirs_last, OURS) == ("kubectl-patch", "2026-01-01T00:00:02Z")
    # Status writes and the controllers' bookkeeping are not drift.
    status = _child((OURS, "Apply", "2026-01-01T00:00:01Z", None),
                    ("kube-controller-manager", "Update", "2026-01-01T00:00:05Z", "status"))
    assert foreign_edit(status, OURS) is None
    revision = _child((OURS, "Apply", "2026-01-01T00:00:01Z", None),
                      ("kube-controller-manager", "Update", "2026-01-01T00:00:05Z", None))
    assert foreign_edit(revision, OURS) is None


def test_deletions_and_foreign_edits_wake_the_owner_once_per_stamp():
    async def run():
        woken: list[tuple[str, str, str]] = []
        done = asyncio.Event()

        async def repair(namespace, name, why):
            woken.append((namespace, name, why))
            done.set()

        drift = DriftRepair(repair, manager=OURS, interval=3600)
        edited = _child((OURS, "Apply", "2026-01-01T00:00:01Z", None), ("kubectl-edit", "Update", "2026-01-01T00:00:02Z", None))
        for _ in range(3):  # e.g. further events of the same child after the edit
            drift.child_event("MODIFIED", edited)
        await asyncio.wait_for(done.wait(), 5)
        done.clear()
        drift.child_event("MODIFIED", _child((OURS, "Apply", "2026-01-01T00:00:03Z", None)))
        drift.child_event("DELETED", _child((OURS, "Apply", "2026-01-01T00:00:03Z", None)))
        await asyncio.wait_for(done.wait(), 5)
        await drift.close()
        return woken

    woken = asyncio.run(run())
    assert woken == [("ns", "rr", "Service rr edited by kubectl-edit"), ("ns", "rr", "deleted Service rr")]


def test_wakes_while_a_repair_runs_coalesce_into_one_more_pass():
    async def run():
        calls = 0
        release = asyncio.Event()

        async def repair(namespace, name, why):
            nonlocal calls
            calls += 1
            await release.wait()

        drift = DriftRepair(repair, manager=OURS, interval=3600, workers=4)
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
