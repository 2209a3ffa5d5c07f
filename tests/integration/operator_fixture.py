"""The operator as the cluster sees it: `python -m rerank_operator run` in its own process against
the harness' API server (admin credentials; the chart's RBAC is tested with the Helm chart).

`operator` (session): one operator for the whole session, watching only namespaces named
`rrop-*` (so tests that drive the autoscaler by hand in other namespaces see no operator), with a
3 s drift interval. `op_namespace` (function): a fresh `rrop-*` namespace for one test.
Import both into a test module to use them. `start_operator`: a further operator process of a
test's own (e.g. one to kill), watching the namespaces the test names.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from rerank_operator.api.crd import install_crd
from rerank_localdev.controlplane import free_ports
from tests.fixtures.cluster import dns_safe_test_name, fresh_namespace

NAMESPACE_PREFIX = "rrop-"
DRIFT_INTERVAL = 3.0


def _die_with_parent() -> None:
    # In the child before exec: SIGKILL when the parent dies (PR_SET_PDEATHSIG), however it dies.
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)


@dataclass
class OperatorProcess:
    popen: subprocess.Popen
    log: Path
    liveness_url: str
    metrics_url: str

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def metrics(self) -> str:
        with urllib.request.urlopen(self.metrics_url, timeout=5) as resp:
            return resp.read().decode()

    def wait_live(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.popen.poll() is not None:
                raise RuntimeError(f"the operator exited with {self.popen.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.liveness_url, timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.popen.kill()
                raise TimeoutError(f"the operator's liveness endpoint did not answer in {timeout:.0f} s:\n"
                                   f"{self.log_tail()}")
            time.sleep(0.2)

    def kill(self) -> None:
        """SIGKILL: no cleanup of any kind, as when a node dies."""
        self.popen.kill()
        self.popen.wait()

    def stop(self) -> None:
        self.popen.terminate()
        try:
            self.popen.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


@pytest.fixture(scope="session")
def crd_installed_once(control_plane) -> None:
    install_crd(control_plane.api_client())


def start_operator(control_plane, log: Path, *, namespace: str = f"{NAMESPACE_PREFIX}*",
                   drift_interval: float = DRIFT_INTERVAL, extra: tuple[str, ...] = ("--standalone",),
                   wait_live: bool = True) -> OperatorProcess:
    """`rerank-operator run` in its own process (appending to ``log``), watching ``namespace``."""
    liveness_port, metrics_port = free_ports(2)
    argv = [sys.executable, "-m", "rerank_operator", "run", *extra,
            "--namespace", namespace, "--drift-interval", str(drift_interval),
            "--liveness", f"http://127.0.0.1:{liveness_port}/healthz",
            "--metrics-port", str(metrics_port), "--metrics-address", "127.0.0.1"]
    env = {**control_plane.env(), "PYTHONUNBUFFERED": "1"}
    with open(log, "ab") as out:
        # Dies with the test process even if that is killed (no operator left behind).
        popen = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                 preexec_fn=_die_with_parent)
    proc = OperatorProcess(popen, log, f"http://127.0.0.1:{liveness_port}/healthz",
                           f"http://127.0.0.1:{metrics_port}/metrics")
    if wait_live:
        proc.wait_live()
    return proc


@pytest.fixture(scope="session")
def operator(control_plane, crd_installed_once, tmp_path_factory) -> Iterator[OperatorProcess]:
    proc = start_operator(control_plane, tmp_path_factory.mktemp("operator") / "operator.log")
    try:
        yield proc
    finally:
        proc.stop()
        if os.environ.get("RERANK_OPERATOR_LOG"):
            sys.stderr.write(proc.log_tail(400))


@pytest.fixture
def op_namespace(control_plane, operator, request) -> Iterator[str]:
    # The operator watches only NAMESPACE_PREFIX* namespaces, so other tests' objects never reach it.
    with fresh_namespace(control_plane, f"{NAMESPACE_PREFIX}{dns_safe_test_name(request, 30)}-") as ns:
        yield ns
