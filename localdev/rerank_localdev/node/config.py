"""What the real node's components are told: pure functions from the node's layout to each configuration.

Every choice that this machine forces (a cgroup v1 kernel, no CAP_SYS_RESOURCE, no registry, no way off the
machine) is made here, each with its reason; `host.py` only writes these out and starts the processes.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..controlplane import NODE_NAME, SERVICE_CIDR

CLUSTER_DOMAIN = "cluster.local"
# The whole cluster's pod range (blackholed); this node takes the first /24 of it.
CLUSTER_CIDR = "10.244.0.0/16"
NODE_POD_CIDR = "10.244.0.0/24"
# The conventional DNS Service IP (kubeadm's: the tenth address of the Service range).
DNS_SERVICE_IP = str(ipaddress.ip_network(SERVICE_CIDR)[10])
BRIDGE = "rrnode0"
# Pods live under this cgroup in every hierarchy, apart from everything else on the machine.
CGROUP_ROOT = "/rerank-node"
# A GPU-shaped node (LocalNode.advertise_gpus): what a GPU Operator install leaves on a GPU node.
GPU_RESOURCE = "nvidia.com/gpu"
GPU_RUNTIME_HANDLER = "nvidia"
GPU_TAINT = {"key": GPU_RESOURCE, "value": "present", "effect": "NoSchedule"}


@dataclass(frozen=True)
class NodeLayout:
    """Where one node instance keeps its state, and the ports it listens on (free ports, never defaults)."""

    root: Path
    kubelet_port: int
    kubelet_healthz_port: int
    proxy_healthz_port: int
    proxy_metrics_port: int
    pause_image: str
    node_name: str = NODE_NAME
    bridge: str = BRIDGE
    pod_cidr: str = NODE_POD_CIDR
    # containerd's root (images, their unpacked layers, its metadata); None: inside `root`, gone with it.
    image_store: Path | None = None

    @property
    def node_ip(self) -> str:
        """The bridge's address: the pods' gateway, and the node's InternalIP (never loopback: pods reach the
        API server and the kubelet's clients reach the kubelet there)."""
        return str(ipaddress.ip_network(self.pod_cidr)[1])

    @property
    def containerd_socket(self) -> Path:
        return self.root / "run" / "containerd.sock"

    @property
    def containerd_root(self) -> Path:
        return self.image_store or self.root / "containerd"

    @property
    def cni_conf_dir(self) -> Path:
        return self.root / "cni" / "net.d"

    @property
    def registry_hosts_dir(self) -> Path:
        """containerd's per-registry settings (`<host:port>/hosts.toml`: CA, mirrors), read at each pull."""
        return self.root / "containerd-certs.d"

    @property
    def gpu_runc_root(self) -> Path:
        """runc's state for the containers of the RuntimeClass `nvidia` (one directory per container id, under
        the containerd namespace's name)."""
        return self.root / "run" / "runc-nvidia"

    @property
    def kubelet_root(self) -> Path:
        return self.root / "kubelet"

    @property
    def cgroup_root(self) -> str:
        return CGROUP_ROOT


def containerd_config(layout: NodeLayout, runc: str = "/usr/sbin/runc", cni_bin_dir: str = "/usr/lib/cni") -> str:
    """containerd 2.x configuration (version 3): its state inside the node's root, its image store there too
    or in a directory kept between nodes (layout.image_store)."""
    root, state = layout.containerd_root, layout.root / "run" / "containerd"
    runtime = "plugins.'io.containerd.cri.v1.runtime'"
    return f"""version = 3
root = "{root}"
state = "{state}"
# NRI and the snapshotters that need kernel parts or tools this machine lacks are not loaded.
disabled_plugins = ["io.containerd.nri.v1.nri", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
                    "io.containerd.snapshotter.v1.erofs", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "{layout.containerd_socket}"

[ttrpc]
  address = "{layout.containerd_socket}.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    # No registry: the sandbox image is built and imported locally, and pinned so GC never drops it.
    sandbox = "{layout.pause_image}"
  [plugins.'io.containerd.cri.v1.images'.registry]
    # Registries it may pull from (a test's private registry on 127.0.0.1) say how to trust them here.
    config_path = "{layout.registry_hosts_dir}"

[{runtime}]
  # Without CAP_SYS_RESOURCE a container's oom_score_adj cannot go below containerd's own.
  restrict_oom_score_adj = true
  enable_selinux = false
  disable_apparmor = true
  [{runtime}.cni]
    bin_dirs = ["{cni_bin_dir}"]
    conf_dir = "{layout.cni_conf_dir}"
    max_conf_num = 1
  [{runtime}.containerd]
    default_runtime_name = "runc"
    [{runtime}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{runtime}.containerd.runtimes.runc.options]
        BinaryName = "{runc}"
        # The kernel mounts cgroup v1 (hybrid) and there is no systemd: cgroupfs, as the kubelet.
        SystemdCgroup = false
    # The handler of the RuntimeClass `nvidia` (LocalNode.advertise_gpus), as NVIDIA's GPU Operator adds it to
    # containerd; there its binary is nvidia-container-runtime (runc that also mounts the driver), here runc.
    [{runtime}.containerd.runtimes.{GPU_RUNTIME_HANDLER}]
      runtime_type = "io.containerd.runc.v2"
      [{runtime}.containerd.runtimes.{GPU_RUNTIME_HANDLER}.options]
        BinaryName = "{runc}"
        SystemdCgroup = false
        # Its own runc state directory: which handler ran a container can be seen (layout.gpu_runc_root).
        Root = "{layout.gpu_runc_root}"

[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
"""


# The node's CNI network (the portmap plugin names it in the rules it makes).
NETWORK_NAME = "rerank-node"


def cni_conflist(layout: NodeLayout) -> dict[str, Any]:
    """One bridge owned by the harness; pods get routes to the cluster's ranges only, never a default route,
    and no masquerading: nothing a pod sends can leave the machine."""
    return {
        "cniVersion": "1.0.0",
        "name": NETWORK_NAME,
        "plugins": [
            {
                "type": "bridge",
                "bridge": layout.bridge,
                "isGateway": True,
                "isDefaultGateway": False,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": layout.pod_cidr, "gateway": layout.node_ip}]],
                    "routes": [{"dst": CLUSTER_CIDR}, {"dst": SERVICE_CIDR}],
                    "dataDir": str(layout.root / "cni" / "ipam"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def kubelet_config(layout: NodeLayout, ca_file: Path, resolv_conf: Path) -> dict[str, Any]:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": layout.node_ip,
        "port": layout.kubelet_port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": layout.kubelet_healthz_port,
        # Only the API server (its client certificate is signed by the cluster CA) may call the kubelet.
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": False},
                           "x509": {"clientCAFile": str(ca_file)}},
        "authorization": {"mode": "AlwaysAllow"},
        "containerRuntimeEndpoint": f"unix://{layout.containerd_socket}",
        # cgroup v1 hybrid kernel, no systemd.
        "failCgroupV1": False,
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": layout.cgroup_root,
        # Lowering its own oom_score_adj needs CAP_SYS_RESOURCE, which this machine does not grant.
        "oomScoreAdj": 0,
        "clusterDNS": [DNS_SERVICE_IP],
        "clusterDomain": CLUSTER_DOMAIN,
        # Pods with dnsPolicy Default get no upstream resolver: no DNS query leaves the machine.
        "resolvConf": str(resolv_conf),
        "podLogsDir": str(layout.root / "pod-logs"),
        "failSwapOn": False,
        "serializeImagePulls": False,
        # The images were imported, not pulled: never collect them.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%",
                         "nodefs.inodesFree": "1%"},
        "shutdownGracePeriod": "0s",
        "registerNode": True,
    }


def gpu_runtime_class() -> dict[str, Any]:
    return {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass",
            "metadata": {"name": GPU_RUNTIME_HANDLER}, "handler": GPU_RUNTIME_HANDLER}


def kube_proxy_config(layout: NodeLayout, kubeconfig: Path) -> dict[str, Any]:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "mode": "iptables",
        "clusterCIDR": CLUSTER_CIDR,
        "hostnameOverride": layout.node_name,
        "healthzBindAddress": f"127.0.0.1:{layout.proxy_healthz_port}",
        "metricsBindAddress": f"127.0.0.1:{layout.proxy_metrics_port}",
        # NodePorts on the bridge's address only, never on the machine's own interfaces; no route_localnet.
        "nodePortAddresses": [f"{layout.node_ip}/32"],
        "iptables": {"localhostNodePorts": False, "masqueradeAll": False},
        # Leave the machine's conntrack table size alone (a sysctl shared with everything else).
        "conntrack": {"maxPerCore": 0, "min": 0},
    }


def coredns_corefile() -> str:
    """Cluster names only: no `forward`, so a query for any other name is refused, never sent upstream."""
    return f""".:53 {{
    errors
    health :8080
    ready :8181
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        pods insecure
        ttl 5
    }}
    cache 5
    loop
    reload
}}
"""


def json_text(obj: Any) -> str:
    return json.dumps(obj, indent=1)
