"""The container security context every pod the operator makes runs with: Pod Security "restricted"."""

from __future__ import annotations

from typing import Any


def restricted_container_context(uid: int, gid: int) -> dict[str, Any]:
    """Non-root as ``uid:gid``, no privilege escalation, no capabilities, the runtime's seccomp
    profile, and a read-only image filesystem (whatever the process writes lives on volumes)."""
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": gid,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
