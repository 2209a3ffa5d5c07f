"""A real node pulls from a private registry: the local OCI registry (TLS from its own CA, basic auth) holds the
engine stand-in image; containerd trusts the registry's CA through a hosts.toml under its config_path, and the
credentials reach the kubelet as an imagePullSecret rendered by the chart from its `registryCredentials` values
and named in the RerankerDeployment's spec.imagePullSecrets. Without the secret the pull is refused; a tag the
registry does not have shows up in the RerankerDeployment's Degraded condition with the image's name.

The engine is the node's stand-in image (the probe program as python3, serving on the engine's port), since a
real engine image is 4 GB to push and minutes to start; it is pulled exactly as the engine image would be."""

from __future__ import annotations

import json

import pytest
import yaml

from rerank_localdev import images, release
from rerank_localdev.node import binaries as node_binaries
from rerank_localdev.registry import LocalRegistry
from rerank_operator.version import VERSION
from tests.fixtures.waiting import wait_for
from tests.helm.chart import template
from tests.fixtures.node import stand_in_rrd, wait_for_degraded

pytestmark = [pytest.mark.node, pytest.mark.images]


@pytest.fixture(scope="module")
def stand_in_in_registry(oci_registry: LocalRegistry) -> str:
    """The engine stand-in, pushed to the registry; the reference pods name."""
    images.podman("load", "--input", str(node_binaries.cache_dir() / "engine-stand-in.oci.tar"))
    ref = f"{oci_registry.address}/rerank-node/engine-stand-in:1"
    images.podman("push", f"--cert-dir={oci_registry.cert_dir}",
                  f"--creds={oci_registry.username}:{oci_registry.password}",
                  node_binaries.ENGINE_STAND_IN_IMAGE, f"docker://{ref}", timeout=300)
    return ref


@pytest.fixture(scope="module")
def node_trusts_the_registry(real_node, oci_registry: LocalRegistry) -> None:
    """containerd reads hosts.toml at each pull: the registry's CA for its host:port, nothing else changed."""
    hosts = real_node.node.layout.registry_hosts_dir / oci_registry.address / "hosts.toml"
    hosts.parent.mkdir(parents=True, exist_ok=True)
    hosts.write_text(f'server = "https://{oci_registry.address}"\n\n'
                     f'[host."https://{oci_registry.address}"]\n'
                     f'  capabilities = ["pull", "resolve"]\n'
                     f'  ca = "{oci_registry.ca_file}"\n')


def pull_secret_from_chart_values(real_node, oci_registry: LocalRegistry, namespace: str) -> str:
    """The chart's Secret for `registryCredentials`, rendered for this namespace and applied; its name."""
    manifest = template({"registryCredentials": {"server": oci_registry.address, "username": oci_registry.username,
                                                  "password": oci_registry.password}},
                        sets=(), namespace=namespace).stdout
    (secret,) = [doc for doc in yaml.safe_load_all(manifest) if doc and doc["kind"] == "Secret"]
    real_node.cp.kubectl("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump(secret))
    return secret["metadata"]["name"]


def rrd(name: str, image: str, pull_secret: str | None) -> str:
    body = yaml.safe_load(stand_in_rrd(name, image, {"PROBE_AS_ENGINE": "serve::8000"}))
    body["spec"]["gateway"] = {"enabled": False}
    if pull_secret:
        body["spec"]["imagePullSecrets"] = [{"name": pull_secret}]
    return yaml.safe_dump(body)


def engine_container_status(real_node, namespace: str, name: str) -> dict | None:
    proc = real_node.cp.kubectl("-n", namespace, "get", "pod", f"{name}-engine-0", "-o", "json", check=False)
    if proc.returncode:
        return None
    statuses = json.loads(proc.stdout).get("status", {}).get("containerStatuses") or []
    return statuses[0] if statuses else None


def test_the_node_pulls_with_the_charts_pull_secret(real_node, node_namespace, node_operator, oci_registry,
                                                   stand_in_in_registry, node_trusts_the_registry):
    secret = pull_secret_from_chart_values(real_node, oci_registry, node_namespace)
    real_node.cp.kubectl("-n", node_namespace, "apply", "-f", "-", input=rrd("private", stand_in_in_registry, secret))

    def pulled_and_started():
        status = engine_container_status(real_node, node_namespace, "private")
        return status if status and status.get("imageID") and "running" in status.get("state", {}) else None

    status = wait_for(pulled_and_started, 180, "the engine image pulled from the private registry", interval=1)
    assert status["image"] == stand_in_in_registry
    assert status["imageID"].startswith(f"{oci_registry.address}/rerank-node/engine-stand-in@sha256:")


def test_without_the_secret_the_pull_is_refused(real_node, node_namespace, node_operator, oci_registry,
                                                stand_in_in_registry, node_trusts_the_registry):
    real_node.cp.kubectl("-n", node_namespace, "apply", "-f", "-", input=rrd("anonymous", stand_in_in_registry, None))
    degraded = wait_for_degraded(real_node, node_namespace, "anonymous", "ImagePullBackOff", node_operator)
    assert stand_in_in_registry in degraded["message"]


def test_a_tag_the_registry_lacks_is_named_in_the_status(real_node, node_namespace, node_operator, oci_registry,
                                                        stand_in_in_registry, node_trusts_the_registry):
    secret = pull_secret_from_chart_values(real_node, oci_registry, node_namespace)
    missing = stand_in_in_registry.rsplit(":", 1)[0] + ":no-such-tag"
    real_node.cp.kubectl("-n", node_namespace, "apply", "-f", "-", input=rrd("missing", missing, secret))
    degraded = wait_for_degraded(real_node, node_namespace, "missing", "ImagePullBackOff", node_operator)
    assert missing in degraded["message"] and "spec.engine.image" in degraded["message"]


def test_helm_install_from_the_registry_runs_the_operator_pulled_with_the_charts_secret(
        real_node, node_namespace, oci_registry, node_trusts_the_registry, tmp_path):
    """The way users install: the chart from `oci://`, the operator image from the same private registry, pulled
    by the node with the Secret the chart makes from registryCredentials."""
    cp, ca = real_node.cp, f"--ca-file={oci_registry.ca_file}"
    authfile = tmp_path / "auth.json"
    images.podman("login", f"--authfile={authfile}", f"--cert-dir={oci_registry.cert_dir}", "--username",
                  oci_registry.username, "--password-stdin", oci_registry.address, input=oci_registry.password)
    if not images.image_exists(images.image_ref("operator")):
        images.build("operator", echo=False)
    operator_ref = images.push("operator", oci_registry.address, cert_dir=oci_registry.cert_dir, authfile=authfile)
    cp.helm("registry", "login", oci_registry.address, "--username", oci_registry.username, "--password-stdin", ca,
            input=oci_registry.password)
    cp.helm("package", str(release.CHART), "--destination", str(tmp_path))
    cp.helm("push", str(tmp_path / f"rerank-operator-{VERSION}.tgz"), f"oci://{oci_registry.address}/charts", ca)
    release_name = "rerank-operator"
    try:
        cp.helm("install", release_name, release.chart_url(oci_registry.address), "--version", VERSION,
                "--namespace", node_namespace, ca, "--set", "replicaCount=1",
                "--set", f"image.repository={operator_ref.rsplit(':', 1)[0]}",
                "--set", f"registryCredentials.server={oci_registry.address}",
                "--set", f"registryCredentials.username={oci_registry.username}",
                "--set", f"registryCredentials.password={oci_registry.password}", "--wait", "--timeout", "300s",
                timeout=360)
        (pod,) = json.loads(cp.kubectl("-n", node_namespace, "get", "pods", "-l",
                                       f"app.kubernetes.io/instance={release_name}", "-o", "json").stdout)["items"]
        (status,) = pod["status"]["containerStatuses"]
        assert status["ready"] and status["image"] == operator_ref
        assert status["imageID"].startswith(f"{oci_registry.address}/rerank-operator@sha256:")
        assert pod["spec"]["imagePullSecrets"] == [{"name": f"{release_name}-registry"}]
    finally:
        cp.helm("uninstall", release_name, "--namespace", node_namespace, "--ignore-not-found", "--wait",
                "--timeout", "120s")
