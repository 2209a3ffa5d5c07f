"""Local-mode storage: the volume made for a pending claim, and the host directory behind each
volume of a pod (ConfigMap files kept in sync as the kubelet keeps them)."""

from __future__ import annotations

import base64

import pytest

from rerank_localdev import volumes


def _claim(name="model-cache-reranker-engine-0", phase="Pending", volume_name=None, sc=None):
    spec = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    if volume_name:
        spec["volumeName"] = volume_name
    if sc is not None:
        spec["storageClassName"] = sc
    return {"metadata": {"name": name, "namespace": "default", "uid": "abcd-1234"}, "spec": spec,
            "status": {"phase": phase}}


def test_a_pending_claim_gets_a_prebound_host_path_volume(tmp_path):
    pv = volumes.pv_for_claim(_claim(), tmp_path)
    assert pv["metadata"]["name"] == "pvc-abcd-1234"
    spec = pv["spec"]
    assert spec["claimRef"] == {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                                "namespace": "default", "name": "model-cache-reranker-engine-0"}
    assert spec["capacity"] == {"storage": "1Gi"}
    assert spec["accessModes"] == ["ReadWriteOnce"]
    assert spec["storageClassName"] == ""  # matches a claim without a class
    assert spec["hostPath"]["path"] == str(tmp_path / "default" / "model-cache-reranker-engine-0")
    assert volumes.pv_for_claim(_claim(sc="fast"), tmp_path)["spec"]["storageClassName"] == "fast"


def test_only_unbound_pending_claims_are_provisioned():
    claims = [_claim("a"), _claim("b", phase="Bound", volume_name="pv-b"), _claim("c", volume_name="pv-c"),
              {**_claim("d"), "metadata": {**_claim("d")["metadata"], "deletionTimestamp": "2026-01-01T00:00:00Z"}}]
    assert [c["metadata"]["name"] for c in volumes.claims_to_provision(claims)] == ["a"]


def _pod():
    return {"metadata": {"name": "p"}, "spec": {"volumes": [
        {"name": "cache", "persistentVolumeClaim": {"claimName": "model-cache-p"}},
        {"name": "shm", "emptyDir": {"medium": "Memory"}},
        {"name": "status", "configMap": {"name": "reranker-status", "optional": True}},
        {"name": "creds", "secret": {"secretName": "auth", "items": [{"key": "password", "path": "pw/file"}]}},
    ]}}


def test_every_volume_gets_a_directory_and_configmaps_follow_their_object(tmp_path):
    data = {"status.json": '{"readyReplicas": 0}'}
    secret = {"password": base64.b64encode(b"s3cret").decode(), "username": base64.b64encode(b"u").decode()}
    dirs = volumes.pod_volume_dirs(_pod(), tmp_path, lambda c: "/srv/" + c, lambda n: data, lambda n: secret)
    assert dirs["cache"] == "/srv/model-cache-p"
    assert (tmp_path / "volumes" / "shm").is_dir() and dirs["shm"] == str(tmp_path / "volumes" / "shm")
    status = tmp_path / "volumes" / "status" / "status.json"
    assert status.read_text() == '{"readyReplicas": 0}'
    creds = tmp_path / "volumes" / "creds"
    assert (creds / "pw" / "file").read_bytes() == b"s3cret"
    assert not (creds / "username").exists()  # only the listed item
    # The ConfigMap changes: the file follows; a key removed: its file goes.
    data["status.json"] = '{"readyReplicas": 1}'
    data["extra"] = "x"
    volumes.pod_volume_dirs(_pod(), tmp_path, lambda c: "/srv/" + c, lambda n: data, lambda n: secret)
    assert status.read_text() == '{"readyReplicas": 1}'
    del data["extra"]
    volumes.pod_volume_dirs(_pod(), tmp_path, lambda c: "/srv/" + c, lambda n: data, lambda n: secret)
    assert sorted(p.name for p in status.parent.iterdir()) == ["status.json"]


def test_an_optional_configmap_that_is_missing_is_an_empty_directory(tmp_path):
    dirs = volumes.pod_volume_dirs(_pod(), tmp_path, lambda c: "/srv", lambda n: None,
                                   lambda n: {"password": ""})
    assert list((tmp_path / "volumes" / "status").iterdir()) == []
    assert dirs["status"] == str(tmp_path / "volumes" / "status")


def test_an_unbound_claim_or_missing_required_secret_waits(tmp_path):
    with pytest.raises(volumes.VolumeNotReady, match="claim model-cache-p is not bound"):
        volumes.pod_volume_dirs(_pod(), tmp_path, lambda c: None, lambda n: {}, lambda n: {})
    with pytest.raises(volumes.VolumeNotReady, match="secret auth does not exist"):
        volumes.pod_volume_dirs(_pod(), tmp_path, lambda c: "/srv", lambda n: {}, lambda n: None)
