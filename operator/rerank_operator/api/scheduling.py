"""spec.scheduling (where the engine pods run) and spec.disruptionBudget (how many may be drained at once)."""

from __future__ import annotations

import re
from typing import Annotated, Union

from pydantic import ConfigDict, Field, field_validator

from .base import DNS_SUBDOMAIN_PATTERN, LABEL_VALUE_PATTERN, _LABEL_KEYS_CEL, _Model, _cel, _list, label_key_problem
from .core import Affinity, Toleration


# 1% to 100%: "0%" would block every node drain, more than 100% is not a share of the pods.
PERCENT_PATTERN = r"^(100|[1-9][0-9]?)%$"


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

    enabled: bool = Field(default=True, description="Create the PodDisruptionBudget <name>-engine, and "
                          "<name>-gateway (one gateway pod unavailable at a time) with two or more gateway pods.")
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
