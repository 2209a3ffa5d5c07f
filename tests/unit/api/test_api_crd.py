"""The generated CRD: structural, self-describing, in sync with the chart, and in agreement with the
pydantic models (same verdicts, same defaults) on the shared table of cases."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any, Iterator

import jsonschema
import pytest
import yaml

from rerank_operator.api import crd as crdmod
from rerank_operator.api.v1alpha1 import MAX_NAME_LENGTH, NAME_PATTERN, parse_spec
from tests.unit.api.admission_cases import INVALID, VALID, get_path, leaf_paths

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def crd() -> dict[str, Any]:
    return crdmod.build_crd()


@pytest.fixture(scope="module")
def spec_schema(crd) -> dict[str, Any]:
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]


def _nodes(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from _nodes(sub, f"{path}.{name}")
    if "items" in schema:
        yield from _nodes(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _nodes(schema["additionalProperties"], f"{path}.*")


def apply_structural_defaults(schema: dict[str, Any], value: Any) -> Any:
    """What the API server's defaulting does to an object: absent fields with a ``default`` get it,
    then defaulting goes on inside (so ``default: {}`` fills the nested defaults)."""
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for name, sub in props.items():
            if name not in value and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
        for name, item in value.items():
            if name in props:
                apply_structural_defaults(props[name], item)
            elif isinstance(schema.get("additionalProperties"), dict):
                apply_structural_defaults(schema["additionalProperties"], item)
    elif isinstance(value, list) and "items" in schema:
        for item in value:
            apply_structural_defaults(schema["items"], item)
    return value


# --- the file the chart ships --------------------------------------------------------------------


def test_chart_crd_is_the_generated_one():
    path = REPO / crdmod.CHART_CRD_PATH
    assert path.read_text() == crdmod.crd_yaml(), (
        f"{crdmod.CHART_CRD_PATH} is out of date; regenerate it with `make crd`"
    )


def test_yaml_parses_back_to_the_crd(crd):
    assert yaml.safe_load(crdmod.crd_yaml()) == crd


# --- shape ---------------------------------------------------------------------------------------


def test_names_scope_and_subresources(crd):
    spec = crd["spec"]
    assert crd["metadata"]["name"] == "rerankerdeployments.rerank.io"
    assert spec["group"] == "rerank.io" and spec["scope"] == "Namespaced"
    assert spec["names"]["shortNames"] == ["rrd"] and spec["names"]["kind"] == "RerankerDeployment"
    (version,) = spec["versions"]
    assert version["name"] == "v1alpha1" and version["served"] and version["storage"]
    assert version["subresources"]["status"] == {}
    assert version["subresources"]["scale"] == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    schema = version["schema"]["openAPIV3Schema"]
    assert schema["properties"]["spec"]["properties"]["replicas"]["type"] == "integer"
    assert schema["properties"]["status"]["properties"]["replicas"]["type"] == "integer"
    assert schema["properties"]["status"]["properties"]["selector"]["type"] == "string"


def test_printer_columns_point_at_schema_fields(crd):
    version = crd["spec"]["versions"][0]
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert list(columns) == ["Model", "TP", "Ready", "Desired", "Queue", "Endpoint", "Age"]
    schema = version["schema"]["openAPIV3Schema"]
    for name, json_path in columns.items():
        if json_path.startswith(".metadata."):
            continue
        node = schema
        for part in json_path.strip(".").split("."):
            node = node["properties"][part]
        assert "type" in node, name


def test_schema_is_structural(crd):
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _nodes(schema):
        assert "$ref" not in node and "title" not in node and "nullable" not in node, path
        assert not ("properties" in node and "additionalProperties" in node), path
        assert node.get("additionalProperties") not in (True, False), path
        if "anyOf" in node:  # only the int-or-string form structural schemas allow
            assert node.get("x-kubernetes-int-or-string") is True, path
            assert node["anyOf"] == [{"type": "integer"}, {"type": "string"}], path
            assert "type" not in node, path
        else:
            assert node.get("type") in ("object", "array", "string", "integer", "number", "boolean"), path
        if isinstance(node.get("exclusiveMinimum"), (int, float)) and not isinstance(node["exclusiveMinimum"], bool):
            pytest.fail(f"{path}: JSON Schema 2020 exclusiveMinimum leaked into OpenAPI 3.0")
        if "default" in node:
            # The API server requires defaults to validate against their own schema.
            jsonschema.Draft4Validator(node).validate(node["default"])


def test_every_field_is_described(spec_schema, crd):
    # `kubectl explain` is the manual: nothing may be left without text.
    status = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    for root in (spec_schema, status):
        for path, node in _nodes(root):
            if path.endswith("[]") or path.endswith(".*"):
                continue  # items / map values are described by their list or map
            assert len(node.get("description", "")) >= 10, f"no description at {path or '<root>'}"


def test_preserve_unknown_fields_only_where_pass_through(spec_schema, crd):
    # Nowhere in the spec: on a list it would also keep a list item's misspelt field, unrefused
    # (admission_cases' generated typo-in-* cases).
    preserved = {path for path, node in _nodes(spec_schema) if node.get("x-kubernetes-preserve-unknown-fields")}
    assert preserved == set()
    status = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    assert status["x-kubernetes-preserve-unknown-fields"] is True


def test_int_or_string_fields(spec_schema):
    int_or_string = {path for path, node in _nodes(spec_schema) if node.get("x-kubernetes-int-or-string")}
    assert int_or_string == {
        ".engine.resources.requests.*", ".engine.resources.limits.*", ".cache.size", ".disruptionBudget.maxUnavailable",
        ".engine.env[].valueFrom.resourceFieldRef.divisor",
    }


EXPECTED_CEL = {
    (".", ".metadata.name"),
    (".spec.instruction", None),
    (".spec.model", ".revision"),
    (".spec.model.revision", None),
    (".spec.model.pvc.path", None),
    (".spec.engine", ".maxNumBatchedTokens"),
    (".spec.engine", ".dtype"),
    (".spec.engine.extraArgs", None),
    (".spec.engine.env", None),
    (".spec.engine.env[]", ".valueFrom"),
    (".spec.engine.env[].valueFrom", None),
    (".spec.engine.resources", ".limits"),
    (".spec.engine.resources", ".requests"),
    (".spec.engine.resources.requests", None),
    (".spec.engine.resources.limits", None),
    (".spec.scheduling.nodeSelector", None),
    (".spec.scheduling.tolerations[]", ".operator"),
    (".spec.scheduling.tolerations[]", ".key"),
    (".spec.cache.size", None),
    (".spec.ui.ingress.host", None),
    (".spec.ui.ingress.annotations", None),
    (".spec.autoscaling", ".minReplicas"),
    (".spec.scheduling.tolerations[]", ".value"),
    (".spec.scheduling.tolerations[]", ".tolerationSeconds"),
    (".spec.ui", ".ingress.enabled"),
    (".spec.ui.ingress", ".host"),
    (".spec.disruptionBudget", ".maxUnavailable"),
    (".spec.gateway.cache", ".redis"),
    (".spec.gateway.chunking", ".overlapTokens"),
    (".spec", ".autoscaling.minReplicas"),
}


def test_cel_rules_inventory_and_messages_name_their_field():
    rules = crdmod.cel_rules()
    # Affinity's requirement rules sit on every matchExpressions list of the typed core v1 Affinity.
    affinity = [(path, rule) for path, rule in rules if path.startswith(".spec.scheduling.affinity.")]
    assert len(affinity) >= 12
    for path, rule in affinity:
        assert path.endswith("matchExpressions[]") and rule["fieldPath"] == ".values"
        assert rule["message"].startswith("spec.scheduling.affinity") and ".values must" in rule["message"]
    rules = [(path, rule) for path, rule in rules if not path.startswith(".spec.scheduling.affinity.")]
    assert {(path, rule.get("fieldPath")) for path, rule in rules} == EXPECTED_CEL
    for path, rule in rules:
        target = (path + rule.get("fieldPath", "")).lstrip(".") or "metadata.name"
        assert rule["message"].startswith(target), (target, rule["message"])
        assert rule["reason"] in ("FieldValueInvalid", "FieldValueRequired", "FieldValueForbidden")


def test_cel_rules_have_bounded_inputs(spec_schema):
    # The API server refuses rules whose estimated cost is unbounded: every list and string a rule
    # iterates over must carry maxItems / maxLength.
    for path, node in _nodes(spec_schema):
        if node.get("type") == "array" and node.get("x-kubernetes-validations"):
            assert "maxItems" in node, path
            if node["items"].get("type") == "string":
                assert "maxLength" in node["items"], path


# --- agreement with pydantic ---------------------------------------------------------------------


@pytest.mark.parametrize("case", VALID, ids=lambda c: c.id)
def test_valid_specs_pass_the_schema_and_defaults_agree(case, spec_schema):
    defaulted = apply_structural_defaults(spec_schema, copy.deepcopy(case.spec))
    jsonschema.Draft4Validator(spec_schema).validate(defaulted)
    for dotted, expected in case.expect.items():
        assert get_path(defaulted, dotted) == expected, dotted
    # The API server's defaults and pydantic's are the same: the defaulted object parses to the
    # same spec as the raw one, and fills exactly the fields pydantic reports.
    parsed = parse_spec(case.spec)
    assert parse_spec(defaulted) == parsed
    assert leaf_paths(defaulted) == leaf_paths(parsed.to_k8s())


@pytest.mark.parametrize("case", INVALID, ids=lambda c: c.id)
def test_invalid_specs_are_refused_by_the_layer_that_owns_them(case, spec_schema):
    defaulted = apply_structural_defaults(spec_schema, copy.deepcopy(case.spec))
    errors = list(jsonschema.Draft4Validator(spec_schema).iter_errors(defaulted))
    if case.layer in ("schema", "decoding"):
        assert errors, f"the OpenAPI schema accepts {case.spec}"
        paths = {"spec" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e.absolute_path)
                 for e in errors}
        # Missing required fields are reported on the parent object.
        assert any(case.field == p or case.field.startswith(p + ".") or p.startswith(case.field) for p in paths), paths
    else:
        # No schema-level error: the CEL rule (or the server's list-map / unknown-field check) is
        # the only guard, which the admission tests exercise on a real API server.
        assert not errors, [e.message for e in errors]
        if case.layer == "cel":
            assert any(case.field.replace("[0]", "[]").startswith((path + rule.get("fieldPath", "")).lstrip("."))
                       for path, rule in crdmod.cel_rules()), case.field


def test_structural_rewrite_refuses_unsupported_unions():
    schema = {"type": "object", "properties": {"x": {"anyOf": [{"type": "integer"}, {"type": "boolean"}]}}}
    with pytest.raises(crdmod.SchemaConversionError, match=".x"):
        crdmod.to_structural(schema)


@pytest.mark.parametrize("name, ok", [
    ("rr", True), ("qwen3-reranker-8b", True), ("a" * 45, True),
    ("a" * 46, False), ("8b-reranker", False), ("Reranker", False), ("rr-", False), ("rr.prod", False),
])
def test_name_rule(name, ok):
    assert (len(name) <= MAX_NAME_LENGTH and re.fullmatch(NAME_PATTERN, name) is not None) is ok
    # The CRD's root rule is that check, spelled in CEL.
    (rule,) = crdmod.build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["x-kubernetes-validations"]
    assert f"<= {MAX_NAME_LENGTH}" in rule["rule"] and NAME_PATTERN in rule["rule"]
