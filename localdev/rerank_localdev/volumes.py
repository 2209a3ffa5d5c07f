"""Storage for local mode: PersistentVolumes backed by host directories, and the host directory
behind each volume of a pod.

A cluster normally has a storage provisioner that answers every new PersistentVolumeClaim (the
engine StatefulSet's per-replica "model-cache" claims) with a volume. Local mode has none, so
`provision_pending` plays that part: each pending claim gets a hostPath PersistentVolume under a
local directory, pre-bound to it through `claimRef`; the real PersistentVolume controller then
binds the pair and the scheduler places the pod, as it would with a dynamic provisioner.

`pod_volume_dirs` is the kubelet's half: it maps every volume of a running pod to a directory a
local process can use (claims -> their PV's hostPath, emptyDir -> a fresh directory, ConfigMaps and
Secrets -> their keys written as files, refreshed on every call as the kubelet refreshes them).
"""

from __future__ import annotations

import base64
import logging
import os
from pathlib import Path
from typing import Any, Callable, Mapping

log = logging.getLogger(__name__)

# Marks the volumes made here, so they can be told apart from ones the user created.
PROVISIONED_BY = "rerank.io/local-provisioner"


class VolumeNotReady(RuntimeError):
    """A volume of the pod cannot be resolved yet (claim not bound); try again later."""


def host_path_pv(name: str, path: str, capacity: str, access_modes: list[str],
                 claim: tuple[str, str] | None = None, storage_class: str = "") -> dict[str, Any]:
    """A hostPath PersistentVolume, optionally pre-bound to claim (namespace, name)."""
    spec: dict[str, Any] = {
        "capacity": {"storage": capacity},
        "accessModes": access_modes,
        "persistentVolumeReclaimPolicy": "Delete" if claim is None else "Retain",
        "storageClassName": storage_class,
        "hostPath": {"path": path, "type": "DirectoryOrCreate"},
        "volumeMode": "Filesystem",
    }
    if claim is not None:
        spec["claimRef"] = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                            "namespace": claim[0], "name": claim[1]}
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name, "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONED_BY}},
        "spec": spec,
    }


def pv_name(claim: Mapping[str, Any]) -> str:
    # Like the external provisioners: "pvc-<uid>" is unique and names the claim it serves.
    return f"pvc-{claim['metadata']['uid']}"


def pv_for_claim(claim: Mapping[str, Any], root: Path) -> dict[str, Any]:
    """The volume `provision_pending` creates for a pending claim: a directory below `root`."""
    meta, spec = claim["metadata"], claim["spec"]
    request = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
    path = root / meta["namespace"] / meta["name"]
    return host_path_pv(pv_name(claim), str(path), request, list(spec.get("accessModes") or ["ReadWriteOnce"]),
                        claim=(meta["namespace"], meta["name"]), storage_class=spec.get("storageClassName") or "")


def claims_to_provision(claims: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Pending claims no volume is bound or promised to (`volumeName` empty)."""
    return [c for c in claims
            if (c.get("status") or {}).get("phase", "Pending") == "Pending" and not c["spec"].get("volumeName")
            and not c["metadata"].get("deletionTimestamp")]


def provision_pending(core, namespace: str, root: Path) -> list[str]:
    """Creates a hostPath volume for every pending claim in `namespace`; returns the claim names."""
    from kubernetes.client.rest import ApiException

    done = []
    claims = core.api_client.sanitize_for_serialization(core.list_namespaced_persistent_volume_claim(namespace).items)
    for claim in claims_to_provision(claims):
        pv = pv_for_claim(claim, root)
        try:
            core.create_persistent_volume(pv)
        except ApiException as exc:
            if exc.status != 409:  # already created on an earlier pass
                raise
            continue
        Path(pv["spec"]["hostPath"]["path"]).mkdir(parents=True, exist_ok=True)
        log.info("provisioned %s for claim %s/%s", pv["metadata"]["name"], namespace, claim["metadata"]["name"])
        done.append(claim["metadata"]["name"])
    return done


def _write_files(directory: Path, data: Mapping[str, bytes], items: list[Mapping[str, Any]] | None) -> None:
    """Writes the keys as files (all keys, or only `items` at their paths), replacing stale ones."""
    directory.mkdir(parents=True, exist_ok=True)
    wanted = {i["key"]: i["path"] for i in items} if items else {k: k for k in data}
    written = set()
    for key, rel in wanted.items():
        if key not in data:
            continue
        target = directory / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists() or target.read_bytes() != data[key]:
            # Rename into place: a reader never sees a half-written file (the kubelet swaps a symlink).
            tmp = target.with_name(f".{target.name}.tmp")
            tmp.write_bytes(data[key])
            os.replace(tmp, target)
        written.add(target)
    for old in directory.rglob("*"):
        if old.is_file() and old not in written:
            old.unlink()


def pod_volume_dirs(
    pod: Mapping[str, Any],
    pod_dir: Path,
    claim_path: Callable[[str], str | None],
    config_map: Callable[[str], Mapping[str, str] | None],
    secret: Callable[[str], Mapping[str, str] | None],
) -> dict[str, str]:
    """Volume name -> host directory for every volume of `pod` (see the module docstring).

    `claim_path(name)`: the host path of the volume bound to the claim, None while unbound.
    `config_map(name)` / `secret(name)`: the object's data (Secret values base64), None if absent.
    Raises VolumeNotReady while a claim is unbound or a required ConfigMap/Secret is missing."""
    out: dict[str, str] = {}
    for volume in pod["spec"].get("volumes") or []:
        name = volume["name"]
        if "persistentVolumeClaim" in volume:
            claim = volume["persistentVolumeClaim"]["claimName"]
            path = claim_path(claim)
            if path is None:
                raise VolumeNotReady(f"claim {claim} is not bound to a volume yet")
            out[name] = path
        elif "emptyDir" in volume:
            d = pod_dir / "volumes" / name
            d.mkdir(parents=True, exist_ok=True)
            out[name] = str(d)
        elif "configMap" in volume or "secret" in volume:
            kind = "configMap" if "configMap" in volume else "secret"
            source = volume[kind]
            ref = source["name"] if kind == "configMap" else source["secretName"]
            data = (config_map if kind == "configMap" else secret)(ref)
            if data is None and not source.get("optional"):
                raise VolumeNotReady(f"{kind} {ref} does not exist")
            raw = {k: (base64.b64decode(v) if kind == "secret" else v.encode()) for k, v in (data or {}).items()}
            d = pod_dir / "volumes" / name
            _write_files(d, raw, source.get("items"))
            out[name] = str(d)
        elif "hostPath" in volume:
            out[name] = volume["hostPath"]["path"]
        # Other kinds (projected tokens, CSI, ...) stay unresolved; mounting one fails in local_pod.
    return out
