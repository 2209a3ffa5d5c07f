"""Finds or builds the node's parts: kubelet and kube-proxy (the control plane's Kubernetes version, from the
same wrapper module, so the Go build cache shares every common package), containerd with its runc shim and
`ctr`, CoreDNS, Traefik (the Ingress controller), a hostPath volume provisioner, and two tiny static programs made into images here: the pod sandbox's `pause` and `probe`
(the node's own test workload), and a device plugin advertising `nvidia.com/gpu` devices for a GPU-shaped node.

Cached beside the control plane under `~/.cache/rerank-operator/bin/<node pins>`; each part is built on its
own, and its cold build time is kept in `build-times.json` there.  Usage:
`python -m rerank_localdev.node.binaries ensure`.

runc and the CNI plugins (bridge, host-local, loopback, portmap) are Debian's (scripts/bootstrap-node.sh).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

from .. import binaries as controlplane_binaries
from .. import buildcache, versions
from . import oci

log = logging.getLogger(__name__)

GOSRC = Path(__file__).with_name("gosrc")
PAUSE_IMAGE = "localhost/rerank-node/pause:1"
PROBE_IMAGE = "localhost/rerank-node/probe:1"
# A stand-in for the engine image in failure tests: the probe as /usr/bin/python3 ($PROBE_AS_ENGINE says what
# it does when started with the engine's command line).
ENGINE_STAND_IN_IMAGE = "localhost/rerank-node/engine-stand-in:1"

KUBERNETES_TOOLS_GO = """//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
"""

# Part name -> the files it leaves in the cache directory.
PARTS: dict[str, tuple[str, ...]] = {
    "kubernetes": ("kubelet", "kube-proxy"),
    "containerd": ("containerd", "containerd-shim-runc-v2", "ctr"),
    "coredns": ("coredns",),
    "images": ("pause", "probe", "pause.oci.tar", "probe.oci.tar", "engine-stand-in.oci.tar"),
    "provisioner": ("hostpath-provisioner",),
    "traefik": ("traefik",),
    "gpu-device-plugin": ("gpu-device-plugin",),
}
# Traefik is the largest build (its module graph has every cloud provider's SDK for its ACME DNS challenges:
# about 7 minutes cold on two cores), and the README's path needs it: the UI through the Ingress.


def cache_dir() -> Path:
    return controlplane_binaries.cache_dir().parent / versions.node_cache_key()


def _complete(directory: Path, part: str) -> bool:
    return all((directory / name).is_file() for name in PARTS[part])


def find() -> Path | None:
    directory = cache_dir()
    return directory if all(_complete(directory, part) for part in PARTS) else None


def has(part: str) -> bool:
    return _complete(cache_dir(), part)


def _go_env(module_mode: bool) -> dict[str, str]:
    env = {"CGO_ENABLED": "0", "GOTOOLCHAIN": "local", **os.environ}
    env["CGO_ENABLED"] = "0"
    if module_mode:
        env.setdefault("GOFLAGS", "-mod=mod")
    else:
        env.pop("GOFLAGS", None)  # `go install pkg@version` builds the module as upstream pinned it
    return env


def _build_kubernetes(target: Path) -> None:
    src = target.parent / (target.name + ".src-kubernetes")
    src.mkdir(parents=True, exist_ok=True)
    # The control plane's go.mod: the same module graph, so kubelet matches the API server exactly.
    (src / "go.mod").write_text(controlplane_binaries.wrapper_go_mod())
    (src / "tools.go").write_text(KUBERNETES_TOOLS_GO)
    env = _go_env(module_mode=True)
    subprocess.run(["go", "mod", "tidy"], cwd=src, env=env, check=True)
    subprocess.run(["go", "build", "-trimpath", f"-ldflags={controlplane_binaries.ldflags()}", "-o", f"{target}/",
                    "k8s.io/kubernetes/cmd/kubelet", "k8s.io/kubernetes/cmd/kube-proxy"],
                   cwd=src, env=env, check=True)


def _build_containerd(target: Path) -> None:
    module = "github.com/containerd/containerd/v2"
    flags = f"-s -w -X {module}/version.Version={versions.CONTAINERD} -X {module}/version.Package={module}"
    buildcache.go_install(target, [f"{module}/cmd/{cmd}@{versions.CONTAINERD}"
                         for cmd in ("containerd", "containerd-shim-runc-v2", "ctr")], flags)


def _build_gosrc(target: Path, part: str, program: str, requires: list[str], ldflags: str = "-s -w") -> None:
    """gosrc/<program>/main.go built as `program` in a module of its own requiring `requires` ("path version"),
    its other modules resolved by `go mod tidy` from those requirements (minimal version selection: the
    versions the required modules pin, never newer)."""
    src = target.parent / (target.name + f".src-{part}")
    src.mkdir(parents=True, exist_ok=True)
    (src / "go.mod").write_text("\n".join([f"module rerank.local/{part}", "", "go 1.26.0", "", "require (",
                                           *(f"\t{r}" for r in requires), ")", ""]))
    shutil.copy(GOSRC / program / "main.go", src / "main.go")
    env = _go_env(module_mode=True)
    subprocess.run(["go", "mod", "tidy"], cwd=src, env=env, check=True)
    subprocess.run(["go", "build", "-trimpath", f"-ldflags={ldflags}", "-o", str(target / program), "."],
                   cwd=src, env=env, check=True)


def _build_coredns(target: Path) -> None:
    """The cluster-DNS plugins only (gosrc/coredns), at the versions CoreDNS's own go.mod pins."""
    _build_gosrc(target, "coredns", "coredns", [f"github.com/coredns/coredns {versions.COREDNS}"],
                 f"-s -w -X github.com/coredns/coredns/coremain.GitCommit={versions.COREDNS}")


def traefik_go_mod(upstream: str) -> str:
    """Traefik's own go.mod (its requirements, replacements and exclusions) under a wrapper module's name, so
    that the build selects exactly the versions Traefik releases with."""
    lines = upstream.splitlines()
    lines[0] = "module rerank.local/traefik"
    return "\n".join(lines) + f"\n\nrequire github.com/traefik/traefik/v3 {versions.TRAEFIK}\n"


def _build_traefik(target: Path) -> None:
    src = target.parent / (target.name + ".src-traefik")
    src.mkdir(parents=True, exist_ok=True)
    env = _go_env(module_mode=True)
    module = f"github.com/traefik/traefik/v3@{versions.TRAEFIK}"
    info = subprocess.run(["go", "mod", "download", "-json", module], env={**env, "GOFLAGS": ""}, check=True,
                          capture_output=True, text=True, cwd=src)
    (src / "go.mod").write_text(traefik_go_mod(Path(json.loads(info.stdout)["GoMod"]).read_text()))
    version = "github.com/traefik/traefik/v3/pkg/version"
    subprocess.run(["go", "build", "-trimpath", f"-ldflags=-s -w -X {version}.Version={versions.TRAEFIK}",
                    "-o", f"{target}/", "github.com/traefik/traefik/v3/cmd/traefik"], cwd=src, env=env, check=True)


def _build_provisioner(target: Path) -> None:
    """Built against the control plane's client-go, so its packages come from the shared build cache."""
    _build_gosrc(target, "provisioner", "hostpath-provisioner", [
        f"sigs.k8s.io/sig-storage-lib-external-provisioner/v11 {versions.PROVISIONER_LIB}",
        f"k8s.io/client-go {versions.STAGING}", f"k8s.io/api {versions.STAGING}",
        f"k8s.io/apimachinery {versions.STAGING}"])


def _build_gpu_device_plugin(target: Path) -> None:
    """gosrc/gpu-device-plugin on the kubelet's own device-plugin API (the control plane's staging version, so
    its gRPC is the one the kubelet speaks)."""
    _build_gosrc(target, "gpu-device-plugin", "gpu-device-plugin", [f"k8s.io/kubelet {versions.STAGING}"])


def _build_images(target: Path) -> None:
    env = _go_env(module_mode=False)
    for name in ("pause", "probe"):
        subprocess.run(["go", "build", "-trimpath", "-ldflags=-s -w", "-o", str(target / name),
                        str(GOSRC / name / "main.go")], env=env, check=True, cwd=target)
    oci.write_image(target / "pause.oci.tar", PAUSE_IMAGE, {"/pause": target / "pause"}, ["/pause"])
    oci.write_image(target / "probe.oci.tar", PROBE_IMAGE, {"/probe": target / "probe"}, ["/probe"])
    oci.write_image(target / "engine-stand-in.oci.tar", ENGINE_STAND_IN_IMAGE, {"/usr/bin/python3": target / "probe"},
                    ["/usr/bin/python3"])


BUILDERS = {
    "kubernetes": _build_kubernetes,
    "containerd": _build_containerd,
    "coredns": _build_coredns,
    "images": _build_images,
    "provisioner": _build_provisioner,
    "traefik": _build_traefik,
    "gpu-device-plugin": _build_gpu_device_plugin,
}


def build(parts: list[str] | None = None) -> Path:
    """Builds the missing parts (or the named ones) into the cache directory, recording each one's time."""
    if not shutil.which("go"):
        raise RuntimeError("Go is not installed: install Go 1.26+ to build the node's parts")
    target = cache_dir()
    target.mkdir(parents=True, exist_ok=True)
    missing = [p for p in PARTS if not _complete(target, p)]
    return buildcache.build_timed(target, parts or missing, lambda part: BUILDERS[part](target), "the node's")


def ensure() -> Path:
    """The directory holding every node part, building what is missing first (one builder at a time)."""
    return buildcache.ensure_built(cache_dir(), find, build)


def main(argv: list[str] | None = None) -> int:
    return buildcache.cli(argv, "rerank_localdev.node.binaries", ensure, build, PARTS)


if __name__ == "__main__":
    sys.exit(main())
