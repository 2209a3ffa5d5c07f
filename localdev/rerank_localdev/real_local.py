"""`rerank-local --node real`: local mode on one real node instead of simulated ones.

The same control plane, CRD, RBAC, operator (a host process), tiny model claim and sample RerankerDeployment as
the simulated mode (local_stack.LocalStack); the node side differs:

1. the node's parts (kubelet, kube-proxy, containerd, CoreDNS, ...; built from source on first use, cached) and
   a control plane that advertises the node's address, with no simulated nodes;
2. a real node (node.host.LocalNode: containerd + runc, the kubelet, kube-proxy, the CNI bridge, CoreDNS, the
   volume provisioner), as tests/node starts it;
3. the engine, UI and gateway images (`make images`, built first when podman lacks them) imported into the
   node's containerd, no registry (kept between runs: an unchanged image is not imported again);
4. the sample's pods scheduled by the real scheduler, run in containers by the kubelet, Ready from the kubelet's
   probes, routed by kube-proxy and resolved by CoreDNS;
5. the Services reached from this host with `kubectl port-forward` on 127.0.0.1, the way a user reaches a
   cluster's Service (the cluster's ranges are not routed from the host: nothing leaves the bridge).

Teardown (Ctrl-C, SIGTERM, or the end of --smoke): the port-forwards, the operator, the node (pods deleted so the
kubelet tears their sandboxes down, then every process, mount, cgroup, interface, route and firewall rule it made,
see LocalNode.stop), the control plane; what is still left of the node is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, TextIO

from .local_stack import LocalModeError, LocalStack, WaitProgress, _pdeathsig, _tail
from .service_proxy import port_free

MODE = ("local mode: a real control plane and one real node (containerd, runc, kubelet, kube-proxy, CoreDNS); "
        "the engine, gateway and UI run in real containers")
FORWARD_TIMEOUT = 60.0
# Container states that do not resolve by waiting: reported at once instead of at the timeout.
STUCK = ("ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName", "CreateContainerConfigError",
         "CreateContainerError")


def pod_line(pod: dict) -> str:
    """One pod's state as a progress line shows it: `name phase ready/total (reason)`."""
    status = pod.get("status") or {}
    containers = status.get("containerStatuses") or []
    ready = sum(1 for c in containers if c.get("ready"))
    reasons = [(c.get("state") or {}).get("waiting", {}).get("reason") for c in containers]
    reasons = [r for r in reasons if r]
    if not containers:
        reasons += [c.get("reason") for c in status.get("conditions") or [] if c.get("reason")]
    text = f"{pod['metadata']['name']} {status.get('phase', 'Pending')} {ready}/{len(containers) or '?'}"
    return text + (f" ({', '.join(reasons)})" if reasons else "")


def stuck_reason(pod: dict) -> str | None:
    """Why a pod cannot get Ready without a change (more than the one node has, an image it cannot get, a crash
    loop), else None."""
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if (cond.get("type") == "PodScheduled" and cond.get("reason") == "Unschedulable"
                and "Insufficient" in cond.get("message", "")):
            return f"{pod['metadata']['name']}: Unschedulable: {cond['message']}"
    for c in (pod.get("status") or {}).get("containerStatuses") or []:
        waiting = (c.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in STUCK or (waiting.get("reason") == "CrashLoopBackOff"
                                              and c.get("restartCount", 0) >= 3):
            return f"{pod['metadata']['name']}/{c['name']}: {waiting['reason']}: {waiting.get('message', '')}"
    return None


class RealNodeStack(LocalStack):
    """LocalStack with a real node: see the module docstring."""

    MODE = MODE
    STEPS = 10
    ROUTE = "through kubectl port-forward"

    def __init__(self, args: argparse.Namespace, out: TextIO = sys.stdout) -> None:
        super().__init__(args, out)
        self.node = None
        self.forwards: dict[tuple[str, int], tuple[subprocess.Popen, int]] = {}

    # ---- bring-up ---------------------------------------------------------------------------------

    def up(self, wait: bool = True) -> None:
        super().up(wait)
        if wait:
            t0 = self.begin("kubectl port-forward from 127.0.0.1 to the Services")
            self._expose()
            self.done(t0)

    def _start_cluster(self, bin_dir: Path) -> None:
        from .node import binaries as node_binaries
        from .node import config, podman_images
        from .node.capability import NODE_IMAGES
        from .node.cluster import start_real_cluster
        from .node.host import NODE_IP

        t0 = self.begin("the real node's parts (kubelet, kube-proxy, containerd, CoreDNS, provisioner)")
        cached = node_binaries.find()
        if cached is None:
            self.say("not cached: building them from source (first run only; tens of minutes)…")
        node_bin_dir = cached or node_binaries.ensure()
        self.done(t0, f"cached in {node_bin_dir}" if cached else f"built into {node_bin_dir}")

        t0 = self.begin(f"starting the control plane and a real node on the bridge {config.BRIDGE} ({NODE_IP})")
        self.cp, self.node = start_real_cluster(bin_dir, node_bin_dir)
        self.done(t0, f"ready: node {self.node.name}")

        t0 = self.begin("the engine, UI and gateway images, built from this tree, into the node's containerd "
                        "(no registry)")
        took = podman_images.load(self.node, list(NODE_IMAGES))
        fresh = {ref.rsplit("/", 1)[-1]: s for ref, s in took.items() if s is not None}
        self.done(t0, "imported " + ", ".join(f"{r} ({s} s)" for r, s in fresh.items()) if fresh
                  else "already in the node")

    def _prepare_pods(self) -> None:
        for flag, port in (("--port", self.args.port), ("--ui-port", self.args.ui_port)):
            if port is not None and not port_free(port):
                raise LocalModeError(f"{flag} {port}: the port is in use on 127.0.0.1")
        self.service_port = (self.sample["spec"].get("service") or {}).get("port", 8000)

    def _pods(self) -> list[dict]:
        out = self.cp.kubectl("get", "pods", "-n", self.namespace, "-l", f"app.kubernetes.io/instance={self.name}",
                              "-o", "json", check=False)
        return json.loads(out.stdout).get("items", []) if out.returncode == 0 else []

    def _wait_ready(self, timeout: float) -> None:
        """Until the RerankerDeployment is Ready: the operator reads it from the pods the kubelet's probes made
        Ready. A pod that cannot get there by waiting ends it early, with the reason."""
        progress = WaitProgress(self.say, timeout, lambda: self.urls().kubectl.replace(" get rrd", " describe rrd"))
        while True:
            if self.operator.poll() is not None:
                raise LocalModeError(f"the operator exited with code {self.operator.returncode}:\n{_tail(self.operator_log)}")
            conditions = {c["type"]: c for c in (self._rrd().get("status") or {}).get("conditions") or []}
            if conditions.get("Ready", {}).get("status") == "True":
                return
            pods = self._pods()
            for pod in pods:
                why = stuck_reason(pod)
                if why:
                    raise LocalModeError(f"pod {why}")
            line = "; ".join(pod_line(p) for p in sorted(pods, key=lambda p: p["metadata"]["name"])) or "no pods yet"
            progress.tick(line, self.name, conditions)
            time.sleep(1.0)

    def _expose(self) -> None:
        from .controlplane import free_ports

        wanted = [(self.name, self.service_port, self.args.port or 8000)]
        if (self.sample["spec"].get("ui") or {}).get("enabled", True):
            wanted.append((f"{self.name}-ui", 80, self.args.ui_port or 7860))
        for service, port, preferred in wanted:
            self._forward(service, port, preferred if port_free(preferred) else free_ports(1)[0])

    def _forward(self, service: str, port: int, local: int) -> None:
        """`kubectl port-forward service/<service> <local>:<port>` on 127.0.0.1, once it listens."""
        log_file = self.logs / f"port-forward-{service}.log"
        argv = [str(self.cp.bin_dir / "kubectl"), f"--kubeconfig={self.cp.admin_kubeconfig}", "-n", self.namespace,
                "port-forward", "--address", "127.0.0.1", f"service/{service}", f"{local}:{port}"]
        with log_file.open("ab") as f:
            proc = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, preexec_fn=_pdeathsig)
        self.forwards[(service, port)] = (proc, local)
        deadline = time.monotonic() + FORWARD_TIMEOUT
        while port_free(local):  # bound by kubectl once it listens
            if proc.poll() is not None or time.monotonic() > deadline:
                raise LocalModeError(f"kubectl port-forward to {service}:{port} did not listen on 127.0.0.1:{local}:\n"
                                f"{_tail(log_file)}")
            time.sleep(0.2)

    def tend(self) -> None:
        """A port-forward ends with the pod it picked (a rollout, a restart): started again on the same port."""
        for (service, port), (proc, local) in list(self.forwards.items()):
            if proc.poll() is not None:
                self.say(f"port-forward to {service}:{port} ended (its pod went away); starting it again")
                try:
                    self._forward(service, port, local)
                except LocalModeError as exc:
                    self.say(str(exc))

    def _local_port(self, service: str, port: int) -> int | None:
        forward = self.forwards.get((service, port))
        return forward[1] if forward and forward[0].poll() is None else None

    # ---- on failure, teardown ------------------------------------------------------------------------

    def print_log_tails(self, lines: int = 15) -> None:
        if self.operator_log_exists():
            self.say(f"--- last {lines} lines of operator.log ---")
            self.say(_tail(self.operator_log, lines))
        if self.cp is None or self.node is None:
            return
        for pod in self._pods():
            name = pod["metadata"]["name"]
            out = self.cp.kubectl("logs", "-n", self.namespace, name, "--all-containers", f"--tail={lines}",
                                  check=False)
            self.say(f"--- {pod_line(pod)}: last {lines} log lines ---")
            self.say((out.stdout or out.stderr).strip())
        self.say(f"--- last {lines} lines of the kubelet's log ---")
        self.say(self.node.log("kubelet", lines))

    def operator_log_exists(self) -> bool:
        return getattr(self, "operator_log", None) is not None and self.operator_log.is_file()

    def _stop_steps(self) -> list[tuple[str, Callable[[], None]]]:
        # The operator goes before the node: it would recreate the children the node's teardown deletes.
        return [
            ("port-forwards", self._stop_forwards),
            ("operator", self._stop_operator),
            ("real node", self._stop_node),
            ("control plane", lambda: self.cp and self.cp.stop()),
        ]

    def _stop_forwards(self) -> None:
        for proc, _ in self.forwards.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc, _ in self.forwards.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.forwards.clear()

    def _stop_node(self) -> None:
        if self.node is None:
            return
        self.node.stop()
        left = self.node.leftovers()
        if left:
            raise LocalModeError("left on the machine: " + "; ".join(left)
                            + " (python -m rerank_localdev.node.host sweep removes it)")
