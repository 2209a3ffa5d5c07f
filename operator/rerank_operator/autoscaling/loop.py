"""One autoscaling pass for one RerankerDeployment, and the per-object loop that repeats it.

A pass: read the object fresh -> list its engine pods -> scrape the Ready ones' ``/metrics`` ->
``policy.decide`` on that observation and the memory recorded in the status -> if the count changes, write it through the CR's ``scale`` subresource (the
operator's reconcile then resizes the StatefulSet) and post an event -> patch the status
(queue depth, desired replicas, the policy's memory, AutoscalingActive / ScalingLimited).

Who owns ``spec.replicas``:

* ``spec.autoscaling.enabled: false`` (default): this module does nothing with it. Set it by
  hand (``kubectl scale rrd/<name> --replicas=N``) or let an external autoscaler (an HPA or KEDA
  ScaledObject targeting the ``scale`` subresource) drive it.
* ``spec.autoscaling.enabled: true``: the autoscaler owns it. It never fights: it writes only
  when its own decision changes the count, so a manual ``kubectl scale`` lasts until the next
  decision that differs from it (which may be the very next pass). Do not attach an HPA/KEDA to
  a RerankerDeployment with autoscaling enabled -- two controllers would take turns.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import uuid
from typing import Any, Mapping

import aiohttp
from kubernetes import client
from kubernetes.client.rest import ApiException
from pydantic import ValidationError

from ..api.v1alpha1 import GROUP, KIND, PLURAL, VERSION, AutoscalingSpec, describe_error, parse_spec
from ..reasons import INVALID_SPEC

from . import gateway_demand, operator_metrics
from .metrics import ScrapeTarget, scrape_engine_samples
from .policy import AutoscalingPolicy, Observation, PodSample, PolicyConfigError, ScalingDecision, decide
from .state import (
    AUTOSCALING_ACTIVE,
    disabled_status_patch,
    memory_from_status,
    status_patch,
    to_rfc3339,
    upsert_condition,
)

COMPONENT = "rerank-operator"
_DEFAULT_SCRAPE_INTERVAL = AutoscalingSpec.model_fields["scrape_interval_seconds"].default

log = logging.getLogger(__name__)


def engine_pod_selector(name: str) -> str:
    """Label selector of a RerankerDeployment's engine pods (the StatefulSet's selector)."""
    return f"app.kubernetes.io/instance={name},app.kubernetes.io/component=engine"


def scrape_interval(body: Mapping[str, Any]) -> float:
    """spec.autoscaling.scrapeIntervalSeconds, read each round from kopf's live view of the object (the
    CRD's default where it is absent; the pass itself refuses a spec that does not parse)."""
    autoscaling = (body.get("spec") or {}).get("autoscaling") or {}
    return float(autoscaling.get("scrapeIntervalSeconds") or _DEFAULT_SCRAPE_INTERVAL)


def _is_ready(pod: Any) -> bool:
    conditions = (pod.status.conditions or []) if pod.status else []
    return any(c.type == "Ready" and c.status == "True" for c in conditions) and bool(pod.status.pod_ip)


def _metrics_port(pod: Any, spec_port: int) -> int:
    # The container port named "http" is authoritative (it is what the probes use); the spec's
    # port is the fallback for pods without named ports.
    for container in pod.spec.containers or []:
        for port in container.ports or []:
            if port.name == "http":
                return int(port.container_port)
    return spec_port


async def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    # The kubernetes client is synchronous; keep the operator's event loop free.
    return await asyncio.to_thread(fn, *args, **kwargs)


async def autoscale_once(
    api: client.ApiClient,
    body: Mapping[str, Any],
    *,
    now: float | None = None,
    session: aiohttp.ClientSession | None = None,
    scrape_timeout: float = 2.0,
    scrape_concurrency: int = 64,
    logger: logging.Logger | logging.LoggerAdapter | None = None,
) -> ScalingDecision | None:
    """Run one autoscaling pass for the RerankerDeployment ``body`` (only its name/namespace are
    used; the object is read fresh). Returns the decision, or ``None`` when autoscaling is off,
    the object is gone, or its autoscaling settings are invalid."""
    logger = logger or log
    namespace = body["metadata"]["namespace"]
    name = body["metadata"]["name"]
    custom = client.CustomObjectsApi(api)
    core = client.CoreV1Api(api)
    try:
        obj = await _call(custom.get_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, name)
    except ApiException as exc:
        if exc.status == 404:
            operator_metrics.forget(namespace, name)
            return None
        raise
    now = time.time() if now is None else now
    status = obj.get("status") or {}
    if not ((obj.get("spec") or {}).get("autoscaling") or {}).get("enabled"):
        patch = disabled_status_patch(status, now)
        if patch:
            await _patch_status(custom, namespace, name, patch)
        operator_metrics.forget(namespace, name)
        return None
    try:
        spec = parse_spec(obj.get("spec"))
        policy = AutoscalingPolicy.from_spec(spec.autoscaling)
    except (ValidationError, PolicyConfigError) as exc:
        message = describe_error(exc) if isinstance(exc, ValidationError) else str(exc)
        logger.error("autoscaling of %s/%s is off: %s", namespace, name, message)
        conditions = upsert_condition(status.get("conditions") or [], AUTOSCALING_ACTIVE, "False",
                                      INVALID_SPEC, message, now)
        await _patch_status(custom, namespace, name, {"conditions": conditions})
        return None

    current = spec.replicas
    # At zero replicas only the gateway sees demand (gateway_demand.py); it is read whenever zero is possible.
    held = await _held_pairs(core, namespace, name, session) if current == 0 or policy.min_replicas == 0 else 0.0
    pod_list = await _call(core.list_namespaced_pod, namespace, label_selector=engine_pod_selector(name))
    # Pods on their way out or finished are neither load nor capacity (as in the HPA).
    pods = [
        p for p in pod_list.items
        if p.metadata.deletion_timestamp is None and (p.status.phase or "") not in ("Failed", "Succeeded")
    ]
    ready = [p for p in pods if _is_ready(p)]
    targets = [
        ScrapeTarget(p.metadata.name, f"http://{p.status.pod_ip}:{_metrics_port(p, spec.engine.port)}/metrics")
        for p in ready
    ]
    started = time.perf_counter()
    outcomes = await scrape_engine_samples(
        targets, timeout=scrape_timeout, concurrency=scrape_concurrency, session=session
    )
    operator_metrics.SCRAPE_DURATION.labels(namespace, name).observe(time.perf_counter() - started)
    for outcome in outcomes.values():
        if outcome.error:
            operator_metrics.SCRAPE_ERRORS.labels(namespace, name, outcome.error).inc()
            logger.warning("scraping engine pod %s/%s failed: %s", namespace, outcome.pod, outcome.error)

    ready_names = {p.metadata.name for p in ready}
    samples = []
    for p in pods:
        outcome = outcomes.get(p.metadata.name)
        sample = outcome.sample if outcome is not None else None
        samples.append(PodSample(
            p.metadata.name, ready=p.metadata.name in ready_names,
            waiting=sample.waiting if sample else None, running=sample.running if sample else None,
            requests_done=sample.requests_done if sample else None,
            prompt_tokens=sample.prompt_tokens if sample else None,
        ))
    decision = decide(policy, Observation(now, current, tuple(samples), held_pairs=held), memory_from_status(status))
    operator_metrics.record(namespace, name, decision)

    if decision.scaled:
        await _call(
            custom.patch_namespaced_custom_object_scale, GROUP, VERSION, namespace, PLURAL, name,
            {"spec": {"replicas": decision.desired_replicas}},
        )
        operator_metrics.SCALE_EVENTS.labels(namespace, name, decision.direction).inc()
        logger.info("scaled %s/%s from %d to %d replicas: %s", namespace, name, decision.current_replicas,
                    decision.desired_replicas, decision.message)
        await _post_event(core, obj, decision, now, logger)
    await _patch_status(custom, namespace, name, status_patch(decision, status, now, decision.scaled))
    return decision


async def _held_pairs(core: client.CoreV1Api, namespace: str, name: str,
                      session: aiohttp.ClientSession | None) -> float:
    """Pairs the Ready gateway pods hold for want of a Ready engine."""
    pods = await _call(core.list_namespaced_pod, namespace,
                       label_selector=f"app.kubernetes.io/instance={name},app.kubernetes.io/component=gateway")
    urls = [f"http://{p.status.pod_ip}:{gateway_demand.GATEWAY_PORT}/metrics" for p in pods.items if _is_ready(p)]
    if not urls:
        return 0.0
    if session is None:
        async with aiohttp.ClientSession(trust_env=False) as own:
            return await gateway_demand.scrape_held_pairs(own, urls)
    return await gateway_demand.scrape_held_pairs(session, urls)


async def _patch_status(custom: client.CustomObjectsApi, namespace: str, name: str, fields: dict[str, Any]) -> None:
    try:
        await _call(custom.patch_namespaced_custom_object_status, GROUP, VERSION, namespace, PLURAL, name,
                    {"status": fields})
    except ApiException as exc:
        if exc.status != 404:  # deleted meanwhile: nothing to record
            raise


async def _post_event(core: client.CoreV1Api, obj: Mapping[str, Any], decision: ScalingDecision, now: float,
                      logger: logging.Logger | logging.LoggerAdapter) -> None:
    meta = obj["metadata"]
    stamp = to_rfc3339(now)
    event = {
        "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:12]}", "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, "name": meta["name"],
            "namespace": meta["namespace"], "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
        },
        "reason": decision.reason,
        "message": f"engine replicas {decision.current_replicas} -> {decision.desired_replicas}: {decision.message}",
        "type": "Normal",
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": socket.gethostname(),
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }
    try:
        await _call(core.create_namespaced_event, meta["namespace"], event)
    except ApiException as exc:  # an event is a courtesy; the scale itself already happened
        logger.warning("could not post the scaling event for %s/%s: %s", meta["namespace"], meta["name"], exc.reason)


async def autoscaler_daemon(
    api: client.ApiClient,
    body: Mapping[str, Any],
    stopped: Any,
    logger: logging.Logger | logging.LoggerAdapter | None = None,
) -> None:
    """Run :func:`autoscale_once` every ``spec.autoscaling.scrapeIntervalSeconds`` until ``stopped``.

    Meant for a kopf daemon (``body`` is kopf's live view of the object, ``stopped`` its stop
    flag), so each object gets its own interval. One HTTP session is shared across passes. A
    failing pass is logged and retried at the next interval; it never kills the loop.
    """
    logger = logger or log
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64), trust_env=False) as session:
        while not stopped:
            started = time.monotonic()
            try:
                await autoscale_once(api, body, session=session, logger=logger)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 -- keep autoscaling alive across API hiccups
                logger.warning("autoscaling pass for %s/%s failed: %r", body["metadata"]["namespace"],
                               body["metadata"]["name"], exc)
            delay = max(0.0, scrape_interval(body) - (time.monotonic() - started))
            await stopped.wait(delay)
