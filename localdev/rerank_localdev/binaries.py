"""Finds or builds the control-plane binaries (etcd, kube-apiserver, controller-manager, scheduler,
kwok, helm, kubectl).

Order of lookup: `$KUBEBUILDER_ASSETS` (the envtest convention), then the cache directory
(`$RERANK_BIN_CACHE`, default `~/.cache/rerank-operator/bin/<pins>`), else build from the Go module proxy.

`k8s.io/kubernetes` cannot be `go install`ed (its go.mod replaces the staging modules with local paths),
so we build from a small wrapper module that requires it and replaces every staging module with its
published version.  Usage: `python -m rerank_localdev.binaries ensure`.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from . import buildcache, versions

log = logging.getLogger(__name__)

ETCD_MAIN = """package main

// A minimal etcd: the same entry point as the upstream binary, built from the module graph
// that k8s.io/kubernetes pins, so it matches what the API server is tested against.
import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
"""

TOOLS_GO = """//go:build tools

package tools

import (
	_ "helm.sh/helm/v3/cmd/helm"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "sigs.k8s.io/kwok/cmd/kwok"
)
"""


def cache_dir() -> Path:
    base = os.environ.get("RERANK_BIN_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "rerank-operator", "bin"
    )
    return Path(base) / versions.cache_key()


def _complete(directory: Path) -> bool:
    return all((directory / name).is_file() for name in versions.PACKAGES)


def find() -> Path | None:
    """The directory holding every binary, if one exists already."""
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets and _complete(Path(assets)):
        return Path(assets)
    if _complete(cache_dir()):
        return cache_dir()
    return None


def wrapper_go_mod() -> str:
    lines = [
        "module rerank.local/controlplane",
        "",
        "go 1.26.0",
        "",
        "require (",
        f"\tk8s.io/kubernetes {versions.KUBERNETES}",
        f"\tsigs.k8s.io/kwok {versions.KWOK}",
        f"\thelm.sh/helm/v3 {versions.HELM}",
        ")",
        "",
        "replace (",
    ]
    lines += [f"\tk8s.io/{m} => k8s.io/{m} {versions.STAGING}" for m in versions.STAGING_MODULES]
    lines += [")", ""]
    return "\n".join(lines)


def ldflags() -> str:
    """Linker flags stamping the pinned versions in, as the upstream release builds do. Without them
    the API server reports `v0.0.0-master+$Format:%H$`, which breaks Helm's `kubeVersion` checks and
    `kubectl version`, and `helm template` assumes Kubernetes 1.20."""
    major, minor = versions.KUBERNETES.lstrip("v").split(".")[:2]
    flags = ["-s", "-w"]
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [f"-X {pkg}.gitVersion={versions.KUBERNETES}", f"-X {pkg}.gitMajor={major}",
                  f"-X {pkg}.gitMinor={minor}", f"-X {pkg}.gitTreeState=clean"]
    flags += [f"-X helm.sh/helm/v3/internal/version.version={versions.HELM}",
              "-X helm.sh/helm/v3/internal/version.gitTreeState=clean"]
    for pkg in ("helm.sh/helm/v3/pkg/chartutil", "helm.sh/helm/v3/pkg/lint/rules"):
        flags += [f"-X {pkg}.k8sVersionMajor={major}", f"-X {pkg}.k8sVersionMinor={minor}"]
    return " ".join(flags)


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("CGO_ENABLED", "0")
    env.setdefault("GOFLAGS", "-mod=mod")
    # Never switch toolchains behind the user's back unless asked to.
    env.setdefault("GOTOOLCHAIN", "local")
    return env


def build(target: Path | None = None) -> Path:
    """Builds every binary into `target` (default: the cache directory) and returns it."""
    target = target or cache_dir()
    if not shutil.which("go"):
        raise RuntimeError(
            "Go is not installed: install Go 1.26+ or point KUBEBUILDER_ASSETS at a directory holding "
            + ", ".join(versions.PACKAGES)
        )
    src = target.parent / (target.name + ".src")
    (src / "etcd").mkdir(parents=True, exist_ok=True)
    (src / "go.mod").write_text(wrapper_go_mod())
    (src / "etcd" / "main.go").write_text(ETCD_MAIN)
    (src / "tools.go").write_text(TOOLS_GO)
    env = _go_env()
    started = time.monotonic()
    log.info("building the control plane into %s (a cold build takes many minutes)", target)
    subprocess.run(["go", "mod", "tidy"], cwd=src, env=env, check=True)
    staging = target.parent / (target.name + ".partial")
    staging.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["go", "build", "-trimpath", f"-ldflags={ldflags()}", "-o", str(staging) + "/", *versions.PACKAGES.values()],
        cwd=src,
        env=env,
        check=True,
    )
    # Go names each binary after its package's last path element; etcd's package is "etcd" already.
    if staging.exists() and target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    log.info("control plane built in %.0f s", time.monotonic() - started)
    return target


def ensure() -> Path:
    """Returns the directory holding every binary, building them first if needed (one build at a time)."""
    return buildcache.ensure_built(cache_dir(), find, lambda: build())


def main(argv: list[str] | None = None) -> int:
    return buildcache.cli(argv, "rerank_localdev.binaries", ensure, lambda _parts: build())


if __name__ == "__main__":
    sys.exit(main())
