"""The release script (`python -m rerank_localdev.release publish`, what .github/workflows/release.yaml runs after
`make images`) against the local registry: it pushes a built image and the chart under the release version,
and what the registry then serves is byte-for-byte what was built. The 4 GB engine image is left out here (the
same code path pushes it); the operator image is the one the chart installs."""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import sys
import urllib.request

import pytest

from rerank_localdev import images, release
from rerank_localdev.registry import LocalRegistry
from rerank_operator.version import VERSION

pytestmark = pytest.mark.images

MANIFEST_TYPES = ("application/vnd.docker.distribution.manifest.v2+json, "
                  "application/vnd.oci.image.manifest.v1+json")


def manifest(registry: LocalRegistry, repository: str, reference: str) -> dict:
    credentials = base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode()
    request = urllib.request.Request(f"https://{registry.address}/v2/{repository}/manifests/{reference}",
                                     headers={"Authorization": f"Basic {credentials}", "Accept": MANIFEST_TYPES})
    with urllib.request.urlopen(request, context=ssl.create_default_context(cafile=str(registry.ca_file)),
                                timeout=30) as response:
        return json.loads(response.read())


def publish(registry: LocalRegistry, password: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REGISTRY_USERNAME": registry.username, "REGISTRY_PASSWORD": password}
    return subprocess.run([sys.executable, "-m", "rerank_localdev.release", "publish", "--registry", registry.address,
                           f"--ca-file={registry.ca_file}", *args], capture_output=True, text=True, env=env,
                          cwd=release.REPO, timeout=1800)


def test_publish_pushes_the_built_image_and_the_chart(oci_registry: LocalRegistry) -> None:
    local = images.image_ref("operator")
    if not images.image_exists(local):
        images.build("operator", echo=False)
    proc = publish(oci_registry, oci_registry.password, "--images", "operator")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [f"{oci_registry.address}/rerank-operator:{VERSION}",
                                   f"oci://{oci_registry.address}/charts/rerank-operator:{VERSION}"]
    # The registry's image is the local build: its config blob is the image id podman gave it.
    image_id = json.loads(images.podman("image", "inspect", local).stdout)[0]["Id"]
    assert manifest(oci_registry, "rerank-operator", VERSION)["config"]["digest"] == f"sha256:{image_id}"
    chart = manifest(oci_registry, "charts/rerank-operator", VERSION)
    assert chart["config"]["mediaType"] == "application/vnd.cncf.helm.config.v1+json"
    # No credentials are left behind in podman's or Helm's own files.
    for leftover in (os.path.expanduser("~/.config/helm/registry/config.json"),
                     f"/run/containers/{os.getuid()}/auth.json", os.path.expanduser("~/.config/containers/auth.json")):
        assert not os.path.exists(leftover) or oci_registry.address not in open(leftover).read()


def test_publish_refuses_wrong_credentials(oci_registry: LocalRegistry) -> None:
    proc = publish(oci_registry, "not-the-password", "--images", "operator")
    assert proc.returncode == 1
    assert f'logging into "{oci_registry.address}": invalid username/password' in proc.stderr, proc.stderr


def test_publish_refuses_an_image_that_was_not_built(oci_registry: LocalRegistry) -> None:
    proc = publish(oci_registry, oci_registry.password, "--images", "never-built")
    assert proc.returncode == 1
    assert f"ghcr.io/rerank-operator/rerank-never-built:{VERSION} is not built: run `make images`" in proc.stderr


def test_images_push_cli_after_podman_login(oci_registry: LocalRegistry, tmp_path) -> None:
    # `make push-images REGISTRY=…` runs this after the user's `podman login`.
    authfile = tmp_path / "auth.json"
    images.podman("login", f"--authfile={authfile}", f"--cert-dir={oci_registry.cert_dir}", "--username",
                  oci_registry.username, "--password-stdin", oci_registry.address, input=oci_registry.password)
    local = images.image_ref("operator")
    if not images.image_exists(local):
        images.build("operator", echo=False)
    proc = subprocess.run([sys.executable, "-m", "rerank_localdev.images", "push", "operator", "--registry",
                           f"{oci_registry.address}/team", f"--cert-dir={oci_registry.cert_dir}",
                           f"--authfile={authfile}"], capture_output=True, text=True, cwd=release.REPO, timeout=1800)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [f"{oci_registry.address}/team/rerank-operator:{VERSION}"]
    image_id = json.loads(images.podman("image", "inspect", local).stdout)[0]["Id"]
    assert manifest(oci_registry, "team/rerank-operator", VERSION)["config"]["digest"] == f"sha256:{image_id}"
