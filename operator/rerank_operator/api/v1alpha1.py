"""The RerankerDeployment API, version v1alpha1, as pydantic models: the top-level spec and its parsing.

These models are the one source of truth for the API:

* the operator parses every object's ``spec`` with :func:`parse_spec` (defaults filled, snake_case
  attributes), so code never reads raw dicts with ad-hoc defaults;
* the CustomResourceDefinition (``rerank_operator.api.crd``) is generated from them: field
  descriptions become ``kubectl explain`` text, ``Field`` bounds become OpenAPI bounds, and the
  cross-field rules the API server enforces at admission (CEL) are declared here next to the
  fields they constrain (``x-kubernetes-validations`` in ``json_schema_extra``).

The API server rejects bad input at admission; pydantic repeats every check (bounds and the
cross-field rules) so that an object stored before a schema change, or built in code, fails
loudly with the field named instead of half-working. ``tests/unit/api`` keeps both sides in
agreement on a shared table of valid and invalid specs.

Each sub-spec has a module of its own, which this one imports: ``model`` (spec.model, spec.cache),
``engine``, ``autoscaling``, ``scheduling`` (spec.scheduling, spec.disruptionBudget), ``ui``, ``gateway``;
``status`` is the status; ``core`` mirrors the core Kubernetes types they embed (env vars, resources,
tolerations, affinity, Secret references); ``base`` is what all of them are built from. None of them
imports this module. The names other code takes from here are re-exported below.
"""

from __future__ import annotations

from typing import Any, Mapping

from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator

from .autoscaling import AutoscalingSpec
from .base import DNS_SUBDOMAIN_PATTERN, _cel, _Model, _object
from .core import GPU_RESOURCE, SecretKeyRef
from .engine import (
    DEFAULT_CPU_ENGINE_IMAGE,
    DEFAULT_ENGINE_IMAGE,
    MANAGED_ENGINE_FLAGS,
    EngineSpec,
    effective_image,
)
from .gateway import GatewaySpec
from .model import CacheSpec, ModelSource
from .scheduling import DisruptionBudgetSpec, SchedulingSpec
from .status import RerankerDeploymentStatus
from .ui import DEFAULT_UI_IMAGE, UISpec
from ..serving import prompt
from ..serving.prompt import DEFAULT_INSTRUCTION

__all__ = [
    "API_VERSION", "CATEGORIES", "CRD_NAME", "GROUP", "KIND", "PLURAL", "SHORT_NAMES", "SINGULAR", "VERSION",
    "MAX_NAME_LENGTH", "NAME_PATTERN", "NAME_RULE_MESSAGE", "DEFAULT_SERVICE_PORT", "INSTRUCTION_MAX_CHARS",
    "SCALE_TO_ZERO_MESSAGE", "ImagePullSecret", "ServiceSpec", "RerankerDeploymentSpec",
    "parse_spec", "parse_status", "describe_error",
    # Re-exported from the sub-spec modules.
    "DEFAULT_INSTRUCTION", "DEFAULT_ENGINE_IMAGE", "DEFAULT_CPU_ENGINE_IMAGE", "DEFAULT_UI_IMAGE", "GPU_RESOURCE",
    "MANAGED_ENGINE_FLAGS", "AutoscalingSpec", "EngineSpec", "RerankerDeploymentStatus", "SecretKeyRef",
    "effective_image",
]

GROUP = "rerank.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "RerankerDeployment"
PLURAL = "rerankerdeployments"
SINGULAR = "rerankerdeployment"
SHORT_NAMES = ["rrd"]
CATEGORIES = ["rerank"]
CRD_NAME = f"{PLURAL}.{GROUP}"

# metadata.name of a RerankerDeployment: it names the Service <name> (a DNS-1035 label) and the
# StatefulSet <name>-engine, whose pods carry the label controller-revision-hash=<sts>-<10 chars>
# (label values are <= 63 characters, so StatefulSet names <= 52, so names <= 45).
MAX_NAME_LENGTH = 45
NAME_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
DEFAULT_SERVICE_PORT = 8000
INSTRUCTION_MAX_CHARS = 2048


class ServiceSpec(_Model):
    """The stable in-cluster endpoint."""

    port: int = Field(
        default=DEFAULT_SERVICE_PORT, ge=1, le=65535,
        description="Port of the ClusterIP Service <name>, the rerank endpoint "
        "http://<name>.<namespace>.svc:<port>/v1/rerank.",
    )


class ImagePullSecret(_Model):
    """A Secret of type kubernetes.io/dockerconfigjson holding credentials for a private registry."""

    name: str = Field(
        min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN,
        description="Name of the Secret, in the RerankerDeployment's namespace.",
    )


# Scale to zero: with no engine running, only the gateway can hold a request and report it as demand.
SCALE_TO_ZERO_MESSAGE = ("spec.autoscaling.minReplicas may be 0 only with spec.gateway.enabled: true (the gateway "
                         "holds requests while an engine starts; without it they would fail)")


class RerankerDeploymentSpec(_Model):
    """A Qwen3-Reranker served by vLLM with a stable in-cluster endpoint, an optional web UI and autoscaling."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        _cel("!has(self.autoscaling) || !has(self.autoscaling.minReplicas) || self.autoscaling.minReplicas > 0 || "
             "!has(self.gateway) || !has(self.gateway.enabled) || self.gateway.enabled",
             SCALE_TO_ZERO_MESSAGE, field_path=".autoscaling.minReplicas"),
    ]})

    model: ModelSource = _object(ModelSource, "The reranker model and where its weights come from.")
    engine: EngineSpec = _object(EngineSpec, "The vLLM engine: image, GPUs per pod, precision and limits.")
    # The length bound is a CEL rule, not maxLength: the API server's maxLength message says "bytes"
    # although it counts characters.
    instruction: str | None = Field(
        default=None, min_length=1,
        description="Default task instruction for requests that send none (used by the UI; Qwen3-Reranker "
        "scores \"<Instruct>: {instruction} <Query>: ... <Document>: ...\"), at most "
        f"{INSTRUCTION_MAX_CHARS} characters. Default: \""
        + DEFAULT_INSTRUCTION + "\". Write it in English, even for other languages.",
        json_schema_extra={"x-kubernetes-validations": [
            _cel(f"size(self) <= {INSTRUCTION_MAX_CHARS}",
                 f"spec.instruction must be at most {INSTRUCTION_MAX_CHARS} characters"),
        ]},
    )
    replicas: int = Field(
        default=1, ge=0, le=1000,
        description="Number of engine pods (each with tensorParallelSize GPUs). Set by hand or through the "
        "scale subresource (kubectl scale, HPA, KEDA) when autoscaling is disabled; written by the operator's "
        "autoscaler when spec.autoscaling.enabled (then kept within minReplicas..maxReplicas). 0 stops the "
        "engines but keeps the caches.",
    )
    autoscaling: AutoscalingSpec = _object(AutoscalingSpec, "Throughput autoscaling by the operator (off by default).")
    scheduling: SchedulingSpec = _object(SchedulingSpec, "Node selection for the engine pods.")
    cache: CacheSpec = _object(CacheSpec, "Per-replica model cache volume.")
    service: ServiceSpec = _object(ServiceSpec, "The ClusterIP Service that is the rerank endpoint.")
    ui: UISpec = _object(UISpec, "The Gradio web UI (on by default).")
    disruption_budget: DisruptionBudgetSpec = _object(
        DisruptionBudgetSpec, "PodDisruptionBudget protecting the engine pods during node drains."
    )
    gateway: GatewaySpec = _object(GatewaySpec, "The rerank gateway in front of the engines (on by default).")
    image_pull_secrets: list[ImagePullSecret] = Field(
        default_factory=list, max_length=16,
        description="Secrets for pulling the engine, UI and gateway images from a private registry (each pod's "
        "imagePullSecrets), e.g. the one `kubectl create secret docker-registry` makes. Names must be unique.",
        json_schema_extra={"default": [], "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )

    @field_validator("image_pull_secrets")
    @classmethod
    def _pull_secrets_unique(cls, value: list[ImagePullSecret]) -> list[ImagePullSecret]:
        if len({secret.name for secret in value}) != len(value):
            raise ValueError("spec.imagePullSecrets must not name a Secret twice")
        return value

    @field_validator("instruction")
    @classmethod
    def _instruction_length(cls, value: str | None) -> str | None:
        if value is not None and len(value) > INSTRUCTION_MAX_CHARS:
            raise ValueError(f"spec.instruction must be at most {INSTRUCTION_MAX_CHARS} characters")
        return value

    @model_validator(mode="after")
    def _scale_to_zero_needs_gateway(self) -> "RerankerDeploymentSpec":
        if self.autoscaling.min_replicas == 0 and not self.gateway.enabled:
            raise ValueError(SCALE_TO_ZERO_MESSAGE)
        return self

    @property
    def effective_instruction(self) -> str:
        return prompt.effective_instruction(self.instruction)


NAME_RULE_MESSAGE = (
    f"metadata.name must be a DNS-1035 label (lowercase letters, digits and '-', starting with a letter) of at "
    f"most {MAX_NAME_LENGTH} characters: the engine Service and StatefulSet are named after it"
)


def parse_spec(body_spec: Mapping[str, Any] | None) -> RerankerDeploymentSpec:
    """The spec of a RerankerDeployment (as read from the API: camelCase keys), defaults filled.

    Raises ``pydantic.ValidationError``; :func:`describe_error` turns it into one line that
    names the fields (for a condition message or an event)."""
    return RerankerDeploymentSpec.model_validate(_plain(body_spec or {}))


def parse_status(body_status: Mapping[str, Any] | None) -> RerankerDeploymentStatus:
    return RerankerDeploymentStatus.model_validate(_plain(body_status or {}))


def describe_error(error: ValidationError, prefix: str = "spec") -> str:
    """``spec.engine.dtype: Input should be 'auto', ...; spec.x: ...`` from a pydantic error."""
    parts = []
    for item in error.errors():
        path = ".".join([prefix] + [str(p) if not isinstance(p, int) else f"[{p}]" for p in item["loc"]])
        parts.append(f"{path.replace('.[', '[')}: {item['msg']}")
    return "; ".join(parts)


def _plain(value: Any) -> Any:
    # kopf hands out read-only Mapping views; pydantic wants dicts and lists.
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
