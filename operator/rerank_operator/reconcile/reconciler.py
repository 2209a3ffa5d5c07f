"""Make one RerankerDeployment's children match its spec, and record the outcome in its status.

The cluster I/O half of reconciliation; what should exist comes from ``resources`` (pure), the
status from ``reconcile.status`` (pure). Framework-free: the kopf handlers (``handlers``) call
into this and translate the result into retries, events and logs.

* Every child is written with server-side apply under one field manager, forced: the operator
  owns the fields it sets and takes them back from anyone who changed them (drift repair), while
  fields others add (e.g. an admission webhook's annotations) are left alone.
* Children switched off in the spec (UI, Ingress, PodDisruptionBudget) are deleted, but only if
  this RerankerDeployment owns them.
* The status is merge-patched with the object's resourceVersion as precondition, so it never
  overwrites what the autoscaler wrote meanwhile (a 409 means: re-read, recompute, retry).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from pydantic import ValidationError

from rerank_operator.api.v1alpha1 import RerankerDeploymentSpec, describe_error, parse_spec
from rerank_operator.reasons import INSUFFICIENT_GPUS, INVALID_SPEC, RECONCILE_FAILED
from rerank_operator.resources import labels as L
from rerank_operator.resources.children import ChildRef, all_child_refs, desired_children, ref_of, retired_children
from rerank_operator.resources.services import endpoint_url
from rerank_operator.resources.status_configmap import build_status_configmap, render_status
from rerank_operator.resources.ui import ui_url

from .capacity import NodeCapacity
from .kube import ApiError, KubeClient
from .status import (
    Failure,
    Wanted,
    carried_failure,
    compute_status,
    latest_statefulset,
    pod_creation_failure,
    crashed_containers,
    pod_failure,
    degraded_transition,
    status_changes,
    sts_state,
)

FIELD_MANAGER = "rerank-operator"
# emit(object, type, reason, message): posts a Kubernetes Event about object.
Emit = Callable[[Mapping[str, Any], str, str, str], None]

log = logging.getLogger(__name__)


@dataclass
class ReconcileResult:
    status: dict[str, Any] | None
    applied: list[ChildRef] = field(default_factory=list)
    created: list[ChildRef] = field(default_factory=list)
    deleted: list[ChildRef] = field(default_factory=list)
    failure: Failure | None = None
    transient: ApiError | None = None


def wanted_of(body: Mapping[str, Any], spec: RerankerDeploymentSpec) -> Wanted:
    return Wanted(replicas=spec.replicas, autoscaling=spec.autoscaling.enabled,
                  endpoint=endpoint_url(body, spec), ui_url=ui_url(body, spec))


def observed_generation(body: Mapping[str, Any], claim: int | None) -> int | None:
    """The observedGeneration to write onto ``body``: never below what it already records."""
    current = (body.get("status") or {}).get("observedGeneration")
    if claim is None:
        return current
    return claim if current is None else max(claim, current)


def may_own_retired(body: Mapping[str, Any]) -> bool:
    """Whether ``body`` may own children its spec no longer wants. Not when its spec never changed
    (generation 1) and no reconcile ever finished (no status): every child made for it so far was
    made from this very spec, so nothing was switched off. This spares a brand-new object one read
    per switched-off kind; a create cut short by a crash and followed by an edit has generation 2."""
    return body["metadata"].get("generation") != 1 or bool(body.get("status"))


def no_pods(sts: Mapping[str, Any] | None) -> bool:
    """Whether the StatefulSet (as read) has no pods: its controller reports none, or has not acted
    on it yet (just created). Pods made after the read report their health in their own events."""
    state = sts_state(sts)
    return bool(state) and int(state["replicas"]) == 0


_DUPLICATE = re.compile(r"\b([A-Za-z]+(?:\.[A-Za-z]+)*)\[\d+\]\.[A-Za-z]+: Duplicate value")


def clashing_list(exc: ApiError) -> tuple[str, ...] | None:
    """The path of a list (outside other lists) whose entries clash in a refused apply
    (e.g. ``spec.ports[1].name: Duplicate value: "http"`` -> ("spec", "ports"))."""
    if exc.status != 422:
        return None
    match = _DUPLICATE.search(exc.message)
    return tuple(match.group(1).split(".")) if match else None


def list_at(manifest: Mapping[str, Any], path: tuple[str, ...]) -> list | None:
    node: Any = manifest
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node if isinstance(node, list) else None


def nested(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    for part in reversed(path):
        value = {part: value}
    return value


def _describe(ref: ChildRef, exc: ApiError) -> str:
    return f"{ref.kind} {ref.name}: {exc.status} {exc.reason}: {exc.message}"


class Reconciler:
    def __init__(self, kube: KubeClient, *, emit: Emit, capacity: NodeCapacity | None = None,
                 field_manager: str = FIELD_MANAGER, clock: Callable[[], float] = time.time, node_ttl: float = 15.0,
                 max_concurrent: int = 32, sts_wait: float = 2.0):
        self.kube = kube
        self.emit = emit
        self.capacity = capacity or NodeCapacity(self.list_nodes, ttl=node_ttl)
        self.field_manager = field_manager
        self.clock = clock
        # Per RerankerDeployment: the StatefulSet state and status document last acted on, so that
        # a StatefulSet event bringing nothing new costs no API call.
        self._sts_seen: dict[tuple[str, str], dict[str, Any]] = {}
        # (kind, namespace, name) of each child -> the resourceVersion our last write made: a
        # watch event of that version is our own doing, not drift (see ``drift``).
        self.written: dict[tuple[str, str, str], str | None] = {}
        self._published: dict[tuple[str, str], str] = {}
        # Per RerankerDeployment: the latest read of its StatefulSet, so that a status computed from an
        # older copy (a watch event overtaken by a pod event's fresh read) never replaces a newer one.
        self._latest_sts: dict[tuple[str, str], Mapping[str, Any]] = {}
        # Per engine pod: the failure its last event showed, so only a change triggers a status refresh.
        self._pod_seen: dict[tuple[str, str], str | None] = {}
        # A just-created StatefulSet gets its first status from its controller within moments; the
        # reconcile that created it waits (up to ``sts_wait`` seconds, holding no slot) for that
        # watch event and writes one status with it, instead of a status now and another one
        # (plus a second status ConfigMap apply) when the event arrives.
        self.sts_wait = sts_wait
        self._sts_waiters: dict[tuple[str, str], asyncio.Future] = {}
        # Objects reconciled at once. A thousand objects created together are then worked through
        # a few at a time (each finishing sooner) instead of all holding half-done work in memory.
        self._slots = asyncio.Semaphore(max_concurrent)
        # Status refreshes (StatefulSet events) take at most a quarter of those slots, so that a
        # burst of them never holds back the reconciles of objects still waiting for their
        # children (the same requests, only reordered: refreshes catch up right after).
        self._refresh_slots = asyncio.Semaphore(max(1, max_concurrent // 4))

    async def list_nodes(self) -> list[dict] | None:
        try:
            return await self.kube.list("v1", "Node")
        except ApiError as exc:
            if exc.status in (401, 403):  # not allowed to see nodes: skip the check
                log.warning("cannot list nodes (%s); the GPU capacity check is off", exc)
                return None
            raise

    def forget(self, namespace: str, name: str) -> None:
        self._sts_seen.pop((namespace, name), None)
        self._published.pop((namespace, name), None)
        self._latest_sts.pop((namespace, name), None)
        for ref in all_child_refs(name):
            self.written.pop((ref.kind, namespace, ref.name), None)
        for key in [k for k in self._pod_seen if k[0] == namespace and k[1].startswith(f"{name}-")]:
            del self._pod_seen[key]

    # --- full reconcile ------------------------------------------------------------------------

    async def reconcile(self, body: Mapping[str, Any]) -> ReconcileResult:
        """Apply every child, delete switched-off ones, write the status. Always all three: even
        a brand-new object may own children already (its create was cut short by a crash)."""
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        mine: list[asyncio.Future] = []  # the waiter this call registered, if any
        try:
            async with self._slots:
                outcome = await self._reconcile(body, mine)
            if isinstance(outcome, ReconcileResult):
                return outcome
            finish, waiter = outcome
            sts = None
            try:
                sts = await asyncio.wait_for(asyncio.shield(waiter), self.sts_wait)
            except asyncio.TimeoutError:
                pass
            if sts is None and waiter.done() and not waiter.cancelled():
                sts = waiter.result()  # handed over just as the wait ran out
            if self._sts_waiters.get(key) is waiter:
                del self._sts_waiters[key]
            async with self._slots:
                return await finish(sts)
        finally:
            if mine and self._sts_waiters.get(key) is mine[0]:
                del self._sts_waiters[key]

    async def _reconcile(self, body: Mapping[str, Any], mine: list[asyncio.Future]) -> Any:
        meta = body["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        try:
            spec = parse_spec(body.get("spec"))
        except ValidationError as exc:
            failure = Failure(INVALID_SPEC, describe_error(exc))
            status = await self.publish(body, None, None, claim=meta.get("generation"),
                                        failure=failure, ui_enabled=False)
            return ReconcileResult(status, failure=failure)

        desired = desired_children(body, spec)
        configmaps = [c for c in desired if c["kind"] == "ConfigMap"]
        others = [c for c in desired if c["kind"] != "ConfigMap"]
        outcomes = await asyncio.gather(*(self._apply(c, (namespace, name), mine) for c in others), return_exceptions=True)
        to_retire = retired_children(body, desired) if may_own_retired(body) else []
        retired = await asyncio.gather(*(self._retire(body, ref) for ref in to_retire), return_exceptions=True)

        result = ReconcileResult(status=None)
        sts: dict[str, Any] | None = None
        errors: list[tuple[ChildRef, ApiError]] = []
        for manifest, outcome in zip(others, outcomes):
            ref = ref_of(manifest)
            if isinstance(outcome, ApiError):
                errors.append((ref, outcome))
                continue
            if isinstance(outcome, BaseException):
                raise outcome
            code, obj = outcome
            result.applied.append(ref)
            if code == 201:
                result.created.append(ref)
            if ref.kind == "StatefulSet":
                sts = obj
                # Its own watch event (same state) then needs no status refresh.
                self._sts_seen[(namespace, name)] = sts_state(sts)
        for ref, outcome in zip(to_retire, retired):
            if isinstance(outcome, ApiError):
                errors.append((ref, outcome))
            elif isinstance(outcome, BaseException):
                raise outcome
            elif outcome:
                result.deleted.append(ref)

        transient = [(r, e) for r, e in errors if e.transient]
        permanent = [(r, e) for r, e in errors if not e.transient]
        if permanent:
            result.failure = Failure(RECONCILE_FAILED, "; ".join(_describe(r, e) for r, e in permanent))
        else:
            problem = await self.capacity.problem(spec.engine.gpus, spec.scheduling.node_selector)
            if problem:
                result.failure = Failure(INSUFFICIENT_GPUS, problem)
            else:
                result.failure = await self.pod_failure(namespace, name, spec, sts)
        if transient:
            result.transient = transient[0][1]
        # Claim the generation only when it was fully applied (a retry follows a transient error).
        generation = meta.get("generation") if not transient else None

        async def finish(latest: Mapping[str, Any] | None) -> ReconcileResult:
            current = latest if latest is not None else sts
            result.status = await self.publish(body, wanted_of(body, spec), current, claim=generation,
                                               failure=result.failure, ui_enabled=bool(configmaps),
                                               force_configmap=True)
            if current is not None:
                self._sts_seen[(namespace, name)] = sts_state(current)
            return result

        if mine:
            return finish, mine[0]
        return await finish(None)

    async def _apply(self, manifest: Mapping[str, Any], key: tuple[str, str], mine: list[asyncio.Future]) -> tuple[int, dict | None]:
        # The StatefulSet's answer is kept (its status feeds ours); of the rest only the version.
        is_sts = manifest["kind"] == "StatefulSet"
        try:
            code, obj = await self._write(manifest)
        except ApiError as exc:
            path = clashing_list(exc)
            if path is None or list_at(manifest, path) is None:
                raise
            # A hand edit changed the key of a list entry the operator owns (a Service port's
            # number): apply keeps the edited entry beside the operator's and their names clash,
            # forever. A merge patch replaces that list whole with ours; the apply then re-owns it.
            meta = manifest["metadata"]
            await self.kube.merge_patch(manifest["apiVersion"], manifest["kind"], meta["namespace"], meta["name"],
                                        nested(path, list_at(manifest, path)), parse=False,
                                        field_manager=self.field_manager)
            code, obj = await self._write(manifest)
        if not is_sts:
            obj = None
        if is_sts and code == 201 and self.sts_wait > 0 and obj is not None:
            # Just created: its controller's first status is moments away (see ``sts_wait``).
            # Registered before anything else runs, so that no later event of it is missed.
            self._sts_seen[key] = sts_state(obj)
            waiter = asyncio.get_running_loop().create_future()
            self._sts_waiters[key] = waiter
            mine.append(waiter)
        return code, obj

    async def pod_creation_problem(self, namespace: str, name: str, spec: RerankerDeploymentSpec,
                                   sts: Mapping[str, Any] | None) -> Failure | None:
        """A refusal of the engine pods by admission (Pod Security, quota...), which only the
        StatefulSet controller's events tell; looked up only while pods are missing."""
        state = sts_state(sts)
        # A StatefulSet its controller has not acted on yet has had no chance to fail.
        if not state or state["observedGeneration"] is None or int(state["replicas"]) >= spec.replicas:
            return None
        try:
            events = await self.kube.list("v1", "Event", namespace, field_selector=(
                f"involvedObject.kind=StatefulSet,involvedObject.name={L.engine_name(name)},reason=FailedCreate"))
        except ApiError as exc:
            if exc.status in (401, 403):  # not allowed to read events: the status cannot say why
                return None
            raise
        return pod_creation_failure(events, self.clock())

    async def _write(self, manifest: Mapping[str, Any]) -> tuple[int, dict | None]:
        """Server-side apply, remembering the resourceVersion it produced (``written``)."""
        code, obj = await self.kube.apply(manifest, field_manager=self.field_manager)
        meta = manifest["metadata"]
        if obj is not None:
            self.written[(manifest["kind"], meta["namespace"], meta["name"])] = obj["metadata"].get("resourceVersion")
        return code, obj

    async def _retire(self, body: Mapping[str, Any], ref: ChildRef) -> bool:
        namespace = body["metadata"]["namespace"]
        existing = await self.kube.get(ref.api_version, ref.kind, namespace, ref.name)
        if existing is None:
            return False
        owners = existing["metadata"].get("ownerReferences") or []
        if not any(o.get("uid") == body["metadata"]["uid"] for o in owners):
            return False  # someone else's object with a colliding name: not ours to delete
        return await self.kube.delete(ref.api_version, ref.kind, namespace, ref.name, uid=existing["metadata"]["uid"])

    # --- status --------------------------------------------------------------------------------

    async def refresh_status(self, namespace: str, name: str, sts: Mapping[str, Any] | None) -> dict | None:
        """Recompute the status after the StatefulSet changed (pods became ready, a rollout moved)."""
        state = sts_state(sts)
        if state and self._sts_seen.get((namespace, name)) == state:
            return None
        waiter = self._sts_waiters.get((namespace, name))
        if waiter is not None and not waiter.done() and state:
            waiter.set_result(sts)  # the reconcile that just created it writes the status with it
            return None
        async with self._refresh_slots, self._slots:
            return await self._refresh_status(namespace, name, sts, state)

    async def refresh_pod_status(self, namespace: str, name: str, pod: Mapping[str, Any]) -> dict | None:
        """Recompute the status after an engine pod's health changed (a new failure, or one cleared)."""
        failure = pod_failure([pod])
        key = (namespace, pod["metadata"]["name"])
        seen = failure.reason if failure else None
        if key in self._pod_seen and self._pod_seen[key] == seen:
            return None
        self._pod_seen[key] = seen
        async with self._refresh_slots, self._slots:
            sts = await self.kube.get("apps/v1", "StatefulSet", namespace, L.engine_name(name))
            return await self._refresh_status(namespace, name, sts, sts_state(sts), pods_seen=True)

    async def _refresh_status(self, namespace: str, name: str, sts: Mapping[str, Any] | None,
                              state: dict[str, Any], pods_seen: bool = False) -> dict | None:
        body = await self.kube.get(L.API_VERSION, L.KIND, namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return None
        try:
            spec = parse_spec(body.get("spec"))
        except ValidationError:
            return None  # the reconcile reports it
        failure = carried_failure(body.get("status"))
        if failure is None:
            problem = await self.capacity.problem(spec.engine.gpus, spec.scheduling.node_selector)
            failure = Failure(INSUFFICIENT_GPUS, problem) if problem else None
        if failure is None:
            failure = await self.pod_failure(namespace, name, spec, sts, pods_seen)
        status = await self.publish(body, wanted_of(body, spec), sts, claim=None,
                                    failure=failure, ui_enabled=spec.ui.enabled)
        if state:
            self._sts_seen[(namespace, name)] = state
        return status

    async def pod_failure(self, namespace: str, name: str, spec: RerankerDeploymentSpec,
                          sts: Mapping[str, Any] | None, pods_seen: bool = False) -> Failure | None:
        """Why the engine pods cannot serve, in the StatefulSet controller's words (admission refused
        them) or their kubelet's (image, crash loop, OOM kill), or None (a read failing here is no
        failure of the RerankerDeployment: the next event reads again). The pods are listed only when
        the controller reports some, or a pod's own event (``pods_seen``) asks."""
        refused = await self.pod_creation_problem(namespace, name, spec, sts)
        if refused is not None:
            return refused
        if not pods_seen and no_pods(sts):
            return None  # see no_pods: the pods' own events (engine-pod-status) report them
        try:
            pods = await self.kube.list("v1", "Pod", namespace, L.selector_string(name))
            logs: dict[tuple[str, str], str] = {}
            for pod, container in crashed_containers(pods):
                _, text = await self.kube.request(
                    "GET", f"/api/v1/namespaces/{namespace}/pods/{pod}/log",
                    params={"container": container, "previous": "true", "tailLines": "5"}, content_type=None)
                lines = [line for line in str(text or "").splitlines() if line.strip()]
                if lines:
                    logs[(pod, container)] = lines[-1].strip()
        except ApiError:
            return None
        return pod_failure(pods, None, logs)

    async def publish(self, body: Mapping[str, Any], wanted: Wanted | None, sts: Mapping[str, Any] | None, *,
                      claim: int | None, failure: Failure | None, ui_enabled: bool,
                      force_configmap: bool = False) -> dict[str, Any] | None:
        """Write the status (if it changed) and the UI's status ConfigMap (if its content changed).

        ``claim``: the generation whose children this caller has fully applied (None: it applied
        nothing, e.g. a status refresh). ``observedGeneration`` is computed from the object read
        for each write attempt -- the larger of the claim and what that object already says -- and
        the write is conditional on that object's resourceVersion, so a stale caller (a refresh
        that read the object before a reconcile claimed a newer generation) can never move it
        backwards."""
        meta = body["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        new: dict[str, Any] = {}
        replaced: Mapping[str, Any] | None = None  # the status our write replaced (None: no write)
        for _ in range(5):
            if sts is not None:  # each attempt: a write that won the race may have brought a later read
                sts = self._latest_sts[(namespace, name)] = latest_statefulset(
                    self._latest_sts.get((namespace, name)), sts)
            new = compute_status(body, wanted, sts, now=self.clock(),
                                 observed_generation=observed_generation(body, claim), failure=failure)
            patch = status_changes(body.get("status"), new)
            if not patch:
                break
            try:
                await self.kube.merge_patch(
                    L.API_VERSION, L.KIND, namespace, name,
                    {"metadata": {"resourceVersion": meta["resourceVersion"]}, "status": patch}, subresource="status",
                    parse=False,
                )
                replaced = body.get("status") or {}
                break
            except ApiError as exc:
                if exc.status == 404:
                    return None
                if exc.status != 409:
                    raise
            # Someone (the autoscaler, kubectl scale) changed the object: recompute on the fresh one.
            fresh = await self.kube.get(L.API_VERSION, L.KIND, namespace, name)
            if fresh is None:
                return None
            if fresh["metadata"].get("generation") != meta.get("generation"):
                # The spec changed since ``wanted`` was computed from it: written now, its endpoint, uiURL
                # and conditions would describe the old spec under the new observedGeneration. The
                # reconcile of the new generation writes the status.
                return None
            body, meta = fresh, fresh["metadata"]
        else:
            raise ApiError(409, "Conflict", f"status of {namespace}/{name} kept changing while being written")

        # One Warning per problem: only the write that turned Degraded on announces it (a
        # concurrent refresh that finds it already written stays quiet).
        went_bad = degraded_transition(replaced, new) if replaced is not None else None
        if went_bad is not None:
            self.emit(body, "Warning", went_bad["reason"], went_bad["message"])

        if ui_enabled:
            document = render_status(new)
            if force_configmap or self._published.get((namespace, name)) != document:
                await self._write(build_status_configmap(body, new))
                self._published[(namespace, name)] = document
        return new
