"""The ServiceAccounts `<name>-engine` and `<name>-ui` (pure).

Engine and UI pods never call the Kubernetes API, so each runs as its own ServiceAccount without a
mounted token (`automountServiceAccountToken: false`) rather than the namespace's `default`, which
other workloads may have been granted rights to.
"""

from __future__ import annotations

from typing import Any, Mapping

from . import labels as L


def engine_service_account_name(name: str) -> str:
    return L.engine_name(name)


def ui_service_account_name(name: str) -> str:
    return L.ui_name(name)


def build_service_account(body: Mapping[str, Any], account: str, component: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": L.child_metadata(body, account, component),
        "automountServiceAccountToken": False,
    }
