"""A control plane with one real node and no simulated ones: every pod runs in a real container. Used by
`rerank-local --node real` and the node tests' fixture."""

from __future__ import annotations

from pathlib import Path

from ..controlplane import LocalControlPlane
from .host import NODE_IP, LocalNode


def start_real_cluster(bin_dir: Path | None = None, node_bin_dir: Path | None = None,
                       ) -> tuple[LocalControlPlane, LocalNode]:
    """Both started; the control plane stopped again if the node fails to start (the node undoes itself)."""
    cp = LocalControlPlane(bin_dir=bin_dir, node_ip=NODE_IP, nodes=[])
    cp.start()
    try:
        node = LocalNode(cp, bin_dir=node_bin_dir)
        node.start()
    except BaseException:
        cp.stop()
        raise
    return cp, node
