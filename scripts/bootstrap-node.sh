#!/usr/bin/env bash
# Debian's parts of the real node (tests/node, rerank_localdev.node): runc, the CNI plugins (bridge,
# host-local, loopback, portmap), iptables, conntrack and ipset (kube-router's NetworkPolicy controller keeps
# the selected pods' addresses in ipsets). Idempotent; needs root. The Go-built parts (kubelet, kube-proxy,
# containerd, CoreDNS) are built on first use by `python -m rerank_localdev.node.binaries`, kube-router by
# `python -m rerank_localdev.node.netpol`.
set -euo pipefail
need=()
command -v runc >/dev/null || need+=(runc)
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
command -v iptables >/dev/null || need+=(iptables)
command -v conntrack >/dev/null || need+=(conntrack)
command -v ipset >/dev/null || need+=(ipset)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "bootstrap-node: not root, cannot install ${need[*]}; the node tests will say what is missing" >&2
    exit 0
  fi
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"
fi
