"""The RerankerDeployment's status: conditions, the endpoint and UI URL, and the autoscaler's memory."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from .base import _Model


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
        default=None, ge=0, description="The scale-down window in force: scaleDownStabilizationSeconds, grown after "
        "each premature scale-down by the time from it to the scale-up that undid it plus half a model load "
        "(up to 3x), and halved back after an hour without one.",
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
    load_seconds: float | None = Field(
        default=None, ge=0, description="Learned model load time: seconds from a scale-up asked to as many engine "
        "pods Ready, smoothed. The backlog is drained within two of these, and the forecast (forecastSeconds) "
        "looks this far ahead.",
    )
    scale_up_asked_time: str | None = Field(
        default=None, description="When the scale-up being timed for loadSeconds was asked (RFC 3339).",
    )
    scale_up_asked_replicas: int | None = Field(
        default=None, ge=0, description="The replicas that scale-up asked for; once that many are Ready it is timed.",
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
