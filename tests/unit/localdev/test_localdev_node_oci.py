"""Image archives written without a registry or image builder: what `ctr images import` reads."""

from __future__ import annotations

import hashlib
import json
import tarfile

from rerank_localdev.node import oci


def _members(archive):
    with tarfile.open(archive) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def test_the_archive_names_the_image_and_its_blobs_match_their_digests(tmp_path):
    binary = tmp_path / "tool"
    binary.write_bytes(b"\x7fELF not really")
    digest = oci.write_image(tmp_path / "img.tar", "localhost/a/tool:2", {"/bin/tool": binary}, ["/bin/tool"])
    files = _members(tmp_path / "img.tar")
    index = json.loads(files["index.json"])
    (entry,) = index["manifests"]
    assert entry["digest"] == digest
    assert entry["annotations"]["io.containerd.image.name"] == "localhost/a/tool:2"
    assert entry["annotations"]["org.opencontainers.image.ref.name"] == "2"
    assert json.loads(files["manifest.json"])[0]["RepoTags"] == ["localhost/a/tool:2"]
    for name, blob in files.items():
        if name.startswith("blobs/sha256/"):
            assert hashlib.sha256(blob).hexdigest() == name.rsplit("/", 1)[1]
    manifest = json.loads(files[f"blobs/sha256/{digest[7:]}"])
    config = json.loads(files["blobs/sha256/" + manifest["config"]["digest"][7:]])
    assert config["config"]["Entrypoint"] == ["/bin/tool"]
    assert config["rootfs"]["diff_ids"] == [manifest["layers"][0]["digest"]]


def test_the_layer_holds_the_file_executable_at_its_image_path(tmp_path):
    binary = tmp_path / "tool"
    binary.write_bytes(b"payload")
    layer = oci.layer_tar({"/bin/tool": binary})
    import io

    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        member = tar.getmember("bin/tool")
        assert member.mode == 0o755 and tar.extractfile(member).read() == b"payload"
        assert tar.getmember("bin").isdir()


def test_the_same_files_give_the_same_digest(tmp_path):
    binary = tmp_path / "tool"
    binary.write_bytes(b"same")
    a = oci.write_image(tmp_path / "a.tar", "localhost/a:1", {"/tool": binary}, ["/tool"])
    b = oci.write_image(tmp_path / "b.tar", "localhost/a:1", {"/tool": binary}, ["/tool"])
    assert a == b
