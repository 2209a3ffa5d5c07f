"""The charts in the local OCI registry: the previous release (tests/release/data/rerank-operator-<prev>.tgz, the
packaged chart as it was released) and this working tree's chart, pushed with the control plane's Helm after a
`helm registry login`, as a user or the release workflow would."""

from __future__ import annotations

from pathlib import Path

import pytest

from rerank_localdev import release
from rerank_localdev.controlplane import LocalControlPlane
from rerank_localdev.registry import LocalRegistry
from rerank_operator.version import VERSION

DATA = Path(__file__).with_name("data")
# The release before this one, packaged by `helm package` from its tagged tree (the chart as users installed it).
PREVIOUS_VERSION = "0.1.0"
PREVIOUS_CHART = DATA / f"rerank-operator-{PREVIOUS_VERSION}.tgz"


@pytest.fixture(scope="session")
def pushed_chart(control_plane: LocalControlPlane, oci_registry: LocalRegistry,
                 tmp_path_factory: pytest.TempPathFactory) -> str:
    """``oci://127.0.0.1:PORT/charts/rerank-operator``, holding the previous release and this one."""
    work = tmp_path_factory.mktemp("chart")
    control_plane.helm("registry", "login", oci_registry.address, "--username", oci_registry.username,
                       "--password-stdin", f"--ca-file={oci_registry.ca_file}", input=oci_registry.password)
    control_plane.helm("package", str(release.CHART), "--destination", str(work))
    for package, version in ((PREVIOUS_CHART, PREVIOUS_VERSION), (work / f"rerank-operator-{VERSION}.tgz", VERSION)):
        pushed = control_plane.helm("push", str(package), f"oci://{oci_registry.address}/charts",
                                    f"--ca-file={oci_registry.ca_file}")
        assert f"Pushed: {oci_registry.address}/charts/rerank-operator:{version}" in pushed.stderr + pushed.stdout
    return release.chart_url(oci_registry.address)
