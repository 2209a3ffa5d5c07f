"""Two operator replicas with leader election on a Lease: one acts, the other stands by and takes
over when the leader dies (SIGKILL, no goodbye) or stops (SIGTERM, the Lease handed back)."""

from __future__ import annotations

import time

import pytest
from kubernetes import client

from rerank_operator.resources import labels as L
from tests.fixtures import waiting
from tests.integration.operator_fixture import OperatorProcess, crd_installed_once, start_operator  # noqa: F401

pytestmark = pytest.mark.cluster

FAILOVER_WITHIN = 15.0
WRITES = ("PATCH", "POST", "PUT", "DELETE", "APPLY")


def writes(replica: OperatorProcess) -> int:
    """API writes of the replica's reconcile client (its metrics)."""
    total = 0
    for line in replica.metrics().splitlines():
        if line.startswith("rerank_operator_api_requests_total{") and any(f'verb="{w}"' in line for w in WRITES):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


@pytest.mark.parametrize("stop", ["kill", "terminate"])
def test_a_standby_replica_takes_over_within_seconds_and_never_writes_before(control_plane, crd_installed_once,
                                                                           namespace, tmp_path, stop):
    api = control_plane.api_client()
    custom = client.CustomObjectsApi(api)
    leases = client.CoordinationV1Api(api)

    def replica(identity: str) -> OperatorProcess:
        return start_operator(control_plane, tmp_path / f"{identity}.log", namespace=namespace,
                              extra=("--leader-elect", "--lease-namespace", namespace, "--identity", identity))

    def create(name: str) -> None:
        custom.create_namespaced_custom_object(L.GROUP, L.VERSION, namespace, L.PLURAL, {
            "apiVersion": L.API_VERSION, "kind": L.KIND, "metadata": {"name": name},
            "spec": {"replicas": 0, "ui": {"enabled": False}}})

    def current(name: str) -> bool:
        body = custom.get_namespaced_custom_object(L.GROUP, L.VERSION, namespace, L.PLURAL, name)
        return (body.get("status") or {}).get("observedGeneration") == body["metadata"]["generation"]

    replicas = {"a": replica("a"), "b": replica("b")}
    try:
        holder = waiting.wait_for(lambda: leases.read_namespaced_lease("rerank-operator", namespace).spec.holder_identity,
                                  20, "a leader", retry_on=(client.ApiException,))
        leader, standby = replicas[holder], replicas["b" if holder == "a" else "a"]
        create("before")
        waiting.wait_for(lambda: current("before"), 30, "the leader reconciling", context=leader.log_tail)
        time.sleep(1)
        assert writes(leader) > 0
        assert writes(standby) == 0, "the standby wrote while the leader lived"

        if stop == "kill":
            leader.kill()
        else:
            leader.stop()
        died = time.monotonic()
        create("after")
        waiting.wait_for(lambda: current("after"), FAILOVER_WITHIN, "the standby reconciling as the new leader",
                         interval=0.1, context=standby.log_tail)
        failover = time.monotonic() - died
        print(f"failover after {stop}: new leader reconciled a new object {failover:.1f} s after the old one stopped")
        assert leases.read_namespaced_lease("rerank-operator", namespace).spec.holder_identity != holder
        assert writes(standby) > 0
    finally:
        for proc in replicas.values():
            proc.stop()
