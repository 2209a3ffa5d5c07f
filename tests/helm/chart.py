"""Rendering the Helm chart for tests: `helm template` with isolated Helm state, parsed into objects.

The helm binary is the project's pinned one (rerank_localdev.binaries, built on first use).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from rerank_localdev import binaries, versions

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "rerank-operator"
DATA = Path(__file__).resolve().parent / "data"

# Rendering targets the Kubernetes version of the local control plane (without a cluster, helm would
# assume its own built-in default, which predates the chart's kubeVersion).
KUBE_VERSION = versions.KUBERNETES
RELEASE = "rerank-operator"
NAMESPACE = "rerank-system"

# The Prometheus Operator's CRDs behind the chart's optional monitoring objects, as kept in DATA (<name>.yaml).
MONITORING_CRDS = ("servicemonitors.monitoring.coreos.com", "podmonitors.monitoring.coreos.com",
                   "prometheusrules.monitoring.coreos.com")

# Value sets the chart must render, validate and pass the security checks with. "everything" turns every
# optional part on at once, so no template escapes the checks.
VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "sample": {"sample": {"enabled": True}},
    "namespaced": {"watchNamespaces": ["team-a", "team-b"]},
    "everything": {
        "sample": {"enabled": True, "name": "demo", "spec": {"model": {"name": "Qwen/Qwen3-Reranker-0.6B"},
                                                               "service": {"port": 9000}}},
        "watchNamespaces": ["team-a", "team-b"],
        "networkPolicy": {"enabled": True},
        "metrics": {"serviceMonitor": {"enabled": True, "interval": "15s", "labels": {"release": "prometheus"}},
                    "podMonitors": {"enabled": True, "interval": "20s", "labels": {"release": "prometheus"}},
                    "prometheusRule": {"enabled": True, "labels": {"release": "prometheus"}},
                    "dashboard": {"enabled": True, "namespace": "monitoring",
                                  "annotations": {"grafana_folder": "Rerank"}}},
        "image": {"digest": "sha256:" + "ab" * 32},
        "imagePullSecrets": [{"name": "registry"}],
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ops", "effect": "NoSchedule"}],
        "podAnnotations": {"example.com/owner": "platform"},
        "logLevel": "debug",
    },
}


def helm_path() -> Path:
    return binaries.ensure() / "helm"


def helm_env(home: Path) -> dict[str, str]:
    """Helm's cache/config/data inside `home`: tests never read or write the user's Helm state."""
    return {
        **os.environ,
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }


def helm(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    """Runs the pinned helm without a cluster (lint, template)."""
    with tempfile.TemporaryDirectory(prefix="helm-home-") as home:
        proc = subprocess.run([str(helm_path()), *args], env=helm_env(Path(home)), capture_output=True,
                              text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}\n{proc.stdout[-2000:]}")
    return proc


def values_args(values: Mapping[str, Any] | None, workdir: Path) -> list[str]:
    """`-f <file>` for a values dict (--set cannot express lists of objects faithfully)."""
    if not values:
        return []
    path = workdir / "values.yaml"
    path.write_text(yaml.safe_dump(dict(values)))
    return ["-f", str(path)]


def template(values: Mapping[str, Any] | None = None, sets: Iterable[str] = (), namespace: str = NAMESPACE,
             release: str = RELEASE, check: bool = True) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="helm-values-") as workdir:
        args = ["template", release, str(CHART), "--namespace", namespace, "--kube-version", KUBE_VERSION,
                *values_args(values, Path(workdir))]
        for item in sets:
            args += ["--set", item]
        return helm(*args, check=check)


def render(values: Mapping[str, Any] | None = None, namespace: str = NAMESPACE, release: str = RELEASE,
           sets: Iterable[str] = ()) -> list[dict[str, Any]]:
    """The chart's templates (hooks included; not the CRD in crds/) as a list of objects."""
    out = template(values, sets=sets, namespace=namespace, release=release).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def find(objects: list[dict[str, Any]], kind: str, name: str | None = None,
         namespace: str | None = None) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind
            and (name is None or o["metadata"]["name"] == name)
            and (namespace is None or o["metadata"].get("namespace") == namespace)]


def one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = find(objects, kind, name)
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {[o['metadata']['name'] for o in found]}"
    return found[0]


def retarget_namespaces(values: Mapping[str, Any], mapping: Mapping[str, str]) -> dict[str, Any]:
    """A copy of `values` whose watchNamespaces and dashboard namespace are renamed through `mapping` (test
    namespaces are generated)."""
    out = yaml.safe_load(yaml.safe_dump(dict(values)))
    if "watchNamespaces" in out:
        out["watchNamespaces"] = [mapping.get(ns, ns) for ns in out["watchNamespaces"]]
    dashboard = out.get("metrics", {}).get("dashboard", {})
    if dashboard.get("namespace"):
        dashboard["namespace"] = mapping.get(dashboard["namespace"], dashboard["namespace"])
    return out
