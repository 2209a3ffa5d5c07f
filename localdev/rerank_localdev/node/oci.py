"""Writes a one-layer container image archive from a few local files, without a registry or an image builder.

The archive is an OCI image layout that also carries Docker's `manifest.json` (as `docker save` and
`podman save` write them), so `ctr images import` names the image from either.  Deterministic: the same files
give the same digests (mtime 0, sorted entries).
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Mapping, Sequence


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, 0
    tar.addfile(info, io.BytesIO(data))


def layer_tar(files: Mapping[str, Path]) -> bytes:
    """An uncompressed layer holding each file at its absolute path in the image (executable)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = sorted({str(Path(p).parent).lstrip("/") for p in files} - {""})
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(info)
        for image_path in sorted(files):
            _add(tar, image_path.lstrip("/"), Path(files[image_path]).read_bytes(), 0o755)
    return out.getvalue()


def write_image(archive: Path, name: str, files: Mapping[str, Path], entrypoint: Sequence[str]) -> str:
    """Writes `archive` for image `name` (registry/repo:tag) and returns the manifest's digest."""
    layer = layer_tar(files)
    layer_digest = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": list(entrypoint),
                   "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/"]},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    }, sort_keys=True).encode()
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest,
                   "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest,
                    "size": len(layer)}],
    }, sort_keys=True).encode()
    manifest_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else "latest"
    index = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest,
                       "size": len(manifest),
                       "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": tag}}],
    }, sort_keys=True).encode()
    docker_manifest = json.dumps([{"Config": f"blobs/sha256/{config_digest[7:]}", "RepoTags": [name],
                                   "Layers": [f"blobs/sha256/{layer_digest[7:]}"]}]).encode()
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as tar:
        _add(tar, "oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
        _add(tar, "index.json", index)
        _add(tar, "manifest.json", docker_manifest)
        for digest, blob in ((config_digest, config), (layer_digest, layer), (manifest_digest, manifest)):
            _add(tar, f"blobs/sha256/{digest[7:]}", blob)
    return manifest_digest
