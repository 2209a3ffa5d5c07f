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
    # What a run killed before its teardown leaves (its bridge and routes): the next node sweeps it and starts.
    host._run("ip", "link", "add", host.config.BRIDGE, "type", "bridge")
    host._run("ip", "route", "add", "blackhole", host.config.CLUSTER_CIDR)
    cp, node = start_real_cluster()
    try:
        # A second node while this one runs is refused before it touches anything.
        with pytest.raises(host.NodeError, match="another node runs on this machine"):
            host.LocalNode(cp).start()
        assert host.Path("/sys/class/net", host.config.BRIDGE).exists()
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


def test_sweep_after_a_killed_run_removes_the_policy_controllers_rules_and_ipsets():
    """A run killed while kube-router enforced a policy: `host sweep` (as the README says to run) removes its
    chains, the jumps to them, its ipsets and the node's extra guard."""
    from contextlib import suppress

    from rerank_localdev.controlplane import LocalControlPlane
    from rerank_localdev.node import netpol

    if netpol.find() is None:
        pytest.skip("kube-router is not built: python -m rerank_localdev.node.netpol build")
    cp = LocalControlPlane(node_ip=host.NODE_IP, nodes=[])
    cp.start()
    try:
        node = host.LocalNode(cp, network_policy=True)
        node.start()
        try:
            cp.kubectl("apply", "-f", "-", input=_pod_with_host_port() + """---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-ingress}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{from: [{podSelector: {matchLabels: {client: "true"}}}]}]
""")
            # Its traces are really there (so the checks below can fail): chains, jumps and the pod's ipset.
            wait_for(lambda: any(item.startswith("ipset ") for item in netpol.leftovers()), 120,
                     "kube-router's ipset for the policy", context=lambda: node.log("kube-router"))
            assert any("-A FORWARD" in item and "KUBE-ROUTER-FORWARD" in item for item in netpol.leftovers())
            left = host.sweep()  # what `python -m rerank_localdev.node.host sweep` runs
            assert left == [] and netpol.leftovers() == [], left
            mangle = host._iptables_rules()["mangle"]
            assert not any(host.FORWARD_CHAIN in rule for rule in mangle), mangle
        finally:
            with suppress(host.NodeError):  # the sweep took the node's processes and root already
                node.stop()
    finally:
        cp.stop()
