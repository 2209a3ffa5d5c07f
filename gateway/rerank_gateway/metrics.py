"""The gateway's Prometheus metrics, on its own registry (served at /metrics).

`rerank_gateway_held_pairs` is the demand the engines cannot see while none is Ready (scale from
zero); `rerank_gateway_outstanding_pairs` is the load per engine right now -- both are read by the
operator's autoscaler as well as by Prometheus.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

REGISTRY = CollectorRegistry()

REQUESTS = Counter("rerank_gateway_requests", "Client requests by route and HTTP status.", ["route", "code"],
                   registry=REGISTRY)
LATENCY = Histogram("rerank_gateway_request_seconds", "Time from request to response, by route.", ["route"],
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
                    registry=REGISTRY)
PAIRS = Counter("rerank_gateway_pairs", "Scored (query, document) pairs by where the score came from.",
                ["source"], registry=REGISTRY)  # source: cache | engine
ENGINE_REQUESTS = Counter("rerank_gateway_engine_requests", "Requests sent to engines, by engine and HTTP status.",
                          ["engine", "code"], registry=REGISTRY)
OUTSTANDING_PAIRS = Gauge("rerank_gateway_outstanding_pairs", "Pairs sent to an engine and not yet answered.",
                          ["engine"], registry=REGISTRY)
ENGINE_RETRIES = Counter("rerank_gateway_engine_retries", "Requests (or pieces of a split request) sent again to "
                         "another engine, by how the engine failed: refused (an engine leaving), reset (the "
                         "connection broke mid-answer), timeout, 5xx, invalid (an answer that is not the scores).",
                         ["reason"], registry=REGISTRY)
ENGINE_FAILURES = Counter("rerank_gateway_engine_failures", "Client requests answered with an error because every "
                          "try failed (the tries or the deadline ran out), by how the last one failed.",
                          ["reason"], registry=REGISTRY)
EJECTED_ENGINES = Gauge("rerank_gateway_ejected_engines", "Engines out of rotation after a failure until their "
                        "/health answers again.", registry=REGISTRY)
SPLIT_REQUESTS = Counter("rerank_gateway_split_requests", "Requests whose pairs were split across engines.",
                         registry=REGISTRY)
SPLIT_PIECES = Counter("rerank_gateway_split_pieces", "Pieces of split requests sent to engines (first tries).",
                       registry=REGISTRY)
READY_ENGINES = Gauge("rerank_gateway_ready_engines", "Ready engines the gateway routes to.", registry=REGISTRY)
HELD_REQUESTS = Gauge("rerank_gateway_held_requests", "Requests waiting for a Ready engine.", registry=REGISTRY)
HELD_PAIRS = Gauge("rerank_gateway_held_pairs", "Pairs in requests waiting for a Ready engine (demand while no "
                   "engine is Ready).", registry=REGISTRY)
REJECTED = Counter("rerank_gateway_rejected", "Requests answered 503 because no engine became Ready in time or "
                   "the hold queue was full.", ["reason"], registry=REGISTRY)
CACHE_ERRORS = Counter("rerank_gateway_cache_errors", "Score cache backend failures (served without the cache).",
                       ["backend"], registry=REGISTRY)
CACHE_BYTES = Gauge("rerank_gateway_cache_bytes", "Bytes held by the in-process score cache.", registry=REGISTRY)
CHUNKED_DOCUMENTS = Counter("rerank_gateway_chunked_documents", "Documents scored in overlapping windows.",
                            registry=REGISTRY)


_CHILDREN: dict[tuple, object] = {}


def child(metric, *label_values: str):
    """``metric.labels(*label_values)``, looked up once: labels() costs more than the update itself, and
    the hot path updates several labelled metrics per request (routes, codes and engines are few)."""
    key = (metric, label_values)
    found = _CHILDREN.get(key)
    if found is None:
        found = _CHILDREN[key] = metric.labels(*label_values)
    return found


def exposition() -> bytes:
    return generate_latest(REGISTRY)
