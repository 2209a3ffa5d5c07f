"""spec.autoscaling: the operator's throughput autoscaler (its policy is rerank_operator.autoscaling.policy)."""

from __future__ import annotations

from pydantic import ConfigDict, Field, model_validator

from .base import _Model, _cel


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
        description="Requests already waiting count as extra demand spread over this many seconds, at most two "
        "model loads (240 s): the replicas a backlog asks for serve after one load and drain it within about "
        "one more.",
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
        description="Size for the demand one model load ahead while it clearly rises: the slope of the "
        "demand average is carried forward over demandWindowSeconds plus the model load time learned from the "
        "deployment's own pods (status.autoscaling.loadSeconds; this many seconds until one was seen), upward "
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
