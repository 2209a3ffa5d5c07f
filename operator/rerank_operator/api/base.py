"""What every part of the RerankerDeployment API is built from: the base model (camelCase on the wire, strict,
no NUL), the field helpers that keep pydantic's defaults and the CRD's in step, CEL rule entries, and the
patterns of Kubernetes' own syntaxes (quantities, DNS names, label keys, image references)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel


# A non-negative Kubernetes resource.Quantity (the API server's own syntax), e.g. 50Gi, 500m, 1.5, 2e3.
QUANTITY_PATTERN = (
    r"^\+?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
# DNS-1123 subdomain (names of Secrets, PVCs, StorageClasses, PriorityClasses, IngressClasses).
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
ENV_NAME_PATTERN = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"
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
# A Pod env var's fieldRef.fieldPath: the fields the kubelet can expose.
FIELD_PATH_PATTERN = (
    r"^(metadata\.(name|namespace|uid)|spec\.(nodeName|serviceAccountName)|status\.(hostIP|hostIPs|podIP|podIPs)"
    r"|metadata\.(labels|annotations)\['[^']+'\])$"
)
RESOURCE_FIELD_PATTERN = r"^(limits|requests)\.(cpu|memory|ephemeral-storage|hugepages-[0-9]+[KMGTPE]i?)$"


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
