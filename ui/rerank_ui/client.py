"""HTTP client for the deployment's rerank endpoint (vLLM's Cohere/Jina-style `POST /v1/rerank`).

One pooled `httpx.AsyncClient` is shared by all requests of the UI process and awaited on Gradio's event
loop, so a slow engine never blocks the page and no worker thread is parked per waiting request.
Failures become `RerankError` subclasses that carry what a person needs to act on them.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from rerank_ui.config import health_url_for

HEALTH_TIMEOUT_SECONDS = 2.0


def _root_os_error(err: BaseException) -> OSError | None:
    """The OS error under a transport failure; anyio wraps refusals as "All connection attempts failed"
    with the per-address errors in an exception group below it."""
    seen: set[int] = set()
    stack: list[BaseException] = [err]
    while stack:
        current = stack.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno:
            return current
        if isinstance(current, BaseExceptionGroup):
            stack.extend(current.exceptions)
        stack.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return None


def _transport_reason(err: Exception) -> str:
    """'[Errno 111] Connection refused' -> 'connection refused': the OS error without its number."""
    root = _root_os_error(err)
    if isinstance(root, socket.gaierror):  # DNS: "Name or service not known"
        text = root.strerror or str(root)
    elif root is not None:  # asyncio words refusals "Connect call failed (...)"; the errno's text is plainer
        text = os.strerror(root.errno)
    else:
        text = re.sub(r"\[Errno -?\d+\]\s*", "", str(err)).strip()
    return (text[:1].lower() + text[1:]) if text else type(err).__name__


@dataclass(frozen=True)
class RankedDocument:
    index: int
    """Position of the document in the request, 0-based."""
    score: float
    text: str


@dataclass(frozen=True)
class RerankResponse:
    results: list[RankedDocument]
    """Best first."""
    total_tokens: int | None
    latency_seconds: float
    document_count: int


@dataclass(frozen=True)
class HealthProbe:
    ok: bool
    detail: str


class RerankError(Exception):
    """A rerank call that did not produce results."""


class EndpointUnreachable(RerankError):
    def __init__(self, endpoint: str, reason: str):
        super().__init__(f"{endpoint} is unreachable: {reason}")
        self.endpoint = endpoint
        self.reason = reason


class EndpointTimeout(RerankError):
    def __init__(self, endpoint: str, seconds: float):
        super().__init__(f"{endpoint} did not answer within {seconds:g} s")
        self.endpoint = endpoint
        self.seconds = seconds


class EngineError(RerankError):
    """The engine answered with an HTTP error; `message` is its own explanation."""

    def __init__(self, status: int, message: str):
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


class InvalidResponse(RerankError):
    """The endpoint answered 2xx but not with a rerank response (wrong URL or incompatible server)."""


def error_message_from_body(body: Any, fallback: str) -> str:
    """The human part of an error body in the shapes vLLM, FastAPI and OpenAI-style servers use."""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return error["message"]
        if isinstance(error, str) and error:
            return error
        if isinstance(body.get("message"), str) and body["message"]:
            return body["message"]
        detail = body.get("detail")
        if isinstance(detail, str) and detail:
            return detail
        if isinstance(detail, list) and detail:
            # FastAPI validation errors: [{"loc": ["body", "top_n"], "msg": "..."}]
            parts = []
            for item in detail:
                if isinstance(item, dict):
                    loc = ".".join(str(p) for p in item.get("loc", []) if p != "body")
                    parts.append(f"{loc}: {item.get('msg', '')}" if loc else str(item.get("msg", "")))
            if parts:
                return "; ".join(parts)
    return fallback


def _response_error(response: httpx.Response) -> EngineError:
    text = response.text.strip()
    try:
        body = response.json()
    except ValueError:
        body = None
    fallback = text[:300] if text else response.reason_phrase or "no details given"
    return EngineError(response.status_code, error_message_from_body(body, fallback))


def parse_rerank_response(body: Any, documents: Sequence[str]) -> tuple[list[RankedDocument], int | None]:
    if not isinstance(body, dict) or not isinstance(body.get("results"), list):
        raise InvalidResponse("the endpoint's answer has no `results` list; is RERANK_ENDPOINT a rerank server?")
    ranked = []
    for item in body["results"]:
        try:
            index = int(item["index"])
            score = float(item["relevance_score"])
        except (KeyError, TypeError, ValueError):
            raise InvalidResponse(f"a result lacks `index` or `relevance_score`: {str(item)[:200]}") from None
        document = item.get("document")
        if isinstance(document, dict):
            text = document.get("text")
        else:
            text = document
        if not isinstance(text, str):
            text = documents[index] if 0 <= index < len(documents) else ""
        ranked.append(RankedDocument(index=index, score=score, text=text))
    ranked.sort(key=lambda r: r.score, reverse=True)
    usage = body.get("usage")
    tokens = usage.get("total_tokens") if isinstance(usage, dict) else None
    return ranked, tokens if isinstance(tokens, int) else None


class RerankClient:
    """Async client for one rerank endpoint; one instance (one connection pool) per UI process.

    Must be used from a single event loop (Gradio's): the pool's connections belong to that loop.
    """

    def __init__(self, endpoint: str, *, model: str = "", timeout_seconds: float = 60.0, max_connections: int = 8,
                 health_url: str | None = None):
        self.endpoint = endpoint
        self.health_url = health_url or health_url_for(endpoint)
        self.model = model
        self.timeout_seconds = timeout_seconds
        self._http = httpx.AsyncClient(
            # Connecting should be quick inside a cluster; the overall deadline is enforced in `rerank`.
            timeout=httpx.Timeout(timeout_seconds, connect=min(5.0, timeout_seconds)),
            # Keep-alive connections are reused across requests of all users; the +2 leaves room for
            # health probes beside a full set of rerank calls.
            limits=httpx.Limits(max_connections=max_connections + 2, max_keepalive_connections=max_connections + 2),
            # Cluster-internal endpoint: never route it through a proxy from the environment.
            trust_env=False,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    def payload(self, query: str, documents: Sequence[str], *, top_n: int | None = None,
                instruction: str | None = None) -> dict[str, Any]:
        """The JSON body POSTed to the endpoint (vLLM's /v1/rerank request)."""
        body: dict[str, Any] = {}
        if self.model:
            body["model"] = self.model
        body.update({
            "query": query,
            "documents": list(documents),
            "top_n": top_n if top_n else len(documents),
            "return_documents": True,
        })
        if instruction:
            body["instruction"] = instruction
        return body

    async def rerank(self, query: str, documents: Sequence[str], *, top_n: int | None = None,
                     instruction: str | None = None) -> RerankResponse:
        payload = self.payload(query, documents, top_n=top_n, instruction=instruction)
        started = time.perf_counter()
        try:
            # httpx's timeout bounds each read; this bounds the whole call, so a trickling answer cannot
            # hold a concurrency slot forever.
            async with asyncio.timeout(self.timeout_seconds):
                response = await self._http.post(self.endpoint, json=payload)
        except (TimeoutError, httpx.TimeoutException):
            raise EndpointTimeout(self.endpoint, self.timeout_seconds) from None
        except httpx.TransportError as err:
            raise EndpointUnreachable(self.endpoint, _transport_reason(err)) from None
        latency = time.perf_counter() - started
        if response.status_code >= 400:
            raise _response_error(response)
        try:
            body = response.json()
        except ValueError:
            raise InvalidResponse(
                f"the endpoint answered HTTP {response.status_code} with non-JSON content; "
                "is RERANK_ENDPOINT a rerank server?"
            ) from None
        results, tokens = parse_rerank_response(body, documents)
        return RerankResponse(results=results, total_tokens=tokens, latency_seconds=latency,
                              document_count=len(documents))

    async def health(self) -> HealthProbe:
        """A cheap readiness probe (`GET /health` of the engine), bounded by a short timeout of its own."""
        try:
            async with asyncio.timeout(HEALTH_TIMEOUT_SECONDS):
                response = await self._http.get(self.health_url, timeout=HEALTH_TIMEOUT_SECONDS)
        except (TimeoutError, httpx.TimeoutException):
            return HealthProbe(False, f"no answer from {self.health_url} within {HEALTH_TIMEOUT_SECONDS:g} s")
        except httpx.TransportError as err:
            return HealthProbe(False, f"{self.endpoint} is unreachable ({_transport_reason(err)})")
        if response.status_code == 200:
            return HealthProbe(True, "engine healthy")
        return HealthProbe(False, f"engine answered {self.health_url} with HTTP {response.status_code}")
