"""What should exist for one RerankerDeployment: the full list of child manifests (pure).

`desired_children(body, spec)` is everything the operator server-side-applies; `retired_children(body,
desired)` names the optional children the spec has switched off (UI, Ingress, PodDisruptionBudget, gateway),
which the operator deletes if they exist and are owned by this RerankerDeployment. Both take the spec as the
caller parsed it (``api.v1alpha1.parse_spec``): it is parsed once per pass, and a spec that does not parse is
the caller's to report.
"""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple

from rerank_operator.api.v1alpha1 import RerankerDeploymentSpec

from . import labels as L
from .gateway import build_gateway_deployment
from .pdb import build_gateway_pdb, build_pdb, wants_gateway_pdb
from .service_accounts import build_service_account, engine_service_account_name, ui_service_account_name
from .services import build_engine_service, build_headless_service, build_service
from .statefulset import build_statefulset
from .status_configmap import build_status_configmap
from .ui import build_ui_deployment, build_ui_ingress, build_ui_service


class ChildRef(NamedTuple):
    api_version: str
    kind: str
    name: str


class ChildKind(NamedTuple):
    api_version: str
    kind: str
    plural: str


# Every kind of object the operator makes. The operator watches each of them (its own, by label)
# to repair drift at once: a new child kind is one line here.
CHILD_KINDS: tuple[ChildKind, ...] = (
    ChildKind("v1", "Service", "services"),
    ChildKind("v1", "ConfigMap", "configmaps"),
    ChildKind("v1", "ServiceAccount", "serviceaccounts"),
    ChildKind("apps/v1", "StatefulSet", "statefulsets"),
    ChildKind("apps/v1", "Deployment", "deployments"),
    ChildKind("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets"),
    ChildKind("networking.k8s.io/v1", "Ingress", "ingresses"),
)


def ref_of(manifest: Mapping[str, Any]) -> ChildRef:
    return ChildRef(manifest["apiVersion"], manifest["kind"], manifest["metadata"]["name"])


def desired_children(
    body: Mapping[str, Any],
    spec: RerankerDeploymentSpec,
    status: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """All child manifests of `body`, whose parsed spec is `spec`. `status` is what the UI's status
    ConfigMap shows (default: the object's current status)."""
    name = body["metadata"]["name"]
    children = [
        build_service_account(body, engine_service_account_name(name), L.ENGINE),
        build_service(body, spec),
        build_headless_service(body, spec),
        build_statefulset(body, spec),
    ]
    if spec.disruption_budget.enabled:
        children.append(build_pdb(body, spec))
    if spec.ui.enabled:
        children.append(build_service_account(body, ui_service_account_name(name), L.UI))
        children.append(build_status_configmap(body, status if status is not None else body.get("status")))
        children.append(build_ui_deployment(body, spec))
        children.append(build_ui_service(body, spec))
        if spec.ui.ingress.enabled:
            children.append(build_ui_ingress(body, spec))
    if spec.gateway.enabled:
        children.append(build_engine_service(body, spec))
        children.append(build_gateway_deployment(body, spec))
        if wants_gateway_pdb(spec):
            children.append(build_gateway_pdb(body, spec))
    return children


def all_child_refs(name: str) -> list[ChildRef]:
    """Every child a RerankerDeployment can have, whatever its spec."""
    return [
        ChildRef("v1", "ServiceAccount", L.engine_name(name)),
        ChildRef("v1", "ServiceAccount", L.ui_name(name)),
        ChildRef("v1", "Service", name),
        ChildRef("v1", "Service", L.headless_name(name)),
        ChildRef("apps/v1", "StatefulSet", L.engine_name(name)),
        ChildRef("policy/v1", "PodDisruptionBudget", L.engine_name(name)),
        ChildRef("v1", "ConfigMap", L.status_configmap_name(name)),
        ChildRef("apps/v1", "Deployment", L.ui_name(name)),
        ChildRef("v1", "Service", L.ui_name(name)),
        ChildRef("networking.k8s.io/v1", "Ingress", L.ui_name(name)),
        ChildRef("v1", "Service", L.engine_service_name(name)),
        ChildRef("apps/v1", "Deployment", L.gateway_name(name)),
        ChildRef("policy/v1", "PodDisruptionBudget", L.gateway_name(name)),
    ]


def retired_children(body: Mapping[str, Any], desired: list[Mapping[str, Any]]) -> list[ChildRef]:
    """Children this spec does not want (switched off); to delete if present. `desired` is
    `desired_children(body, spec)`."""
    wanted = {ref_of(c) for c in desired}
    return [ref for ref in all_child_refs(body["metadata"]["name"]) if ref not in wanted]
