"""The node's NetworkPolicy controller: kube-router runs as a policy firewall only, from its own cache."""

from rerank_localdev import versions
from rerank_localdev.node import netpol
from pathlib import Path


def test_kube_router_runs_the_firewall_only():
    argv = netpol.controller_argv(Path("/bin/kube-router"), Path("/k.conf"), "node-a", "10.96.0.0/16")
    flags = dict(a.split("=", 1) for a in argv[1:])
    assert flags["--run-firewall"] == "true"
    # No BGP routes, no IPVS Services, no CNI config: the bridge and kube-proxy stay the node's.
    assert flags["--run-router"] == flags["--run-service-proxy"] == flags["--enable-cni"] == "false"
    assert flags["--hostname-override"] == "node-a" and flags["--service-cluster-ip-range"] == "10.96.0.0/16"


def test_kube_router_has_its_own_cache_beside_the_nodes():
    assert netpol.cache_dir().name == versions.netpol_cache_key()
    assert versions.KUBE_ROUTER in versions.netpol_cache_key()
    assert versions.KUBE_ROUTER not in versions.node_cache_key()  # adding it rebuilt nothing of the node's
