"""The real node starts, runs a pod with a host port (so CNI, portmap and kube-proxy all leave state behind),
and its teardown removes every interface, route, firewall rule, mount, process, cgroup and path it made,
also when the test using it fails half-way."""

from __future__ import annotations

import pytest

from rerank_localdev.node import host
from rerank_localdev.node.binaries import PROBE_IMAGE
from tests.fixtures.node import start_real_cluster
from tests.fixtures.waiting import wait_for

pytestmark = pytest.mark.node


def _pod_with_host_port() -> str:
    return f"""
apiVersion: v1
kind: Pod
metadata: {{name: web, labels: {{app: web}}}}
spec:
  containers:
  - name: web
    image: {PROBE_IMAGE}
    imagePullPolicy: Never
    args: [serve, ":8080"]
    ports: [{{containerPort: 8080, hostPort: 18080}}]
    readinessProbe: {{httpGet: {{path: /healthz, port: 8080}}, periodSeconds: 1}}
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080}}]
"""


def test_teardown_after_a_failed_test_leaves_nothing_on_the_machine():
    cp, node = start_real_cluster()
    try:
        with pytest.raises(RuntimeError, match="the test failed here"):
            try:
                cp.kubectl("apply", "-f", "-", input=_pod_with_host_port())
                wait_for(lambda: cp.kubectl("wait", "--for=condition=Ready", "pod/web", "--timeout=2s",
                                            check=False).returncode == 0, 120, "pod web Ready",
                         context=lambda: node.log("kubelet"))
                # While it runs, the node's traces are really there (so the check below can fail).
                during = node.leftovers()
                assert any(item.startswith("interface ") for item in during), during
                assert any("KUBE-SERVICES" in item for item in during), during
                assert any(item.startswith("cgroup ") for item in during), during
                assert any(item.startswith("process ") for item in during), during
                raise RuntimeError("the test failed here")
            finally:
                node.stop()
    finally:
        cp.stop()
    assert node.leftovers() == []
    assert not host.Path("/sys/class/net", host.config.BRIDGE).exists()
