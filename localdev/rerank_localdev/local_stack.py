"""The local stack: a real control plane, the operator, the sample RerankerDeployment and what runs its pods,
brought up step by step on this machine (`LocalStack`), on simulated nodes; `real_local.RealNodeStack` swaps the
node side for a real node. `local_mode` (the `rerank-local` command) chooses between them and runs one.

Simulated nodes: a real control plane with simulated nodes (kwok); the engine and UI run as local
processes started from the pods' own specs. In order:

1. the control-plane binaries (built from source once, then cached) and a LocalControlPlane:
   etcd, kube-apiserver, controller-manager, scheduler, and kwok with one CPU node and one
   simulated GPU node;
2. the RerankerDeployment CRD, the operator's RBAC from the Helm chart, and the operator itself
   (`rerank-operator run --standalone`, as a local process, with its ServiceAccount's identity);
3. a tiny random-weight Qwen3 reranker built locally (cached), offered on a PersistentVolumeClaim
   as an air-gapped cluster would offer a model;
4. the sample RerankerDeployment (sample.yaml), which the operator turns into its StatefulSet,
   Services, UI Deployment and status ConfigMap;
5. the node side (agent.py): volumes for the claims, a local proxy per Service (kube-proxy's part),
   and each engine and UI pod run as a local process from the pod's own spec (the kubelet's part),
   its readiness probe written back to the pod.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TextIO

import yaml

from .local_pod import RUN_ID_ENV

log = logging.getLogger("rerank_localdev")

MODE = ("local mode: a real control plane with simulated nodes (kwok); the engine and UI run as "
        "local processes started from the pods' own specs")
SAMPLE = Path(__file__).with_name("sample.yaml")
MODEL_CLAIM = "reranker-models"
MODEL_DIR_NAME = "tiny-qwen3-reranker"
NODES = ({"name": "local-cpu-0"}, {"name": "local-gpu-0", "gpus": 2})
OPERATOR_RELEASE = "rerank-operator"
# The chart lives in the source tree, not in the wheel.
CHART = Path(__file__).resolve().parents[2] / "charts" / "rerank-operator"
STEPS = 7

SMOKE_QUERY = "What is the capital of France?"
SMOKE_DOCUMENTS = [
    "Paris is the capital and largest city of France.",
    "The quick brown fox jumps over the lazy dog.",
    "Berlin is the capital of Germany.",
]


class LocalModeError(RuntimeError):
    """A step failed; the message says which and why (with a log tail where there is one)."""


def models_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rerank-operator" / "models"


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# Local URLs only: never through an HTTP(S)_PROXY from the environment.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _http(url: str, body: Any = None, timeout: float = 30.0) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})
    try:
        with _DIRECT.open(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@dataclass
class Urls:
    endpoint: str
    ui: str | None
    kubectl: str
    curl: str
    logs: Path


class WaitProgress:
    """The one status line printed while waiting for Ready: again when it changes or every 15 s, and the error
    once the time is up."""

    def __init__(self, say: Callable[[str], None], timeout: float, describe_command: Callable[[], str]) -> None:
        self.say, self.timeout, self.describe_command = say, timeout, describe_command
        self.start = time.monotonic()
        self.deadline = self.start + timeout
        self.last_line, self.last_print = "", 0.0

    def tick(self, line: str, name: str, conditions: dict[str, dict]) -> None:
        if "Ready" in conditions:
            line += f"; {name} Ready={conditions['Ready'].get('status')} ({conditions['Ready'].get('reason')})"
        now = time.monotonic()
        if line != self.last_line or now - self.last_print > 15:
            self.say(f"      {line} ({now - self.start:.0f} s)")
            self.last_line, self.last_print = line, now
        if now > self.deadline:
            raise LocalModeError(f"not Ready within {self.timeout:.0f} s: {line}\nkubectl: {self.describe_command()}")


class LocalStack:
    """Brings the stack up step by step (`up`), reports (`urls`), checks (`smoke`), tears down (`down`).
    Simulated nodes; real_local.RealNodeStack swaps the node side for a real node."""

    MODE = MODE
    STEPS = STEPS
    ROUTE = "through the local service proxy"
    choice_reason = ""

    def __init__(self, args: argparse.Namespace, out: TextIO = sys.stdout) -> None:
        self.args = args
        self.out = out
        self.run_id = os.environ.get(RUN_ID_ENV) or uuid.uuid4().hex[:12]
        self.run_dir = Path(tempfile.mkdtemp(prefix="rerank-local-"))
        self.logs = self.run_dir / "logs"
        self.logs.mkdir()
        self.namespace = "default"
        sample = yaml.safe_load(SAMPLE.read_text())
        self.sample = sample
        self.name: str = sample["metadata"]["name"]
        self.cp = None
        self.operator: subprocess.Popen | None = None
        self.proxy = None
        self.runner = None
        self.agent = None
        self.step = 0
        self.started = time.monotonic()

    # ---- output -----------------------------------------------------------------------------------

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)
        if text:
            log.info("%s", text.strip())

    def begin(self, text: str) -> float:
        self.step += 1
        print(f"[{self.step}/{self.STEPS}] {text}… ", end="", file=self.out, flush=True)
        log.info("step %d: %s", self.step, text)
        return time.monotonic()

    def done(self, t0: float, note: str = "done") -> None:
        self.say(f"{note} ({time.monotonic() - t0:.1f} s)")

    # ---- bring-up ---------------------------------------------------------------------------------

    def up(self, wait: bool = True) -> None:
        """Everything up and the RerankerDeployment `self.sample` applied; with ``wait``, until it is Ready."""
        from . import binaries

        # Every process started from here on (control plane, operator, pods) carries the run id.
        os.environ[RUN_ID_ENV] = self.run_id
        self.say(f"rerank-operator {self.MODE}.")
        if self.choice_reason:
            self.say(f"Nodes: {self.choice_reason}")
        self.say(f"Logs: {self.logs}")

        t0 = self.begin("control-plane binaries")
        cached = binaries.find()
        if cached is None:
            self.say("not cached: building etcd, kube-apiserver, kube-controller-manager, kube-scheduler, "
                     "kubectl, kwok and helm from source (first run only; tens of minutes)…")
            bin_dir = binaries.ensure()
        else:
            bin_dir = cached
        self.done(t0, f"cached in {bin_dir}" if cached else f"built into {bin_dir}")

        self._start_cluster(bin_dir)

        t0 = self.begin("installing the RerankerDeployment CRD and the operator's RBAC")
        self._install_api()
        self.done(t0)

        t0 = self.begin("starting the operator")
        self._start_operator()
        self.done(t0, f"running as pid {self.operator.pid}")

        t0 = self.begin("tiny Qwen3 reranker model")
        model, fresh = self._ensure_model()
        self.done(t0, f"{'built' if fresh else 'cached'} in {model}")

        t0 = self.begin(f"applying the sample RerankerDeployment {self.namespace}/{self.name}")
        self._prepare_pods()
        self._offer_model(model)
        self.cp.kubectl("apply", "-n", self.namespace, "-f", "-", input=yaml.safe_dump(self.sample))
        self.done(t0)
        if not wait:
            return

        t0 = self.begin("waiting for the deployment to become Ready")
        self.say("")
        self._wait_ready(self.args.timeout)
        self.say(f"      Ready ({time.monotonic() - t0:.1f} s)")

    def _start_cluster(self, bin_dir: Path) -> None:
        """The control plane and the nodes the pods run on (here: simulated by kwok)."""
        from .controlplane import LocalControlPlane

        t0 = self.begin("starting the control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok)")
        # Pods start Running but not Ready: the pod runner reports readiness from the local
        # processes' own probes, as a kubelet would.
        self.cp = LocalControlPlane(bin_dir=bin_dir, nodes=NODES, pods_ready_on_start=False)
        self.cp.start()
        nodes = ", ".join(n["name"] + (f" ({n['gpus']} simulated GPUs)" if n.get("gpus") else "") for n in NODES)
        self.done(t0, f"ready: nodes {nodes}")

    def _install_api(self) -> None:
        from rerank_operator.api.crd import install_crd

        with self.cp.api_client() as api:
            install_crd(api)
        self.cp.kubectl("create", "namespace", "rerank-system")
        if (CHART / "Chart.yaml").is_file():
            # The chart's own Role/ClusterRole and binding for the operator's ServiceAccount: the
            # operator below runs with exactly the permissions it has in a cluster.
            from .versions import KUBERNETES

            # --kube-version: offline `helm template` otherwise assumes an old default cluster version.
            rendered = self.cp.helm("template", OPERATOR_RELEASE, str(CHART), "--namespace", "rerank-system",
                                    "--kube-version", KUBERNETES.lstrip("v"),
                                    "--show-only", "templates/serviceaccount.yaml",
                                    "--show-only", "templates/rbac.yaml").stdout
            self.cp.kubectl("apply", "-f", "-", input=rendered)
            self.operator_kubeconfig = self.cp.operator_kubeconfig
        else:
            self.say("(the Helm chart is not next to this package: the operator runs as cluster admin) ")
            self.operator_kubeconfig = self.cp.admin_kubeconfig

    def _start_operator(self) -> None:
        from .controlplane import free_ports

        liveness, metrics = free_ports(2)
        self.operator_log = self.logs / "operator.log"
        argv = [sys.executable, "-m", "rerank_operator", "run", "--standalone",
                "--kubeconfig", str(self.operator_kubeconfig),
                "--liveness", f"http://127.0.0.1:{liveness}/healthz",
                "--metrics-port", str(metrics), "--metrics-address", "127.0.0.1"]
        with self.operator_log.open("ab") as f:
            self.operator = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                             start_new_session=True, preexec_fn=_pdeathsig,
                                             env={**os.environ, "KUBECONFIG": str(self.operator_kubeconfig)})
        deadline = time.monotonic() + 90
        while True:
            if self.operator.poll() is not None:
                raise LocalModeError(f"the operator exited with code {self.operator.returncode}:\n{_tail(self.operator_log)}")
            try:
                if _http(f"http://127.0.0.1:{liveness}/healthz", timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise LocalModeError(f"the operator's liveness endpoint did not answer in 90 s:\n{_tail(self.operator_log)}")
            time.sleep(0.5)

    def _ensure_model(self) -> tuple[Path, bool]:
        from rerank_operator.serving.tiny_model import build_tiny_reranker

        target = models_dir() / MODEL_DIR_NAME
        marker = target / "tiny-reranker.json"
        before = marker.read_text() if marker.exists() else None
        # The builder's progress bars belong in the log, not between the progress lines.
        with (self.logs / "model-build.log").open("a") as f, contextlib.redirect_stderr(f):
            build_tiny_reranker(target)
        return target, marker.read_text() != before

    def _offer_model(self, model: Path) -> None:
        """The model directory's parent as a read-only claim, pre-provisioned the way an
        administrator offers an air-gapped model: a PersistentVolume bound to `reranker-models`."""
        from .volumes import host_path_pv

        pv = host_path_pv(f"{self.namespace}-{MODEL_CLAIM}", str(model.parent), "10Gi", ["ReadOnlyMany"],
                          claim=(self.namespace, MODEL_CLAIM))
        pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
               "metadata": {"name": MODEL_CLAIM, "namespace": self.namespace},
               "spec": {"accessModes": ["ReadOnlyMany"], "resources": {"requests": {"storage": "10Gi"}},
                        "storageClassName": "", "volumeName": pv["metadata"]["name"]}}
        self.cp.kubectl("apply", "-f", "-", input=yaml.safe_dump_all([pv, pvc]))

    def _prepare_pods(self) -> None:
        """Before the sample is applied: what runs its pods (here: the local pod runner and service proxy)."""
        self._start_node_agent()

    def _start_node_agent(self) -> None:
        from .agent import NodeAgent
        from .pod_runner import PodRunner
        from .service_proxy import ServiceProxy, port_free

        for flag, port in (("--port", self.args.port), ("--ui-port", self.args.ui_port)):
            if port is not None and not port_free(port):
                raise LocalModeError(f"{flag} {port}: the port is in use on 127.0.0.1")
        self.proxy = ServiceProxy().start()
        api = self.cp.api_client()
        from kubernetes import client

        self.runner = PodRunner(client.CoreV1Api(api), self.namespace,
                                "app.kubernetes.io/managed-by=rerank-operator", self.run_dir,
                                self.proxy.addresses, run_id=self.run_id)
        service_port = (self.sample["spec"].get("service") or {}).get("port", 8000)
        preferred = {(self.name, service_port): self.args.port or 8000, (f"{self.name}-ui", 80): self.args.ui_port or 7860}
        self.agent = NodeAgent(api, self.namespace, self.run_dir, self.proxy, self.runner, preferred).start()
        self.service_port = service_port
        # The agent logs to local mode's log file; pods log next to it.
        (self.run_dir / "logs").mkdir(exist_ok=True)

    # ---- waiting ----------------------------------------------------------------------------------

    def _rrd(self) -> dict[str, Any]:
        out = self.cp.kubectl("get", "rrd", self.name, "-n", self.namespace, "-o", "json", check=False)
        return json.loads(out.stdout) if out.returncode == 0 else {}

    def _engine_state(self, rrd: dict[str, Any]) -> str:
        """One progress line, from what runs here (the processes and their probes)."""
        want = (rrd.get("spec") or {}).get("replicas", self.sample["spec"].get("replicas", 1))
        running = [s for s in self.runner.snapshot() if s["container"] == "engine"]
        ready = sum(1 for s in running if s["ready"])
        waiting = {k: v for k, v in self.runner.waiting.items() if "-engine-" in k}
        if waiting:
            detail = "; ".join(f"{k}: {v}" for k, v in sorted(waiting.items()))
        elif not running:
            detail = "waiting for the engine pod to be scheduled"
        elif ready < len(running):
            detail = "loading model"
        else:
            detail = ""
        for s in running:
            if s["restarts"]:
                detail += f"; {s['pod']} restarted {s['restarts']}x (last exit code {s['last_exit']})"
        return f"engine {ready}/{want} ready" + (f", {detail}" if detail else "")

    def _wait_ready(self, timeout: float) -> None:
        progress = WaitProgress(self.say, timeout, lambda: self.urls().kubectl.replace(" get rrd", " describe rrd"))
        ui_enabled = (self.sample["spec"].get("ui") or {}).get("enabled", True)
        while True:
            rrd = self._rrd()
            if self.operator.poll() is not None:
                raise LocalModeError(f"the operator exited with code {self.operator.returncode}:\n{_tail(self.operator_log)}")
            if self.runner.errors:
                pod, why = next(iter(self.runner.errors.items()))
                raise LocalModeError(f"pod {pod} cannot run locally: {why}")
            running = self.runner.snapshot()
            for s in running:
                if s["restarts"] >= 3:
                    raise LocalModeError(f"{s['pod']}/{s['container']} keeps exiting (code {s['last_exit']}); "
                                    f"log {s['log']}:\n{_tail(Path(s['log']))}")
            conditions = {c["type"]: c for c in (rrd.get("status") or {}).get("conditions") or []}
            ready = conditions.get("Ready", {}).get("status") == "True"
            engine_backends = self._backends(self.name, self.service_port)
            ui_backends = self._backends(f"{self.name}-ui", 80) if ui_enabled else [None]
            if ready and engine_backends and ui_backends:
                return
            line = self._engine_state(rrd)
            if ui_enabled:
                line += f"; UI {'ready' if ui_backends else 'starting'}"
            progress.tick(line, self.name, conditions)
            time.sleep(1.0)

    def _backends(self, service: str, port: int) -> list:
        if self.proxy.local_port(self.namespace, service, port) is None:
            return []
        return self.proxy.backends(self.namespace, service, port)

    # ---- results ----------------------------------------------------------------------------------

    def urls(self) -> Urls:
        port = self._local_port(self.name, self.service_port)
        ui_port = self._local_port(f"{self.name}-ui", 80)
        endpoint = f"http://127.0.0.1:{port}/v1/rerank"
        served = self.sample["spec"]["model"].get("servedModelName") or self.sample["spec"]["model"]["name"]
        body = {"model": served, "query": SMOKE_QUERY, "documents": SMOKE_DOCUMENTS,
                "instruction": "Given a question, find the passage that answers it"}
        curl = (f"curl -s {endpoint} -H 'Content-Type: application/json' -d {shlex.quote(json.dumps(body))}")
        kubectl = f"{shlex.quote(str(self.cp.bin_dir / 'kubectl'))} --kubeconfig {shlex.quote(str(self.cp.admin_kubeconfig))} get rrd"
        return Urls(endpoint, f"http://127.0.0.1:{ui_port}/" if ui_port else None, kubectl, curl, self.logs)

    def tend(self) -> None:
        """Called every few seconds while running: keeps the host's way in working (here nothing to do)."""

    def _local_port(self, service: str, port: int) -> int | None:
        """The 127.0.0.1 port that reaches `service`:`port`, None while there is none."""
        return self.proxy.local_port(self.namespace, service, port)

    def report(self) -> None:
        u = self.urls()
        self.say("")
        self.say(f"Up in {time.monotonic() - self.started:.0f} s ({self.MODE}).")
        self.say(f"  Rerank endpoint  {u.endpoint}   (Service {self.namespace}/{self.name} {self.ROUTE})")
        if u.ui:
            self.say(f"  Web UI           {u.ui}")
        self.say(f"  kubectl          {u.kubectl}")
        self.say(f"  Logs             {u.logs}")
        self.say("")
        self.say("Try it:")
        self.say(f"  {u.curl}")
        self.say("")

    def smoke(self) -> bool:
        """The printed curl and kubectl commands, run as printed, plus a GET of the UI page."""
        u = self.urls()
        ok = True
        if shutil.which("curl"):
            proc = subprocess.run(["sh", "-c", u.curl], capture_output=True, text=True, timeout=120)
            raw = proc.stdout
        else:  # same request without curl
            status, body = _http(u.endpoint, json.loads(shlex.split(u.curl)[-1]), timeout=120)
            raw = body.decode(errors="replace")
        try:
            results = json.loads(raw)["results"]
            indices = [r["index"] for r in results]
            scores = [r["relevance_score"] for r in results]
            sorted_ok = scores == sorted(scores, reverse=True) and sorted(indices) == list(range(len(SMOKE_DOCUMENTS)))
            self.say(f"smoke: rerank -> indices {indices}, scores {[round(s, 4) for s in scores]} "
                     f"({'sorted' if sorted_ok else 'NOT sorted'})")
            ok &= sorted_ok
        except (ValueError, KeyError, TypeError) as exc:
            self.say(f"smoke: rerank FAILED ({exc!r}): {raw[:500]}")
            ok = False
        if u.ui:
            try:
                status, page = _http(u.ui, timeout=30)
            except OSError as exc:
                status, page = 0, str(exc).encode()
            self.say(f"smoke: UI {u.ui} -> HTTP {status}")
            ok &= status == 200
        kubectl = subprocess.run(["sh", "-c", u.kubectl], capture_output=True, text=True, timeout=60)
        self.say("smoke: " + u.kubectl.split(" --kubeconfig")[0].rsplit("/", 1)[-1] + " get rrd ->")
        for line in (kubectl.stdout or kubectl.stderr).strip().splitlines():
            self.say(f"  {line}")
        ok &= kubectl.returncode == 0 and self.name in kubectl.stdout
        return ok

    def print_log_tails(self, lines: int = 15) -> None:
        """On failure, the end of every process log, before teardown removes them (CI shows only stdout)."""
        logs = [self.logs / "operator.log"] + [Path(s["log"]) for s in (self.runner.snapshot() if self.runner else [])]
        for path in logs:
            if path.is_file():
                self.say(f"--- last {lines} lines of {path.name} ---")
                self.say(_tail(path, lines))

    # ---- teardown ---------------------------------------------------------------------------------

    def _stop_steps(self) -> list[tuple[str, Callable[[], None]]]:
        return [
            ("engine and UI processes", lambda: self.agent and self.agent.stop()),
            ("operator", self._stop_operator),
            ("service proxy", lambda: self.proxy and self.proxy.stop()),
            ("control plane", lambda: self.cp and self.cp.stop()),
        ]

    def down(self) -> None:
        t0 = time.monotonic()
        for what, stop in self._stop_steps():
            try:
                stop()
            except Exception as exc:  # keep tearing down the rest
                self.say(f"stopping the {what} failed: {exc}")
        # The log file closes before its directory goes (a later record would recreate it).
        root = logging.getLogger()
        for h in list(root.handlers):
            if isinstance(h, logging.FileHandler) and Path(h.baseFilename).is_relative_to(self.run_dir):
                root.removeHandler(h)
                h.close()
        if not self.args.keep_logs:
            shutil.rmtree(self.run_dir, ignore_errors=True)
        self.say(f"Stopped everything ({time.monotonic() - t0:.1f} s).")

    def _stop_operator(self) -> None:
        if self.operator is None or self.operator.poll() is not None:
            return
        os.killpg(self.operator.pid, signal.SIGTERM)
        try:
            self.operator.wait(15)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(self.operator.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.operator.wait(10)


def _pdeathsig() -> None:
    import ctypes

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)
