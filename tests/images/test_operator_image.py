"""The operator image runs `rerank-operator run` against the project's control plane from inside the container:
it answers its liveness URL and turns a RerankerDeployment into its StatefulSet."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from rerank_localdev.controlplane import free_ports
from rerank_operator.api.crd import install_crd
from tests.fixtures.cluster import fresh_namespace

from .containers import built_image, http_get, running_container, wait_for_http

pytestmark = pytest.mark.images

# Only namespaces with this prefix: other tests' operators (rrop-*) never see these objects, nor this one theirs.
NAMESPACE_PREFIX = "rrimg-"


def readable_kubeconfig(control_plane, directory: Path) -> Path:
    """The admin kubeconfig and its CA, readable by the image's uid 65532 (the control plane's own directory
    is private to root), mounted at /kube."""
    directory.mkdir(mode=0o755)
    config = yaml.safe_load(control_plane.admin_kubeconfig.read_text())
    for cluster in config["clusters"]:
        ca = Path(cluster["cluster"]["certificate-authority"])
        (directory / "ca.crt").write_bytes(ca.read_bytes())
        cluster["cluster"]["certificate-authority"] = "/kube/ca.crt"
    (directory / "kubeconfig").write_text(yaml.safe_dump(config))
    for path in directory.iterdir():
        path.chmod(0o644)
    return directory


def test_operator_container_reconciles_against_the_control_plane(control_plane, tmp_path: Path) -> None:
    from kubernetes import client

    ref = built_image("operator")
    api = control_plane.api_client()
    install_crd(api)
    kube = readable_kubeconfig(control_plane, tmp_path / "kube")
    liveness_port, metrics_port = free_ports(2)
    liveness = f"http://127.0.0.1:{liveness_port}/healthz"
    # The image's entrypoint is `rerank-operator run`; these are the chart's kind of arguments.
    args = ["--standalone", "--namespace", f"{NAMESPACE_PREFIX}*", f"--liveness={liveness}",
            f"--metrics-port={metrics_port}", "--metrics-address=127.0.0.1", "--verbose"]
    options = ["--read-only", "--tmpfs", "/tmp:rw,mode=1777", "-v", f"{kube}:/kube:ro",
               "-e", "KUBECONFIG=/kube/kubeconfig"]
    with running_container(ref, *args, options=options) as container, \
            fresh_namespace(control_plane, NAMESPACE_PREFIX) as namespace:
        wait_for_http(container, liveness, timeout=120)
        client.CustomObjectsApi(api).create_namespaced_custom_object(
            "rerank.io", "v1alpha1", namespace, "rerankerdeployments",
            {"apiVersion": "rerank.io/v1alpha1", "kind": "RerankerDeployment", "metadata": {"name": "in-image"},
             "spec": {"model": {"name": "Qwen/Qwen3-Reranker-0.6B"}, "engine": {"device": "cpu"}}})
        apps = client.AppsV1Api(api)
        deadline = time.monotonic() + 240
        while not apps.list_namespaced_stateful_set(namespace, field_selector="metadata.name=in-image-engine").items:
            assert container.exited() is None, container.logs()
            assert time.monotonic() < deadline, f"no StatefulSet after 240 s:\n{container.logs(200)}"
            time.sleep(1)
        status, metrics = http_get(f"http://127.0.0.1:{metrics_port}/metrics")
        assert status == 200 and "# HELP rerank_autoscaler" in metrics
        assert http_get(liveness)[0] == 200
