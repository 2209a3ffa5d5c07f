"""What kopf writes onto a RerankerDeployment: nothing when a handler succeeds at once."""

from __future__ import annotations

import kopf
from kopf._cogs.structs.ids import HandlerId

from rerank_operator.reconcile.diffbase import ProgressStorage

BODY = {"apiVersion": "rerank.io/v1alpha1", "kind": "RerankerDeployment",
        "metadata": {"name": "r", "namespace": "ns", "uid": "u1"}, "spec": {}}
RECORD = {"started": "2026-01-01T00:00:00.000000", "stopped": "2026-01-01T00:00:01.000000",
          "delayed": None, "purpose": "create", "retries": 1, "success": True, "failure": False,
          "message": None, "subrefs": None}


def _handled_once(storage: kopf.ProgressStorage) -> kopf.Patch:
    """The patch kopf sends after one handler succeeded at its first try: its record stored, then purged."""
    body, patch, key = kopf.Body(BODY), kopf.Patch(), HandlerId("reconcile-create")
    storage.store(key=key, record=RECORD, body=body, patch=patch)
    storage.flush()
    storage.purge(key=key, body=body, patch=patch)
    storage.flush()
    return patch


def test_a_handler_that_succeeds_at_once_writes_nothing_onto_the_object():
    assert dict(_handled_once(ProgressStorage(prefix="rerank.io"))) == {}
    # kopf's own storage would write its marker annotation onto every object (one more write each).
    assert dict(_handled_once(kopf.AnnotationsProgressStorage(prefix="rerank.io"))) == {
        "metadata": {"annotations": {"rerank.io/kopf-managed": "yes"}}}


def test_retry_progress_is_still_kept_in_annotations():
    body, patch = kopf.Body(BODY), kopf.Patch()
    ProgressStorage(prefix="rerank.io").store(key=HandlerId("reconcile-create"), record={**RECORD, "success": False},
                                              body=body, patch=patch)
    annotations = patch["metadata"]["annotations"]
    assert list(annotations) == ["rerank.io/reconcile-create"]
    assert '"retries":1' in annotations["rerank.io/reconcile-create"]
