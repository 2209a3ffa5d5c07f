"""The failures users meet on a real node, read from pods as the kubelet reports them (the shapes below are
those a kubelet v1.36 writes; tests/node checks the same reasons come from the real one)."""

from __future__ import annotations

from rerank_operator.reconcile.status import (
    CRASH_LOOP_BACK_OFF,
    IMAGE_PULL_BACK_OFF,
    OOM_KILLED,
    POD_CREATION_FAILED,
    POD_SECURITY_VIOLATION,
    UNSCHEDULABLE,
    crashed_containers,
    pod_failure,
)


def _pod(name, state=None, last=None, restarts=0, image="ghcr.io/x/engine:1"):
    cs = {"name": "engine", "image": image, "restartCount": restarts, "state": state or {"running": {}}}
    if last:
        cs["lastState"] = last
    return {"metadata": {"name": name}, "status": {"containerStatuses": [cs]}}


def test_running_pods_are_no_failure():
    assert pod_failure([_pod("r-engine-0"), _pod("r-engine-1")]) is None
    assert pod_failure([]) is None


def test_an_image_that_cannot_be_pulled_names_the_image_and_the_field():
    pod = _pod("r-engine-0", {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}},
               image="localhost/nope:1")
    failure = pod_failure([pod])
    assert failure.reason == IMAGE_PULL_BACK_OFF
    assert "localhost/nope:1" in failure.message and "spec.engine.image" in failure.message
    err = _pod("r-engine-0", {"waiting": {"reason": "ErrImagePull", "message": "connection refused"}})
    assert pod_failure([err]).reason == IMAGE_PULL_BACK_OFF


def test_a_crash_loop_quotes_the_last_log_line_and_exit_code():
    pod = _pod("r-engine-0", {"waiting": {"reason": "CrashLoopBackOff"}},
               last={"terminated": {"reason": "Error", "exitCode": 1}}, restarts=3)
    failure = pod_failure([pod], last_log_lines={("r-engine-0", "engine"): "ValueError: no model at /models/x"})
    assert failure.reason == CRASH_LOOP_BACK_OFF
    assert "ValueError: no model at /models/x" in failure.message
    assert "code 1" in failure.message and "3 restarts" in failure.message
    assert crashed_containers([pod]) == [("r-engine-0", "engine")]


def test_an_oom_kill_wins_over_the_crash_loop_it_causes_and_names_the_limit():
    pod = _pod("r-engine-0", {"waiting": {"reason": "CrashLoopBackOff"}},
               last={"terminated": {"reason": "OOMKilled", "exitCode": 137}}, restarts=2)
    failure = pod_failure([pod])
    assert failure.reason == OOM_KILLED
    assert "spec.engine.resources.limits.memory" in failure.message


def test_a_refused_pod_creation_is_reported_with_the_api_servers_words():
    msg = 'pods "r-engine-0" is forbidden: violates PodSecurity "restricted:latest": privileged'
    failure = pod_failure([], create_refused=msg)
    assert failure.reason == POD_SECURITY_VIOLATION and msg in failure.message
    quota = 'pods "r-engine-0" is forbidden: exceeded quota: compute'
    assert pod_failure([], create_refused=quota).reason == POD_CREATION_FAILED


def test_the_first_failing_pod_by_name_decides():
    ok = _pod("r-engine-0")
    bad1 = _pod("r-engine-1", {"waiting": {"reason": "ImagePullBackOff"}})
    bad2 = _pod("r-engine-2", {"waiting": {"reason": "CrashLoopBackOff"}})
    assert "r-engine-1" in pod_failure([bad2, ok, bad1]).message


def test_a_pod_no_node_can_take_is_reported_with_the_schedulers_words():
    message = ("0/1 nodes are available: 1 node(s) had untolerated taint(s). no new claims to deallocate, "
               "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.")
    pending = {"metadata": {"name": "r-engine-0"}, "status": {"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}]}}
    failure = pod_failure([pending])
    assert failure.reason == UNSCHEDULABLE
    assert message in failure.message and "r-engine-0" in failure.message
    # Scheduled (or not yet tried): no failure.
    tried = {"metadata": {"name": "r-engine-0"}, "status": {"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "True"}]}}
    assert pod_failure([tried]) is None
    assert pod_failure([{"metadata": {"name": "r-engine-0"}, "status": {"phase": "Pending"}}]) is None
    # Waiting for the provisioner to bind its claims is no failure.
    waiting = {"metadata": {"name": "r-engine-0"}, "status": {"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
         "message": "0/5 nodes are available: pod has unbound immediate PersistentVolumeClaims. not found"}]}}
    assert pod_failure([waiting]) is None
