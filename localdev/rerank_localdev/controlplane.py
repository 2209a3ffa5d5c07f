"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok (simulated nodes, GPU nodes included).

    with LocalControlPlane() as cp:
        cp.kubectl("apply", "-f", "manifest.yaml")
        core = kubernetes.client.CoreV1Api(cp.api_client())

Everything binds 127.0.0.1 on free ports; the API server serves TLS (a CA generated per instance),
authenticates with a static token file and authorizes with Node,RBAC. Two identities are written as
kubeconfigs: an admin (system:masters) and one that stands for the operator's ServiceAccount
(`system:serviceaccount:rerank-system:rerank-operator`), so RBAC written for that ServiceAccount (the
Helm chart's) is enforced on requests made with `operator_kubeconfig`.

kwok turns the nodes it manages Ready and every pod scheduled there Running/Ready (with
`pods_ready_on_start=False`: Running but not Ready, for local mode, whose pod runner runs the
containers and reports readiness from their probes). Each node gets a
pod CIDR inside 127.0.0.0/8, so pod IPs are loopback addresses: a test or local mode can bind a
real server at a pod's IP (Linux routes all of 127/8 to `lo`) and reach it the way a Service would.

Every component runs in its own process group with its log in the instance's temp directory;
`stop()` (also on context exit, at interpreter exit, on SIGTERM and, for children, on the death of the
starting thread via PR_SET_PDEATHSIG) kills them all and removes the directory.
"""

from __future__ import annotations

import atexit
import ctypes
import itertools
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from . import binaries, pki

OPERATOR_NAMESPACE = "rerank-system"
OPERATOR_SERVICE_ACCOUNT = "rerank-operator"
OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_SERVICE_ACCOUNT}"
OPERATOR_GROUPS = ("system:serviceaccounts", f"system:serviceaccounts:{OPERATOR_NAMESPACE}", "system:authenticated")

# kwok manages exactly the nodes carrying this annotation (never a real node by accident).
KWOK_ANNOTATION = "kwok.x-k8s.io/node"
GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRESENT_LABEL = "nvidia.com/gpu.present"
SERVICE_CIDR = "10.96.0.0/16"
# The real node's name (rerank_localdev.node), when one joins.
NODE_NAME = "rerank-node-0"
CLUSTER_NAME = "rerank-local"
KWOK_STAGES = Path(__file__).with_name("kwok-stages.yaml")
KWOK_POD_STARTED_STAGE = Path(__file__).with_name("kwok-stage-pod-started.yaml")
DIR_PREFIX = "rerank-cp-"

# Default topology: two CPU nodes and two 8-GPU nodes.
DEFAULT_NODES: tuple[dict[str, Any], ...] = (
    {"name": "kwok-cpu-0"},
    {"name": "kwok-cpu-1"},
    {"name": "kwok-gpu-0", "gpus": 8},
    {"name": "kwok-gpu-1", "gpus": 8},
)

# Pod networks of instances in one process must not overlap: each takes its own 127.<octet>.0.0/16.
_octets = itertools.count()
_live: "weakref.WeakSet[LocalControlPlane]" = weakref.WeakSet()


class ControlPlaneError(RuntimeError):
    """A component failed to start or become ready; the message carries its log tail."""


class CommandError(subprocess.CalledProcessError):
    """A kubectl/helm call failed; unlike CalledProcessError, str() includes stderr."""

    def __str__(self) -> str:
        return f"{super().__str__()}\nstderr: {(self.stderr or '').strip()}\nstdout: {(self.output or '').strip()[-2000:]}"


@dataclass
class _Component:
    name: str
    popen: subprocess.Popen
    log: Path
    ports: list[int] = field(default_factory=list)


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """Ports the kernel says are free now; all held open until every one is chosen so they differ."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(no log: {exc})"


def _pdeathsig() -> None:
    # Runs in the child before exec: die with the parent even if the parent is SIGKILLed.
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def node_manifest(
    name: str,
    pod_cidr: str,
    gpus: int = 0,
    cpu: str = "32",
    memory: str = "256Gi",
    pods: str = "110",
    labels: Mapping[str, str] | None = None,
    taints: Iterable[Mapping[str, str]] = (),
) -> dict[str, Any]:
    """The Node object of a kwok-managed node (capacity set at creation; kwok keeps it)."""
    all_labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "type": "kwok",
    }
    capacity = {"cpu": cpu, "memory": memory, "pods": pods, "ephemeral-storage": "1Ti"}
    if gpus:
        capacity[GPU_RESOURCE] = str(gpus)
        # The labels NVIDIA's GPU feature discovery puts on real GPU nodes.
        all_labels.update({GPU_PRESENT_LABEL: "true", "nvidia.com/gpu.count": str(gpus),
                           "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"})
    all_labels.update(labels or {})
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": all_labels, "annotations": {KWOK_ANNOTATION: "fake"}},
        "spec": {"podCIDR": pod_cidr, "podCIDRs": [pod_cidr], "taints": [dict(t) for t in taints] or None},
        "status": {"capacity": capacity, "allocatable": dict(capacity)},
    }


def _kubeconfig(server: str, ca_file: Path, user: str, token: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CLUSTER_NAME, "cluster": {"server": server, "certificate-authority": str(ca_file)}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": CLUSTER_NAME, "context": {"cluster": CLUSTER_NAME, "user": user}}],
        "current-context": CLUSTER_NAME,
    }


def kwok_stages(pods_ready_on_start: bool = True) -> str:
    """The kwok stage configuration: kwok's defaults, or with its `pod-ready` stage swapped for
    one that leaves pods Running but not Ready (kwok-stage-pod-started.yaml)."""
    if pods_ready_on_start:
        return KWOK_STAGES.read_text()
    replacement = yaml.safe_load(KWOK_POD_STARTED_STAGE.read_text())
    docs = [doc for doc in yaml.safe_load_all(KWOK_STAGES.read_text()) if doc]
    names = [doc["metadata"]["name"] for doc in docs]
    if replacement["metadata"]["name"] not in names:
        raise ControlPlaneError(f"kwok-stages.yaml has no stage {replacement['metadata']['name']!r} to replace")
    docs = [replacement if doc["metadata"]["name"] == replacement["metadata"]["name"] else doc for doc in docs]
    return yaml.safe_dump_all(docs, sort_keys=False)


class LocalControlPlane:
    """See the module docstring. `nodes`: Node specs for `add_node` (default: 2 CPU + 2 GPU nodes)."""

    def __init__(
        self,
        bin_dir: Path | str | None = None,
        nodes: Iterable[Mapping[str, Any]] | None = None,
        start_timeout: float = 120.0,
        keep_dir: bool | None = None,
        pods_ready_on_start: bool = True,
        node_ip: str | None = None,
    ) -> None:
        # A real node (rerank_localdev.node) joins at `node_ip`: the API server then listens on every address
        # and advertises that one (pods reach it through the `kubernetes` Service), and reaches the kubelet at
        # the node's InternalIP with a client certificate.
        self.node_ip = node_ip
        self.node_kubeconfigs: dict[str, Path] = {}
        self._bin_dir = Path(bin_dir) if bin_dir else None
        self.pods_ready_on_start = pods_ready_on_start
        self._default_nodes = [dict(n) for n in (DEFAULT_NODES if nodes is None else nodes)]
        self.start_timeout = start_timeout
        # RERANK_CONTROLPLANE_KEEP=1 keeps the directory (logs, etcd data) after stop, for post-mortems.
        self.keep_dir = os.environ.get("RERANK_CONTROLPLANE_KEEP") == "1" if keep_dir is None else keep_dir
        self.dir: Path | None = None
        self.server = ""
        self.admin_kubeconfig = Path()
        self.operator_kubeconfig = Path()
        self.ports: dict[str, int] = {}
        self._components: list[_Component] = []
        self._lock = threading.Lock()
        self._node_index = itertools.count()
        self._octet = 1 + (next(_octets) + os.getpid()) % 250
        self._admin_token = ""
        self.started_in = 0.0
        # Seconds from start() until each component was ready (for the benchmark and slow-start reports).
        self.ready_after: dict[str, float] = {}
        self._t0 = 0.0

    # ---- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> "LocalControlPlane":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def bin_dir(self) -> Path:
        if self._bin_dir is None:
            self._bin_dir = binaries.ensure()
        return self._bin_dir

    @property
    def pod_network(self) -> str:
        """The loopback range this instance's pod IPs come from (one /24 per node)."""
        return f"127.{self._octet}.0.0/16"

    def pids(self) -> list[int]:
        return [c.popen.pid for c in self._components]

    def processes(self) -> dict[str, int]:
        """Component name -> pid of each running component."""
        return {c.name: c.popen.pid for c in self._components}

    def start(self) -> "LocalControlPlane":
        if self._components:
            raise ControlPlaneError("already started")
        bin_dir = self.bin_dir  # may build (long) before any process or directory exists
        _install_exit_handlers()
        _sweep_stale_dirs()
        for attempt in (1, 2):
            self._t0 = time.monotonic()
            self.ready_after = {}
            self._node_index = itertools.count()
            self.dir = Path(tempfile.mkdtemp(prefix=DIR_PREFIX))
            (self.dir / "owner.pid").write_text(str(os.getpid()))
            _live.add(self)
            try:
                self._start(bin_dir, time.monotonic() + self.start_timeout)
                break
            except ControlPlaneError as exc:
                self.stop()
                # A free port can be taken by someone else between choosing it and binding it: retry once.
                if attempt == 2 or "address already in use" not in str(exc):
                    raise
            except BaseException:
                self.stop()
                raise
        self.started_in = time.monotonic() - self._t0
        return self

    def _start(self, bin_dir: Path, deadline: float) -> None:
        d = self.dir
        assert d is not None
        (d / "logs").mkdir()
        names = ["etcd", "etcd-peer", "apiserver", "controller-manager", "scheduler"]
        self.ports = dict(zip(names, free_ports(len(names))))
        self.server = f"https://127.0.0.1:{self.ports['apiserver']}"

        material = pki.make_control_plane_pki(extra_ips=(self.node_ip,) if self.node_ip else ())
        files = {
            "ca.crt": material.ca.cert, "ca.key": material.ca.key,
            "apiserver.crt": material.apiserver.cert, "apiserver.key": material.apiserver.key,
            "sa.key": material.sa_private_key, "sa.pub": material.sa_public_key,
            "kubelet-client.crt": material.kubelet_client.cert, "kubelet-client.key": material.kubelet_client.key,
        }
        for name, data in files.items():
            (d / name).write_bytes(data)
            (d / name).chmod(0o600)

        tokens = {k: secrets.token_hex(24) for k in ("admin", "operator", "kcm", "scheduler", "kwok", "kubelet",
                                                     "kube-proxy")}
        self._admin_token = tokens["admin"]
        # Static token file: token,user,uid,"group1,group2".
        rows = [
            (tokens["admin"], "rerank-admin", "admin", ("system:masters",)),
            (tokens["operator"], OPERATOR_USER, "rerank-operator", OPERATOR_GROUPS),
            (tokens["kcm"], "system:kube-controller-manager", "kcm", ()),
            (tokens["scheduler"], "system:kube-scheduler", "scheduler", ()),
            # kwok writes node/pod status and leases for every simulated node.
            (tokens["kwok"], "kwok-controller", "kwok", ("system:masters",)),
        ]
        if self.node_ip:
            # The identities kubeadm gives a node's kubelet and kube-proxy (the Node authorizer and the
            # default system:node-proxier binding know them).
            rows += [(tokens["kubelet"], f"system:node:{NODE_NAME}", "kubelet", ("system:nodes",)),
                     (tokens["kube-proxy"], "system:kube-proxy", "kube-proxy", ())]
        (d / "tokens.csv").write_text("".join(f'{t},{u},{uid},"{",".join(g)}"\n' for t, u, uid, g in rows))

        def kubeconfig(filename: str, user: str, token: str) -> Path:
            path = d / filename
            path.write_text(yaml.safe_dump(_kubeconfig(self.server, d / "ca.crt", user, token)))
            path.chmod(0o600)
            return path

        self.admin_kubeconfig = kubeconfig("admin.kubeconfig", "rerank-admin", tokens["admin"])
        self.operator_kubeconfig = kubeconfig("operator.kubeconfig", OPERATOR_USER, tokens["operator"])
        kcm_kc = kubeconfig("controller-manager.kubeconfig", "system:kube-controller-manager", tokens["kcm"])
        sched_kc = kubeconfig("scheduler.kubeconfig", "system:kube-scheduler", tokens["scheduler"])
        kwok_kc = kubeconfig("kwok.kubeconfig", "kwok-controller", tokens["kwok"])
        if self.node_ip:
            self.node_kubeconfigs = {
                "kubelet": kubeconfig("kubelet.kubeconfig", f"system:node:{NODE_NAME}", tokens["kubelet"]),
                "kube-proxy": kubeconfig("kube-proxy.kubeconfig", "system:kube-proxy", tokens["kube-proxy"]),
            }
        node_flags = [
            "--bind-address=0.0.0.0", f"--advertise-address={self.node_ip}",
            "--kubelet-preferred-address-types=InternalIP",
            f"--kubelet-client-certificate={d / 'kubelet-client.crt'}",
            f"--kubelet-client-key={d / 'kubelet-client.key'}",
        ] if self.node_ip else ["--bind-address=127.0.0.1", "--advertise-address=127.0.0.1"]

        etcd_url = f"http://127.0.0.1:{self.ports['etcd']}"
        peer_url = f"http://127.0.0.1:{self.ports['etcd-peer']}"
        self._spawn("etcd", [
            str(bin_dir / "etcd"),
            "--name=default",
            f"--data-dir={d / 'etcd'}",
            f"--listen-client-urls={etcd_url}",
            f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=default={peer_url}",
            # Throwaway data: skipping fsync makes every API write far cheaper.
            "--unsafe-no-fsync",
            "--log-level=warn",
        ], ports=[self.ports["etcd"], self.ports["etcd-peer"]])
        self._wait("etcd", deadline, lambda: self._http_ok(f"{etcd_url}/health", expect=b'"health":"true"'))

        self._spawn("kube-apiserver", [
            str(bin_dir / "kube-apiserver"),
            f"--etcd-servers={etcd_url}",
            *node_flags,
            f"--secure-port={self.ports['apiserver']}",
            f"--cert-dir={d / 'apiserver-certs'}",
            f"--tls-cert-file={d / 'apiserver.crt'}",
            f"--tls-private-key-file={d / 'apiserver.key'}",
            f"--client-ca-file={d / 'ca.crt'}",
            # Front-proxy settings: the controller manager's and scheduler's delegated authentication
            # read them (and log errors every second without them).
            f"--requestheader-client-ca-file={d / 'ca.crt'}",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--token-auth-file={d / 'tokens.csv'}",
            "--authorization-mode=Node,RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={d / 'sa.pub'}",
            f"--service-account-signing-key-file={d / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--allow-privileged=true",
            "--profiling=false",
            "--v=1",
        ], ports=[self.ports["apiserver"]])
        self._wait("kube-apiserver", deadline, lambda: self._http_ok(f"{self.server}/readyz", token=self._admin_token))

        # The rest only need the API server: start them together.
        self._spawn("kube-controller-manager", [
            str(bin_dir / "kube-controller-manager"),
            f"--kubeconfig={kcm_kc}",
            f"--authentication-kubeconfig={kcm_kc}",
            f"--authorization-kubeconfig={kcm_kc}",
            "--bind-address=127.0.0.1",
            f"--secure-port={self.ports['controller-manager']}",
            f"--cert-dir={d / 'controller-manager-certs'}",
            "--leader-elect=false",
            "--controllers=*",
            # Each controller acts as its own ServiceAccount, as in a kubeadm cluster.
            "--use-service-account-credentials=true",
            # Client-side rate limits off the default 20/30: start-up creates a ServiceAccount and a
            # token per controller, and tests create objects in bursts.
            "--kube-api-qps=200",
            "--kube-api-burst=400",
            f"--service-account-private-key-file={d / 'sa.key'}",
            f"--root-ca-file={d / 'ca.crt'}",
            f"--cluster-signing-cert-file={d / 'ca.crt'}",
            f"--cluster-signing-key-file={d / 'ca.key'}",
            f"--cluster-name={CLUSTER_NAME}",
            # Pod CIDRs are set per node at creation (loopback ranges), never allocated.
            "--allocate-node-cidrs=false",
            "--profiling=false",
            "--v=1",
        ], ports=[self.ports["controller-manager"]])

        sched_conf = d / "scheduler.yaml"
        sched_conf.write_text(yaml.safe_dump({
            "apiVersion": "kubescheduler.config.k8s.io/v1",
            "kind": "KubeSchedulerConfiguration",
            "clientConnection": {"kubeconfig": str(sched_kc)},
            "leaderElection": {"leaderElect": False},
            # Retry unschedulable pods quickly: tests wait on scheduling, not on back-off.
            "podInitialBackoffSeconds": 1,
            "podMaxBackoffSeconds": 2,
        }))
        self._spawn("kube-scheduler", [
            str(bin_dir / "kube-scheduler"),
            f"--config={sched_conf}",
            f"--authentication-kubeconfig={sched_kc}",
            f"--authorization-kubeconfig={sched_kc}",
            "--bind-address=127.0.0.1",
            f"--secure-port={self.ports['scheduler']}",
            f"--cert-dir={d / 'scheduler-certs'}",
            "--profiling=false",
            "--v=1",
        ], ports=[self.ports["scheduler"]])

        (d / "kwok-home").mkdir()
        stages = KWOK_STAGES
        if not self.pods_ready_on_start:
            stages = d / "kwok-stages.yaml"
            stages.write_text(kwok_stages(pods_ready_on_start=False))
        self._spawn("kwok", [
            str(bin_dir / "kwok"),
            f"--kubeconfig={kwok_kc}",
            f"--config={stages}",
            "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={KWOK_ANNOTATION}=fake",
            "--node-ip=127.0.0.1",
            # Only for nodes created without a podCIDR; add_node always sets one.
            f"--cidr=127.{self._octet}.255.0/24",
            "--node-lease-duration-seconds=40",
        ], env={"HOME": str(d / "kwok-home")})  # kwok also reads ~/.kwok/kwok.yaml: keep it hermetic

        for spec in self._default_nodes:
            self.add_node(wait=False, **spec)
        # Ready means: nodes Ready, the scheduler serving, and the controller manager's controllers
        # running (the `default` ServiceAccount appears once they are, and pods need it).
        self._wait("kube-scheduler", deadline,
                   lambda: self._http_ok(f"https://127.0.0.1:{self.ports['scheduler']}/healthz", verify=False))
        self._wait("kube-controller-manager", deadline,
                   lambda: self._http_ok(f"{self.server}/api/v1/namespaces/default/serviceaccounts/default",
                                         token=self._admin_token))
        for spec in self._default_nodes:
            self.wait_node_ready(spec["name"], deadline=deadline)
        self.ready_after["nodes"] = time.monotonic() - self._t0

    def stop(self) -> None:
        """Kills every component's process group and removes the directory.

        SIGKILL, not SIGTERM: nothing here is worth a graceful shutdown (etcd's data is thrown away),
        and a terminated API server waits tens of seconds for an etcd that is already gone."""
        with self._lock:
            components, self._components = self._components, []
            for c in reversed(components):
                _signal_group(c.popen, signal.SIGKILL)
            for c in components:
                c.popen.wait()
            _live.discard(self)
            if self.dir is not None and not self.keep_dir:
                shutil.rmtree(self.dir, ignore_errors=True)

    # ---- processes and readiness ----------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str], ports: list[int] | None = None,
               env: Mapping[str, str] | None = None) -> _Component:
        assert self.dir is not None
        log = self.dir / "logs" / f"{name}.log"
        main_thread = threading.current_thread() is threading.main_thread()
        with open(log, "ab") as out:
            popen = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=self.dir, env={**os.environ, **(env or {})},
                start_new_session=True,  # own process group: stop() kills the whole group
                # PDEATHSIG fires when the *thread* that forked exits, so only tie it to the main thread.
                preexec_fn=_pdeathsig if main_thread else None,
            )
        component = _Component(name, popen, log, list(ports or []))
        self._components.append(component)
        return component

    def _component(self, name: str) -> _Component:
        return next(c for c in self._components if c.name == name)

    def _wait(self, name: str, deadline: float, ready) -> None:
        component = self._component(name)
        last_error: object = None
        while True:
            if component.popen.poll() is not None:
                raise ControlPlaneError(
                    f"{name} exited with code {component.popen.returncode}; end of its log "
                    f"(RERANK_CONTROLPLANE_KEEP=1 keeps {component.log}):\n{_tail(component.log)}"
                )
            try:
                if ready():
                    self.ready_after[name] = time.monotonic() - self._t0
                    return
            except Exception as exc:  # not up yet: connection refused, 5xx, TLS not yet served ...
                last_error = exc
            if time.monotonic() > deadline:
                raise ControlPlaneError(
                    f"{name} not ready within {self.start_timeout:.0f} s (last: {last_error}); end of its log "
                    f"(RERANK_CONTROLPLANE_KEEP=1 keeps {component.log}):\n{_tail(component.log)}"
                )
            time.sleep(0.1)

    def _ssl_context(self, verify: bool = True) -> ssl.SSLContext:
        if not verify:
            return ssl._create_unverified_context()  # components' self-signed health endpoints
        assert self.dir is not None
        return ssl.create_default_context(cafile=str(self.dir / "ca.crt"))

    def _http_ok(self, url: str, token: str | None = None, verify: bool = True, expect: bytes | None = None) -> bool:
        req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
        ctx = self._ssl_context(verify) if url.startswith("https") else None
        try:
            with urllib.request.urlopen(req, timeout=2, context=ctx) as resp:
                body = resp.read()
                return resp.status == 200 and (expect is None or expect in body)
        except urllib.error.HTTPError:
            return False

    def _api(self, method: str, path: str, body: Any = None) -> Any:
        """A small admin request to the API server (no client library needed during start-up)."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            f"{self.server}{path}", data=data, method=method,
            headers={"Authorization": f"Bearer {self._admin_token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=10, context=self._ssl_context()) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise ControlPlaneError(f"{method} {path}: {exc.code} {exc.read().decode(errors='replace')}") from exc

    # ---- nodes ----------------------------------------------------------------------------------

    def add_node(
        self,
        name: str,
        gpus: int = 0,
        cpu: str = "32",
        memory: str = "256Gi",
        labels: Mapping[str, str] | None = None,
        taints: Iterable[Mapping[str, str]] = (),
        wait: bool = True,
    ) -> dict[str, Any]:
        """Creates a kwok-managed node with pod CIDR 127.<instance>.<n>.0/24 and waits until it is Ready."""
        index = next(self._node_index)
        if index > 255:
            raise ControlPlaneError("at most 256 nodes per control plane (one /24 each in the pod network)")
        manifest = node_manifest(name, f"127.{self._octet}.{index}.0/24", gpus=gpus, cpu=cpu, memory=memory,
                                 labels=labels, taints=taints)
        node = self._api("POST", "/api/v1/nodes", manifest)
        if wait:
            node = self.wait_node_ready(name)
        return node

    def wait_node_ready(self, name: str, timeout: float = 60.0, deadline: float | None = None) -> dict[str, Any]:
        """Waits for Ready=True and for the node lifecycle controller's not-ready taint to be gone."""
        deadline = deadline or time.monotonic() + timeout
        while True:
            node = self._api("GET", f"/api/v1/nodes/{name}")
            conditions = {c["type"]: c["status"] for c in node.get("status", {}).get("conditions") or []}
            taints = [t["key"] for t in node.get("spec", {}).get("taints") or []]
            if conditions.get("Ready") == "True" and "node.kubernetes.io/not-ready" not in taints:
                return node
            for c in self._components:
                if c.popen.poll() is not None:
                    raise ControlPlaneError(f"{c.name} exited while waiting for node {name}:\n{_tail(c.log)}")
            if time.monotonic() > deadline:
                kwok = self._component("kwok")
                raise ControlPlaneError(
                    f"node {name} not Ready (conditions {conditions}, taints {taints}); kwok log:\n{_tail(kwok.log)}"
                )
            time.sleep(0.1)

    def wait_crds_established(self, *names: str, timeout: float = 60.0) -> None:
        """Waits until each named CRD is Established (its API is served).

        Not `kubectl wait --for=condition=Established`: on a CRD created a moment ago `.status.conditions` is
        still null, and kubectl fails at once on that ("accessor error: <nil> is of the type <nil>") instead
        of waiting.
        """
        deadline = time.monotonic() + timeout
        for name in names:
            while True:
                crd = self._api("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
                conditions = {c["type"]: c for c in (crd.get("status") or {}).get("conditions") or []}
                if conditions.get("Established", {}).get("status") == "True":
                    break
                if time.monotonic() > deadline:
                    raise ControlPlaneError(f"CRD {name} not Established after {timeout:.0f} s: {list(conditions.values())}")
                time.sleep(0.1)

    # ---- clients --------------------------------------------------------------------------------

    def env(self, kubeconfig: Path | str | None = None) -> dict[str, str]:
        """Environment for tools run against this cluster: KUBECONFIG, the binaries first on PATH,
        and Helm's state inside the instance directory (never the user's ~/.config/helm)."""
        assert self.dir is not None, "not started"
        helm = self.dir / "helm"
        return {
            **os.environ,
            "KUBECONFIG": str(kubeconfig or self.admin_kubeconfig),
            "PATH": f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "HELM_CACHE_HOME": str(helm / "cache"),
            "HELM_CONFIG_HOME": str(helm / "config"),
            "HELM_DATA_HOME": str(helm / "data"),
        }

    def _run(self, tool: str, args: tuple[str, ...], kubeconfig, check: bool, input: str | None,
             timeout: float) -> subprocess.CompletedProcess:
        argv = [str(self.bin_dir / tool), f"--kubeconfig={kubeconfig or self.admin_kubeconfig}", *map(str, args)]
        proc = subprocess.run(argv, env=self.env(kubeconfig), input=input, capture_output=True, text=True,
                              timeout=timeout)
        if check and proc.returncode != 0:
            raise CommandError(proc.returncode, argv, proc.stdout, proc.stderr)
        return proc

    def kubectl(self, *args: str, kubeconfig: Path | str | None = None, check: bool = True,
                input: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
        return self._run("kubectl", args, kubeconfig, check, input, timeout)

    def helm(self, *args: str, kubeconfig: Path | str | None = None, check: bool = True,
             input: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
        return self._run("helm", args, kubeconfig, check, input, timeout)

    def api_client(self, kubeconfig: Path | str | None = None):
        """A `kubernetes.client.ApiClient` for the admin (default) or the given kubeconfig."""
        from kubernetes import config

        return config.new_client_from_config(config_file=str(kubeconfig or self.admin_kubeconfig))

    def logs(self, name: str, lines: int = 40) -> str:
        """The tail of a component's log (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok)."""
        return _tail(self._component(name).log, lines)


def _signal_group(popen: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(popen.pid, sig)  # start_new_session: the group id is the leader's pid
    except (ProcessLookupError, PermissionError):
        pass


def _sweep_stale_dirs() -> None:
    """Removes directories left by an owner that was SIGKILLed (its children died with it, via
    PDEATHSIG, but nobody was left to delete the directory)."""
    for d in Path(tempfile.gettempdir()).glob(DIR_PREFIX + "*"):
        try:
            owner = int((d / "owner.pid").read_text())
        except (OSError, ValueError):
            continue  # not ours, or being created right now
        if not Path(f"/proc/{owner}").exists():
            shutil.rmtree(d, ignore_errors=True)


_handlers_installed = False


def _stop_all() -> None:
    for cp in list(_live):
        cp.stop()


def _install_exit_handlers() -> None:
    """At interpreter exit and on SIGTERM (whose default action skips atexit), stop every instance."""
    global _handlers_installed
    if _handlers_installed:
        return
    _handlers_installed = True
    atexit.register(_stop_all)
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        def on_sigterm(signum, frame):
            _stop_all()
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)

        signal.signal(signal.SIGTERM, on_sigterm)
