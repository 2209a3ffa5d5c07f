"""Every reason the operator writes into a RerankerDeployment's conditions or its events: one home, so the
manual's troubleshooting page can document each (tests/docs/test_docs_troubleshooting.py holds it to this list).

CamelCase like Kubernetes' own reasons. Per condition type, what each means is in reconcile.status (Ready,
Progressing, Degraded) and autoscaling.state (AutoscalingActive, ScalingLimited).
"""

from __future__ import annotations

# Ready
ALL_REPLICAS_READY = "AllReplicasReady"
REPLICAS_NOT_READY = "ReplicasNotReady"
SCALED_TO_ZERO = "ScaledToZero"

# Progressing (False with a Degraded reason when the spec cannot progress)
CREATING = "Creating"
ROLLING_OUT = "RollingOut"
SCALING = "Scaling"
WAITING_FOR_REPLICAS = "WaitingForReplicas"
ROLLOUT_COMPLETE = "RolloutComplete"

# Degraded: the operator cannot make the spec real (each also a Warning event when it turns True)
AS_EXPECTED = "AsExpected"
INSUFFICIENT_GPUS = "InsufficientGPUs"
INVALID_SPEC = "InvalidSpec"
RECONCILE_FAILED = "ReconcileFailed"
POD_SECURITY_VIOLATION = "PodSecurityViolation"
POD_CREATION_FAILED = "PodCreationFailed"
IMAGE_PULL_BACK_OFF = "ImagePullBackOff"
CRASH_LOOP_BACK_OFF = "CrashLoopBackOff"
OOM_KILLED = "OOMKilled"
UNSCHEDULABLE = "Unschedulable"

# AutoscalingActive: the autoscaler's last decision
SCALED_UP = "ScaledUp"
SCALED_DOWN = "ScaledDown"
WITHIN_TOLERANCE = "WithinTolerance"
SCALE_DOWN_STABILIZED = "ScaleDownStabilized"
SCALE_UP_STABILIZED = "ScaleUpStabilized"
METRICS_MISSING = "MetricsMissing"
NO_METRICS = "NoMetrics"
AUTOSCALING_DISABLED = "Disabled"

# ScalingLimited: a limit of spec.autoscaling holds the replica count
AT_MAX_REPLICAS = "AtMaxReplicas"
AT_MIN_REPLICAS = "AtMinReplicas"
SCALE_UP_LIMIT = "ScaleUpLimit"
DESIRED_WITHIN_RANGE = "DesiredWithinRange"

# Normal events (the autoscaler's scale events carry ScaledUp / ScaledDown)
CREATED = "Created"
UPDATED = "Updated"
SCALED = "Scaled"
RESTORED = "Restored"

READY_REASONS = (ALL_REPLICAS_READY, REPLICAS_NOT_READY, SCALED_TO_ZERO)
PROGRESSING_REASONS = (CREATING, ROLLING_OUT, SCALING, WAITING_FOR_REPLICAS, ROLLOUT_COMPLETE)
DEGRADED_FAILURES = (INSUFFICIENT_GPUS, INVALID_SPEC, RECONCILE_FAILED, POD_SECURITY_VIOLATION, POD_CREATION_FAILED,
                     IMAGE_PULL_BACK_OFF, CRASH_LOOP_BACK_OFF, OOM_KILLED, UNSCHEDULABLE)
DEGRADED_REASONS = (AS_EXPECTED, *DEGRADED_FAILURES)
LIMIT_REASONS = (AT_MAX_REPLICAS, AT_MIN_REPLICAS, SCALE_UP_LIMIT)
# A decision whose recommendation a limit held carries the limit as its reason; a spec the autoscaler cannot
# read turns it off with InvalidSpec.
AUTOSCALING_ACTIVE_REASONS = (SCALED_UP, SCALED_DOWN, WITHIN_TOLERANCE, SCALE_DOWN_STABILIZED, SCALE_UP_STABILIZED,
                              METRICS_MISSING, NO_METRICS, AUTOSCALING_DISABLED, INVALID_SPEC, *LIMIT_REASONS)
SCALING_LIMITED_REASONS = (*LIMIT_REASONS, DESIRED_WITHIN_RANGE)
# Warning events: a Degraded condition that turns True (or changes reason) is posted once as an event.
EVENT_REASONS = (CREATED, UPDATED, SCALED, RESTORED, SCALED_UP, SCALED_DOWN, *DEGRADED_FAILURES)

BY_CONDITION = {
    "Ready": READY_REASONS,
    "Progressing": PROGRESSING_REASONS,
    "Degraded": DEGRADED_REASONS,
    "AutoscalingActive": AUTOSCALING_ACTIVE_REASONS,
    "ScalingLimited": SCALING_LIMITED_REASONS,
}

ALL = tuple(sorted({*EVENT_REASONS, *(r for reasons in BY_CONDITION.values() for r in reasons)}))
