"""The kubelet's part in local mode: runs the containers of chosen pods as local processes.

kwok marks a scheduled pod Running and gives it a (loopback) IP, but runs nothing (local mode
starts kwok with `pods_ready_on_start=False`, so the pod is not Ready either). For each such pod
that this runner selects, `sync()`:

* starts every container as a local process built from the pod's own spec (local_pod.py lists
  the substitutions) once its volumes can be resolved (volumes.py);
* executes the container's readinessProbe against the pod IP and writes the outcome to the pod's
  Ready/ContainersReady conditions, as the kubelet does, so the EndpointSlice controller, the
  StatefulSet's readyReplicas and the RerankerDeployment's status all follow whether the engine
  really answers (with kwok's default stages, which report every pod Ready at once, this also
  puts the truth back);
* restarts a container that exits (restartPolicy Always, with back-off) and counts it in
  `restartCount`;
* stops the processes of a pod that is deleted or no longer selected.

Processes run in their own process groups and die with this process (PR_SET_PDEATHSIG); `stop()`
terminates every group (SIGTERM, then SIGKILL after the pod's grace period, at most `max_grace`).
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping

from . import local_pod, volumes
from .local_pod import LocalPodError, LocalProcess

log = logging.getLogger(__name__)

RESTART_BACKOFF_MAX = 30.0
# Probes go straight to the pod IP, as the kubelet's do: never through an HTTP(S)_PROXY.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))
# How long a pod waits for a Service its environment names to be proxied before it starts anyway.
SERVICE_WAIT_SECONDS = 60.0


def _pdeathsig() -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: never outlive the runner


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@dataclass
class _Container:
    name: str
    image: str
    process: LocalProcess
    log: Path
    probe_url: str | None
    popen: subprocess.Popen | None = None
    started_at: str = ""
    restarts: int = 0
    next_start: float = 0.0
    ready: bool = False
    last_exit: int | None = None


@dataclass
class _Pod:
    uid: str
    name: str
    dir: Path
    containers: list[_Container] = field(default_factory=list)
    grace: float = 30.0
    reported: tuple | None = None


class PodRunner:
    """Runs the containers of the pods in `namespace` matching `label_selector`.

    `core`: a kubernetes CoreV1Api allowed to read pods, claims, volumes, ConfigMaps and Secrets
    and to patch pods/status. `services`: returns the proxied Service addresses
    (ServiceProxy.addresses). `run_id`: tags every process (local_pod.RUN_ID_ENV)."""

    def __init__(self, core, namespace: str, label_selector: str, run_dir: Path,
                 services: Callable[[], Mapping[tuple[str, str, int], str]], run_id: str | None = None,
                 max_grace: float = 15.0, probe_timeout: float = 1.0) -> None:
        self.core = core
        self.namespace = namespace
        self.label_selector = label_selector
        self.run_dir = run_dir
        self.services = services
        self.run_id = run_id
        self.max_grace = max_grace
        self.probe_timeout = probe_timeout
        self.pods: dict[str, _Pod] = {}
        self.waiting: dict[str, str] = {}
        """Pod name -> why it is not started yet (volume unbound, Service not proxied, ...)."""
        self.errors: dict[str, str] = {}
        """Pod name -> why it cannot run locally at all."""
        self._first_seen: dict[str, float] = {}
        self._lock = threading.Lock()

    # ---- cluster reads ----------------------------------------------------------------------------

    def _plain(self, obj: Any) -> Any:
        return self.core.api_client.sanitize_for_serialization(obj)

    def _read(self, fn, *args) -> Any:
        from kubernetes.client.rest import ApiException

        try:
            return self._plain(fn(*args))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def _claim_path(self, claim: str) -> str | None:
        pvc = self._read(self.core.read_namespaced_persistent_volume_claim, claim, self.namespace)
        if not pvc or (pvc.get("status") or {}).get("phase") != "Bound":
            return None
        pv = self._read(self.core.read_persistent_volume, pvc["spec"]["volumeName"])
        source = (pv or {}).get("spec", {})
        path = (source.get("hostPath") or source.get("local") or {}).get("path")
        if path is None:
            raise LocalPodError(f"volume of claim {claim} is neither hostPath nor local; local mode cannot mount it")
        return path

    def _config_map(self, name: str) -> Mapping[str, str] | None:
        cm = self._read(self.core.read_namespaced_config_map, name, self.namespace)
        return None if cm is None else (cm.get("data") or {})

    def _secret(self, name: str) -> Mapping[str, str] | None:
        s = self._read(self.core.read_namespaced_secret, name, self.namespace)
        return None if s is None else (s.get("data") or {})

    # ---- the loop body ----------------------------------------------------------------------------

    def sync(self) -> None:
        with self._lock:
            pods = self._plain(self.core.list_namespaced_pod(self.namespace, label_selector=self.label_selector).items)
            live = {}
            for pod in pods:
                meta, status = pod["metadata"], pod.get("status") or {}
                if meta.get("deletionTimestamp") or status.get("phase") != "Running" or not status.get("podIP"):
                    continue
                live[meta["uid"]] = pod
            for uid in [u for u in self.pods if u not in live]:
                self._stop_pod(self.pods.pop(uid))
            for uid, pod in live.items():
                if uid not in self.pods:
                    self._try_start(pod)
                if uid in self.pods:
                    self._tend(self.pods[uid], pod)
                else:
                    self._not_started(pod)

    def _try_start(self, pod: Mapping[str, Any]) -> None:
        name, uid = pod["metadata"]["name"], pod["metadata"]["uid"]
        if name in self.errors:
            return
        self._first_seen.setdefault(uid, time.monotonic())
        pod_dir = self.run_dir / "pods" / f"{name}-{uid[:8]}"
        try:
            dirs = volumes.pod_volume_dirs(pod, pod_dir, self._claim_path, self._config_map, self._secret)
            services = dict(self.services())
            containers = []
            for c in pod["spec"]["containers"]:
                env = local_pod.resolve_env(c, pod, self._secret_key, self._config_map_key)
                missing = [ref for v in [*env.values(), *(c.get("command") or []), *(c.get("args") or [])]
                           for ref in local_pod.service_refs(v) if ref not in services]
                if missing and time.monotonic() - self._first_seen[uid] < SERVICE_WAIT_SECONDS:
                    ns, svc, port = missing[0]
                    raise volumes.VolumeNotReady(f"waiting for service {ns}/{svc}:{port} to be proxied")
                process = local_pod.local_process(pod, c["name"], env, dirs, services, run_id=self.run_id)
                probe = local_pod.http_probe(c, pod["status"]["podIP"])
                containers.append(_Container(c["name"], c["image"], process,
                                             self.run_dir / "logs" / f"{name}.{c['name']}.log", probe))
        except volumes.VolumeNotReady as exc:
            self.waiting[name] = str(exc)
            return
        except LocalPodError as exc:
            self.errors[name] = str(exc)
            log.error("pod %s cannot run locally: %s", name, exc)
            return
        self.waiting.pop(name, None)
        grace = pod["spec"].get("terminationGracePeriodSeconds", 30)
        p = _Pod(uid, name, pod_dir, containers, grace=min(float(grace), self.max_grace))
        self.pods[uid] = p
        for c in containers:
            c.log.parent.mkdir(parents=True, exist_ok=True)
            with c.log.open("a") as f:
                f.write(f"# pod {name}, container {c.name}, run locally as:\n# {c.process.shell()}\n")
                f.writelines(f"# substitution: {s}\n" for s in c.process.substitutions)
            self._spawn(p, c)

    def _not_started(self, pod: Mapping[str, Any]) -> None:
        """Until a pod's processes run, its Ready condition says why (kwok's default stages would
        report it Ready the moment it is scheduled)."""
        name = pod["metadata"]["name"]
        why = self.errors.get(name) or self.waiting.get(name) or "not started yet"
        current = {c["type"]: c for c in (pod.get("status") or {}).get("conditions") or []}
        ready = current.get("Ready") or {}
        if ready.get("status") == "False" and ready.get("message") == f"local mode: {why}":
            return
        conditions = []
        for type_ in ("Ready", "ContainersReady"):
            cond = {"type": type_, "status": "False", "reason": "ContainersNotReady", "message": f"local mode: {why}"}
            if (current.get(type_) or {}).get("status") != "False":
                cond["lastTransitionTime"] = _now()
            conditions.append(cond)
        patch = {"status": {"conditions": conditions}}
        from kubernetes.client.rest import ApiException

        try:
            self.core.patch_namespaced_pod_status(name, self.namespace, patch,
                                                  _content_type="application/strategic-merge-patch+json")
        except ApiException as exc:
            if exc.status != 404:
                raise

    def _secret_key(self, name: str, key: str) -> str | None:
        import base64

        data = self._secret(name)
        return None if data is None or key not in data else base64.b64decode(data[key]).decode()

    def _config_map_key(self, name: str, key: str) -> str | None:
        data = self._config_map(name)
        return None if data is None else data.get(key)

    def _spawn(self, pod: _Pod, c: _Container) -> None:
        pod.dir.mkdir(parents=True, exist_ok=True)
        with c.log.open("ab") as out:
            c.popen = subprocess.Popen(
                c.process.argv, env=c.process.env, cwd=pod.dir, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
                # Dies when the forking thread ends: the agent thread stops every pod before it ends.
                preexec_fn=_pdeathsig,
            )
        c.ready = False
        c.started_at = _now()
        log.info("started %s/%s as pid %d (log %s)", pod.name, c.name, c.popen.pid, c.log)

    def _probe(self, url: str) -> bool:
        try:
            with _DIRECT.open(url, timeout=self.probe_timeout) as resp:
                return 200 <= resp.status < 400
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def _tend(self, pod: _Pod, obj: Mapping[str, Any]) -> None:
        for c in pod.containers:
            if c.popen is not None and c.popen.poll() is not None:
                c.last_exit = c.popen.returncode
                c.popen, c.ready = None, False
                c.restarts += 1
                delay = min(RESTART_BACKOFF_MAX, 2.0 ** c.restarts)
                c.next_start = time.monotonic() + delay
                log.warning("%s/%s exited with code %s; restarting in %.0f s; log tail:\n%s",
                            pod.name, c.name, c.last_exit, delay, _tail(c.log))
            if c.popen is None and time.monotonic() >= c.next_start:
                self._spawn(pod, c)
            if c.popen is not None:
                c.ready = self._probe(c.probe_url) if c.probe_url else True
        # ConfigMap and Secret volumes follow their objects, as the kubelet's periodic sync does.
        try:
            volumes.pod_volume_dirs(obj, pod.dir, self._claim_path, self._config_map, self._secret)
        except volumes.VolumeNotReady:
            pass
        self._report(pod, obj)

    def _report(self, pod: _Pod, obj: Mapping[str, Any]) -> None:
        """Writes readiness and container states to the pod's status, as the kubelet does, when
        they changed (or when something else, kwok at start, wrote different ones)."""
        ready = all(c.ready for c in pod.containers)
        want = "True" if ready else "False"
        current = {c["type"]: c.get("status") for c in (obj.get("status") or {}).get("conditions") or []}
        key = (want, tuple((c.name, c.ready, c.restarts, c.popen is not None) for c in pod.containers))
        if key == pod.reported and current.get("Ready") == want and current.get("ContainersReady") == want:
            return
        now = _now()
        conditions = []
        for type_ in ("Ready", "ContainersReady"):
            cond: dict[str, Any] = {"type": type_, "status": want}
            if current.get(type_) != want:
                cond["lastTransitionTime"] = now
            # null deletes the keys in a strategic merge (conditions merge by type).
            cond.update({"reason": None, "message": None} if ready else
                        {"reason": "ContainersNotReady", "message": "readiness probe of the local process not passing"})
            conditions.append(cond)
        # containerStatuses has no merge key: the list is replaced whole, so each entry is complete.
        statuses = []
        for c in pod.containers:
            entry: dict[str, Any] = {"name": c.name, "image": c.image, "imageID": "", "ready": c.ready,
                                     "restartCount": c.restarts, "started": c.popen is not None}
            if c.popen is not None:
                entry["state"] = {"running": {"startedAt": c.started_at}}
            else:
                entry["state"] = {"waiting": {"reason": "CrashLoopBackOff",
                                              "message": f"local process exited with code {c.last_exit}"}}
            if c.last_exit is not None:
                entry["lastState"] = {"terminated": {"exitCode": c.last_exit, "reason": "Error" if c.last_exit else "Completed"}}
            statuses.append(entry)
        from kubernetes.client.rest import ApiException

        try:
            self.core.patch_namespaced_pod_status(
                pod.name, self.namespace, {"status": {"conditions": conditions, "containerStatuses": statuses}},
                _content_type="application/strategic-merge-patch+json")
            pod.reported = key
        except ApiException as exc:
            if exc.status != 404:  # deleted meanwhile: the next sync stops it
                raise

    # ---- status and teardown ----------------------------------------------------------------------

    def snapshot(self) -> list[dict[str, Any]]:
        """What runs now: one entry per container (pod, container, pid, ready, restarts, log)."""
        with self._lock:
            return [{"pod": p.name, "container": c.name, "pid": c.popen.pid if c.popen else None,
                     "ready": c.ready, "restarts": c.restarts, "last_exit": c.last_exit, "log": str(c.log)}
                    for p in self.pods.values() for c in p.containers]

    def pids(self) -> list[int]:
        with self._lock:
            return [c.popen.pid for p in self.pods.values() for c in p.containers if c.popen]

    def _stop_pod(self, pod: _Pod) -> None:
        running = [c for c in pod.containers if c.popen is not None]
        for c in running:
            _signal_group(c.popen, signal.SIGTERM)
        deadline = time.monotonic() + pod.grace
        for c in running:
            try:
                c.popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            _signal_group(c.popen, signal.SIGKILL)  # the group's stragglers too (vLLM's engine core)
            c.popen.wait(10)
            c.popen = None
        log.info("stopped pod %s", pod.name)

    def stop(self) -> None:
        with self._lock:
            pods, self.pods = list(self.pods.values()), {}
            for p in pods:
                self._stop_pod(p)


def _signal_group(popen: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(popen.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
