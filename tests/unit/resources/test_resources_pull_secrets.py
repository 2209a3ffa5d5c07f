"""spec.imagePullSecrets reaches every pod the operator makes (engine, UI, gateway), and nothing is written
when it is empty (the child must read back as written)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from rerank_operator.api.v1alpha1 import RerankerDeploymentSpec
from tests.unit.resources.builder_support import child, make_body

PODS = (("StatefulSet", "rr-engine"), ("Deployment", "rr-ui"), ("Deployment", "rr-gateway"))


@pytest.mark.parametrize(("kind", "name"), PODS)
def test_every_pod_gets_the_pull_secrets_in_order(kind: str, name: str) -> None:
    body = make_body({"imagePullSecrets": [{"name": "ghcr"}, {"name": "mirror"}]})
    pod = child(body, kind, name)["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "ghcr"}, {"name": "mirror"}]


@pytest.mark.parametrize(("kind", "name"), PODS)
def test_no_pull_secrets_no_field(kind: str, name: str) -> None:
    assert "imagePullSecrets" not in child(make_body(), kind, name)["spec"]["template"]["spec"]


def test_a_secret_named_twice_is_refused_by_name() -> None:
    with pytest.raises(ValidationError, match="spec.imagePullSecrets must not name a Secret twice"):
        RerankerDeploymentSpec.model_validate({"imagePullSecrets": [{"name": "a"}, {"name": "a"}]})
