"""The RerankerDeployment CRD on a real API server: what admission refuses (with the field named),
what it accepts and fills in, and what kubectl shows (explain, printer columns, scale).

The cases are the shared table of ``tests/unit/api/admission_cases.py``; the unit tests check the
same table against pydantic and the OpenAPI schema, so the three agree.
"""

from __future__ import annotations

import copy
import json
import re
import time
import uuid
from typing import Any, Iterator

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from rerank_operator.api import crd as crdmod
from rerank_operator.api.v1alpha1 import API_VERSION, GROUP, KIND, PLURAL, VERSION, parse_spec
from tests.unit.api.admission_cases import INVALID, VALID, get_path, leaf_paths

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="session")
def rerank_crd(control_plane) -> dict[str, Any]:
    """The RerankerDeployment CRD, installed once per session and Established."""
    api = control_plane.api_client()
    try:
        return crdmod.install_crd(api)
    finally:
        api.close()


@pytest.fixture(scope="module")
def admission_ns(control_plane, rerank_crd) -> Iterator[str]:
    # One namespace for the whole module: most requests here are refused and leave nothing behind.
    api = control_plane.api_client()
    core = client.CoreV1Api(api)
    name = f"t-admission-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": name, "labels": {"rerank.io/test": "true"}}})
    try:
        yield name
    finally:
        core.delete_namespace(name, propagation_policy="Background")
        api.close()


@pytest.fixture(scope="module")
def custom(control_plane) -> Iterator[client.CustomObjectsApi]:
    api = control_plane.api_client()
    yield client.CustomObjectsApi(api)
    api.close()


# The API server's note when schema errors keep it from running the CEL rules (no field of its own).
SKIPPED_RULES_NOTE = ("<nil>: Invalid value: null: some validation rules were not checked because the object was "
                      "invalid; correct the existing errors to complete validation")


def _body(name: str, spec: dict[str, Any] | None) -> dict[str, Any]:
    body: dict[str, Any] = {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name}}
    if spec is not None:
        body["spec"] = copy.deepcopy(spec)
    return body


def _create(custom: client.CustomObjectsApi, ns: str, name: str, spec: dict[str, Any] | None) -> dict[str, Any]:
    # Strict field validation, as kubectl does by default: unknown fields are errors, not dropped.
    return custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, _body(name, spec),
                                                  field_validation="Strict")


def test_crd_is_established_with_its_names(control_plane, rerank_crd):
    names = rerank_crd["status"]["acceptedNames"]
    assert names["kind"] == "RerankerDeployment" and names["shortNames"] == ["rrd"]
    assert names["categories"] == ["rerank"]
    out = control_plane.kubectl("api-resources", "--api-group=rerank.io", "-o", "wide").stdout
    assert "rerankerdeployments" in out and "rrd" in out


def test_install_is_idempotent(control_plane, rerank_crd):
    api = control_plane.api_client()
    try:
        again = crdmod.install_crd(api)
    finally:
        api.close()
    assert again["metadata"]["uid"] == rerank_crd["metadata"]["uid"]


@pytest.mark.parametrize("case", INVALID, ids=lambda c: c.id)
def test_invalid_spec_is_refused_naming_the_field(case, custom, admission_ns):
    name = f"bad-{case.id}"[:45].rstrip("-")
    with pytest.raises(ApiException) as info:
        _create(custom, admission_ns, name, case.spec)
    error = info.value
    # 422 Invalid for schema and CEL errors; 400 BadRequest for strict decoding (unknown fields).
    assert error.status in (400, 422), error.body
    message = json.loads(error.body)["message"]
    assert case.field in message, message
    # A wrong type is a type error, not "unknown field"; a size limit is in characters, not bytes;
    # every error names its field (the server's own notes without a field path -- CEL rules skipped,
    # an integer type check -- name it in their text).
    for unplaced in message.replace(SKIPPED_RULES_NOTE, "").split("<nil>:")[1:]:
        assert case.field in unplaced, message
    assert not re.search(r"\bbytes\b", message), message
    if case.layer not in ("server", "decoding"):
        assert "unknown field" not in message, message


@pytest.mark.parametrize("case", VALID, ids=lambda c: c.id)
def test_valid_spec_is_accepted_with_server_defaults_matching_pydantic(case, custom, admission_ns):
    name = f"ok-{case.id}"[:45].rstrip("-")
    created = _create(custom, admission_ns, name, case.spec)
    try:
        stored = created["spec"]
        for dotted, expected in case.expect.items():
            assert get_path(stored, dotted) == expected, dotted
        # The API server filled exactly the defaults pydantic fills, with the same values.
        parsed = parse_spec(case.spec)
        assert parse_spec(stored) == parsed
        assert leaf_paths(stored) == leaf_paths(parsed.to_k8s())
    finally:
        custom.delete_namespaced_custom_object(GROUP, VERSION, admission_ns, PLURAL, name)


@pytest.mark.parametrize("name", ["a" * 46, "8b-reranker"])
def test_names_that_cannot_name_the_children_are_refused(name, custom, admission_ns):
    with pytest.raises(ApiException) as info:
        _create(custom, admission_ns, name, {})
    assert info.value.status == 422
    message = json.loads(info.value.body)["message"]
    assert "metadata.name must be a DNS-1035 label" in message
    assert message.count("metadata.name") >= 2 and "<nil>" not in message, message  # the field path is named


def test_object_without_spec_gets_every_default(custom, admission_ns):
    created = _create(custom, admission_ns, "no-spec", None)
    try:
        assert created["spec"] == parse_spec({}).to_k8s()
    finally:
        custom.delete_namespaced_custom_object(GROUP, VERSION, admission_ns, PLURAL, "no-spec")


def test_update_is_validated_too(custom, admission_ns):
    _create(custom, admission_ns, "update-me", {"autoscaling": {"enabled": True}})
    try:
        with pytest.raises(ApiException) as info:
            custom.patch_namespaced_custom_object(
                GROUP, VERSION, admission_ns, PLURAL, "update-me", {"spec": {"autoscaling": {"minReplicas": 9}}})
        assert info.value.status == 422
        assert "spec.autoscaling.minReplicas" in json.loads(info.value.body)["message"]
        patched = custom.patch_namespaced_custom_object(
            GROUP, VERSION, admission_ns, PLURAL, "update-me", {"spec": {"autoscaling": {"maxReplicas": 12}}})
        assert patched["spec"]["autoscaling"]["maxReplicas"] == 12
    finally:
        custom.delete_namespaced_custom_object(GROUP, VERSION, admission_ns, PLURAL, "update-me")


def test_kubectl_apply_refuses_unknown_fields_and_cel_violations(control_plane, admission_ns):
    manifest = {
        "apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": "kubectl-bad", "namespace": admission_ns},
        "spec": {"engine": {"tensorParalelSize": 2}},  # a typo must not be silently dropped
    }
    proc = control_plane.kubectl("apply", "-f", "-", input=json.dumps(manifest), check=False)
    assert proc.returncode != 0
    assert "spec.engine.tensorParalelSize" in proc.stderr, proc.stderr
    manifest["spec"] = {"ui": {"ingress": {"enabled": True}}}
    proc = control_plane.kubectl("apply", "-f", "-", input=json.dumps(manifest), check=False)
    assert proc.returncode != 0
    assert "spec.ui.ingress.host is required when spec.ui.ingress.enabled is true" in proc.stderr, proc.stderr


def _explain(control_plane, resource: str, timeout: float = 30.0) -> str:
    # The CRD's OpenAPI document is published a moment after it is Established.
    deadline = time.monotonic() + timeout
    while True:
        proc = control_plane.kubectl("explain", resource, check=False)
        if proc.returncode == 0 or time.monotonic() > deadline:
            assert proc.returncode == 0, proc.stderr
            return proc.stdout
        time.sleep(0.5)


def test_kubectl_explain_teaches_the_api(control_plane, rerank_crd):
    engine = _explain(control_plane, "rrd.spec.engine")
    for text in ("tensorParallelSize", "GPUs per engine pod", "gpuMemoryUtilization", "extraArgs",
                 "The vLLM engine"):
        assert text in engine, engine
    top = _explain(control_plane, "rerankerdeployments")
    assert "Qwen3-Reranker" in top
    field = _explain(control_plane, "rrd.spec.autoscaling.targetUtilization")
    assert "Share of a replica's learned capacity" in field
    status = _explain(control_plane, "rrd.status.conditions")
    assert "AutoscalingActive" in status


def test_printer_columns_and_scale_subresource(control_plane, custom, admission_ns):
    _create(custom, admission_ns, "shown", {"model": {"name": "Qwen/Qwen3-Reranker-4B"},
                                            "engine": {"tensorParallelSize": 2}})
    try:
        selector = "app.kubernetes.io/instance=shown,app.kubernetes.io/component=engine"
        endpoint = f"http://shown.{admission_ns}.svc:8000/v1/rerank"
        custom.patch_namespaced_custom_object_status(GROUP, VERSION, admission_ns, PLURAL, "shown", {"status": {
            "replicas": 1, "readyReplicas": 1, "desiredReplicas": 2, "queueDepth": 7.5,
            "selector": selector, "endpoint": endpoint,
        }})
        out = control_plane.kubectl("get", "rrd", "-n", admission_ns, "shown").stdout.splitlines()
        assert out[0].split() == ["NAME", "MODEL", "TP", "READY", "DESIRED", "QUEUE", "ENDPOINT", "AGE"], out
        assert out[1].split()[:7] == ["shown", "Qwen/Qwen3-Reranker-4B", "2", "1", "2", "7.5", endpoint], out
        # The category lists it too.
        assert "shown" in control_plane.kubectl("get", "rerank", "-n", admission_ns).stdout

        # `kubectl scale` writes spec.replicas through the scale subresource; HPA reads the selector.
        control_plane.kubectl("scale", "rrd/shown", "-n", admission_ns, "--replicas=3")
        obj = custom.get_namespaced_custom_object(GROUP, VERSION, admission_ns, PLURAL, "shown")
        assert obj["spec"]["replicas"] == 3
        scale = custom.get_namespaced_custom_object_scale(GROUP, VERSION, admission_ns, PLURAL, "shown")
        assert scale["spec"]["replicas"] == 3
        assert scale["status"] == {"replicas": 1, "selector": selector}

        # The status subresource validates too.
        with pytest.raises(ApiException) as info:
            custom.patch_namespaced_custom_object_status(GROUP, VERSION, admission_ns, PLURAL, "shown",
                                                         {"status": {"readyReplicas": -1}})
        assert "status.readyReplicas" in json.loads(info.value.body)["message"]
    finally:
        custom.delete_namespaced_custom_object(GROUP, VERSION, admission_ns, PLURAL, "shown")
