"""The kopf wiring: which events run which reconcile step, retries, events, the autoscaler daemon.

* create / update / resume of a RerankerDeployment -> ``Reconciler.reconcile`` (server-side
  apply of every child). kopf's base for update diffs is kept in memory (``diffbase``), so a
  handler that succeeds writes nothing to the object itself. Transient API errors (409, 429,
  5xx, lost connections) raise ``kopf.TemporaryError`` with exponential backoff; a spec the cluster cannot run (invalid, a
  child refused, not enough GPUs on any node) is reported in the status (Degraded) and with one
  Warning event, and is not retried in a loop: the drift check looks again every interval.
* drift repair (``drift``): the operator watches its children of every kind; a child deleted, or
  edited by someone else, gets its owner reconciled within moments (a deleted child comes back, an
  edited field the operator owns is set back). A slow pass over every RerankerDeployment once per
  ``drift_interval`` is the safety net. One operator-wide queue instead of a timer per object keeps
  the framework from holding a live copy of each object, which matters at thousands of them.
* StatefulSet events (the engine's) -> status refresh as well (ready replicas, rollout progress).
* ``spec.autoscaling.enabled`` -> a per-object loop running the autoscaler
  (``autoscalers``); it stops when autoscaling is switched off.

Who owns ``spec.replicas``: the user (``kubectl scale``) or an external HPA/KEDA through the
scale subresource while autoscaling is off; the operator's autoscaler while it is on (it writes
the same field through the same subresource). The StatefulSet always follows ``spec.replicas``.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from typing import Any, Mapping

import kopf
from kubernetes import client as k8s_client

from rerank_operator import reasons
from rerank_operator.autoscaling import operator_metrics
from rerank_operator.autoscaling.loop import autoscaler_daemon
from rerank_operator.resources import CHILD_KINDS
from rerank_operator.resources import labels as L

from .autoscalers import Autoscalers
from .diffbase import MemoryDiffBaseStorage, ProgressStorage
from .drift import PERIODIC, DriftRepair, owner_name
from .events import EventPoster
from .kube import ApiError, KubeClient
from .logs import object_ref
from .reconciler import Reconciler, ReconcileResult

RESOURCE = (L.GROUP, L.VERSION, L.PLURAL)
CHILD_LABELS = {"app.kubernetes.io/managed-by": L.MANAGER}

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OperatorConfig:
    drift_interval: float = 300.0
    """Seconds between two periodic checks of one RerankerDeployment: only the safety net, since a
    deleted or edited child is watched and repaired at once. Each check is one server-side apply per
    child, mostly no-ops for the API server, so 1,000 objects at 300 s cost about 25 requests a second."""
    max_backoff: float = 60.0
    """Cap of the retry delay after transient API errors."""
    connections: int = 32
    """Requests of the reconcile loop in flight at once (also: objects reconciled at once)."""
    workers: int = 64
    """Objects of one kind (RerankerDeployments, StatefulSets) handled at once by the framework."""
    framework_connections: int = 32
    """Further connections for kopf: its watch streams (one per watched resource and namespace)
    and its own requests."""


def backoff(retry: int, cap: float) -> float:
    """1, 2, 4, ... seconds (capped), with jitter so that many objects failing together do not
    come back together."""
    return min(cap, 2.0 ** retry) * random.uniform(0.8, 1.2)


class _State:
    """Shared clients, created at operator start-up (they need the running event loop)."""

    def __init__(self) -> None:
        self.reconciler: Reconciler | None = None
        self.kube: KubeClient | None = None
        self.sync_api: k8s_client.ApiClient | None = None
        self.emit: EventPoster | None = None
        self.autoscalers: Autoscalers | None = None
        self.drift: DriftRepair | None = None
        self.diffbase = MemoryDiffBaseStorage()


async def repair(state: _State, namespace: str, name: str, why: str) -> None:
    """Reconcile one RerankerDeployment because a child drifted (or the periodic check)."""
    body = await state.kube.get(L.API_VERSION, L.KIND, namespace, name)
    if body is None or body["metadata"].get("deletionTimestamp"):
        return
    result = await state.reconciler.reconcile(body)
    if result.created:
        restored = ", ".join(f"{r.kind} {r.name}" for r in result.created)
        log.info("re-created %s (%s)", restored, why, extra=object_ref(namespace, name))
        state.emit(body, "Normal", reasons.RESTORED, "re-created deleted " + restored)
    elif why != PERIODIC:
        log.info("re-applied its children (%s)", why, extra=object_ref(namespace, name))


async def _reconcile(reconciler: Reconciler, body: kopf.Body, retry: int, config: OperatorConfig) -> ReconcileResult:
    """One reconcile from a change handler: transient API errors become a retry with backoff;
    anything the API server refuses for good is already in the status (Degraded)."""
    try:
        result = await reconciler.reconcile(body)
    except ApiError as exc:  # e.g. the status write itself failed
        if exc.transient:
            raise kopf.TemporaryError(f"transient API error, retrying: {exc}",
                                      delay=backoff(retry, config.max_backoff)) from exc
        raise kopf.PermanentError(str(exc)) from exc
    if result.transient is not None:
        raise kopf.TemporaryError(f"transient API error, retrying: {result.transient}",
                                  delay=backoff(retry, config.max_backoff))
    return result


def register(registry: kopf.OperatorRegistry, config: OperatorConfig, configuration: k8s_client.Configuration) -> None:
    """Register every handler of the operator in ``registry``."""
    state = _State()

    @kopf.on.login(registry=registry)
    async def login(**_: Any) -> kopf.AiohttpSession:
        # One connection pool and one set of credentials for kopf and the reconcile client. kopf
        # logs in again (a new pool with a re-read token) when the API server answers 401.
        return state.kube.kopf_session()

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        # Only warnings and errors of the framework become Kubernetes events; the operator posts
        # its own Normal events (created, updated, scaled, restored).
        settings.posting.level = logging.WARNING
        settings.persistence.progress_storage = ProgressStorage(prefix=L.GROUP)
        settings.persistence.diffbase_storage = state.diffbase
        settings.persistence.finalizer = f"{L.GROUP}/finalizer"
        # Back-pressure: at most this many objects of a kind are being handled at once; further
        # watch events wait unread in the stream. Without it a thousand objects created together
        # are parsed and held all at once, and the operator's memory peaks with the backlog.
        settings.queueing.worker_limit = config.workers
        settings.queueing.idle_timeout = 1.0
        state.kube = KubeClient(configuration, connections=config.connections,
                                framework_connections=config.framework_connections)
        state.sync_api = k8s_client.ApiClient(configuration)
        state.emit = EventPoster(state.kube, time.time)
        # Each drift check sees a node list at most one interval old (a fitting node that joins
        # clears Degraded/InsufficientGPUs by the next check).
        state.reconciler = Reconciler(state.kube, emit=state.emit, node_ttl=min(15.0, config.drift_interval),
                                      max_concurrent=config.connections)
        state.autoscalers = Autoscalers(state.sync_api, autoscaler_daemon)
        state.drift = DriftRepair(lambda namespace, name, why: repair(state, namespace, name, why),
                                  written=state.reconciler.written, interval=config.drift_interval)

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        if state.drift is not None:
            await state.drift.close()
        if state.autoscalers is not None:
            await state.autoscalers.close()
        if state.emit is not None:
            await state.emit.drain()
        if state.kube is not None:
            await state.kube.close()

    @kopf.on.create(*RESOURCE, registry=registry, id="reconcile-create")
    async def created(body: kopf.Body, retry: int, logger: logging.Logger, **_: Any) -> None:
        # Retires switched-off children too: a "new" object may be one whose create was cut short
        # by a crash after its children were made, and switched off since.
        result = await _reconcile(state.reconciler, body, retry, config)
        if result.created:  # (after an operator restart every object is "new" to it: see diffbase)
            kinds = ", ".join(f"{r.kind} {r.name}" for r in result.created)
            state.emit(body, "Normal", reasons.CREATED, f"created {kinds}")
        logger.info("reconciled %d children (created %d)", len(result.applied), len(result.created))

    @kopf.on.update(*RESOURCE, registry=registry, id="reconcile-update")
    async def updated(body: kopf.Body, diff: kopf.Diff, retry: int, logger: logging.Logger, **_: Any) -> None:
        result = await _reconcile(state.reconciler, body, retry, config)
        fields = sorted({".".join(str(p) for p in d[1]) for d in diff})
        if not fields:
            return
        autoscaling = bool((body.get("spec") or {}).get("autoscaling", {}).get("enabled"))
        if fields == ["spec.replicas"]:
            if not autoscaling:  # the autoscaler posts its own event for its own scaling
                old, new = next(((d[2], d[3]) for d in diff), (None, None))
                state.emit(body, "Normal", reasons.SCALED, f"engine replicas {old} -> {new}")
        elif result.applied:
            state.emit(body, "Normal", reasons.UPDATED, f"applied changes of {', '.join(fields)}")
        if result.deleted:
            logger.info("deleted switched-off children: %s", ", ".join(f"{r.kind} {r.name}" for r in result.deleted))

    @kopf.on.resume(*RESOURCE, registry=registry, id="reconcile-resume")
    async def resumed(body: kopf.Body, retry: int, **_: Any) -> None:
        await _reconcile(state.reconciler, body, retry, config)

    @kopf.on.event(*RESOURCE, registry=registry, id="track")
    async def track(event: Mapping[str, Any], body: kopf.Body, namespace: str, name: str, **_: Any) -> None:
        deleted = event.get("type") == "DELETED"
        if state.drift is not None:
            state.drift.track(namespace, name, present=not deleted)
        if deleted:
            state.diffbase.forget(body.get("metadata", {}).get("uid"))
            if state.reconciler is not None:
                state.reconciler.forget(namespace, name)
            operator_metrics.forget(namespace, name)
        if state.autoscalers is not None:
            deleting = deleted or bool(body.get("metadata", {}).get("deletionTimestamp"))
            state.autoscalers.sync(namespace, name, body.get("spec"), deleting=deleting)

    @kopf.on.event("", "v1", "pods", labels={**CHILD_LABELS, "app.kubernetes.io/component": L.ENGINE},
                   registry=registry, id="engine-pod-status")
    async def engine_pod_changed(body: kopf.Body, namespace: str, logger: logging.Logger, **_: Any) -> None:
        """A pod's failure (image pull, crash loop, OOM kill) changes no StatefulSet field: its own events
        refresh the status, each time what the pod reports about its health changes."""
        owner = (body.get("metadata", {}).get("labels") or {}).get("app.kubernetes.io/instance")
        if owner is None or state.reconciler is None:
            return
        try:
            await state.reconciler.refresh_pod_status(namespace, owner, body)
        except ApiError as exc:  # the next event or the periodic check catches up
            log.warning("status refresh failed: %s", exc, extra=object_ref(namespace, owner))

    async def child_changed(event: Mapping[str, Any], body: kopf.Body, namespace: str,
                            logger: logging.Logger, **_: Any) -> None:
        if state.drift is None:
            return
        state.drift.child_event(event.get("type"), body)
        owner = owner_name(body)
        if body.get("kind") == "StatefulSet" and owner is not None and event.get("type") != "DELETED":
            try:  # the engine's progress: ready replicas, rollout
                await state.reconciler.refresh_status(namespace, owner, body)
            except ApiError as exc:  # the next event or the periodic check catches up
                log.warning("status refresh failed: %s", exc, extra=object_ref(namespace, owner))

    for child in CHILD_KINDS:
        group, _, version = child.api_version.rpartition("/")
        kopf.on.event(group, version, child.plural, labels=CHILD_LABELS, registry=registry,
                      id=f"child-{child.plural}")(child_changed)
