"""spec.ui: the Gradio web UI and its optional Ingress."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import ConfigDict, Field, field_validator, model_validator

from .base import DNS_SUBDOMAIN_PATTERN, IMAGE_PATTERN, _LABEL_KEYS_CEL, _Model, _cel, _object, label_key_problem
from .core import LocalObjectRef
from ..version import image as release_image


DEFAULT_UI_IMAGE = release_image("ui")
# A DNS host name for an Ingress rule, optionally with one leading wildcard label.
HOST_PATTERN = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


class IngressTLS(_Model):
    """TLS for the UI's Ingress."""

    secret_name: str = Field(
        min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN,
        description="Secret of type kubernetes.io/tls with the certificate for spec.ui.ingress.host.",
    )


class IngressSpec(_Model):
    """Exposes the UI outside the cluster."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "!has(self.enabled) || !self.enabled || (has(self.host) && self.host != '')",
                    "spec.ui.ingress.host is required when spec.ui.ingress.enabled is true",
                    field_path=".host",
                    reason="FieldValueRequired",
                ),
            ],
        },
    )

    enabled: bool = Field(default=False, description="Create an Ingress <name>-ui for the UI.")
    class_name: str | None = Field(
        default=None, min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN,
        description="IngressClass to use (e.g. nginx). Default: the cluster's default IngressClass.",
    )
    host: str | None = Field(
        default=None, min_length=1, max_length=253, pattern=HOST_PATTERN,
        description="Host name the UI is served on, e.g. rerank.example.com (a DNS name, not an IP address). "
        "Required when enabled.",
        json_schema_extra={"x-kubernetes-validations": [
            _cel("!self.matches('^[0-9]+([.][0-9]+){3}$')",
                 "spec.ui.ingress.host must be a DNS name, not an IP address"),
        ]},
    )
    tls: IngressTLS | None = Field(default=None, description="Serve the host over HTTPS with this certificate.")
    annotations: dict[str, Annotated[str, Field(max_length=4096)]] = Field(
        default_factory=dict,
        description="Annotations of the Ingress, e.g. for cert-manager or the ingress controller. Keys must be "
        "valid annotation keys.",
        json_schema_extra={"default": {}, "maxProperties": 64, "x-kubernetes-validations": [
            _cel(_LABEL_KEYS_CEL, "spec.ui.ingress.annotations keys must be valid annotation keys (an optional DNS "
                 "subdomain prefix and '/', then a name of at most 63 characters)")]},
    )

    @field_validator("host")
    @classmethod
    def _not_ip(cls, value: str | None) -> str | None:
        if value is not None and re.fullmatch(r"[0-9]+(\.[0-9]+){3}", value):
            raise ValueError("spec.ui.ingress.host must be a DNS name, not an IP address")
        return value

    @field_validator("annotations")
    @classmethod
    def _annotation_keys(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            problem = label_key_problem(key)
            if problem:
                raise ValueError(f"spec.ui.ingress.annotations key {key!r} {problem}")
        return value

    @model_validator(mode="after")
    def _host(self) -> "IngressSpec":
        if self.enabled and not self.host:
            raise ValueError("spec.ui.ingress.host is required when spec.ui.ingress.enabled is true")
        return self


class UISpec(_Model):
    """The Gradio web UI for trying the reranker."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "!has(self.enabled) || self.enabled || !has(self.ingress) || !has(self.ingress.enabled) || !self.ingress.enabled",
                    "spec.ui.ingress.enabled requires spec.ui.enabled",
                    field_path=".ingress.enabled",
                ),
            ],
        },
    )

    enabled: bool = Field(default=True, description="Deploy the UI (Deployment and Service <name>-ui).")
    replicas: int = Field(default=1, ge=0, le=20, description="Replicas of the UI Deployment.")
    # No default in the schema: a default would be stored in the object and pin the UI to the release that
    # created it; unset, the UI follows the operator's release on every upgrade (container_image).
    image: str | None = Field(
        default=None, min_length=1, max_length=512, pattern=IMAGE_PATTERN,
        description="Container image of the UI. Default: the operator's own release of the project's rerank-ui "
        f"image ({DEFAULT_UI_IMAGE} in this release), so upgrading the operator upgrades the UI; set it to pin one.",
    )

    @property
    def container_image(self) -> str:
        """The UI container's image: spec.ui.image, else this release's."""
        return self.image or DEFAULT_UI_IMAGE
    auth_secret_ref: LocalObjectRef | None = Field(
        default=None,
        description="Secret with keys \"username\" and \"password\"; when set, the UI asks for them "
        "(HTTP login). Recommended whenever the UI is exposed with an Ingress.",
    )
    max_documents: int = Field(
        default=100, ge=1, le=1000,
        description="Most documents the UI sends in one rerank request.",
    )
    ingress: IngressSpec = _object(IngressSpec, "Ingress for the UI (off by default).")

    @model_validator(mode="after")
    def _ingress_needs_ui(self) -> "UISpec":
        if self.ingress.enabled and not self.enabled:
            raise ValueError("spec.ui.ingress.enabled requires spec.ui.enabled")
        return self
