"""NetworkPolicy enforcement for the real node: kube-router's policy controller, and only that (firewall only:
kube-proxy keeps the Services, the CNI bridge the pod network; no BGP routing, no IPVS, no CNI config).

kube-router is `go install`ed from the Go module proxy at `versions.KUBE_ROUTER` (newer releases are refused
by the proxy here) into its own cache directory beside the node's, `~/.cache/rerank-operator/bin/<its key>`,
with its cold build time in `build-times.json` there.  Usage: `python -m rerank_localdev.node.netpol ensure`
(or `build kube-router`).

What it adds to the machine, all removed by `cleanup()` (kube-router's own `--cleanup-config` v2.1.0 reports
success and leaves its rules; it then crashes in its service-proxy cleanup): the jumps from INPUT, FORWARD and
OUTPUT to its KUBE-ROUTER-* chains, its per-pod KUBE-POD-FW-* and per-policy KUBE-NWPLCY-* chains, and the
KUBE-SRC-*/KUBE-DST-* ipsets that hold the selected pods' addresses.  It adds no route, interface or sysctl.

What enforcement covers: traffic between pods on the bridge (FORWARD) and from pods to this host (INPUT).
Traffic that this host originates (the kubelet's probes, a host process such as the operator run locally,
kube-proxy's Service traffic from the host) is always let in: kube-router accepts any packet to a pod whose
source is a local address, as Kubernetes expects of every policy implementation (probes must pass).
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from .. import binaries as controlplane_binaries
from .. import buildcache, versions

KUBE_ROUTER_MODULE = "github.com/cloudnativelabs/kube-router/v2"
PARTS: dict[str, tuple[str, str]] = {
    "kube-router": (f"{KUBE_ROUTER_MODULE}/cmd/kube-router@{versions.KUBE_ROUTER}",
                    f"-s -w -X {KUBE_ROUTER_MODULE}/pkg/version.Version={versions.KUBE_ROUTER}"),
}
# The iptables chains and ipsets kube-router's policy controller makes (filter table only).
CHAIN_PREFIXES = ("KUBE-ROUTER-", "KUBE-POD-FW-", "KUBE-NWPLCY-")
IPSET_PREFIXES = ("KUBE-SRC-", "KUBE-DST-", "inet6:KUBE-SRC-", "inet6:KUBE-DST-")


def cache_dir() -> Path:
    return controlplane_binaries.cache_dir().parent / versions.netpol_cache_key()


def find() -> Path | None:
    directory = cache_dir()
    return directory if all((directory / name).is_file() for name in PARTS) else None


def build(names: list[str] | None = None) -> Path:
    if not shutil.which("go"):
        raise RuntimeError("Go is not installed: install Go 1.26+ to build kube-router")
    target = cache_dir()
    return buildcache.build_timed(target, names or [n for n in PARTS if not (target / n).is_file()],
                                  lambda name: buildcache.go_install(target, [PARTS[name][0]], PARTS[name][1]),
                                  "the policy controller")


def ensure() -> Path:
    return buildcache.ensure_built(cache_dir(), find, build)


def controller_argv(binary: Path, kubeconfig: Path, node_name: str, service_cidr: str) -> list[str]:
    """kube-router as the node's NetworkPolicy controller only."""
    return [str(binary), f"--kubeconfig={kubeconfig}", f"--hostname-override={node_name}",
            "--run-firewall=true", "--run-router=false", "--run-service-proxy=false", "--enable-cni=false",
            "--enable-ipv4=true", "--enable-ipv6=false", f"--service-cluster-ip-range={service_cidr}",
            "--health-port=0", "--metrics-port=0", "-v=1"]


def _run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def _ours(chain: str) -> bool:
    return chain.startswith(CHAIN_PREFIXES)


def _filter_rules() -> list[str]:
    return _run("iptables", "-w", "-t", "filter", "-S").stdout.splitlines()


def _ipsets() -> list[str]:
    if not shutil.which("ipset"):
        return []
    return [name for name in _run("ipset", "list", "-n").stdout.split() if name.startswith(IPSET_PREFIXES)]


def leftovers() -> list[str]:
    """kube-router's chains, rules and ipsets still on the machine."""
    found = [f"iptables -t filter {r}" for r in _filter_rules()
             if r.split()[1:2] and _ours(r.split()[1])
             or (r.startswith("-A ") and any(f"-j {p}" in r for p in CHAIN_PREFIXES))]
    return found + [f"ipset {name}" for name in _ipsets()]


def cleanup() -> list[str]:
    """Removes everything kube-router's policy controller made (stop it first); returns what is still left."""
    rules = _filter_rules()
    for rule in rules:  # the jumps from the built-in chains first, then the chains, then the sets they matched
        words = rule.split()
        if rule.startswith("-A ") and not _ours(words[1]) and any(f"-j {p}" in rule for p in CHAIN_PREFIXES):
            _run("iptables", "-w", "-t", "filter", "-D", *shlex.split(rule)[1:])
    chains = [r.split()[1] for r in rules if r.startswith("-N ") and _ours(r.split()[1])]
    for chain in chains:
        _run("iptables", "-w", "-t", "filter", "-F", chain)
    for chain in chains:
        _run("iptables", "-w", "-t", "filter", "-X", chain)
    for name in _ipsets():
        _run("ipset", "destroy", name)
    return leftovers()




def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["cleanup"]:
        left = cleanup()
        print("\n".join(left) or "nothing of kube-router is left")
        return 1 if left else 0
    return buildcache.cli(argv, "rerank_localdev.node.netpol", ensure, build, PARTS)


if __name__ == "__main__":
    sys.exit(main())
