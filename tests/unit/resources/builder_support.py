"""Helpers for the builder tests: a RerankerDeployment body and a typo check against the Kubernetes
client's models (a key the API does not know would be dropped by the round trip)."""

from __future__ import annotations

import copy
from typing import Any

from kubernetes import client

from rerank_operator.api.v1alpha1 import parse_spec
from rerank_operator.resources import desired_children

_API = client.ApiClient()


def make_body(spec: dict[str, Any] | None = None, name: str = "rr", namespace: str = "search") -> dict[str, Any]:
    return {
        "apiVersion": "rerank.io/v1alpha1",
        "kind": "RerankerDeployment",
        "metadata": {"name": name, "namespace": namespace, "uid": "0b3c-uid", "generation": 1,
                     "resourceVersion": "1"},
        "spec": copy.deepcopy(spec or {}),
    }


def children_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Every child manifest of `body`, its spec parsed as the reconciler parses it."""
    return desired_children(body, parse_spec(body["spec"]))


def child(body: dict[str, Any], kind: str, name: str | None = None) -> dict[str, Any]:
    children = children_of(body)
    matches = [c for c in children if c["kind"] == kind and (name is None or c["metadata"]["name"] == name)]
    assert len(matches) == 1, [(c["kind"], c["metadata"]["name"]) for c in children]
    return matches[0]


def assert_known_fields(manifest: dict[str, Any], model: str) -> None:
    """Every key of ``manifest`` is a field of the Kubernetes type ``model`` (e.g. V1StatefulSet)."""
    typed = _API._ApiClient__deserialize(copy.deepcopy(manifest), model)
    assert _API.sanitize_for_serialization(typed) == manifest


