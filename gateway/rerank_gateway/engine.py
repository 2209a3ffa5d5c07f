"""Talking to one vLLM engine over HTTP: score pairs, tokenize, detokenize.

The gateway always scores through the engine's `/score` with the effective instruction spelled
out, so what the engine computes is exactly what the cache key says. Every failure is an `EngineError`
with a `reason`: an engine 4xx (the client's fault: passed to the client unchanged, never retried), or
how the engine failed (sent again elsewhere by dispatch.py).
"""

from __future__ import annotations

from typing import Any, Sequence

import orjson

from . import metrics
from .http1 import Http1Pool, UpstreamError


# How an engine can fail a request; all but "4xx" are the engine's fault, and scoring changes nothing on the
# engine, so the request may be sent to another engine.
REFUSED = "refused"  # the connection failed before any answer: an engine shutting down or gone
RESET = "reset"  # the connection broke (or the protocol did) after the answer began
TIMEOUT = "timeout"  # no whole answer in time: a hung or overloaded engine
SERVER_ERROR = "5xx"
INVALID = "invalid"  # a 200 that is not the scores asked for
CLIENT_ERROR = "4xx"


class EngineError(Exception):
    """The engine answered with an error, or failed to answer (status 502, 504 for a timeout). ``reason``: one of
    the constants above; ``detail``: what happened, in words, for the client's error message and the log."""

    def __init__(self, status: int, body: bytes, content_type: str = "application/json", reason: str | None = None,
                 detail: str = ""):
        super().__init__(detail or f"engine answered {status}: {body[:200]!r}")
        self.status = status
        self.body = body
        self.content_type = content_type
        self.reason = reason or (CLIENT_ERROR if status < 500 else SERVER_ERROR)
        self.detail = detail or f"answered {status}"

    @property
    def retryable(self) -> bool:
        return self.reason != CLIENT_ERROR


def gateway_error(status: int, message: str, reason: str, detail: str) -> EngineError:
    """An EngineError the gateway writes itself (the engine sent no usable answer), in the API's error shape."""
    kind = "GatewayTimeout" if status == 504 else "BadGateway"
    body = orjson.dumps({"error": {"message": message, "type": kind, "param": None, "code": status}})
    return EngineError(status, body, reason=reason, detail=detail)


class EngineClient:
    def __init__(self, http: Http1Pool):
        self.http = http

    async def _post(self, base_url: str, path: str, body: dict[str, Any], timeout: float | None = None
                    ) -> dict[str, Any]:
        url = base_url + path
        try:
            status, headers, raw = await self.http.post(base_url, path, orjson.dumps(body), timeout=timeout)
        except TimeoutError as exc:
            metrics.child(metrics.ENGINE_REQUESTS, base_url, "timeout").inc()
            seconds = self.http.timeout if timeout is None else timeout
            detail = f"did not answer within {seconds:g} s"
            raise gateway_error(504, f"The engine at {url} {detail}.", TIMEOUT, detail) from exc
        except UpstreamError as exc:
            metrics.child(metrics.ENGINE_REQUESTS, base_url, "unreachable").inc()
            detail = f"could not be reached: {exc}" if exc.unanswered else f"broke the connection: {exc}"
            raise gateway_error(502, f"The engine at {url} {detail}.", REFUSED if exc.unanswered else RESET,
                                detail) from exc
        metrics.child(metrics.ENGINE_REQUESTS, base_url, str(status)).inc()
        if status != 200:
            raise EngineError(status, raw, headers.get(b"content-type", b"application/json").decode("latin-1"),
                              detail=f"answered {status}: {raw[:200].decode('utf-8', 'replace')}")
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise gateway_error(502, f"The engine at {url} answered invalid JSON.", INVALID,
                                "answered invalid JSON") from exc

    async def score(self, base_url: str, model: str, pairs: Sequence[tuple[str, str]], instruction: str | None,
                    max_tokens_per_doc: int | None, timeout: float | None = None) -> tuple[list[float], int]:
        """Scores of ``pairs`` in order, and the prompt tokens the engine reports."""
        queries = [q for q, _ in pairs]
        body: dict[str, Any] = {
            "model": model,
            # One query against many documents is the common case: send it once.
            "queries": queries[0] if len(set(queries)) == 1 else queries,
            "documents": [d for _, d in pairs],
        }
        if instruction:
            body["instruction"] = instruction
        if max_tokens_per_doc:
            body["max_tokens_per_doc"] = max_tokens_per_doc
        answer = await self._post(base_url, "/score", body, timeout)
        data = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(data, list) or len(data) != len(pairs):
            detail = f"answered {len(data) if isinstance(data, list) else 'no'} scores for {len(pairs)} pairs"
            raise gateway_error(502, f"The engine at {base_url} {detail}.", INVALID, detail)
        scores = [0.0] * len(pairs)
        for d in data:
            scores[d["index"]] = float(d["score"])
        return scores, int(answer.get("usage", {}).get("prompt_tokens") or 0)

    async def tokenize(self, base_url: str, model: str, text: str) -> list[int]:
        answer = await self._post(base_url, "/tokenize", {"model": model, "prompt": text, "add_special_tokens": False})
        return answer["tokens"]

    async def detokenize(self, base_url: str, model: str, tokens: list[int]) -> str:
        answer = await self._post(base_url, "/detokenize", {"model": model, "tokens": tokens})
        return answer["prompt"]
