"""The manual's API reference is what the CRD gives (as the CRD is what the API models give), and it names every
field of the CRD with its default, limits and validation messages."""

from __future__ import annotations

import yaml

from rerank_localdev import api_reference


def test_the_api_reference_is_generated_from_the_current_crd():
    assert api_reference.OUTPUT.read_text() == api_reference.render(), \
        "docs/reference/api.md is stale: run `make api-reference` (or `make crd`)"
    assert api_reference.main(["check"]) == 0


def test_every_field_default_and_validation_message_of_the_crd_is_on_the_page():
    page = api_reference.OUTPUT.read_text()
    crd = yaml.safe_load(api_reference.CRD.read_text())
    root = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
    for top in ("spec", "status"):
        for path, schema, _ in api_reference.fields(top, root[top]):
            assert f"`{path}`" in page, path
            if "default" in schema:
                assert api_reference.code(api_reference.json.dumps(schema["default"])) in page, path
            for rule in schema.get("x-kubernetes-validations") or []:
                assert api_reference.prose(rule["message"]) in page, rule["message"]


def test_a_field_reads_with_its_type_default_and_limits():
    section = api_reference.section("spec.engine.maxModelLen", {
        "type": "integer", "default": 8192, "minimum": 128, "maximum": 131072,
        "description": "Context length <tokens>.", "x-kubernetes-validations": [{"rule": "x", "message": "too_long"}]},
        required=False)
    assert section.splitlines()[:5] == [
        "### `spec.engine.maxModelLen`", "", "Type: integer · Default: `8192` · Limits: minimum 128; maximum 131072", "",
        "Context length &lt;tokens&gt;."]
    assert section.endswith("Refused with:\n\n- too\\_long\n")
