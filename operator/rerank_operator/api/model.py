"""spec.model: the reranker and where its weights come from (the Hugging Face Hub or a PVC), and spec.cache,
the per-replica volume the weights are cached on."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import ConfigDict, Field, field_validator, model_validator

from .base import DNS_SUBDOMAIN_PATTERN, Quantity, _Model, _cel, _quantity_to_str
from .core import SecretKeyRef
from .quantity import parse_quantity


DEFAULT_MODEL = "Qwen/Qwen3-Reranker-0.6B"
HF_MODEL_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$"
# A git revision (branch, tag, sha) as git check-ref-format allows one, within a safe alphabet:
# components of letters, digits, "_", "-" and single inner dots (no "..", no leading or trailing
# "."), separated by single "/"; it must not start with "-" (vLLM would read a flag).
# Components ending in ".lock" are refused by a separate rule.
REVISION_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*(/[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*)*$"


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
