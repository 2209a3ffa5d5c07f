"""The real node's configurations: the choices this machine forces, and the network rule (nothing a pod
sends can leave the machine), read from what each component is told."""

from __future__ import annotations

import ipaddress
import tomllib
from pathlib import Path

from rerank_localdev.controlplane import SERVICE_CIDR
from rerank_localdev.node import config


def _layout(tmp_path: Path) -> config.NodeLayout:
    return config.NodeLayout(tmp_path, 20001, 20002, 20003, 20004, pause_image="localhost/x/pause:1")


def test_containerd_keeps_everything_in_the_node_root_and_fits_this_kernel(tmp_path):
    conf = tomllib.loads(config.containerd_config(_layout(tmp_path)))
    assert conf["version"] == 3
    assert conf["root"].startswith(str(tmp_path)) and conf["state"].startswith(str(tmp_path))
    assert conf["grpc"]["address"].startswith(str(tmp_path))
    assert "io.containerd.nri.v1.nri" in conf["disabled_plugins"]
    plugins = conf["plugins"]
    assert plugins["io.containerd.cri.v1.images"]["pinned_images"]["sandbox"] == "localhost/x/pause:1"
    runtime = plugins["io.containerd.cri.v1.runtime"]
    assert runtime["restrict_oom_score_adj"] is True
    assert runtime["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is False
    assert runtime["cni"]["conf_dir"].startswith(str(tmp_path))


def test_the_gpu_runtime_class_handler_is_runc_with_its_own_state_inside_the_node_root(tmp_path):
    layout = _layout(tmp_path)
    runtimes = tomllib.loads(config.containerd_config(layout))["plugins"]["io.containerd.cri.v1.runtime"][
        "containerd"]["runtimes"]
    handler = runtimes[config.GPU_RUNTIME_HANDLER]
    assert config.gpu_runtime_class()["handler"] == config.GPU_RUNTIME_HANDLER
    assert handler["runtime_type"] == runtimes["runc"]["runtime_type"]
    assert handler["options"]["BinaryName"] == runtimes["runc"]["options"]["BinaryName"]
    assert handler["options"]["Root"] == str(layout.gpu_runc_root) and str(layout.gpu_runc_root).startswith(
        str(tmp_path))


def test_pods_get_routes_to_the_cluster_ranges_only_and_no_masquerading(tmp_path):
    layout = _layout(tmp_path)
    bridge, portmap = config.cni_conflist(layout)["plugins"]
    assert bridge["bridge"] == config.BRIDGE and bridge["isGateway"] is True
    assert bridge["ipMasq"] is False and bridge["isDefaultGateway"] is False
    routes = [r["dst"] for r in bridge["ipam"]["routes"]]
    assert "0.0.0.0/0" not in routes and sorted(routes) == sorted([config.CLUSTER_CIDR, SERVICE_CIDR])
    (rng,) = bridge["ipam"]["ranges"][0]
    assert rng["gateway"] == layout.node_ip
    assert ipaddress.ip_address(layout.node_ip) in ipaddress.ip_network(rng["subnet"])
    assert ipaddress.ip_network(rng["subnet"]).subnet_of(ipaddress.ip_network(config.CLUSTER_CIDR))
    assert portmap["type"] == "portmap"


def test_the_node_ip_is_the_bridge_address_never_loopback(tmp_path):
    ip = ipaddress.ip_address(_layout(tmp_path).node_ip)
    assert not ip.is_loopback and ip.is_private


def test_kubelet_fits_a_cgroup_v1_kernel_without_cap_sys_resource(tmp_path):
    conf = config.kubelet_config(_layout(tmp_path), tmp_path / "ca.crt", tmp_path / "resolv.conf")
    assert conf["failCgroupV1"] is False and conf["cgroupDriver"] == "cgroupfs"
    assert conf["oomScoreAdj"] == 0
    assert conf["cgroupRoot"] == config.CGROUP_ROOT
    assert conf["authentication"]["anonymous"]["enabled"] is False
    assert conf["authentication"]["x509"]["clientCAFile"] == str(tmp_path / "ca.crt")
    assert conf["readOnlyPort"] == 0
    assert ipaddress.ip_address(conf["clusterDNS"][0]) in ipaddress.ip_network(SERVICE_CIDR)
    assert conf["resolvConf"] == str(tmp_path / "resolv.conf")


def test_kube_proxy_uses_iptables_and_serves_node_ports_on_the_bridge_only(tmp_path):
    layout = _layout(tmp_path)
    conf = config.kube_proxy_config(layout, tmp_path / "kp.kubeconfig")
    assert conf["mode"] == "iptables"
    assert conf["nodePortAddresses"] == [f"{layout.node_ip}/32"]
    assert conf["iptables"]["localhostNodePorts"] is False
    assert conf["conntrack"]["maxPerCore"] == 0


def test_cluster_dns_answers_cluster_names_and_forwards_nothing():
    corefile = config.coredns_corefile()
    assert "kubernetes cluster.local" in corefile
    assert "forward" not in corefile and "proxy" not in corefile


def test_the_dns_service_is_where_the_kubelet_points_pods():
    from rerank_localdev.node import host

    service = next(m for m in host.coredns_manifests() if m["kind"] == "Service")
    assert service["spec"]["clusterIP"] == config.DNS_SERVICE_IP
    deployment = next(m for m in host.coredns_manifests() if m["kind"] == "Deployment")
    # CoreDNS itself resolves nothing upstream: its own resolv.conf is the node's empty one.
    assert deployment["spec"]["template"]["spec"]["dnsPolicy"] == "Default"


def test_the_ingress_controller_reports_nothing_home_and_listens_on_the_node_address_only():
    from rerank_localdev.node import host

    deployment = next(m for m in host.traefik_manifests(18000) if m["kind"] == "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert "--global.checkNewVersion=false" in container["args"]
    assert "--global.sendAnonymousUsage=false" in container["args"]
    assert container["ports"][0]["hostIP"] == host.NODE_IP and container["ports"][0]["hostPort"] == 18000
    ingress_class = next(m for m in host.traefik_manifests(18000) if m["kind"] == "IngressClass")
    assert ingress_class["metadata"]["annotations"]["ingressclass.kubernetes.io/is-default-class"] == "true"


def test_claims_bind_where_their_pod_runs_on_the_default_class(tmp_path):
    from rerank_localdev.node import host

    manifests = host.provisioner_manifests(tmp_path)
    storage_class = next(m for m in manifests if m["kind"] == "StorageClass")
    assert storage_class["volumeBindingMode"] == "WaitForFirstConsumer"
    assert storage_class["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
    assert storage_class["provisioner"] == host.PROVISIONER_NAME
    deployment = next(m for m in manifests if m["kind"] == "Deployment")
    assert f"--root={tmp_path}" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]


def test_the_kept_image_store_forgets_names_from_loopback_registries_only():
    from rerank_localdev.node.host import loopback_registry_refs

    refs = [
        "127.0.0.1:35391/rerank-node/engine-stand-in:1",
        "127.0.0.1:35391/rerank-node/engine-stand-in@sha256:" + "a" * 64,
        "localhost:5000/x:1", "[::1]:5000/x:1",
        "localhost/rerank-node/probe:1",  # podman's name for a local build: kept
        "ghcr.io/rerank-operator/rerank-ui:0.2.0", "registry.local:5000/x:1",
        "sha256:" + "b" * 64,
    ]
    assert loopback_registry_refs(refs) == refs[:4]
