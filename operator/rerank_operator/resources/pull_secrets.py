"""The pod spec's imagePullSecrets for the engine, UI and gateway pods (spec.imagePullSecrets)."""

from __future__ import annotations

from typing import Any

from ..api.v1alpha1 import RerankerDeploymentSpec


def add_image_pull_secrets(pod_spec: dict[str, Any], spec: RerankerDeploymentSpec) -> None:
    """Only when there is any: the API server drops an empty list, and a child must read back as written."""
    if spec.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": secret.name} for secret in spec.image_pull_secrets]
