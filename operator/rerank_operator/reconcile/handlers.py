"""The kopf wiring: which events run which reconcile step, retries, events, the autoscaler daemon.

* create / update / resume of a RerankerDeployment -> ``Reconciler.reconcile`` (server-side
  apply of every child). Transient API errors (409, 429, 5xx, lost connections) raise
  ``kopf.TemporaryError`` with exponential backoff; a spec the cluster cannot run (invalid, a
  child refused, not enough GPUs on any node) is reported in the status (Degraded) and with one
  Warning event, and is not retried in a loop: the drift check looks again every interval.
* a drift check re-applies all children of every RerankerDeployment once per ``drift_interval``
  (one operator-wide loop, spreading the objects over the interval): a deleted child comes back,
  an edited field the operator owns is set back. One loop instead of a timer per object keeps
  the framework from holding a live copy of each object, which matters at thousands of them.
* StatefulSet events (the engine's) -> status refresh (ready replicas, rollout progress); a
  deleted StatefulSet is re-created at once.
* ``spec.autoscaling.enabled`` -> a per-object loop running the queue-depth autoscaler
  (``autoscalers``); it stops when autoscaling is switched off.

Who owns ``spec.replicas``: the user (``kubectl scale``) or an external HPA/KEDA through the
scale subresource while autoscaling is off; the operator's autoscaler while it is on (it writes
the same field through the same subresource). The StatefulSet always follows ``spec.replicas``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from typing import Any, Mapping

import kopf
from kubernetes import client as k8s_client

from rerank_operator.autoscaling import operator_metrics
from rerank_operator.autoscaling.loop import autoscaler_daemon
from rerank_operator.resources import labels as L

from .autoscalers import Autoscalers
from .events import EventPoster
from .kube import ApiError, KubeClient
from .reconciler import Reconciler, ReconcileResult

RESOURCE = (L.GROUP, L.VERSION, L.PLURAL)
CHILD_LABELS = {"app.kubernetes.io/managed-by": L.MANAGER}

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OperatorConfig:
    drift_interval: float = 300.0
    """Seconds between two drift checks of one RerankerDeployment. A deleted StatefulSet comes back at
    once (its deletion is watched); other children and edits within this interval. Each check is one
    server-side apply per child, mostly no-ops for the API server, so 1,000 objects at 300 s cost about
    25 requests a second."""
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
        # The RerankerDeployments in the operator's scope, for the drift loop.
        self.known: set[tuple[str, str]] = set()
        self.drift_task: asyncio.Task | None = None


async def drift_loop(state: _State, interval: float) -> None:
    """Reconcile every known RerankerDeployment once per ``interval``, evenly spread."""
    while True:
        keys = sorted(state.known)
        if not keys:
            await asyncio.sleep(interval)
            continue
        pause = interval / len(keys)
        for namespace, name in keys:
            await asyncio.sleep(pause)
            if (namespace, name) not in state.known:
                continue
            try:
                body = await state.kube.get(L.API_VERSION, L.KIND, namespace, name)
                if body is None or body["metadata"].get("deletionTimestamp"):
                    continue
                result = await state.reconciler.reconcile(body)
                if result.created:
                    state.emit(body, "Normal", "Restored",
                               "re-created deleted " + ", ".join(f"{r.kind} {r.name}" for r in result.created))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 -- the next round is the retry; never stop the loop
                log.warning("drift check of %s/%s failed: %s", namespace, name, exc)


async def _reconcile(reconciler: Reconciler, body: kopf.Body, retry: int, config: OperatorConfig,
                     retire: bool = True) -> ReconcileResult:
    """One reconcile from a change handler: transient API errors become a retry with backoff;
    anything the API server refuses for good is already in the status (Degraded)."""
    try:
        result = await reconciler.reconcile(body, retire=retire)
    except ApiError as exc:  # e.g. the status write itself failed
        if exc.transient:
            raise kopf.TemporaryError(f"transient API error, retrying: {exc}",
                                      delay=backoff(retry, config.max_backoff)) from exc
        raise kopf.PermanentError(str(exc)) from exc
    if result.transient is not None:
        raise kopf.TemporaryError(f"transient API error, retrying: {result.transient}",
                                  delay=backoff(retry, config.max_backoff))
    return result


def _owner_name(body: Mapping[str, Any]) -> str | None:
    for owner in body.get("metadata", {}).get("ownerReferences") or []:
        if owner.get("kind") == L.KIND and owner.get("apiVersion", "").startswith(L.GROUP + "/"):
            return owner.get("name")
    return None


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
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=L.GROUP)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix=L.GROUP, key="last-handled-configuration")
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
        state.drift_task = asyncio.get_running_loop().create_task(drift_loop(state, config.drift_interval))

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        if state.drift_task is not None:
            state.drift_task.cancel()
        if state.autoscalers is not None:
            await state.autoscalers.close()
        if state.emit is not None:
            await state.emit.drain()
        if state.kube is not None:
            await state.kube.close()

    @kopf.on.create(*RESOURCE, registry=registry, id="reconcile-create")
    async def created(body: kopf.Body, retry: int, logger: logging.Logger, **_: Any) -> None:
        result = await _reconcile(state.reconciler, body, retry, config, retire=False)
        if result.applied:
            kinds = ", ".join(f"{r.kind} {r.name}" for r in result.applied)
            state.emit(body, "Normal", "Created", f"created {kinds}")
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
                state.emit(body, "Normal", "Scaled", f"engine replicas {old} -> {new}")
        elif result.applied:
            state.emit(body, "Normal", "Updated", f"applied changes of {', '.join(fields)}")
        if result.deleted:
            logger.info("deleted switched-off children: %s", ", ".join(f"{r.kind} {r.name}" for r in result.deleted))

    @kopf.on.resume(*RESOURCE, registry=registry, id="reconcile-resume")
    async def resumed(body: kopf.Body, retry: int, **_: Any) -> None:
        await _reconcile(state.reconciler, body, retry, config)

    @kopf.on.event(*RESOURCE, registry=registry, id="track")
    async def track(event: Mapping[str, Any], body: kopf.Body, namespace: str, name: str, **_: Any) -> None:
        deleted = event.get("type") == "DELETED"
        if deleted:
            state.known.discard((namespace, name))
            if state.reconciler is not None:
                state.reconciler.forget(namespace, name)
            operator_metrics.forget(namespace, name)
        else:
            state.known.add((namespace, name))
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
        except ApiError as exc:  # the next event or the drift timer catches up
            logger.warning("status refresh of %s/%s failed: %s", namespace, owner, exc)

    @kopf.on.event("apps", "v1", "statefulsets", labels=CHILD_LABELS, registry=registry, id="engine-status")
    async def engine_changed(event: Mapping[str, Any], body: kopf.Body, namespace: str,
                             logger: logging.Logger, **_: Any) -> None:
        owner = _owner_name(body)
        if owner is None or state.reconciler is None:
            return
        try:
            if event.get("type") == "DELETED":
                cr = await state.kube.get(L.API_VERSION, L.KIND, namespace, owner)
                if cr is not None and not cr["metadata"].get("deletionTimestamp"):
                    result = await state.reconciler.reconcile(cr)
                    if result.created:
                        state.emit(cr, "Normal", "Restored", f"re-created deleted StatefulSet {body['metadata']['name']}")
            else:
                await state.reconciler.refresh_status(namespace, owner, body)
        except ApiError as exc:  # the next event or the drift timer catches up
            logger.warning("status refresh of %s/%s failed: %s", namespace, owner, exc)
