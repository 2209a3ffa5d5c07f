"""A real Kubernetes node on this machine, joined to a LocalControlPlane: containerd + runc, the kubelet,
kube-proxy (iptables mode), the CNI bridge, and CoreDNS as a Deployment behind the cluster DNS Service.

    with LocalControlPlane(node_ip=NODE_IP) as cp, LocalNode(cp) as node:
        node.load_image(Path("engine.oci.tar"))
        cp.kubectl("apply", "-f", "pod.yaml")

Needs root and the kernel's bridge, veth, overlayfs, br_netfilter and iptables (scripts/bootstrap-node.sh
installs runc, the CNI plugins, iptables and conntrack).

What it changes on the machine, and `stop()` undoes in this order (also after a failed start):
pods deleted through the API (the kubelet tears their sandboxes down: CNI DEL), the NetworkPolicy controller
stopped and its chains and ipsets removed (when it ran: netpol.py), kube-proxy stopped and its rules removed
(`kube-proxy --cleanup`), the kubelet stopped, every container task killed, containerd stopped,
leftover shims killed, mounts under the node's root and its network namespaces unmounted, its cgroups removed
depth-first, the bridge, routes and firewall chain deleted, the sysctls it raised restored, and the paths the
kubelet and containerd create outside their roots removed if they did not exist before.  `leftovers()` lists
whatever is still there (a test asserts it is empty).  What stays, on purpose: containerd's image store
(`default_image_store()`, a cache like podman's: images and their unpacked layers, no container), so the next
node does not import a multi-GB image again.

Network rule: pod and Service ranges exist only on the bridge the harness creates; pods get routes to the
cluster's ranges only (no default route), no masquerading, a FORWARD drop for anything from the pod range
that would leave through another interface, and blackhole routes for both ranges, so nothing unmatched leaves.
"""

from __future__ import annotations

import fcntl
import ipaddress
import logging
import shlex
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import yaml

from .. import versions
from ..controlplane import SERVICE_CIDR, ControlPlaneError, LocalControlPlane, _pdeathsig, _tail, free_ports
from . import binaries, capability, config, netpol, oci

log = logging.getLogger(__name__)

DIR_PREFIX = "rerank-node-"
# Held (flock) by the process running a node for the node's whole life: the kernel releases it when that
# process dies, so a node found on the machine while nobody holds it is the leftover of a killed run.
NODE_LOCK = Path("/run/lock/rerank-operator-node.lock")
NODE_IP = str(ipaddress.ip_network(config.NODE_POD_CIDR)[1])
FORWARD_CHAIN = "RERANK-NODE-FORWARD"
COREDNS_IMAGE = "localhost/rerank-node/coredns:1"
PROVISIONER_IMAGE = "localhost/rerank-node/hostpath-provisioner:1"
PROVISIONER_NAME = "rerank.local/hostpath"
STORAGE_CLASS = "hostpath"
TRAEFIK_IMAGE = "localhost/rerank-node/traefik:1"
INGRESS_CLASS = "traefik"
CGROUP_FS = Path("/sys/fs/cgroup")
# Paths the kubelet, containerd and the CNI plugins write outside the roots they are given.
FOOTPRINT = (Path("/var/lib/kubelet"), Path("/var/log/containers"), Path("/var/log/pods"), Path("/var/lib/cni"),
             Path("/run/containerd"), Path("/etc/cni"), Path("/opt/cni"))
NETNS_DIR = Path("/run/netns")
SYSCTLS = ("net/ipv4/ip_forward", "net/bridge/bridge-nf-call-iptables")
# On an image imported into the node: what it was imported from (a podman image id), so the next node
# finds it there and skips the import.
IMAGE_SOURCE_LABEL = "rerank.local/source"


_LOOPBACK_REGISTRY = re.compile(r"^(localhost|127(\.\d{1,3}){3}|\[::1\]):\d+/")


def loopback_registry_refs(refs: list[str]) -> list[str]:
    """The image names that point at a registry on a loopback address and port (not `localhost/...`, the
    name podman gives local builds)."""
    return [ref for ref in refs if _LOOPBACK_REGISTRY.match(ref)]


def default_image_store() -> Path:
    """containerd's image store kept between nodes (a multi-GB engine image is imported once, not per run),
    one per containerd version (its metadata format)."""
    return binaries.cache_dir().parent.parent / "node-images" / f"containerd-{versions.CONTAINERD}"


class NodeError(RuntimeError):
    """The node failed to start, or its teardown left something behind."""


def _run(*argv: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise NodeError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def _cgroup_dirs(name: str) -> list[Path]:
    """The node's cgroup in every mounted v1 hierarchy (and the v2 one of a hybrid layout)."""
    return [h / name.strip("/") for h in sorted(CGROUP_FS.iterdir()) if h.is_dir() and not h.is_symlink()]


def preflight() -> list[str]:
    """What this machine lacks for a real node ([] when it can run one)."""
    return capability.node_blockers(capability.machine_facts())


class LocalNode:
    """See the module docstring.  `control_plane` must have been started with `node_ip=NODE_IP`."""

    def __init__(self, control_plane: LocalControlPlane, bin_dir: Path | None = None, start_timeout: float = 180,
                 ingress: bool | None = None, keep_images: bool = True, network_policy: bool = False):
        """`ingress`: run Traefik (default: when it has been built; `make node-binaries` builds it).
        `network_policy`: enforce NetworkPolicies with kube-router's policy controller (netpol.py; built first
        when missing), from the start; `enforce_network_policy()` starts it on a running node.
        `keep_images`: containerd keeps its images in default_image_store() for the next node (its containers,
        sandboxes and runtime state still go with this one); else everything lives and dies in the node's root."""
        if control_plane.node_ip != NODE_IP:
            raise NodeError(f"start the control plane with LocalControlPlane(node_ip={NODE_IP!r}) for a real node")
        self.cp = control_plane
        self._ingress = ingress
        self._network_policy = network_policy
        self.image_store = default_image_store() if keep_images else None
        self.with_ingress = False
        self._bin_dir = bin_dir
        self.start_timeout = start_timeout
        self.root = Path()
        self.layout: config.NodeLayout | None = None
        self._procs: dict[str, subprocess.Popen] = {}
        self._undo: list[tuple[str, Callable[[], None]]] = []
        self._node_lock: Any = None
        self._existed = {p: p.exists() for p in FOOTPRINT}
        self._netns_before: set[str] = set()
        self._sysctls_before: dict[str, str] = {}
        self._rules_before: dict[str, list[str]] = {}
        self.ingress_port = 0

    @property
    def bin_dir(self) -> Path:
        if self._bin_dir is None:
            self._bin_dir = binaries.ensure()
        return self._bin_dir

    @property
    def ingress_url(self) -> str:
        """Where the Ingress controller listens: the node's address (a host port), reachable from this host."""
        return f"http://{NODE_IP}:{self.ingress_port}"

    @property
    def name(self) -> str:
        return self.layout.node_name if self.layout else ""

    def __enter__(self) -> "LocalNode":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- start ------------------------------------------------------------------------------------

    def start(self) -> "LocalNode":
        missing = preflight()
        if missing:
            raise NodeError("this machine cannot run a real node; it lacks: " + "; ".join(missing))
        bin_dir = self.bin_dir
        self.with_ingress = (bin_dir / "traefik").exists() if self._ingress is None else self._ingress
        self._hold_node_lock()
        if Path("/sys/class/net", config.BRIDGE).exists():
            # Nobody holds the lock, so no node runs: a killed run left this. Sweep it, as a person would.
            log.warning("the bridge %s is the leftover of a node killed before its teardown: sweeping it",
                        config.BRIDGE)
            left = sweep()
            if left:
                self._release_node_lock()
                raise NodeError("a killed node's leftovers could not all be removed: " + "; ".join(left))
        self._existed = {p: p.exists() for p in FOOTPRINT}
        self._netns_before = set(os.listdir(NETNS_DIR)) if NETNS_DIR.exists() else set()
        # Other users of iptables on this machine (a container engine's CNI chains) are not ours to report.
        self._rules_before = _iptables_rules()
        # A short root: containerd's shim sockets must fit a 108-byte unix socket path.
        self.root = Path(tempfile.mkdtemp(prefix=DIR_PREFIX, dir="/tmp"))
        (self.root / "owner.pid").write_text(str(os.getpid()))
        ports = free_ports(5)
        self.layout = config.NodeLayout(self.root, *ports[:4], pause_image=binaries.PAUSE_IMAGE,
                                        image_store=self.image_store)
        self.ingress_port = ports[4]
        deadline = time.monotonic() + self.start_timeout
        try:
            self._lock_image_store()
            self._network()
            self._containerd(bin_dir, deadline)
            self._kubelet(bin_dir, deadline)
            self._kube_proxy(bin_dir)
            self._addons(bin_dir, deadline)
            if self._network_policy:
                self.enforce_network_policy()
        except BaseException:
            self.stop()
            raise
        return self

    def _hold_node_lock(self) -> None:
        """One node per machine: the bridge, the node address and the host's firewall chains are fixed names."""
        NODE_LOCK.parent.mkdir(parents=True, exist_ok=True)
        lock = open(NODE_LOCK, "a+")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            owner = lock.read().strip() or "unknown"
            lock.close()
            raise NodeError(f"another node runs on this machine (process {owner} holds {NODE_LOCK})") from None
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
        self._node_lock = lock

    def _release_node_lock(self) -> None:
        if self._node_lock is not None:
            self._node_lock.close()
            self._node_lock = None

    def _lock_image_store(self) -> None:
        """One containerd at a time on the kept image store."""
        if self.image_store is None:
            return
        self.image_store.mkdir(parents=True, exist_ok=True)
        lock = open(self.image_store.with_name(self.image_store.name + ".lock"), "w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise NodeError(f"the node image store {self.image_store} is in use by another node") from None
        self._undo.append(("image store lock", lock.close))

    def _sysctl(self, key: str, value: str) -> None:
        path = Path("/proc/sys", key)
        before = path.read_text().strip()
        if before != value:
            self._sysctls_before.setdefault(key, before)
            path.write_text(value)

    def _network(self) -> None:
        lay = self.layout
        assert lay
        bridge, prefix = lay.bridge, config.NODE_POD_CIDR.split("/")[1]
        self._undo.append(("bridge", lambda: _run("ip", "link", "del", bridge, check=False)))
        _run("ip", "link", "add", bridge, "type", "bridge")
        _run("ip", "addr", "add", f"{lay.node_ip}/{prefix}", "dev", bridge)
        _run("ip", "link", "set", bridge, "up")
        for cidr in (config.CLUSTER_CIDR, SERVICE_CIDR):
            self._undo.append((f"route {cidr}", lambda c=cidr: _run("ip", "route", "del", "blackhole", c, check=False)))
            _run("ip", "route", "add", "blackhole", cidr)
        self._undo.append(("firewall", lambda: _remove_forward_guard("filter")))
        _add_forward_guard("filter", bridge)
        # Service DNAT for pod-to-pod traffic on the same bridge needs bridged frames to pass iptables;
        # Service traffic is routed through the bridge's address.
        for key in SYSCTLS:
            self._sysctl(key, "1")
        (lay.cni_conf_dir).mkdir(parents=True)
        (lay.cni_conf_dir / "10-rerank-node.conflist").write_text(config.json_text(config.cni_conflist(lay)))

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        logs = self.root / "logs"
        logs.mkdir(exist_ok=True)
        with open(logs / f"{name}.log", "ab") as out:
            popen = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     cwd=self.root, start_new_session=True, preexec_fn=_pdeathsig)
        self._procs[name] = popen
        return popen

    def log(self, name: str, lines: int = 40) -> str:
        return _tail(self.root / "logs" / f"{name}.log", lines)

    def _wait(self, what: str, deadline: float, ready: Callable[[], bool], proc: str | None = None) -> None:
        last: object = None
        while True:
            if proc and self._procs[proc].poll() is not None:
                raise NodeError(f"{proc} exited ({self._procs[proc].returncode}) before {what}:\n{self.log(proc)}")
            try:
                if ready():
                    return
            except Exception as exc:  # not up yet
                last = exc
            if time.monotonic() > deadline:
                raise NodeError(f"{what} not within {self.start_timeout:.0f} s (last: {last})"
                                + (f":\n{self.log(proc)}" if proc else ""))
            time.sleep(0.2)

    def ctr(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        assert self.layout
        return _run(str(self.bin_dir / "ctr"), "--address", str(self.layout.containerd_socket), "--namespace",
                    "k8s.io", *args, check=check, timeout=timeout)

    def _containerd(self, bin_dir: Path, deadline: float) -> None:
        lay = self.layout
        assert lay
        conf = self.root / "containerd.toml"
        conf.write_text(config.containerd_config(lay))
        lay.containerd_socket.parent.mkdir(parents=True, exist_ok=True)
        # containerd finds its shim on PATH.
        os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
        argv = [str(bin_dir / "containerd"), "--config", str(conf)]
        self._spawn("containerd", argv)
        self._wait("containerd serving", deadline, lambda: self.ctr("version").returncode == 0, proc="containerd")
        # A node killed before its teardown left its containers in the kept store: its runtime state is gone,
        # so they go before the kubelet could be told about them (and containerd starts afresh without them).
        if self.image_store is not None and self._forget_containers():
            self._stop_proc("containerd")
            self._spawn("containerd", argv)
            self._wait("containerd serving", deadline, lambda: self.ctr("version").returncode == 0,
                       proc="containerd")
        if self.image_store is not None:
            # Names from a registry on a loopback port (a test session's registry, gone with its session) would
            # be reported for the same image pulled again from the next session's registry (CRI names an image
            # by its first name), so the kept store forgets them; the layers stay until nothing names them.
            stale = loopback_registry_refs(self.images())
            if stale:
                self.ctr("images", "rm", *stale, check=False)
        for archive in ("pause.oci.tar", "probe.oci.tar", "engine-stand-in.oci.tar"):
            self.load_image(bin_dir / archive)

    def load_image(self, archive: Path) -> None:
        """Imports an image archive (`podman save`, `docker save` or OCI layout) into the node: no registry."""
        self.ctr("images", "import", str(archive), timeout=600)

    def has_image(self, ref: str, source: str) -> bool:
        """Whether the node holds `ref` imported from `source` (see load_image_from)."""
        found = self.ctr("images", "ls", "-q", f'name=={ref},labels."{IMAGE_SOURCE_LABEL}"=={source}').stdout
        return ref in found.split()

    def load_image_from(self, command: list[str], timeout: float = 1800, env: dict[str, str] | None = None,
                        source: str | None = None) -> None:
        """Imports the image archive that `command` writes to its stdout (e.g. `podman save REF`): no copy on disk.
        `source` (letters, digits, `.-_`) is kept on the image for has_image. The layers' blobs are dropped once
        unpacked: containers run from the unpacked snapshots, so the store keeps one copy, not two."""
        assert self.layout
        label = ["--label", f"{IMAGE_SOURCE_LABEL}={source}"] if source else []
        producer = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        try:
            importer = subprocess.run(
                [str(self.bin_dir / "ctr"), "--address", str(self.layout.containerd_socket), "--namespace", "k8s.io",
                 "images", "import", "--local", "--discard-unpacked-layers", *label, "-"],
                stdin=producer.stdout, capture_output=True, text=True, timeout=timeout)
        finally:
            producer.stdout.close()  # type: ignore[union-attr]
            producer_err = producer.stderr.read().decode(errors="replace")  # type: ignore[union-attr]
            producer.wait()
        if producer.returncode != 0 or importer.returncode != 0:
            raise NodeError(f"{' '.join(command)} | ctr images import - failed: {producer_err.strip()} "
                            f"{importer.stderr.strip()}")

    def images(self) -> list[str]:
        return self.ctr("images", "ls", "-q").stdout.split()

    def _kubelet(self, bin_dir: Path, deadline: float) -> None:
        lay = self.layout
        assert lay
        for cgroup in _cgroup_dirs(lay.cgroup_root):
            cgroup.mkdir(exist_ok=True)
            if cgroup.parent.name == "cpuset":  # a cpuset cgroup takes no task until it has cpus and mems
                for knob in ("cpuset.cpus", "cpuset.mems"):
                    (cgroup / knob).write_text((cgroup.parent / knob).read_text())
        resolv = self.root / "resolv.conf"
        resolv.write_text("# no upstream resolver: nothing leaves the machine\noptions ndots:1\n")
        conf = self.root / "kubelet.yaml"
        conf.write_text(yaml.safe_dump(config.kubelet_config(lay, self.cp.dir / "ca.crt", resolv)))
        self._spawn("kubelet", [
            str(bin_dir / "kubelet"),
            f"--config={conf}",
            f"--kubeconfig={self.cp.node_kubeconfigs['kubelet']}",
            f"--root-dir={lay.kubelet_root}",
            f"--node-ip={lay.node_ip}",
            f"--hostname-override={lay.node_name}",
            "--v=1",
        ])
        self._wait("the node Ready", deadline, lambda: self._node_ready(), proc="kubelet")

    def _node_ready(self) -> bool:
        node = self.cp._api("GET", f"/api/v1/nodes/{self.name}")
        conditions = {c["type"]: c["status"] for c in node.get("status", {}).get("conditions") or []}
        return conditions.get("Ready") == "True"

    def _kube_proxy(self, bin_dir: Path) -> None:
        conf = self.root / "kube-proxy.yaml"
        assert self.layout
        conf.write_text(yaml.safe_dump(config.kube_proxy_config(self.layout, self.cp.node_kubeconfigs["kube-proxy"])))
        self._spawn("kube-proxy", [str(bin_dir / "kube-proxy"), f"--config={conf}", "--v=1"])

    @property
    def enforces_network_policy(self) -> bool:
        return "kube-router" in self._procs and self._procs["kube-router"].poll() is None

    def enforce_network_policy(self, timeout: float = 60) -> None:
        """Starts kube-router's policy controller (firewall only) and waits for its first sync: its jump from
        FORWARD in place. `stop_enforcing_network_policy()` (or `stop()`) removes all it made."""
        if self.enforces_network_policy:
            return
        if not shutil.which("ipset"):
            raise NodeError("NetworkPolicy enforcement needs ipset (scripts/bootstrap-node.sh installs it)")
        binary = netpol.ensure() / "kube-router"
        # kube-router puts its chain first in filter FORWARD and ACCEPTs there every packet a policy admits,
        # and with no policy, everything: the node's guard against pod traffic leaving the machine would never
        # be reached, so the same guard also runs earlier, in mangle FORWARD.
        _add_forward_guard("mangle", config.BRIDGE)
        self._spawn("kube-router", netpol.controller_argv(binary, self.cp.admin_kubeconfig, self.name, SERVICE_CIDR))
        self._wait("kube-router's policy chains", time.monotonic() + timeout,
                   lambda: any(r.startswith("-A FORWARD ") and r.endswith("-j KUBE-ROUTER-FORWARD")
                               for r in _iptables_rules()["filter"]), proc="kube-router")

    def stop_enforcing_network_policy(self) -> None:
        """Stops the policy controller and removes its chains and ipsets (every pod is reachable again)."""
        self._stop_proc("kube-router")
        left = netpol.cleanup()
        _remove_forward_guard("mangle")
        if left:
            raise NodeError(f"kube-router's rules are still there: {left}")

    def _addons(self, bin_dir: Path, deadline: float) -> None:
        """CoreDNS and the volume provisioner, as Deployments in kube-system from images made here."""
        addons = [(COREDNS_IMAGE, "coredns"), (PROVISIONER_IMAGE, "hostpath-provisioner")]
        if self.with_ingress:
            addons.append((TRAEFIK_IMAGE, "traefik"))
        for image, binary in addons:
            archive = self.root / f"{binary}.oci.tar"
            oci.write_image(archive, image, {f"/{binary}": bin_dir / binary}, [f"/{binary}"])
            self.load_image(archive)
            archive.unlink()
        volumes = self.root / "volumes"
        volumes.mkdir()
        manifests = coredns_manifests() + provisioner_manifests(volumes)
        if self.with_ingress:
            manifests += traefik_manifests(self.ingress_port)
        self.cp.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(manifests))
        for deployment in ("coredns", "hostpath-provisioner") + (("traefik",) if self.with_ingress else ()):
            self._wait(f"{deployment} Available", deadline, lambda d=deployment: self.cp.kubectl(
                "-n", "kube-system", "wait", "--for=condition=Available", f"deployment/{d}", "--timeout=2s",
                check=False).returncode == 0, proc="kubelet")

    # ---- a GPU-shaped node --------------------------------------------------------------------------

    def advertise_gpus(self, count: int = 4, taint: bool = True, timeout: float = 60) -> None:
        """Makes the running node look like a GPU node of a GPU Operator install: `count` nvidia.com/gpu devices
        in its capacity, advertised by a device plugin through the kubelet's device-plugin API
        (gosrc/gpu-device-plugin: no GPU behind them), the RuntimeClass `nvidia` (its handler is in containerd's
        configuration from the start, mapped to runc), and with `taint` the GPU pool's
        nvidia.com/gpu=present:NoSchedule taint. Pods already running stay (NoSchedule). `withdraw_gpus()`
        undoes all three (`stop()` stops the plugin; the taint and the RuntimeClass go with the control plane)."""
        assert self.layout
        if "gpu-device-plugin" not in self._procs:
            # The kubelet's device manager listens here whatever its --root-dir (FOOTPRINT removes it).
            plugin_dir = Path("/var/lib/kubelet/device-plugins")
            self._spawn("gpu-device-plugin", [str(self.bin_dir / "gpu-device-plugin"),
                                              f"--device-plugin-dir={plugin_dir}", f"--count={count}",
                                              f"--resource={config.GPU_RESOURCE}"])
        self.cp.kubectl("apply", "-f", "-", input=yaml.safe_dump(config.gpu_runtime_class()))
        if taint:
            t = config.GPU_TAINT
            self.cp.kubectl("taint", "nodes", self.name, f"{t['key']}={t['value']}:{t['effect']}", "--overwrite")
        self._wait(f"{count} {config.GPU_RESOURCE} allocatable", time.monotonic() + timeout,
                   lambda: self.allocatable(config.GPU_RESOURCE) == count, proc="gpu-device-plugin")

    def allocatable(self, resource: str) -> int:
        node = self.cp._api("GET", f"/api/v1/nodes/{self.name}")
        return int((node.get("status", {}).get("allocatable") or {}).get(resource, "0"))

    def withdraw_gpus(self) -> None:
        """The node is a plain node again: taint and RuntimeClass gone, the device plugin stopped (the kubelet
        then reports its devices unhealthy: none allocatable)."""
        self.cp.kubectl("taint", "nodes", self.name, f"{config.GPU_TAINT['key']}-", check=False)
        self.cp.kubectl("delete", "runtimeclass", config.GPU_RUNTIME_HANDLER, "--ignore-not-found")
        self._stop_proc("gpu-device-plugin")

    # ---- stop -------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Undoes everything, in order; raises NodeError at the end if something could not be undone."""
        if self.layout is None:
            self._release_node_lock()
            return
        errors: list[str] = []

        def step(name: str, action: Callable[[], Any]) -> None:
            try:
                action()
            except Exception as exc:  # keep going: every later step still has to run
                errors.append(f"{name}: {exc}")

        if "kubelet" in self._procs and self._procs["kubelet"].poll() is None:
            step("delete pods", self._delete_pods)
        step("network policy controller", self.stop_enforcing_network_policy)
        step("gpu device plugin", lambda: self._stop_proc("gpu-device-plugin"))
        step("kube-proxy", lambda: self._stop_proc("kube-proxy"))
        step("kube-proxy rules", lambda: _run(str(self.bin_dir / "kube-proxy"), "--cleanup", check=False))
        step("kubelet", lambda: self._stop_proc("kubelet"))
        if "containerd" in self._procs and self._procs["containerd"].poll() is None:
            step("containers", self._kill_containers)
        step("containerd", lambda: self._stop_proc("containerd"))
        step("shims", self._kill_shims)
        step("mounts", self._unmount)
        step("cgroups", self._remove_cgroups)
        step("kubelet chains", lambda: _remove_kubelet_chains(self._rules_before))
        step("portmap chains", lambda: _remove_empty_portmap_chains(self._rules_before))
        for name, undo in reversed(self._undo):
            step(name, undo)
        self._undo.clear()
        for key, value in self._sysctls_before.items():
            step(f"sysctl {key}", lambda k=key, v=value: Path("/proc/sys", k).write_text(v))
        self._sysctls_before.clear()
        for path, existed in self._existed.items():
            if not existed and path.exists():
                step(f"remove {path}", lambda p=path: shutil.rmtree(p))
        step("remove root", lambda: shutil.rmtree(self.root))
        self.layout = None
        self._release_node_lock()  # last: until here, another node starting would meet this one's traces
        if errors:
            raise NodeError("node teardown incomplete: " + "; ".join(errors))

    def _delete_pods(self) -> None:
        """Pods deleted at once: the kubelet stops them and CNI DEL frees their addresses and veths."""
        self.cp.kubectl("delete", "pods", "--all-namespaces", "--all", "--grace-period=0", "--force",
                        "--wait=false", check=False)
        self.cp.kubectl("delete", "deployments,statefulsets,replicasets,daemonsets,jobs", "--all-namespaces",
                        "--all", "--wait=false", check=False)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            sandboxes = [line for line in self.ctr("tasks", "ls", "-q", check=False).stdout.split() if line]
            veths = list(Path("/sys/class/net", self.layout.bridge, "brif").glob("*")) if self.layout else []
            if not sandboxes and not veths:
                return
            self.cp.kubectl("delete", "pods", "--all-namespaces", "--all", "--grace-period=0", "--force",
                            "--wait=false", check=False)
            time.sleep(1)

    def _stop_proc(self, name: str, grace: float = 10) -> None:
        popen = self._procs.pop(name, None)
        if popen is None or popen.poll() is not None:
            return
        os.killpg(popen.pid, signal.SIGTERM)
        try:
            popen.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(popen.pid, signal.SIGKILL)
            popen.wait()

    def _kill_containers(self) -> None:
        for task in self.ctr("tasks", "ls", "-q", check=False).stdout.split():
            self.ctr("tasks", "kill", "--signal", "SIGKILL", task, check=False)
        time.sleep(0.5)
        for task in self.ctr("tasks", "ls", "-q", check=False).stdout.split():
            self.ctr("tasks", "delete", "--force", task, check=False)
        self._forget_containers()

    def _forget_containers(self) -> int:
        """Deletes every container record and pod sandbox (with their snapshots); returns how many there were."""
        containers = self.ctr("containers", "ls", "-q", check=False).stdout.split()
        for container in containers:
            self.ctr("containers", "delete", container, check=False)
        # `ctr sandboxes ls` has no quiet mode: the ids are the first column under a header.
        sandboxes = [line.split()[0] for line in self.ctr("sandboxes", "ls", check=False).stdout.splitlines()[1:]
                     if line.strip()]
        for sandbox in sandboxes:
            self.ctr("sandboxes", "rm", "--force", sandbox, check=False)
        return len(containers) + len(sandboxes)

    def _kill_shims(self) -> None:
        for pid in self.processes():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def processes(self) -> list[int]:
        """Pids of anything still running from the node's binaries or inside its cgroups."""
        pids = set()
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                exe = os.readlink(proc / "exe")
            except OSError:
                continue
            if self._bin_dir and exe.startswith(str(self._bin_dir) + "/"):
                pids.add(int(proc.name))
        for cgroup in _cgroup_dirs(config.CGROUP_ROOT):
            for procs in cgroup.rglob("cgroup.procs") if cgroup.exists() else ():
                pids.update(int(p) for p in procs.read_text().split())
        return sorted(pids)

    def _unmount(self) -> None:
        store = f"{self.image_store}/" if self.image_store else None
        for mount in reversed(_mounts()):
            if (mount.startswith(str(self.root) + "/") or self._our_netns(mount)
                    or (store and mount.startswith(store))):
                _run("umount", "-l", mount, check=False)
        if NETNS_DIR.exists():
            for name in set(os.listdir(NETNS_DIR)) - self._netns_before:
                if name.startswith("cni-"):
                    (NETNS_DIR / name).unlink(missing_ok=True)

    def _our_netns(self, mount: str) -> bool:
        path = Path(mount)
        return path.parent == NETNS_DIR and path.name.startswith("cni-") and path.name not in self._netns_before

    def _remove_cgroups(self) -> None:
        for cgroup in _cgroup_dirs(config.CGROUP_ROOT):
            if cgroup.exists():
                # Depth-first: a cgroup can only be removed once its children are.
                for child in sorted((p for p in cgroup.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                    child.rmdir()
                cgroup.rmdir()

    # ---- what is left ------------------------------------------------------------------------------

    def leftovers(self) -> list[str]:
        """Everything of the node still on the machine (empty after a complete teardown; the kept image store
        is a cache, like podman's, and only its mounts would count)."""
        return leftovers(self._bin_dir, self._existed, self._netns_before, self._rules_before, self.image_store)


def _mounts() -> list[str]:
    return [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]


def _iptables_rules() -> dict[str, list[str]]:
    return {table: _run("iptables", "-w", "-t", table, "-S", check=False).stdout.splitlines()
            for table in ("filter", "nat", "mangle")}


def _add_forward_guard(table: str, bridge: str) -> None:
    """Drops anything from the pod range that would leave through another interface than the node's bridge."""
    _run("iptables", "-w", "-t", table, "-N", FORWARD_CHAIN)
    _run("iptables", "-w", "-t", table, "-A", FORWARD_CHAIN, "-s", config.CLUSTER_CIDR, "!", "-o", bridge,
         "-j", "DROP", "-m", "comment", "--comment", "rerank-node: pods never leave the machine")
    _run("iptables", "-w", "-t", table, "-I", "FORWARD", "1", "-j", FORWARD_CHAIN)


def _remove_forward_guard(table: str) -> None:
    while _run("iptables", "-w", "-t", table, "-D", "FORWARD", "-j", FORWARD_CHAIN, check=False).returncode == 0:
        pass
    _run("iptables", "-w", "-t", table, "-F", FORWARD_CHAIN, check=False)
    _run("iptables", "-w", "-t", table, "-X", FORWARD_CHAIN, check=False)


# The chains the kubelet makes (kube-proxy --cleanup leaves them).
KUBELET_CHAINS = (("filter", "KUBE-FIREWALL"), ("mangle", "KUBE-IPTABLES-HINT"), ("filter", "KUBE-KUBELET-CANARY"),
                  ("nat", "KUBE-KUBELET-CANARY"), ("mangle", "KUBE-KUBELET-CANARY"))


def _remove_chain(table: str, chain: str) -> None:
    """Deletes the rules that jump to `chain`, then the chain itself."""
    for rule in _iptables_rules()[table]:
        if rule.startswith("-A ") and rule.endswith(f"-j {chain}"):
            _run("iptables", "-w", "-t", table, "-D", *shlex.split(rule)[1:], check=False)
    _run("iptables", "-w", "-t", table, "-F", chain, check=False)
    _run("iptables", "-w", "-t", table, "-X", chain, check=False)


def _remove_kubelet_chains(rules_before: dict[str, list[str]] | None = None) -> None:
    for table, chain in KUBELET_CHAINS:
        if f"-N {chain}" not in (rules_before or {}).get(table, []):
            _remove_chain(table, chain)


PORTMAP_CHAINS = ("CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-SETMARK", "CNI-HOSTPORT-MASQ")


def _remove_empty_portmap_chains(rules_before: dict[str, list[str]] | None = None) -> None:
    """The portmap plugin's top-level chains (each with its one standard rule) stay after the last CNI DEL.
    Removed when they were not there before the node and no port mapping is left in them: another user of the
    CNI plugins on this machine (a container engine) may still be using them otherwise."""
    nat = _iptables_rules()["nat"]
    if any(r.startswith("-A CNI-HOSTPORT-DNAT ") for r in nat) or any(r.startswith("-N CNI-DN-") for r in nat):
        return
    for chain in PORTMAP_CHAINS:
        if f"-N {chain}" in nat and f"-N {chain}" not in (rules_before or {}).get("nat", []):
            _remove_chain("nat", chain)


def _remove_our_port_mappings() -> None:
    """The portmap plugin's per-container chains of the node's network (a killed node never ran CNI DEL): each
    is named in its jump from CNI-HOSTPORT-DNAT by the network's name."""
    marker = f'dnat name: \\"{config.NETWORK_NAME}\\"'
    for rule in _iptables_rules()["nat"]:
        if rule.startswith("-A CNI-HOSTPORT-DNAT ") and marker in rule and " -j CNI-DN-" in rule:
            chain = rule.rsplit(" -j ", 1)[1]
            _run("iptables", "-w", "-t", "nat", "-D", *shlex.split(rule)[1:], check=False)
            _run("iptables", "-w", "-t", "nat", "-F", chain, check=False)
            _run("iptables", "-w", "-t", "nat", "-X", chain, check=False)


def leftovers(bin_dir: Path | None, existed: dict[Path, bool], netns_before: set[str],
              rules_before: dict[str, list[str]] | None = None, image_store: Path | None = None) -> list[str]:
    """What of a node is on the machine: `existed`, `netns_before` and `rules_before` describe the machine before
    it started (paths, network namespaces and iptables rules that were someone else's)."""
    found = []
    if Path("/sys/class/net", config.BRIDGE).exists():
        found.append(f"interface {config.BRIDGE}")
    routes = _run("ip", "route", "show", "table", "all", check=False).stdout.splitlines()
    prefixes = (config.CLUSTER_CIDR.split(".0.0/")[0] + ".", SERVICE_CIDR.split(".0.0/")[0] + ".")
    found += [f"route {r}" for r in routes if any(p in r for p in prefixes)]
    for table, rules in _iptables_rules().items():
        before = set((rules_before or {}).get(table, []))
        # Other CNI users' chains (CNI-<hash>, the firewall plugin's) are theirs; the portmap ones are shared.
        found += [f"iptables -t {table} {r}" for r in rules if r not in before
                  and any(mark in r for mark in ("KUBE-", FORWARD_CHAIN, config.BRIDGE, "CNI-HOSTPORT-", "CNI-DN-",
                                                 *prefixes))]
    found += [entry for entry in netpol.leftovers() if entry.startswith("ipset ")]
    found += [f"mount {m}" for m in _mounts() if m.startswith("/tmp/" + DIR_PREFIX)
              or (image_store is not None and m.startswith(f"{image_store}/"))
              or (m.startswith(str(NETNS_DIR) + "/cni-") and Path(m).name not in netns_before)]
    bin_dirs = tuple(f"{d}/" for d in (bin_dir, netpol.cache_dir()) if d)
    if bin_dirs:
        for proc in Path("/proc").iterdir():
            try:
                if proc.name.isdigit() and os.readlink(proc / "exe").startswith(bin_dirs):
                    found.append(f"process {proc.name} {os.readlink(proc / 'exe')}")
            except OSError:
                pass
    found += [f"cgroup {c}" for c in _cgroup_dirs(config.CGROUP_ROOT) if c.exists()]
    found += [f"path {p}" for p, was in existed.items() if not was and p.exists()]
    found += [f"directory {d}" for d in Path("/tmp").glob(DIR_PREFIX + "*")]
    return found


def coredns_manifests() -> list[dict[str, Any]]:
    """CoreDNS as clusters run it: a ServiceAccount allowed to watch Services and EndpointSlices, the
    Corefile in a ConfigMap, a Deployment, and the `kube-dns` Service at the kubelet's clusterDNS address."""
    labels = {"k8s-app": "kube-dns"}
    ns = "kube-system"
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "coredns", "namespace": ns}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "system:coredns"},
         "rules": [{"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"],
                    "verbs": ["list", "watch"]},
                   {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": "system:coredns"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:coredns"},
         "subjects": [{"kind": "ServiceAccount", "name": "coredns", "namespace": ns}]},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "coredns", "namespace": ns},
         "data": {"Corefile": config.coredns_corefile()}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "coredns", "namespace": ns,
                                                                     "labels": labels},
         "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {
             "metadata": {"labels": labels},
             "spec": {
                 "serviceAccountName": "coredns",
                 "dnsPolicy": "Default",
                 "priorityClassName": "system-cluster-critical",
                 "containers": [{
                     "name": "coredns", "image": COREDNS_IMAGE, "imagePullPolicy": "Never",
                     "args": ["-conf", "/etc/coredns/Corefile"],
                     "ports": [{"name": "dns", "containerPort": 53, "protocol": "UDP"},
                               {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"}],
                     "securityContext": {"capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]},
                                         "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True},
                     "resources": {"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
                     "livenessProbe": {"httpGet": {"path": "/health", "port": 8080}, "periodSeconds": 10},
                     "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181}, "periodSeconds": 2},
                     "volumeMounts": [{"name": "config", "mountPath": "/etc/coredns", "readOnly": True}],
                 }],
                 "volumes": [{"name": "config", "configMap": {"name": "coredns"}}],
             }}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "kube-dns", "namespace": ns, "labels": labels},
         "spec": {"clusterIP": config.DNS_SERVICE_IP, "selector": labels,
                  "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                            {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53}]}},
    ]


def sweep() -> list[str]:
    """Removes what a node killed before its teardown left (its processes died with it, the container shims and
    everything on the machine did not), and returns what is still left afterwards."""
    bin_dir = binaries.cache_dir()
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and os.readlink(proc / "exe").startswith(
                    (str(bin_dir) + "/", str(netpol.cache_dir()) + "/")):
                os.kill(int(proc.name), signal.SIGKILL)
        except OSError:
            pass
    # The containers outlive their killed shims: everything still in the node's cgroups goes too.
    for cgroup in _cgroup_dirs(config.CGROUP_ROOT):
        for procs in cgroup.rglob("cgroup.procs") if cgroup.exists() else ():
            for pid in procs.read_text().split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
    time.sleep(1)
    store = default_image_store()
    for mount in reversed(_mounts()):
        if mount.startswith(("/tmp/" + DIR_PREFIX, str(NETNS_DIR) + "/cni-", f"{store}/")):
            _run("umount", "-l", mount, check=False)
    for cgroup in _cgroup_dirs(config.CGROUP_ROOT):
        if cgroup.exists():
            for child in sorted((p for p in cgroup.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                child.rmdir()
            cgroup.rmdir()
    if (bin_dir / "kube-proxy").exists():
        _run(str(bin_dir / "kube-proxy"), "--cleanup", check=False)
    _remove_kubelet_chains()
    _remove_our_port_mappings()
    _remove_empty_portmap_chains()
    netpol.cleanup()
    for table in ("filter", "mangle"):
        _remove_forward_guard(table)
    _run("ip", "link", "del", config.BRIDGE, check=False)
    for cidr in (config.CLUSTER_CIDR, SERVICE_CIDR):
        _run("ip", "route", "del", "blackhole", cidr, check=False)
    for d in Path("/tmp").glob(DIR_PREFIX + "*"):
        shutil.rmtree(d, ignore_errors=True)
    return leftovers(bin_dir, {}, set(os.listdir(NETNS_DIR)) if NETNS_DIR.exists() else set(), image_store=store)


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["sweep"]:
        left = sweep()
        print("\n".join(left) or "nothing of a node is left")
        sys.exit(1 if left else 0)
    print("usage: python -m rerank_localdev.node.host sweep", file=sys.stderr)
    sys.exit(2)


def provisioner_manifests(volumes: Path) -> list[dict[str, Any]]:
    """The dynamic provisioner (gosrc/hostpath-provisioner) and the cluster's default StorageClass: claims bind
    when their first pod is scheduled, to a directory under `volumes` on this node."""
    ns, name = "kube-system", "hostpath-provisioner"
    labels = {"app": name}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": ns}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": name},
         "rules": [{"apiGroups": [""], "resources": ["persistentvolumes"],
                    "verbs": ["get", "list", "watch", "create", "delete"]},
                   {"apiGroups": [""], "resources": ["persistentvolumeclaims"], "verbs": ["get", "list", "watch",
                                                                                         "update"]},
                   {"apiGroups": ["storage.k8s.io"], "resources": ["storageclasses"],
                    "verbs": ["get", "list", "watch"]},
                   {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "update", "patch"]},
                   {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": name},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
         "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}]},
        {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
         "metadata": {"name": STORAGE_CLASS, "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
         "provisioner": PROVISIONER_NAME, "reclaimPolicy": "Delete", "volumeBindingMode": "WaitForFirstConsumer"},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns, "labels": labels},
         "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "strategy": {"type": "Recreate"}, "template": {
             "metadata": {"labels": labels},
             "spec": {
                 "serviceAccountName": name,
                 "containers": [{
                     "name": name, "image": PROVISIONER_IMAGE, "imagePullPolicy": "Never",
                     "args": [f"--name={PROVISIONER_NAME}", f"--root={volumes}"],
                     "env": [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
                     "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
                     "volumeMounts": [{"name": "volumes", "mountPath": str(volumes)}],
                 }],
                 "volumes": [{"name": "volumes", "hostPath": {"path": str(volumes), "type": "Directory"}}],
             }}}},
    ]


def traefik_manifests(host_port: int) -> list[dict[str, Any]]:
    """Traefik with its Kubernetes Ingress provider, the cluster's default IngressClass, listening on the node's
    address at `host_port`. No version check, no usage report: nothing leaves the machine."""
    ns, name = "kube-system", "traefik"
    labels = {"app": name}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": ns}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": name},
         "rules": [{"apiGroups": [""], "resources": ["services", "secrets", "nodes"],
                    "verbs": ["get", "list", "watch"]},
                   {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
                    "verbs": ["get", "list", "watch"]},
                   {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses", "ingressclasses"],
                    "verbs": ["get", "list", "watch"]},
                   {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses/status"], "verbs": ["update"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": name},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
         "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}]},
        {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
         "metadata": {"name": INGRESS_CLASS, "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
         "spec": {"controller": "traefik.io/ingress-controller"}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns, "labels": labels},
         "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "strategy": {"type": "Recreate"}, "template": {
             "metadata": {"labels": labels},
             "spec": {
                 "serviceAccountName": name,
                 "containers": [{
                     "name": name, "image": TRAEFIK_IMAGE, "imagePullPolicy": "Never",
                     "args": ["--entryPoints.web.address=:8000", "--entryPoints.ping.address=:8082",
                              "--ping.entryPoint=ping", "--providers.kubernetesingress",
                              f"--providers.kubernetesingress.ingressendpoint.ip={NODE_IP}",
                              "--global.checkNewVersion=false", "--global.sendAnonymousUsage=false",
                              "--log.level=INFO"],
                     "ports": [{"name": "web", "containerPort": 8000, "hostPort": host_port, "hostIP": NODE_IP}],
                     "readinessProbe": {"httpGet": {"path": "/ping", "port": 8082}, "periodSeconds": 2},
                     "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
                     "securityContext": {"capabilities": {"drop": ["ALL"]}, "allowPrivilegeEscalation": False,
                                         "readOnlyRootFilesystem": True, "runAsNonRoot": True, "runAsUser": 65532},
                 }],
             }}}},
    ]
