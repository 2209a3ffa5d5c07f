"""Mirrors of core Kubernetes types the spec embeds (env vars and their sources, resource requirements,
tolerations, affinity, Secret references), typed so that admission checks what the StatefulSet's API
server would check of the same fields, with the CEL rules the CRD carries for them."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Mapping

from pydantic import ConfigDict, Field, ValidationInfo, field_validator, model_validator

from .base import (
    DNS_SUBDOMAIN_PATTERN, ENV_NAME_PATTERN, FIELD_PATH_PATTERN, LABEL_KEY_PATTERN, LABEL_VALUE_PATTERN, Quantity,
    RESOURCE_FIELD_PATTERN, RESOURCE_NAME_PATTERN, _Model, _cel, _quantity_to_str, cel_string, label_key_problem,
)
from .quantity import parse_quantity


GPU_RESOURCE = "nvidia.com/gpu"


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
        "from the spec (see the manual's security guide), so the engine is never BestEffort.",
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


class LocalObjectRef(_Model):
    """A reference to a Secret in the same namespace."""

    name: str = Field(
        min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN,
        description="Name of the Secret, in the RerankerDeployment's namespace.",
    )
