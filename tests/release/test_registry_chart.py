"""The chart the way users get it: `helm package` + `helm registry login` + `helm push` to a private OCI registry
(TLS with its own CA, basic auth), then `helm install oci://…/charts/rerank-operator --version <release>` on the
real control plane. Wrong credentials, an untrusted certificate and an unknown version each fail with Helm's
error saying so."""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from rerank_localdev import release
from rerank_localdev.controlplane import CommandError, LocalControlPlane
from rerank_localdev.registry import LocalRegistry
from rerank_operator.version import VERSION

RELEASE = "rerank-oci"


def get(registry: LocalRegistry, path: str, credentials: tuple[str, str] | None) -> int:
    headers = {}
    if credentials:
        headers["Authorization"] = "Basic " + base64.b64encode(":".join(credentials).encode()).decode()
    context = ssl.create_default_context(cafile=str(registry.ca_file))
    try:
        with urllib.request.urlopen(urllib.request.Request(f"https://{registry.address}{path}", headers=headers),
                                    context=context, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_the_registry_wants_tls_from_its_ca_and_a_password(oci_registry: LocalRegistry) -> None:
    assert get(oci_registry, "/v2/", None) == 401
    assert get(oci_registry, "/v2/", (oci_registry.username, "wrong")) == 401
    assert get(oci_registry, "/v2/", (oci_registry.username, oci_registry.password)) == 200
    # A client that trusts only the system's CAs refuses the registry's certificate.
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        urllib.request.urlopen(f"https://{oci_registry.address}/v2/", timeout=10)
    htpasswd = (oci_registry.workdir / "htpasswd").read_text()
    assert htpasswd.startswith(f"{oci_registry.username}:$2a$") and oci_registry.password not in htpasswd


@pytest.fixture
def uninstalled_afterwards(control_plane: LocalControlPlane, namespace: str) -> Iterator[str]:
    yield namespace
    control_plane.helm("uninstall", RELEASE, "--namespace", namespace, "--ignore-not-found", "--wait",
                       "--timeout", "120s")


def test_helm_install_from_the_oci_registry(control_plane: LocalControlPlane, oci_registry: LocalRegistry,
                                           pushed_chart: str, uninstalled_afterwards: str) -> None:
    namespace = uninstalled_afterwards
    control_plane.helm("install", RELEASE, pushed_chart, "--version", VERSION, "--namespace", namespace,
                       f"--ca-file={oci_registry.ca_file}", "--set", "replicaCount=1", "--wait", "--timeout", "120s")
    (listed,) = json.loads(control_plane.helm("list", "--namespace", namespace, "--output", "json").stdout)
    assert listed["chart"] == f"rerank-operator-{VERSION}" and listed["app_version"] == VERSION
    assert listed["status"] == "deployed"
    (deployment,) = json.loads(control_plane.kubectl("get", "deployments", "-l", f"app.kubernetes.io/instance={RELEASE}",
                                                     "-n", namespace, "-o", "json").stdout)["items"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"ghcr.io/rerank-operator/rerank-operator:{VERSION}"
    # What was installed is what was pushed: the registry's chart equals the working tree's.
    shown = yaml.safe_load(control_plane.helm("show", "chart", pushed_chart, "--version", VERSION,
                                              f"--ca-file={oci_registry.ca_file}").stdout)
    assert shown == yaml.safe_load((release.CHART / "Chart.yaml").read_text())


def test_unknown_version_wrong_password_and_untrusted_ca_fail_clearly(control_plane: LocalControlPlane,
                                                                     oci_registry: LocalRegistry, pushed_chart: str,
                                                                     tmp_path: Path) -> None:
    ca = f"--ca-file={oci_registry.ca_file}"
    with pytest.raises(CommandError) as unknown:
        control_plane.helm("install", RELEASE, pushed_chart, "--version", "9.9.9", "--namespace", "default",
                           "--dry-run=client", ca)
    assert f"{oci_registry.address}/charts/rerank-operator:9.9.9: not found" in unknown.value.stderr

    anonymous = f"--registry-config={tmp_path / 'nobody.json'}"
    with pytest.raises(CommandError) as no_login:
        control_plane.helm("show", "chart", pushed_chart, "--version", VERSION, ca, anonymous)
    assert "basic credential not found" in no_login.value.stderr
    with pytest.raises(CommandError) as wrong:
        control_plane.helm("registry", "login", oci_registry.address, "--username", oci_registry.username,
                           "--password-stdin", ca, anonymous, input="not-the-password")
    assert "401: unauthorized" in wrong.value.stderr
    assert not (tmp_path / "nobody.json").exists() or oci_registry.address not in (tmp_path / "nobody.json").read_text()

    with pytest.raises(CommandError) as untrusted:
        control_plane.helm("show", "chart", pushed_chart, "--version", VERSION)
    assert "x509: certificate signed by unknown authority" in untrusted.value.stderr
