"""Can this machine run a real node, and does `rerank-local` use one?

Facts are gathered apart (`machine_facts`, `parts_facts`: they read the machine) from what they mean
(`machine_blockers`, `package_blockers`, `parts_blockers`, `choose`: pure, unit-tested), so that the
decision and its reason can be checked for any machine.

Three kinds of blocker, because each is fixed differently:
- the machine: root, overlayfs, bridge and veth interfaces, br_netfilter, writable cgroup v1 hierarchies.
  Nothing the project installs changes them: local mode falls back to simulated nodes;
- Debian packages (runc, CNI plugins, iptables, iproute2, conntrack): `scripts/bootstrap-node.sh` installs them
  (`make local` runs it when `installs_node_packages` says so);
- the node's Go-built parts and the project's images: built on first use (needs Go and podman).

    python -m rerank_localdev.node.capability               # prints the decision for `--node auto` and its reason
    python -m rerank_localdev.node.capability machine NODE  # exit 0 when `--node NODE` may get a real node here:
                                                            # then `make local` installs the node's packages first
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

CGROUP_FS = Path("/sys/fs/cgroup")
CNI_DIR = Path("/usr/lib/cni")
CNI_PLUGINS = ("bridge", "host-local", "loopback", "portmap")
NODE_TOOLS = ("runc", "iptables", "ip", "conntrack")
# The project's images a sample RerankerDeployment runs on the node (the operator runs as a host process).
NODE_IMAGES = ("engine-cpu", "ui", "gateway")
MODES = ("auto", "real", "simulated")


@dataclass(frozen=True)
class MachineFacts:
    root: bool
    overlayfs: bool
    bridge_and_veth: bool  # a bridge and a veth pair could be made (in a throw-away network namespace)
    br_netfilter: bool
    cgroup_v1_memory: bool  # the node's kubelet runs with cgroupfs on the v1 (or hybrid) layout
    cgroups_writable: bool
    missing_tools: tuple[str, ...] = ()
    missing_cni_plugins: tuple[str, ...] = ()


@dataclass(frozen=True)
class PartsFacts:
    node_parts_built: bool
    go: bool
    images_missing: tuple[str, ...]  # of NODE_IMAGES, not in podman's store
    podman: bool


@dataclass(frozen=True)
class Choice:
    mode: str  # "real" or "simulated"
    reason: str
    to_build: tuple[str, ...] = ()  # what real mode builds before it starts (first run only)


class CapabilityError(RuntimeError):
    """A real node was asked for on a machine that cannot run one; the message says what it lacks."""


# ---- what the facts mean (pure) ------------------------------------------------------------------------------

def machine_blockers(f: MachineFacts) -> list[str]:
    """What the machine itself lacks for a real node (nothing installable fixes these)."""
    lacks = []
    if not f.root:
        lacks.append("root (the node creates a bridge, mounts and cgroups)")
    if not f.overlayfs:
        lacks.append("overlayfs (containerd's snapshotter)")
    if not f.bridge_and_veth:
        lacks.append("bridge and veth network interfaces (the CNI bridge)")
    if not f.br_netfilter:
        lacks.append("the br_netfilter kernel module")
    if not f.cgroup_v1_memory:
        lacks.append("a cgroup v1 memory hierarchy at /sys/fs/cgroup/memory")
    elif not f.cgroups_writable:
        lacks.append("writable cgroups (/sys/fs/cgroup is read-only here)")
    return lacks


def package_blockers(f: MachineFacts) -> list[str]:
    """Debian packages a real node needs that are not installed."""
    return ([f"{tool} (scripts/bootstrap-node.sh installs it)" for tool in f.missing_tools]
            + [f"CNI plugin {p} (Debian's containernetworking-plugins)" for p in f.missing_cni_plugins])


def node_blockers(f: MachineFacts) -> list[str]:
    """Everything that stops a LocalNode from starting here ([] when it can)."""
    return machine_blockers(f) + package_blockers(f)


def parts_blockers(p: PartsFacts) -> list[str]:
    lacks = []
    if not p.node_parts_built and not p.go:
        lacks.append("the node's parts are not built and Go is not installed to build them")
    if p.images_missing and not p.podman:
        lacks.append(f"the images {', '.join(p.images_missing)} are not built and podman is not installed "
                     "to build them (make images)")
    return lacks


def to_build(p: PartsFacts) -> tuple[str, ...]:
    return (("the node's parts (kubelet, kube-proxy, containerd, CoreDNS, ...)",) if not p.node_parts_built else ()) \
        + tuple(f"image {name}" for name in p.images_missing)


def installs_node_packages(requested: str, machine: MachineFacts | None) -> bool:
    """Whether `--node <requested>` may run on a real node here, so that the node's Debian packages and the image
    tooling are worth installing before the choice is made: never for `simulated` (`machine` may then be None),
    else wherever the machine itself allows a node (what is missing beyond that is installable)."""
    return requested != "simulated" and machine is not None and not machine_blockers(machine)


def choose(requested: str, machine: MachineFacts | None, parts: PartsFacts | None) -> Choice:
    """Real or simulated nodes for `rerank-local --node <requested>`, and why. `machine`/`parts` may be
    None where they were not gathered (`simulated` needs neither). Raises CapabilityError for `real` on a
    machine that cannot run one, naming everything it lacks."""
    if requested not in MODES:
        raise ValueError(f"--node {requested!r}: expected one of {', '.join(MODES)}")
    if requested == "simulated":
        return Choice("simulated", "asked for (--node simulated)")
    assert machine is not None and parts is not None
    lacks = node_blockers(machine) + parts_blockers(parts)
    if lacks:
        if requested == "real":
            raise CapabilityError("--node real: this machine cannot run a real node; it lacks: " + "; ".join(lacks))
        return Choice("simulated", "this machine cannot run a real node; it lacks: " + "; ".join(lacks))
    why = "asked for (--node real)" if requested == "real" else \
        "this machine can run one (root, overlayfs, bridge and veth, br_netfilter, writable cgroups, runc, CNI)"
    return Choice("real", why, to_build(parts))


# ---- gathering the facts (reads the machine) ----------------------------------------------------------------

def _can_make_bridge_and_veth() -> bool:
    """Made inside a new network namespace that vanishes with the command: nothing stays on the machine."""
    if not (shutil.which("unshare") and shutil.which("ip")):
        return False
    script = "ip link add rrprobe-br type bridge && ip link add rrprobe-a type veth peer name rrprobe-b"
    try:
        return subprocess.run(["unshare", "--net", "sh", "-c", script], capture_output=True,
                              timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def machine_facts() -> MachineFacts:
    root = os.geteuid() == 0
    filesystems = Path("/proc/filesystems").read_text() if Path("/proc/filesystems").exists() else ""
    memory = CGROUP_FS / "memory"
    return MachineFacts(
        root=root,
        overlayfs=any(line.split()[-1] == "overlay" for line in filesystems.splitlines() if line.strip()),
        bridge_and_veth=root and _can_make_bridge_and_veth(),
        br_netfilter=Path("/proc/sys/net/bridge/bridge-nf-call-iptables").exists(),
        cgroup_v1_memory=memory.is_dir(),
        # access() reports a read-only mount as not writable, also for root.
        cgroups_writable=memory.is_dir() and os.access(memory, os.W_OK),
        missing_tools=tuple(t for t in NODE_TOOLS if not shutil.which(t)),
        missing_cni_plugins=tuple(p for p in CNI_PLUGINS if not (CNI_DIR / p).exists()),
    )


def parts_facts() -> PartsFacts:
    from .. import images
    from . import binaries

    podman = shutil.which("podman") is not None
    missing = tuple(n for n in NODE_IMAGES if not (podman and images.image_exists(images.image_ref(n))))
    return PartsFacts(node_parts_built=binaries.find() is not None, go=shutil.which("go") is not None,
                      images_missing=missing, podman=podman)


def decide(requested: str = "auto") -> Choice:
    """`choose` over this machine's facts (none gathered for `simulated`)."""
    if requested == "simulated":
        return choose(requested, None, None)
    machine = machine_facts()
    # The parts matter only where the machine could run a node (and podman is slow to ask).
    parts = parts_facts() if not node_blockers(machine) else PartsFacts(True, True, (), True)
    return choose(requested, machine, parts)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    requested = argv[1] if len(argv) == 2 else "auto"
    if argv[:1] == ["machine"] and len(argv) <= 2 and requested in MODES:
        machine = machine_facts() if requested != "simulated" else None
        if installs_node_packages(requested, machine):
            print("this machine allows a real node")
            return 0
        print("simulated nodes asked for" if machine is None
              else "no real node here: " + "; ".join(machine_blockers(machine)))
        return 1
    if argv:
        print(f"usage: python -m rerank_localdev.node.capability [machine [{'|'.join(MODES)}]]", file=sys.stderr)
        return 2
    choice = decide("auto")
    print(f"{choice.mode}: {choice.reason}" + (f" (builds first: {', '.join(choice.to_build)})"
                                               if choice.to_build else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
