"""The chart against the real API server of the local control plane.

* Every value set, rendered, passes the API server's own validation (server-side dry run, strict fields):
  the Kubernetes schemas, the RerankerDeployment CRD's schema and CEL rules, the ServiceMonitor CRD.
* `helm install` into rerank-system, then the operator runs here as a subprocess with the chart's
  Deployment arguments and the identity of the chart's ServiceAccount (the harness's operator token): it
  must reconcile the sample with nothing but the chart's RBAC, and never be refused (403).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from rerank_localdev.controlplane import (OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT, LocalControlPlane,
                                                   free_ports)

from tests.fixtures.waiting import wait_for

from .chart import CHART, DATA, MONITORING_CRDS, RELEASE, VALUE_SETS, retarget_namespaces, template

SAMPLE = "qwen3-reranker"
# The children of a RerankerDeployment with the defaults (UI and disruption budget on, no Ingress).
SAMPLE_CHILDREN = [("service", SAMPLE), ("service", f"{SAMPLE}-engine-headless"), ("statefulset", f"{SAMPLE}-engine"),
                   ("poddisruptionbudget", f"{SAMPLE}-engine"), ("configmap", f"{SAMPLE}-status"),
                   ("deployment", f"{SAMPLE}-ui"), ("service", f"{SAMPLE}-ui")]


@pytest.fixture(scope="module")
def crds(control_plane: LocalControlPlane) -> Iterator[LocalControlPlane]:
    """The chart's CRD (as `helm install` would create it) and the Prometheus Operator's CRDs the chart's optional
    monitoring objects need (ServiceMonitor, PodMonitor, PrometheusRule)."""
    for crd in [*sorted((CHART / "crds").glob("*.yaml")), *(DATA / f"{name}.yaml" for name in MONITORING_CRDS)]:
        control_plane.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crd))
    control_plane.wait_crds_established("rerankerdeployments.rerank.io", *MONITORING_CRDS)
    yield control_plane
    control_plane.kubectl("delete", "--ignore-not-found", "--wait=false", *(f"crd/{name}" for name in MONITORING_CRDS))


@pytest.fixture
def extra_namespaces(control_plane: LocalControlPlane, namespace: str) -> Iterator[dict[str, str]]:
    """Fresh namespaces standing in for the value sets' team-a and team-b, and the dashboard's monitoring."""
    mapping = {"team-a": f"{namespace}-a", "team-b": f"{namespace}-b", "monitoring": f"{namespace}-m"}
    for ns in mapping.values():
        control_plane.kubectl("create", "namespace", ns)
    yield mapping
    control_plane.kubectl("delete", "namespace", "--wait=false", *mapping.values())


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_rendered_chart_passes_server_side_validation(crds: LocalControlPlane, namespace: str,
                                                      extra_namespaces: dict[str, str], value_set: str) -> None:
    values = retarget_namespaces(VALUE_SETS[value_set], extra_namespaces)
    manifest = template(values, namespace=namespace).stdout
    proc = crds.kubectl("apply", "--dry-run=server", "--validate=strict", "-f", "-", input=manifest, check=False)
    assert proc.returncode == 0, proc.stderr
    kinds = {doc["kind"] for doc in yaml.safe_load_all(manifest) if doc}
    assert len(proc.stdout.strip().splitlines()) == sum(1 for d in yaml.safe_load_all(manifest) if d), proc.stdout
    assert {"Deployment", "ServiceAccount", "ClusterRole"} <= kinds


def test_server_side_validation_catches_a_broken_manifest(crds: LocalControlPlane, namespace: str) -> None:
    # The validator above can fail: a misspelt field in a rendered object is refused.
    manifest = template(VALUE_SETS["sample"], namespace=namespace).stdout.replace("readOnlyRootFilesystem", "readOnlyRootFS")
    proc = crds.kubectl("apply", "--dry-run=server", "--validate=strict", "-f", "-", input=manifest, check=False)
    assert proc.returncode != 0 and "readOnlyRootFS" in proc.stderr


# ---- install, then the operator with the chart's identity -------------------------------------------------


def can_i(cp: LocalControlPlane, *args: str) -> bool:
    proc = cp.kubectl("auth", "can-i", *args, kubeconfig=cp.operator_kubeconfig, check=False)
    return proc.stdout.strip() == "yes"


@contextmanager
def installed(cp: LocalControlPlane, *values: str) -> Iterator[subprocess.CompletedProcess]:
    """helm install into rerank-system with the harness's ServiceAccount name; uninstalled afterwards, and the
    operator identity's grants verifiably gone (later tests expect it to hold nothing)."""
    proc = cp.helm("install", RELEASE, str(CHART), "--namespace", OPERATOR_NAMESPACE, "--create-namespace",
                   "--set", f"serviceAccount.name={OPERATOR_SERVICE_ACCOUNT}", *values, "--wait", "--timeout", "120s")
    try:
        yield proc
    finally:
        cp.helm("uninstall", RELEASE, "--namespace", OPERATOR_NAMESPACE, "--wait", "--timeout", "120s")
        wait_for(lambda: not can_i(cp, "list", "rerankerdeployments.rerank.io", "-A"), 30, "RBAC to be revoked")


@contextmanager
def operator_process(cp: LocalControlPlane, log: Path) -> Iterator[tuple[subprocess.Popen, int]]:
    """`rerank-operator run` with the installed Deployment's arguments (ports moved to free local ones) and the
    chart's ServiceAccount identity."""
    deployment = json.loads(cp.kubectl("get", "deployment", RELEASE, "-n", OPERATOR_NAMESPACE, "-o", "json").stdout)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    health, metrics = free_ports(2)
    args = []
    for arg in container["args"]:
        if arg.startswith("--liveness="):
            arg = f"--liveness=http://127.0.0.1:{health}/healthz"
        elif arg.startswith("--metrics-port="):
            arg = f"--metrics-port={metrics}"
        args.append(arg)
    argv = [str(Path(sys.executable).with_name(container["command"][0])), *container["command"][1:], *args,
            "--metrics-address=127.0.0.1", "--drift-interval=5"]
    env = {**os.environ, "KUBECONFIG": str(cp.operator_kubeconfig), "PYTHONUNBUFFERED": "1"}
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        yield proc, health
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def reconciled(cp: LocalControlPlane, namespace: str, name: str) -> dict[str, Any] | None:
    """The RerankerDeployment once its children exist and its status is written for its generation."""
    for kind, child in SAMPLE_CHILDREN:
        child = child.replace(SAMPLE, name)
        if cp.kubectl("get", kind, child, "-n", namespace, check=False).returncode != 0:
            return None
    rrd = json.loads(cp.kubectl("get", "rrd", name, "-n", namespace, "-o", "json").stdout)
    status = rrd.get("status") or {}
    if status.get("observedGeneration") == rrd["metadata"]["generation"] and status.get("conditions"):
        return rrd
    return None


def delete_while_the_operator_runs(cp: LocalControlPlane, namespace: str, name: str) -> None:
    # The operator removes its finalizer; with the operator gone first the object would hang in Terminating.
    cp.kubectl("delete", "rrd", name, "-n", namespace, "--ignore-not-found", "--wait=true", "--timeout=60s")


def forbidden_lines(log: Path) -> list[str]:
    return [line for line in log.read_text(errors="replace").splitlines()
            if " 403" in line or "Forbidden" in line or "forbidden" in line]


def test_install_then_the_operator_reconciles_the_sample_with_the_charts_rbac(crds: LocalControlPlane,
                                                                             tmp_path: Path) -> None:
    cp = crds
    # Autoscaling on, with a minimum above the sample's one replica: the autoscaler then lists the engine pods,
    # resizes the sample through /scale, posts an event and writes status, all with the chart's RBAC.
    with installed(cp, "--set", "sample.enabled=true", "--set", "sample.spec.autoscaling.enabled=true",
                   "--set", "sample.spec.autoscaling.minReplicas=2") as install:
        assert f"kubectl -n {OPERATOR_NAMESPACE} wait --for=condition=Ready rrd/{SAMPLE}" in install.stdout
        assert f"helm test {RELEASE}" in install.stdout

        # Least privilege, as the API server sees it.
        for granted in (["list", "rerankerdeployments.rerank.io", "-A"], ["patch", "rerankerdeployments.rerank.io", "--subresource=status", "-A"],
                        ["update", "rerankerdeployments.rerank.io", "--subresource=scale", "-A"], ["create", "statefulsets.apps", "-A"],
                        ["list", "nodes"], ["watch", "customresourcedefinitions.apiextensions.k8s.io"]):
            assert can_i(cp, *granted), granted
        for refused in (["get", "secrets", "-A"], ["delete", "rerankerdeployments.rerank.io", "-A"],
                        ["create", "pods", "-A"], ["delete", "nodes"], ["create", "clusterroles.rbac.authorization.k8s.io"],
                        ["list", "namespaces"]):
            assert not can_i(cp, *refused), refused

        log = tmp_path / "operator.log"
        with operator_process(cp, log) as (proc, health):
            try:
                wait_for(lambda: healthy(health) or proc.poll() is not None, 60, "the liveness endpoint")
                assert proc.poll() is None, log.read_text()[-4000:]
                rrd = wait_for(lambda: reconciled(cp, OPERATOR_NAMESPACE, SAMPLE), 90, "the sample's children and status")
                assert {c["type"] for c in rrd["status"]["conditions"]} >= {"Ready", "Progressing"}
                assert rrd["status"]["endpoint"].startswith(f"http://{SAMPLE}.{OPERATOR_NAMESPACE}.svc")
                wait_for(lambda: json.loads(cp.kubectl("get", "rrd", SAMPLE, "-n", OPERATOR_NAMESPACE, "-o",
                                                       "jsonpath={.spec.replicas}").stdout or "0") == 2,
                         60, "the autoscaler to scale the sample to its minimum through /scale")
            finally:
                delete_while_the_operator_runs(cp, OPERATOR_NAMESPACE, SAMPLE)
        assert forbidden_lines(log) == [], log.read_text()[-4000:]


def test_namespaced_install_reconciles_with_roles_only(crds: LocalControlPlane, namespace: str, tmp_path: Path) -> None:
    cp = crds
    with installed(cp, "--set", f"watchNamespaces={{{namespace}}}"):
        assert can_i(cp, "create", "statefulsets.apps", "-n", namespace)
        assert not can_i(cp, "create", "statefulsets.apps", "-n", "default")
        assert not can_i(cp, "list", "nodes")

        cp.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump({
            "apiVersion": "rerank.io/v1alpha1", "kind": "RerankerDeployment", "metadata": {"name": "scoped"},
            "spec": {"model": {"name": "Qwen/Qwen3-Reranker-0.6B"}}}))
        log = tmp_path / "operator.log"
        with operator_process(cp, log) as (proc, health):
            try:
                wait_for(lambda: healthy(health) or proc.poll() is not None, 60, "the liveness endpoint")
                assert proc.poll() is None, log.read_text()[-4000:]
                wait_for(lambda: reconciled(cp, namespace, "scoped"), 90, "the children and status")
            finally:
                delete_while_the_operator_runs(cp, namespace, "scoped")
        # Watching named namespaces, the operator cannot see nodes: it says so once and skips the GPU check.
        assert all("nodes" in line for line in forbidden_lines(log)), log.read_text()[-4000:]
