"""Pinned versions of the local Kubernetes control plane — the one place to change them.

Each pin has a `# renovate:` line that names its Go module: .github/renovate.json's regex manager reads those
to propose updates (tests/release/test_renovate.py checks that every pin has one).

Kubernetes, kwok and Helm are chosen so that they share one set of `k8s.io/*` library versions
(v0.36.x), which lets a single Go module build them all and compile each shared package once.
"""

# renovate: datasource=go depName=k8s.io/kubernetes
KUBERNETES = "v1.36.3"
# The published staging modules (k8s.io/api, k8s.io/client-go, ...) that match KUBERNETES.
# renovate: datasource=go depName=k8s.io/api
STAGING = "v0.36.3"
# renovate: datasource=go depName=sigs.k8s.io/kwok
KWOK = "v0.8.0"
# renovate: datasource=go depName=helm.sh/helm/v3
HELM = "v3.21.4"
# etcd is built from the same module graph: k8s.io/kubernetes pins go.etcd.io/etcd/server/v3 (v3.6.x).

# k8s.io/kubernetes' go.mod replaces these with ./staging/src/...; a wrapper module replaces them with the
# published versions instead (k8s.io/sample-cli-plugin is never published, and nothing here needs it).
STAGING_MODULES = (
    "api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider "
    "cluster-bootstrap code-generator component-base component-helpers controller-manager cri-api "
    "cri-client cri-streaming csi-translation-lib dynamic-resource-allocation endpointslice externaljwt kms "
    "kube-aggregator kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics "
    "mount-utils pod-security-admission sample-apiserver sample-controller streaming"
).split()

# Binary name -> Go package path, all built in one `go build` so shared packages compile once.
PACKAGES = {
    "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
    "kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
    "kube-scheduler": "k8s.io/kubernetes/cmd/kube-scheduler",
    "kubectl": "k8s.io/kubernetes/cmd/kubectl",
    "kwok": "sigs.k8s.io/kwok/cmd/kwok",
    "helm": "helm.sh/helm/v3/cmd/helm",
    "etcd": "rerank.local/controlplane/etcd",
}


# Bump when the build recipe itself changes (flags, wrapper module), so cached binaries are rebuilt.
BUILD_RECIPE = 2


def cache_key() -> str:
    """Names the cache directory, so that changing any pin builds afresh beside the old binaries."""
    return f"k8s-{KUBERNETES}_kwok-{KWOK}_helm-{HELM}_r{BUILD_RECIPE}"

# ---- the real node (rerank_localdev.node) ----------------------------------------------------------
# kubelet and kube-proxy come from KUBERNETES above, built from the same wrapper module as the control plane.
# containerd 2.x: Debian's 1.6 is too old for the CRI that Kubernetes 1.36's kubelet requires.
# renovate: datasource=go depName=github.com/containerd/containerd/v2
CONTAINERD = "v2.4.2"
# renovate: datasource=go depName=github.com/coredns/coredns
COREDNS = "v1.14.7"
# The library behind the node's dynamic volume provisioner (node/gosrc/hostpath-provisioner).
# renovate: datasource=go depName=sigs.k8s.io/sig-storage-lib-external-provisioner/v11
PROVISIONER_LIB = "v11.0.1"
# The Ingress controller. v3.7.x cannot be built from the module proxy (its go.mod replaces a nested module,
# github.com/traefik/traefik/dynamic/ext, with a local path that the module zip does not contain).
# renovate: datasource=go depName=github.com/traefik/traefik/v3
TRAEFIK = "v3.6.12"
NODE_BUILD_RECIPE = 2


def node_cache_key() -> str:
    return (f"node-k8s-{KUBERNETES}_containerd-{CONTAINERD}_coredns-{COREDNS}_traefik-{TRAEFIK}"
            f"_r{NODE_BUILD_RECIPE}")

# NetworkPolicy enforcement on the node (rerank_localdev.node.netpol): kube-router's policy controller. Its own
# cache key, so adding it rebuilt nothing of the node's. Newer releases are refused (403) by the module proxy here.
# renovate: datasource=go depName=github.com/cloudnativelabs/kube-router/v2
KUBE_ROUTER = "v2.1.0"
NETPOL_BUILD_RECIPE = 1


def netpol_cache_key() -> str:
    return f"netpol-kube-router-{KUBE_ROUTER}_r{NETPOL_BUILD_RECIPE}"

# ---- release tooling (rerank_localdev.tools) --------------------------------------------------------
# CNCF Distribution's registry: the OCI registry the release tests push images and the chart to.
# renovate: datasource=go depName=github.com/distribution/distribution/v3
DISTRIBUTION = "v3.1.2"
# Lints .github/workflows (the release workflow cannot run here).
# renovate: datasource=go depName=github.com/rhysd/actionlint
ACTIONLINT = "v1.7.12"
TOOLS_BUILD_RECIPE = 1


def tools_cache_key() -> str:
    return f"tools-distribution-{DISTRIBUTION}_actionlint-{ACTIONLINT}_r{TOOLS_BUILD_RECIPE}"

# Prometheus' server and promtool: the alert rules' unit tests (`promtool test rules`) and a real server that
# evaluates the dashboard's queries. Prometheus 3.x publishes its Go module as v0.<major><minor>.<patch>
# (v0.316.0 is Prometheus 3.16.0). Its own cache key, so adding it rebuilt none of the tools above.
# renovate: datasource=go depName=github.com/prometheus/prometheus
PROMETHEUS = "v0.316.0"
MONITORING_BUILD_RECIPE = 1


def prometheus_release() -> str:
    """The Prometheus release that the module version PROMETHEUS stands for (v0.316.0 -> 3.16.0)."""
    minor_code, patch = PROMETHEUS.removeprefix("v0.").split(".")
    return f"{int(minor_code) // 100}.{int(minor_code) % 100}.{patch}"


def monitoring_cache_key() -> str:
    return f"monitoring-prometheus-{PROMETHEUS}_r{MONITORING_BUILD_RECIPE}"
