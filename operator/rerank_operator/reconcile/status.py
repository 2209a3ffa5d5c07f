"""The RerankerDeployment's status, computed from what its children report (pure).

Conditions:

* ``Ready``: every wanted engine replica is Ready, so the endpoint serves at full capacity
  (False with ``ScaledToZero`` when ``spec.replicas`` is 0, ``ReplicasNotReady`` otherwise).
* ``Progressing``: the StatefulSet is being created, rolled out or scaled, or its pods are
  still starting (loading the model); False with ``RolloutComplete`` when settled, or with the
  Degraded reason when the spec cannot progress (e.g. no node has enough GPUs).
* ``Degraded``: the operator cannot make the spec real: ``InsufficientGPUs`` (no node has
  ``tensorParallelSize`` allocatable ``nvidia.com/gpu``), ``InvalidSpec`` or ``ReconcileFailed``
  (the API server refused a child); ``PodSecurityViolation`` (the namespace's Pod Security level
  refuses the engine pods) or ``PodCreationFailed`` (another admission refusal, e.g. a quota), both
  read from the StatefulSet controller's FailedCreate events; or an engine pod cannot run, as its
  kubelet reports it (``pod_failure``): ``ImagePullBackOff``, ``CrashLoopBackOff`` (with the engine's
  last log line), ``OOMKilled``; or the scheduler cannot place one (``Unschedulable``, with the
  scheduler's message: an untolerated taint, too little of a resource); ``AsExpected`` otherwise.

``AutoscalingActive`` / ``ScalingLimited`` belong to the autoscaler (autoscaling.state); they are
carried over untouched, except that ``AutoscalingActive`` is turned False once autoscaling is
switched off (its daemon is gone by then and cannot say so itself).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from rerank_operator.autoscaling.state import disabled_status_patch, from_rfc3339, to_rfc3339
from rerank_operator.reasons import (  # the reasons the status sets; tests name them from here too
    ALL_REPLICAS_READY,
    AS_EXPECTED,
    CRASH_LOOP_BACK_OFF,
    CREATING,
    IMAGE_PULL_BACK_OFF,
    INSUFFICIENT_GPUS,
    INVALID_SPEC,
    OOM_KILLED,
    POD_CREATION_FAILED,
    POD_SECURITY_VIOLATION,
    RECONCILE_FAILED,
    REPLICAS_NOT_READY,
    ROLLING_OUT,
    ROLLOUT_COMPLETE,
    SCALED_TO_ZERO,
    SCALING,
    UNSCHEDULABLE,
    WAITING_FOR_REPLICAS,
)
from rerank_operator.resources import labels as L

READY = "Ready"
PROGRESSING = "Progressing"
DEGRADED = "Degraded"

# A FailedCreate event counts while the StatefulSet controller keeps retrying (its back-off stays
# well below this); an older one is history.
FAILED_CREATE_WINDOW_SECONDS = 20 * 60
# Failures that only a reconcile (not a status refresh) can clear.
STICKY_FAILURES = (INVALID_SPEC, RECONCILE_FAILED)


@dataclass(frozen=True)
class Failure:
    reason: str
    message: str


@dataclass(frozen=True)
class Wanted:
    """What the spec asks for, as far as the status needs it (None fields: spec unreadable)."""

    replicas: int
    autoscaling: bool
    endpoint: str | None
    ui_url: str | None


def _condition(previous: Sequence[Mapping[str, Any]], type_: str, status: str, reason: str, message: str,
               generation: int | None, now: float) -> dict[str, Any]:
    old = next((c for c in previous if c.get("type") == type_), None)
    # lastTransitionTime moves only when the status flips.
    since = old.get("lastTransitionTime") if old is not None and old.get("status") == status else None
    condition = {"type": type_, "status": status, "reason": reason, "message": message,
                 "lastTransitionTime": since or to_rfc3339(now)}
    if generation is not None:
        condition["observedGeneration"] = generation
    return condition


def sts_state(sts: Mapping[str, Any] | None) -> dict[str, Any]:
    """The parts of a StatefulSet's status that matter here (also the key that tells whether a
    StatefulSet event brings anything new)."""
    if not sts:
        return {}
    status = sts.get("status") or {}
    return {
        "generation": (sts.get("metadata") or {}).get("generation"),
        "observedGeneration": status.get("observedGeneration"),
        "specReplicas": (sts.get("spec") or {}).get("replicas"),
        "replicas": status.get("replicas") or 0,
        "readyReplicas": status.get("readyReplicas") or 0,
        "updatedReplicas": status.get("updatedReplicas") or 0,
        "currentRevision": status.get("currentRevision"),
        "updateRevision": status.get("updateRevision"),
    }


def latest_statefulset(known: Mapping[str, Any] | None, seen: Mapping[str, Any]) -> Mapping[str, Any]:
    """The later of two reads of the engine StatefulSet. A watch event's copy may be older than one
    another refresh already fetched, and a status computed from it would move readyReplicas back.
    The API server's resourceVersions are etcd revisions, integers that only grow; a read of another
    object (a new uid) or with a version that is not an integer counts as the later one."""
    if known is None:
        return seen
    known_meta, seen_meta = known.get("metadata") or {}, seen.get("metadata") or {}
    if known_meta.get("uid") != seen_meta.get("uid"):
        return seen
    try:
        return known if int(known_meta["resourceVersion"]) > int(seen_meta["resourceVersion"]) else seen
    except (KeyError, TypeError, ValueError):
        return seen


def pod_creation_failure(events: Sequence[Mapping[str, Any]], now: float) -> Failure | None:
    """Why the StatefulSet controller cannot create engine pods, from its recent FailedCreate
    events (core v1 Events about the StatefulSet); None when there is none."""
    latest: tuple[float, Mapping[str, Any]] | None = None
    for event in events:
        if event.get("reason") != "FailedCreate":
            continue
        stamp = event.get("lastTimestamp") or event.get("eventTime") or (event.get("metadata") or {}).get(
            "creationTimestamp")
        try:
            when = from_rfc3339(stamp) if stamp else 0.0
        except ValueError:
            continue
        if now - when <= FAILED_CREATE_WINDOW_SECONDS and (latest is None or when > latest[0]):
            latest = (when, event)
    if latest is None:
        return None
    return creation_refused(latest[1].get("message") or "")


def creation_refused(message: str) -> Failure:
    """The failure for a FailedCreate event's message: Pod Security's own, or any other admission refusal."""
    reason = POD_SECURITY_VIOLATION if "violates PodSecurity" in message else POD_CREATION_FAILED
    return Failure(reason, f"the StatefulSet controller cannot create engine pods: {message}")


# UNSCHEDULABLE is also the scheduler's own reason on a pod no node can take now (taints, resources, affinity).
# The scheduler's words while a claim of the pod (the model cache) waits for its volume: a provisioner at work,
# not a failure (a claim that is never bound says why in its own events).
_WAITING_FOR_CLAIMS = "unbound immediate PersistentVolumeClaims"
# The kubelet's waiting reasons that all mean "this image cannot be had".
_IMAGE_REASONS = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull")


def pod_failure(pods: Sequence[Mapping[str, Any]], create_refused: str | None = None,
                last_log_lines: Mapping[tuple[str, str], str] | None = None) -> Failure | None:
    """Why the engine pods cannot serve, as the scheduler or their kubelet reports it, or None.

    ``pods``: the engine pods; ``create_refused``: the message of the StatefulSet controller's latest
    FailedCreate event (a pod the API server refused, e.g. Pod Security admission); ``last_log_lines``:
    (pod, container) -> the last line the crashed container wrote. The first failing pod by name decides."""
    if create_refused:
        return creation_refused(create_refused)
    logs = last_log_lines or {}
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        name = pod["metadata"]["name"]
        status = pod.get("status") or {}
        scheduled = next((c for c in status.get("conditions") or [] if c.get("type") == "PodScheduled"), {})
        if scheduled.get("status") == "False" and scheduled.get("reason") == UNSCHEDULABLE \
                and _WAITING_FOR_CLAIMS not in (scheduled.get("message") or ""):
            return Failure(UNSCHEDULABLE, f"pod {name} cannot be scheduled; the scheduler says: "
                           f"{scheduled.get('message') or 'no detail'} (spec.scheduling places the engine pods)")
        for cs in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
            where = f"pod {name}, container {cs.get('name')}"
            waiting = (cs.get("state") or {}).get("waiting") or {}
            terminated = (cs.get("lastState") or {}).get("terminated") or (cs.get("state") or {}).get("terminated") \
                or {}
            if waiting.get("reason") in _IMAGE_REASONS:
                return Failure(IMAGE_PULL_BACK_OFF, f"{where}: image {cs.get('image')!r} cannot be pulled "
                               f"({waiting['reason']}: {waiting.get('message') or 'no detail'}); check spec.engine.image "
                               "and the pull secrets")
            if terminated.get("reason") == "OOMKilled":
                return Failure(OOM_KILLED, f"{where} was killed for exceeding its memory limit "
                               f"({cs.get('restartCount', 0)} restarts); raise spec.engine.resources.limits.memory")
            if waiting.get("reason") == "CrashLoopBackOff":
                # A container that never started has no log, but the runtime's reason in its state.
                line = logs.get((name, cs.get("name") or "")) or terminated.get("message") or "(no log)"
                return Failure(CRASH_LOOP_BACK_OFF, f"{where} keeps exiting (code {terminated.get('exitCode')}, "
                               f"{cs.get('restartCount', 0)} restarts); its last log line: {line}")
    return None


def crashed_containers(pods: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(pod, container) of each container in CrashLoopBackOff: whose last log line the status quotes."""
    return [(p["metadata"]["name"], cs.get("name") or "")
            for p in pods for cs in ((p.get("status") or {}).get("containerStatuses") or [])
            if ((cs.get("state") or {}).get("waiting") or {}).get("reason") == "CrashLoopBackOff"]


def carried_failure(status: Mapping[str, Any] | None) -> Failure | None:
    """A failure recorded by the last reconcile, which a mere status refresh must keep."""
    for condition in (status or {}).get("conditions") or []:
        if condition.get("type") == DEGRADED and condition.get("status") == "True" \
                and condition.get("reason") in STICKY_FAILURES:
            return Failure(condition["reason"], condition.get("message") or "")
    return None


def compute_status(
    body: Mapping[str, Any],
    wanted: Wanted | None,
    sts: Mapping[str, Any] | None,
    *,
    now: float,
    observed_generation: int | None,
    failure: Failure | None = None,
) -> dict[str, Any]:
    """The status (fields this operator owns, merge-patch shaped: None = remove) for ``body``
    given the observed StatefulSet ``sts`` (None: not there)."""
    meta = body["metadata"]
    previous = body.get("status") or {}
    prev_conditions = previous.get("conditions") or []
    generation = meta.get("generation")
    state = sts_state(sts)
    replicas = int(state.get("replicas", 0))
    ready = int(state.get("readyReplicas", 0))

    if wanted is None:  # unreadable spec: report it, leave the rest as last known
        want = int(previous.get("desiredReplicas") or 0)
    else:
        want = wanted.replicas
    desired = want
    if wanted is not None and wanted.autoscaling and previous.get("desiredReplicas") is not None:
        desired = int(previous["desiredReplicas"])  # the autoscaler's decision; it owns this field

    # Ready
    if want == 0:
        ready_c = ("False", SCALED_TO_ZERO, "spec.replicas is 0: no engine serves requests")
    elif ready >= want:
        ready_c = ("True", ALL_REPLICAS_READY, f"{ready} of {want} engine replicas ready")
    else:
        ready_c = ("False", REPLICAS_NOT_READY, f"{ready} of {want} engine replicas ready")

    # Progressing
    if failure is not None or (wanted is None):
        reason = failure.reason if failure else INVALID_SPEC
        prog_c = ("False", reason, "the operator cannot make progress until the spec or the cluster changes")
    elif not state:
        prog_c = ("True", CREATING, "creating the engine StatefulSet")
    elif state["observedGeneration"] is None or (state["generation"] or 0) > state["observedGeneration"]:
        prog_c = ("True", ROLLING_OUT, "waiting for the StatefulSet controller to act on the latest spec")
    elif state["updateRevision"] and state["currentRevision"] != state["updateRevision"] \
            and state["updatedReplicas"] < want:
        prog_c = ("True", ROLLING_OUT, f"{state['updatedReplicas']} of {want} engine replicas updated")
    elif replicas != want:
        prog_c = ("True", SCALING, f"scaling the engine from {replicas} to {want} replicas")
    elif ready < want:
        prog_c = ("True", WAITING_FOR_REPLICAS,
                  f"{want - ready} engine replica(s) starting (the model may take minutes to load)")
    else:
        prog_c = ("False", ROLLOUT_COMPLETE, f"{want} engine replicas up to date")

    # Degraded
    if failure is not None:
        deg_c = ("True", failure.reason, failure.message)
    else:
        deg_c = ("False", AS_EXPECTED, "the cluster can run the spec")

    conditions: list[dict[str, Any]] = []
    for type_, (st, reason, message) in ((READY, ready_c), (PROGRESSING, prog_c), (DEGRADED, deg_c)):
        conditions.append(_condition(prev_conditions, type_, st, reason, message, generation, now))
    others = [dict(c) for c in prev_conditions if c.get("type") not in (READY, PROGRESSING, DEGRADED)]
    if wanted is not None and not wanted.autoscaling:
        turned_off = disabled_status_patch(previous, now)
        if turned_off:
            others = [c for c in turned_off["conditions"] if c.get("type") not in (READY, PROGRESSING, DEGRADED)]
    conditions.extend(others)

    status: dict[str, Any] = {
        "replicas": replicas,
        "readyReplicas": ready,
        "desiredReplicas": desired,
        "selector": L.selector_string(meta["name"]),
        "conditions": conditions,
    }
    if observed_generation is not None:
        status["observedGeneration"] = observed_generation
    if wanted is not None:
        status["endpoint"] = wanted.endpoint
        status["uiURL"] = wanted.ui_url
    return status


def status_changes(current: Mapping[str, Any] | None, new: Mapping[str, Any]) -> dict[str, Any]:
    """The merge patch turning ``current`` into ``new`` for the keys ``new`` names ({} if none)."""
    current = current or {}
    patch: dict[str, Any] = {}
    for key, value in new.items():
        if value is None:
            if current.get(key) is not None:
                patch[key] = None
        elif current.get(key) != value:
            patch[key] = value
    return patch


def degraded_transition(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> dict[str, Any] | None:
    """The Degraded condition of ``after`` if it newly turned True (or changed reason): worth one
    Warning event. None otherwise, so a persisting problem is reported once, not on every pass."""
    def find(status: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
        return next((c for c in (status or {}).get("conditions") or [] if c.get("type") == DEGRADED), None)

    new, old = find(after), find(before)
    if new is None or new.get("status") != "True":
        return None
    if old is not None and old.get("status") == "True" and old.get("reason") == new.get("reason"):
        return None
    return dict(new)
