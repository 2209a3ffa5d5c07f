"""`helm upgrade` from the previous release's chart to this one, both pulled from the OCI registry, on the real
control plane, with a RerankerDeployment created under the previous release:

* the upgrade keeps it: the same children (same uids: nothing deleted and recreated, the StatefulSet least
  of all), its status current, and the operator reconciles it after the upgrade;
* Helm leaves the CRD alone (it never upgrades `crds/`), so a field added in this release is unknown to the
  cluster until the CRD is applied the documented way —
  `helm show crds oci://…/rerank-operator --version X | kubectl apply --server-side --force-conflicts -f -` —
  after which the field is accepted and reaches the pods.

The operator runs as a local process with each installed Deployment's arguments and the chart's ServiceAccount
identity (tests/helm/test_helm_cluster.py does the same): its image cannot run on the control plane's
simulated nodes, and the previous release's operator code is not kept (the chart and the CRD are what is
upgraded here)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import yaml

from rerank_localdev.controlplane import OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT, LocalControlPlane
from rerank_localdev.registry import LocalRegistry
from rerank_operator.api import crd
from rerank_operator.version import VERSION

from tests.fixtures.waiting import wait_for
from tests.helm.test_helm_cluster import (SAMPLE_CHILDREN, can_i, delete_while_the_operator_runs, forbidden_lines,
                                          healthy, operator_process, reconciled)

from tests.fixtures.registry import PREVIOUS_CHART, PREVIOUS_VERSION

RELEASE = "rerank-operator"
NAME = "kept"
CHILDREN = [(kind, child.replace("qwen3-reranker", NAME)) for kind, child in SAMPLE_CHILDREN] + \
    [("deployment", f"{NAME}-gateway")]


def uids(cp: LocalControlPlane, namespace: str) -> dict[tuple[str, str], str]:
    return {(kind, name): cp.kubectl("get", kind, name, "-n", namespace, "-o", "jsonpath={.metadata.uid}").stdout
            for kind, name in CHILDREN}


def crd_knows_pull_secrets(cp: LocalControlPlane) -> bool:
    served = json.loads(cp.kubectl("get", "crd", crd.api.CRD_NAME, "-o", "json").stdout)
    spec = served["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    return "imagePullSecrets" in spec


def crd_version(cp: LocalControlPlane) -> str:
    return cp.kubectl("get", "crd", crd.api.CRD_NAME, "-o",
                      r"jsonpath={.metadata.labels.app\.kubernetes\.io/version}").stdout


def apply_crd(cp: LocalControlPlane, manifest: str) -> None:
    cp.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=manifest)
    # Polled rather than `kubectl wait`: on a CRD whose status has no conditions yet, kubectl wait fails at once
    # (".status.conditions accessor error: <nil>") instead of waiting.
    deadline = time.monotonic() + 60
    while cp.kubectl("get", "crd", crd.api.CRD_NAME, "-o",
                     'jsonpath={.status.conditions[?(@.type=="Established")].status}').stdout != "True":
        assert time.monotonic() < deadline, f"crd/{crd.api.CRD_NAME} not Established within 60 s"
        time.sleep(0.2)


def test_upgrade_keeps_deployments_and_the_crd_is_applied_by_hand(control_plane: LocalControlPlane,
                                                                  oci_registry: LocalRegistry, pushed_chart: str,
                                                                  namespace: str, tmp_path: Path) -> None:
    cp, ca = control_plane, f"--ca-file={oci_registry.ca_file}"
    chart_args = ("--namespace", OPERATOR_NAMESPACE, "--set", f"serviceAccount.name={OPERATOR_SERVICE_ACCOUNT}",
                  "--set", "replicaCount=1", ca, "--wait", "--timeout", "120s")
    # A cluster on the previous release: its CRD (what its `helm install` created), then its chart.
    previous_crd = cp.helm("show", "crds", str(PREVIOUS_CHART)).stdout
    apply_crd(cp, previous_crd)
    try:
        assert not crd_knows_pull_secrets(cp)
        cp.helm("install", RELEASE, pushed_chart, "--version", PREVIOUS_VERSION, "--create-namespace", *chart_args)
        spec = {"model": {"name": "Qwen/Qwen3-Reranker-0.6B"}, "replicas": 1}
        cp.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(
            {"apiVersion": "rerank.io/v1alpha1", "kind": "RerankerDeployment", "metadata": {"name": NAME}, "spec": spec}))
        with operator_process(cp, tmp_path / "operator-before.log") as (proc, _):
            wait_for(lambda: reconciled(cp, namespace, NAME), 120, "the RerankerDeployment under the previous release")
            before = wait_for(lambda: (u := uids(cp, namespace)) and all(u.values()) and u, 60, "every child")

        upgraded = cp.helm("upgrade", RELEASE, pushed_chart, "--version", VERSION, *chart_args)
        assert "has been upgraded" in upgraded.stdout
        (listed,) = json.loads(cp.helm("list", "--namespace", OPERATOR_NAMESPACE, "--filter", f"^{RELEASE}$",
                                       "--output", "json").stdout)
        assert (listed["chart"], listed["revision"]) == (f"rerank-operator-{VERSION}", "2")
        # Helm did not touch the CRD: this release's field is still unknown to the API server.
        assert not crd_knows_pull_secrets(cp) and crd_version(cp) != VERSION
        patch = {"spec": {"imagePullSecrets": [{"name": "registry-credentials"}]}}
        # The API server prunes what its schema does not know: the patch is silently a no-op.
        dropped = cp.kubectl("patch", "rrd", NAME, "-n", namespace, "--type=merge", "-p", json.dumps(patch))
        assert "patched (no change)" in dropped.stdout and 'unknown field "spec.imagePullSecrets"' in dropped.stderr

        # The documented step: this release's CRD, from the chart in the registry.
        apply_crd(cp, cp.helm("show", "crds", pushed_chart, "--version", VERSION, ca).stdout)
        assert crd_knows_pull_secrets(cp) and crd_version(cp) == VERSION

        log = tmp_path / "operator-after.log"
        with operator_process(cp, log) as (proc, health):
            try:
                wait_for(lambda: healthy(health) or proc.poll() is not None, 60, "the upgraded operator's liveness")
                assert proc.poll() is None, log.read_text()[-4000:]
                rrd = wait_for(lambda: reconciled(cp, namespace, NAME), 120, "the status after the upgrade")
                assert {c["type"] for c in rrd["status"]["conditions"]} >= {"Ready", "Progressing"}
                assert uids(cp, namespace) == before  # nothing deleted and recreated
                # The new field now reaches the pods, in place.
                cp.kubectl("patch", "rrd", NAME, "-n", namespace, "--type=merge", "-p", json.dumps(patch))
                generation = int(cp.kubectl("get", "rrd", NAME, "-n", namespace, "-o",
                                            "jsonpath={.metadata.generation}").stdout)

                def pull_secrets_rolled_out() -> bool:
                    sts = json.loads(cp.kubectl("get", "statefulset", f"{NAME}-engine", "-n", namespace, "-o",
                                                "json").stdout)
                    status = json.loads(cp.kubectl("get", "rrd", NAME, "-n", namespace, "-o",
                                                   "jsonpath={.status}").stdout or "{}")
                    return (sts["spec"]["template"]["spec"].get("imagePullSecrets") == patch["spec"]["imagePullSecrets"]
                            and status.get("observedGeneration") == generation)

                wait_for(pull_secrets_rolled_out, 60, "the operator to write the pull secret into the engine pods")
                assert uids(cp, namespace) == before
            finally:
                delete_while_the_operator_runs(cp, namespace, NAME)
        assert forbidden_lines(log) == [], log.read_text()[-4000:]
    finally:
        cp.helm("uninstall", RELEASE, "--namespace", OPERATOR_NAMESPACE, "--ignore-not-found", "--wait",
                "--timeout", "120s")
        wait_for(lambda: not can_i(cp, "list", "rerankerdeployments.rerank.io", "-A"), 30, "RBAC to be revoked")
        # Whatever happened above, the session's later tests get this release's CRD.
        apply_crd(cp, crd.crd_yaml())
