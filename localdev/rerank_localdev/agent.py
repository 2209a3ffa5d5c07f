"""The node side of local mode in one loop: what a real cluster's storage provisioner, kube-proxy
and kubelet would do for one namespace, each pass:

1. provision a hostPath volume for every pending claim (volumes.py);
2. run, probe and stop the selected pods' containers as local processes (pod_runner.py);
3. proxy every Service port that selects pods (not headless) on a local listener and point it at
   the Service's ready pods (service_proxy.py says why not its EndpointSlices).

It runs in a daemon thread and polls (once a second by default): a handful of objects in one
namespace, so a poll costs little and no watch can go stale. `stop()` stops the pods first.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Mapping

from . import volumes
from .pod_runner import PodRunner
from .service_proxy import ServiceProxy, port_free, ready_backends

log = logging.getLogger(__name__)


class NodeAgent:
    def __init__(self, api_client, namespace: str, run_dir: Path, proxy: ServiceProxy, runner: PodRunner,
                 preferred_ports: Mapping[tuple[str, int], int] | None = None, interval: float = 1.0) -> None:
        from kubernetes import client

        self.core = client.CoreV1Api(api_client)
        self.namespace = namespace
        self.volume_root = run_dir / "volumes"
        self.proxy = proxy
        self.runner = runner
        self.preferred_ports = dict(preferred_ports or {})
        self.interval = interval
        self.last_error: str | None = None
        self.passes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="local-node-agent", daemon=True)

    def start(self) -> "NodeAgent":
        self._thread.start()
        return self

    def sync_once(self) -> None:
        volumes.provision_pending(self.core, self.namespace, self.volume_root)
        # Pods first: their Ready conditions are corrected before the proxy reads them.
        self.runner.sync()
        self.sync_services()
        self.passes += 1

    def sync_services(self) -> None:
        plain = self.core.api_client.sanitize_for_serialization
        services = plain(self.core.list_namespaced_service(self.namespace).items)
        pods = plain(self.core.list_namespaced_pod(self.namespace).items)
        for svc in services:
            spec = svc["spec"]
            if not spec.get("selector"):
                continue  # selector-less: kube-proxy programs nothing for it either
            if spec.get("clusterIP") == "None" and spec.get("publishNotReadyAddresses"):
                continue  # headless for per-pod names only (no local DNS): nothing to stand in for
            # A headless Service of Ready pods only (the gateway's view of the engines) resolves to
            # those pods; one proxy address that forwards to them stands in for that answer here.
            name = svc["metadata"]["name"]
            for p in spec.get("ports") or []:
                if p.get("protocol", "TCP") != "TCP":
                    continue
                if self.proxy.local_port(self.namespace, name, p["port"]) is None:
                    want = self.preferred_ports.get((name, p["port"]), 0)
                    if want and not port_free(want, self.proxy.host):
                        log.warning("port %d is taken; service %s:%d gets a free port", want, name, p["port"])
                        want = 0
                    self.proxy.listen(self.namespace, name, p["port"], want)
                self.proxy.set_backends(self.namespace, name, p["port"], ready_backends(svc, p["port"], pods))

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    self.sync_once()
                    self.last_error = None
                except Exception as exc:  # the API server restarting, a transient 5xx ...: next pass
                    if str(exc) != self.last_error:
                        log.warning("local node agent pass failed: %s", exc)
                    self.last_error = str(exc)
                self._stop.wait(self.interval)
        finally:
            # Stopped from this thread: the pods' processes are tied to it (PR_SET_PDEATHSIG).
            self.runner.stop()

    def stop(self, timeout: float = 60.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def wait_passes(self, n: int = 1, timeout: float = 30.0) -> None:
        """Blocks until `n` more passes completed (for callers that just changed the cluster)."""
        target, deadline = self.passes + n, time.monotonic() + timeout
        while self.passes < target and time.monotonic() < deadline:
            time.sleep(0.05)
