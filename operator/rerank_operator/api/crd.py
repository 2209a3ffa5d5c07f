"""The RerankerDeployment CustomResourceDefinition, generated from the pydantic models.

``build_crd()`` is pure: pydantic's JSON Schema of :class:`RerankerDeploymentSpec` and
:class:`RerankerDeploymentStatus` is rewritten into a *structural* OpenAPI v3 schema, the
dialect the API server accepts:

* ``$ref``s are inlined (the API server has no ``$defs``);
* ``Optional[X]`` (``anyOf: [X, null]``) becomes plain X, left out of ``required`` -- absent means
  unset (the API server prunes explicit nulls of non-nullable fields);
* JSON Schema 2020's numeric ``exclusiveMinimum: 0`` becomes OpenAPI 3.0's
  ``minimum: 0, exclusiveMinimum: true``;
* ``additionalProperties: false`` (pydantic's ``extra="forbid"``) is dropped: the API server
  prunes unknown fields, and clients with strict field validation (kubectl's default) get an
  "unknown field" error instead -- inside list items too, as long as no list is marked
  ``x-kubernetes-preserve-unknown-fields`` (that would keep a misspelt field of an item, silently);
* every free-text string of the spec (no pattern, enum or format of its own) gets
  ``NO_NUL_PATTERN``, as pydantic refuses a NUL in any string; ``additionalProperties: true`` becomes
  ``x-kubernetes-preserve-unknown-fields`` (pass-through objects such as ``affinity``);
* int-or-string fields (quantities, ``maxUnavailable``) take the one ``anyOf`` form that
  structural schemas allow.

Run ``python -m rerank_operator.api.crd`` to print the YAML; ``make crd`` writes it to the chart's
``crds/`` file (a unit test fails while that file is not this output). ``install_crd`` applies it to a cluster and waits until it
is served.
"""

from __future__ import annotations

import copy
import sys
import time
from typing import Any

import yaml

from ..version import VERSION
from . import v1alpha1 as api

CHART_CRD_PATH = "charts/rerank-operator/crds/rerankerdeployments.rerank.io.yaml"
YAML_HEADER = (
    "# Generated from rerank_operator.api.v1alpha1 -- do not edit by hand.\n"
    "# Regenerate: make crd\n"
)
# Keys of pydantic's JSON Schema that have no place in (or no meaning for) the CRD schema.
_DROPPED_KEYS = {"title", "$defs", "examples"}
_INT_OR_STRING = [{"type": "integer"}, {"type": "string"}]


class SchemaConversionError(ValueError):
    """The pydantic schema uses a construct the structural-schema rewrite does not handle."""


def to_structural(schema: dict[str, Any]) -> dict[str, Any]:
    """A pydantic (JSON Schema 2020-12) schema rewritten as a structural OpenAPI v3 schema."""
    defs = schema.get("$defs", {})
    return _convert(schema, defs, path="")


def _resolve(ref: str, defs: dict[str, Any]) -> dict[str, Any]:
    prefix = "#/$defs/"
    if not ref.startswith(prefix) or ref[len(prefix):] not in defs:
        raise SchemaConversionError(f"unsupported $ref {ref!r}")
    return defs[ref[len(prefix):]]


def _convert(node: dict[str, Any], defs: dict[str, Any], path: str) -> dict[str, Any]:
    node = dict(node)
    if "$ref" in node:
        # Siblings of a $ref (description, default) describe this use of the type: they win.
        target = _resolve(node.pop("$ref"), defs)
        node = {**target, **node}
        if "x-kubernetes-validations" in target and "x-kubernetes-validations" in node and \
                node["x-kubernetes-validations"] is not target["x-kubernetes-validations"]:
            node["x-kubernetes-validations"] = target["x-kubernetes-validations"] + node["x-kubernetes-validations"]
    if "anyOf" in node:
        branches = [b for b in node.pop("anyOf") if b != {"type": "null"}]
        if len(branches) == 1:
            # Optional[X]: X, with this node's description/default on top.
            inner = _resolve(branches[0]["$ref"], defs) if "$ref" in branches[0] else branches[0]
            merged = {**inner, **{k: v for k, v in branches[0].items() if k != "$ref"}, **node}
            if merged.get("default", ...) is None:
                del merged["default"]
            return _convert(merged, defs, path)
        if sorted(b.get("type") for b in branches) == ["integer", "string"] and all(len(b) == 1 for b in branches):
            node["x-kubernetes-int-or-string"] = True
        else:
            raise SchemaConversionError(f"{path or '<root>'}: anyOf other than Optional[X] or int|str")
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED_KEYS:
            continue
        if key == "default" and value is None:
            continue
        if key == "properties":
            out[key] = {name: _convert(sub, defs, f"{path}.{name}") for name, sub in value.items()}
        elif key == "items":
            out[key] = _convert(value, defs, f"{path}[]")
        elif key == "additionalProperties":
            if value is True:
                out["x-kubernetes-preserve-unknown-fields"] = True
            elif isinstance(value, dict):
                out[key] = _convert(value, defs, f"{path}.*")
            # False: dropped (see the module docstring).
        elif key == "const":
            # A one-value Literal: OpenAPI v3.0 (the API server's dialect) has no const; it would be ignored.
            out["enum"] = [copy.deepcopy(value)]
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
        else:
            out[key] = copy.deepcopy(value)
    if out.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = copy.deepcopy(_INT_OR_STRING)
    if out.get("x-kubernetes-preserve-unknown-fields") and "type" not in out:
        out["type"] = "object"
    if "type" not in out and not out.get("x-kubernetes-int-or-string"):
        raise SchemaConversionError(f"{path or '<root>'}: no type")
    return dict(sorted(out.items(), key=lambda kv: _key_rank(kv[0])))


_FIRST_KEYS = ("type", "description", "default")
_LAST_KEYS = ("properties", "required", "items", "additionalProperties")


def _key_rank(key: str) -> tuple[int, int, str]:
    # A stable, readable key order for the generated YAML: what a field is first, its children after.
    if key in _FIRST_KEYS:
        return (0, _FIRST_KEYS.index(key), key)
    if key in _LAST_KEYS:
        return (2, _LAST_KEYS.index(key), key)
    if key.startswith("x-kubernetes-"):
        return (3, 0, key)
    return (1, 0, key)


# Environment variables and command lines, where the spec's strings end up, cannot carry a NUL.
NO_NUL_PATTERN = r"^[^\x00]*$"


def _refuse_nul(node: dict[str, Any]) -> dict[str, Any]:
    """``node`` with NO_NUL_PATTERN on each string that has no pattern, enum or format of its own."""
    if node.get("type") == "string" and not {"pattern", "enum", "format"} & node.keys():
        ordered = dict(sorted({**node, "pattern": NO_NUL_PATTERN}.items(), key=lambda kv: _key_rank(kv[0])))
        node.clear()
        node.update(ordered)
    for name in node.get("properties") or {}:
        _refuse_nul(node["properties"][name])
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            _refuse_nul(node[key])
    return node


def spec_schema() -> dict[str, Any]:
    return _refuse_nul(to_structural(api.RerankerDeploymentSpec.model_json_schema(by_alias=True, mode="validation")))


def status_schema() -> dict[str, Any]:
    schema = to_structural(api.RerankerDeploymentStatus.model_json_schema(by_alias=True, mode="validation"))
    # Known status fields are validated; other keys (e.g. the operator framework's own
    # bookkeeping under status) are kept rather than silently pruned.
    schema["x-kubernetes-preserve-unknown-fields"] = True
    return schema


def open_api_schema() -> dict[str, Any]:
    spec = spec_schema()
    spec["default"] = {}  # an object without spec gets every default
    return {
        "type": "object",
        "description": "RerankerDeployment serves a Qwen3-Reranker model with vLLM on GPUs (or CPUs, "
        "spec.engine.device): an engine StatefulSet (one pod per replica, tensorParallelSize GPUs each), a stable rerank endpoint "
        "(Service <name>, POST /v1/rerank), an optional Gradio UI, a PodDisruptionBudget and "
        "autoscaling by throughput.",
        "properties": {
            "apiVersion": {"type": "string", "description": "APIVersion of this object: rerank.io/v1alpha1."},
            "kind": {"type": "string", "description": "Kind of this object: RerankerDeployment."},
            # Declared so that the name rule below can point its fieldPath at metadata.name.
            "metadata": {"type": "object", "properties": {"name": {"type": "string"}}},
            "spec": spec,
            "status": status_schema(),
        },
        "x-kubernetes-validations": [
            {
                "rule": f"size(self.metadata.name) <= {api.MAX_NAME_LENGTH} && "
                f"self.metadata.name.matches('{api.NAME_PATTERN}')",
                "message": api.NAME_RULE_MESSAGE,
                "reason": "FieldValueInvalid",
                "fieldPath": ".metadata.name",
            },
        ],
    }


PRINTER_COLUMNS = [
    {"name": "Model", "type": "string", "jsonPath": ".spec.model.name", "description": "Served model."},
    {"name": "TP", "type": "integer", "jsonPath": ".spec.engine.tensorParallelSize",
     "description": "GPUs per engine pod (tensor parallel size)."},
    {"name": "Ready", "type": "integer", "jsonPath": ".status.readyReplicas", "description": "Ready engine pods."},
    {"name": "Desired", "type": "integer", "jsonPath": ".status.desiredReplicas",
     "description": "Engine replicas wanted."},
    {"name": "Queue", "type": "number", "jsonPath": ".status.queueDepth",
     "description": "Waiting + running requests at the last scrape."},
    {"name": "Endpoint", "type": "string", "jsonPath": ".status.endpoint", "description": "In-cluster rerank URL."},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def build_crd() -> dict[str, Any]:
    """The CustomResourceDefinition (apiextensions.k8s.io/v1) of RerankerDeployment."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": api.CRD_NAME,
            # The release that wrote this schema: Helm never upgrades crds/, so `kubectl get crd -L
            # app.kubernetes.io/version` is how to tell whether a cluster's CRD is behind its operator.
            "labels": {"app.kubernetes.io/name": "rerank-operator", "app.kubernetes.io/part-of": "rerank-operator",
                       "app.kubernetes.io/version": VERSION},
        },
        "spec": {
            "group": api.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": api.KIND,
                "listKind": f"{api.KIND}List",
                "plural": api.PLURAL,
                "singular": api.SINGULAR,
                "shortNames": list(api.SHORT_NAMES),
                "categories": list(api.CATEGORIES),
            },
            "versions": [
                {
                    "name": api.VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": open_api_schema()},
                    "subresources": {
                        "status": {},
                        # `kubectl scale rrd/x --replicas 3`, HPA and KEDA go through this.
                        "scale": {
                            "specReplicasPath": ".spec.replicas",
                            "statusReplicasPath": ".status.replicas",
                            "labelSelectorPath": ".status.selector",
                        },
                    },
                    "additionalPrinterColumns": copy.deepcopy(PRINTER_COLUMNS),
                }
            ],
        },
    }


def crd_yaml() -> str:
    return YAML_HEADER + yaml.safe_dump(build_crd(), sort_keys=False, width=120, allow_unicode=True)


def cel_rules(schema: dict[str, Any] | None = None, path: str = "") -> list[tuple[str, dict[str, str]]]:
    """Every ``x-kubernetes-validations`` entry of the schema with the path it sits on."""
    if schema is None:
        schema = open_api_schema()
    found = [(path or ".", rule) for rule in schema.get("x-kubernetes-validations", [])]
    for name, sub in schema.get("properties", {}).items():
        found += cel_rules(sub, f"{path}.{name}")
    if "items" in schema:
        found += cel_rules(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        found += cel_rules(schema["additionalProperties"], f"{path}.*")
    return found


# --- cluster I/O ---------------------------------------------------------------------------------


def install_crd(api_client: Any, timeout: float = 60.0) -> dict[str, Any]:
    """Create or update the CRD and wait until it is Established (its API is served).

    Returns the CRD as the API server stored it. ``api_client`` is a ``kubernetes.client.ApiClient``.
    """
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    ext = client.ApiextensionsV1Api(api_client)
    body = build_crd()
    try:
        ext.create_custom_resource_definition(body)
    except ApiException as exc:
        if exc.status != 409:
            raise
        # Already there (an older generation of it, perhaps): replace, keeping its resourceVersion.
        for _ in range(5):
            current = ext.read_custom_resource_definition(api.CRD_NAME)
            body["metadata"]["resourceVersion"] = current.metadata.resource_version
            try:
                ext.replace_custom_resource_definition(api.CRD_NAME, body)
                break
            except ApiException as conflict:
                if conflict.status != 409:
                    raise
        else:
            raise RuntimeError(f"could not update CRD {api.CRD_NAME}: kept conflicting")
    return wait_established(api_client, timeout)


def wait_established(api_client: Any, timeout: float = 60.0) -> dict[str, Any]:
    from kubernetes import client

    ext = client.ApiextensionsV1Api(api_client)
    deadline = time.monotonic() + timeout
    last: list[Any] = []
    while True:
        crd = ext.read_custom_resource_definition(api.CRD_NAME)
        last = (crd.status and crd.status.conditions) or []
        if any(c.type == "Established" and c.status == "True" for c in last):
            return api_client.sanitize_for_serialization(crd)
        if any(c.type == "NamesAccepted" and c.status == "False" for c in last):
            raise RuntimeError(f"CRD {api.CRD_NAME} names not accepted: {[(c.type, c.message) for c in last]}")
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"CRD {api.CRD_NAME} not Established after {timeout:.0f}s: {[(c.type, c.status, c.message) for c in last]}"
            )
        time.sleep(0.2)


if __name__ == "__main__":
    sys.stdout.write(crd_yaml())
