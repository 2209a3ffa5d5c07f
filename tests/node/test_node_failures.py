"""The failures users meet, as the operator reports them from a real kubelet: a RerankerDeployment's Degraded
condition (and one Warning event) names an image that cannot be pulled, a crash loop with the engine's last
log line, an OOM kill, and engine pods refused by admission (a quota: they pass Pod Security restricted).

The operator runs as a local process with the cluster's admin credentials (`node_operator`; its chart RBAC is
tested in tests/helm). The crashing and memory-hungry engines are a stand-in image (the node's probe program
installed as python3, started with the engine's real command line), since a real engine is started the same way
and fails the same way only after minutes of loading."""

from __future__ import annotations

import json

import pytest

from rerank_localdev.node.binaries import ENGINE_STAND_IN_IMAGE
from tests.fixtures.node import stand_in_rrd, wait_for_degraded
from tests.fixtures.waiting import wait_for

pytestmark = pytest.mark.node


def _warning_event(real_node, namespace: str, name: str, reason: str) -> bool:
    events = json.loads(real_node.cp.kubectl("-n", namespace, "get", "events", "-o", "json").stdout)["items"]
    return any(e["involvedObject"].get("name") == name and e["reason"] == reason and e["type"] == "Warning"
               for e in events)


def test_an_image_that_cannot_be_pulled(real_node, node_namespace, node_operator):
    real_node.cp.kubectl("-n", node_namespace, "apply", "-f", "-",
                         input=stand_in_rrd("nopull", "localhost/rerank-node/does-not-exist:1"))
    degraded = wait_for_degraded(real_node, node_namespace, "nopull", "ImagePullBackOff", node_operator)
    assert "localhost/rerank-node/does-not-exist:1" in degraded["message"]
    assert "spec.engine.image" in degraded["message"]
    wait_for(lambda: _warning_event(real_node, node_namespace, "nopull", "ImagePullBackOff"), 30, "Warning event")


def test_a_crashing_engine_reports_its_last_log_line(real_node, node_namespace, node_operator):
    line = "RuntimeError: no model weights found at /models/tiny"
    real_node.cp.kubectl("-n", node_namespace, "apply", "-f", "-",
                         input=stand_in_rrd("crash", ENGINE_STAND_IN_IMAGE, {"PROBE_AS_ENGINE": f"crash:{line}"}))
    degraded = wait_for_degraded(real_node, node_namespace, "crash", "CrashLoopBackOff", node_operator)
    assert line in degraded["message"] and "code 3" in degraded["message"]


def test_an_engine_over_its_memory_limit_is_reported_oom_killed(real_node, node_namespace, node_operator):
    real_node.cp.kubectl("-n", node_namespace, "apply", "-f", "-",
                         input=stand_in_rrd("hungry", ENGINE_STAND_IN_IMAGE, {"PROBE_AS_ENGINE": "eat:256"}, memory="48Mi"))
    degraded = wait_for_degraded(real_node, node_namespace, "hungry", "OOMKilled", node_operator)
    assert "spec.engine.resources.limits.memory" in degraded["message"]


def test_engine_pods_refused_by_admission(real_node, node_namespace, node_operator):
    # The operator's pods pass Pod Security "restricted" (tests/integration/test_pod_security.py shows a root
    # pod refused there instead), so the refusal users meet here is another admission plugin's: a quota.
    real_node.cp.kubectl("label", "namespace", node_namespace, "pod-security.kubernetes.io/enforce=restricted")
    real_node.cp.kubectl("-n", node_namespace, "create", "quota", "no-pods", "--hard=pods=0")
    real_node.cp.kubectl("-n", node_namespace, "apply", "-f", "-", input=stand_in_rrd("refused", ENGINE_STAND_IN_IMAGE))
    degraded = wait_for_degraded(real_node, node_namespace, "refused", "PodCreationFailed", node_operator)
    assert "exceeded quota" in degraded["message"] and "violates PodSecurity" not in degraded["message"]
