"""The RerankerDeployment API: pydantic models (``v1alpha1``, the top-level spec, and a module per sub-spec)
and the CRD generated from them (``crd``)."""

from .v1alpha1 import (
    API_VERSION,
    DEFAULT_INSTRUCTION,
    GROUP,
    KIND,
    PLURAL,
    SHORT_NAMES,
    VERSION,
    RerankerDeploymentSpec,
    RerankerDeploymentStatus,
    parse_spec,
)

__all__ = [
    "API_VERSION",
    "DEFAULT_INSTRUCTION",
    "GROUP",
    "KIND",
    "PLURAL",
    "SHORT_NAMES",
    "VERSION",
    "RerankerDeploymentSpec",
    "RerankerDeploymentStatus",
    "parse_spec",
]
