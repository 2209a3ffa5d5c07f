"""Real or simulated nodes for `rerank-local --node auto|real|simulated`: the decision over a machine's
facts, its reason, and the error when a real node is asked for where none can run."""

from __future__ import annotations

import dataclasses

import pytest

from rerank_localdev import local_mode
from rerank_localdev.node.capability import (CapabilityError, MachineFacts, PartsFacts, choose, installs_node_packages,
                                             machine_blockers, package_blockers)
from rerank_localdev.real_local import pod_line, stuck_reason

CAPABLE = MachineFacts(root=True, overlayfs=True, bridge_and_veth=True, br_netfilter=True, cgroup_v1_memory=True,
                       cgroups_writable=True)
BUILT = PartsFacts(node_parts_built=True, go=True, images_missing=(), podman=True)


def test_a_capable_machine_with_its_parts_built_runs_a_real_node():
    choice = choose("auto", CAPABLE, BUILT)
    assert choice.mode == "real" and choice.to_build == ()
    assert "can run one" in choice.reason


def test_what_is_not_built_yet_is_built_first_not_a_reason_to_fall_back():
    parts = PartsFacts(node_parts_built=False, go=True, images_missing=("engine-cpu",), podman=True)
    choice = choose("auto", CAPABLE, parts)
    assert choice.mode == "real"
    assert choice.to_build == ("the node's parts (kubelet, kube-proxy, containerd, CoreDNS, ...)", "image engine-cpu")


@pytest.mark.parametrize(("field", "named"), [
    ("root", "root"), ("overlayfs", "overlayfs"), ("bridge_and_veth", "bridge and veth"),
    ("br_netfilter", "br_netfilter"), ("cgroups_writable", "writable cgroups"),
    ("cgroup_v1_memory", "cgroup v1 memory hierarchy"),
])
def test_auto_falls_back_to_simulated_nodes_naming_what_the_machine_lacks(field, named):
    machine = dataclasses.replace(CAPABLE, **{field: False})
    choice = choose("auto", machine, BUILT)
    assert choice.mode == "simulated"
    assert choice.reason.startswith("this machine cannot run a real node; it lacks: ") and named in choice.reason
    assert machine_blockers(machine) and all(named not in b for b in machine_blockers(CAPABLE))


def test_missing_packages_and_unbuildable_parts_are_named_too():
    machine = dataclasses.replace(CAPABLE, missing_tools=("runc",), missing_cni_plugins=("portmap",))
    parts = PartsFacts(node_parts_built=False, go=False, images_missing=("ui", "gateway"), podman=False)
    reason = choose("auto", machine, parts).reason
    assert "runc (scripts/bootstrap-node.sh installs it)" in reason and "CNI plugin portmap" in reason
    assert "Go is not installed" in reason and "ui, gateway are not built and podman is not installed" in reason
    assert machine_blockers(machine) == [] and len(package_blockers(machine)) == 2


def test_real_on_a_machine_that_cannot_is_a_clear_error_not_a_fallback():
    with pytest.raises(CapabilityError, match=r"^--node real: this machine cannot run a real node; it lacks: "
                                              r"root .*; the br_netfilter kernel module$"):
        choose("real", dataclasses.replace(CAPABLE, root=False, br_netfilter=False), BUILT)
    assert choose("real", CAPABLE, BUILT).reason == "asked for (--node real)"


def test_simulated_needs_no_facts_and_an_unknown_mode_is_refused():
    assert choose("simulated", None, None).mode == "simulated"
    with pytest.raises(ValueError, match="--node 'kwok'"):
        choose("kwok", CAPABLE, BUILT)


def test_the_flag_defaults_to_auto_and_offers_the_three_modes():
    assert local_mode.parse_args([]).node == "auto"
    assert local_mode.parse_args(["--node", "real"]).node == "real"
    with pytest.raises(SystemExit):
        local_mode.parse_args(["--node", "kwok"])


def _pod(conditions=(), containers=()):
    return {"metadata": {"name": "reranker-engine-0"},
            "status": {"phase": "Pending", "conditions": list(conditions), "containerStatuses": list(containers)}}


def test_a_pod_that_cannot_get_ready_by_waiting_is_reported_at_once():
    unschedulable = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                     "message": "0/1 nodes are available: 1 Insufficient memory."}
    assert stuck_reason(_pod([unschedulable])) == \
        "reranker-engine-0: Unschedulable: 0/1 nodes are available: 1 Insufficient memory."
    pull = {"name": "engine", "ready": False, "restartCount": 0,
            "state": {"waiting": {"reason": "ErrImageNeverPull", "message": "image not present"}}}
    assert stuck_reason(_pod(containers=[pull])) == "reranker-engine-0/engine: ErrImageNeverPull: image not present"
    crash = {"name": "engine", "ready": False, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
    assert stuck_reason(_pod(containers=[{**crash, "restartCount": 1}])) is None  # may still come up
    assert stuck_reason(_pod(containers=[{**crash, "restartCount": 3}])) is not None
    creating = {"name": "engine", "ready": False, "restartCount": 0,
                "state": {"waiting": {"reason": "ContainerCreating"}}}
    assert stuck_reason(_pod(containers=[creating])) is None
    assert pod_line(_pod(containers=[creating])) == "reranker-engine-0 Pending 0/1 (ContainerCreating)"


def test_local_mode_refuses_real_where_it_cannot_run_before_starting_anything(monkeypatch, capsys):
    from rerank_localdev.node import capability

    monkeypatch.setattr(capability, "machine_facts", lambda: dataclasses.replace(CAPABLE, root=False))
    monkeypatch.setattr(local_mode, "LocalStack", None)  # nothing may be started
    assert local_mode.main(["--node", "real"]) == 2
    assert capsys.readouterr().err == ("rerank-local: --node real: this machine cannot run a real node; "
                                       "it lacks: root (the node creates a bridge, mounts and cgroups)\n")


def test_the_nodes_packages_are_installed_first_wherever_the_machine_allows_a_real_node():
    # `make local` asks this before the choice itself, which needs the packages in place to pick a real node.
    assert installs_node_packages("auto", dataclasses.replace(CAPABLE, missing_tools=("runc",)))
    assert installs_node_packages("real", CAPABLE)
    assert not installs_node_packages("auto", dataclasses.replace(CAPABLE, root=False))
    assert not installs_node_packages("simulated", None)
