"""Talking to one vLLM engine over HTTP: score pairs, tokenize, detokenize.

The gateway always scores through the engine's `/score` with the effective instruction spelled
out, so what the engine computes is exactly what the cache key says. An engine 4xx is raised as
`EngineError` carrying the engine's status and body, which the app passes to the client unchanged.
"""

from __future__ import annotations

from typing import Any, Sequence

import orjson

from . import metrics
from .http1 import Http1Pool, UpstreamError


class EngineError(Exception):
    """The engine answered with an error (or could not be reached: status 502). `unanswered`: the connection
    failed before any answer (refused, reset, closed by an engine shutting down), so the engine did not score
    the request and another engine may."""

    def __init__(self, status: int, body: bytes, content_type: str = "application/json", unanswered: bool = False):
        super().__init__(f"engine answered {status}: {body[:200]!r}")
        self.status = status
        self.body = body
        self.content_type = content_type
        self.unanswered = unanswered


class EngineClient:
    def __init__(self, http: Http1Pool):
        self.http = http

    async def _post(self, base_url: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        url = base_url + path
        try:
            status, headers, raw = await self.http.post(base_url, path, orjson.dumps(body))
        except (UpstreamError, TimeoutError) as exc:
            metrics.child(metrics.ENGINE_REQUESTS, base_url, "unreachable").inc()
            message = f"The engine at {url} could not be reached: {type(exc).__name__}: {exc}"
            # A timeout may have been scored already (and waiting longer helps no one): only a connection that
            # failed before any answer counts as unanswered.
            unanswered = isinstance(exc, UpstreamError) and exc.unanswered
            raise EngineError(502, orjson.dumps({"error": {"message": message, "type": "BadGateway", "param": None,
                                                           "code": 502}}), unanswered=unanswered) from exc
        metrics.child(metrics.ENGINE_REQUESTS, base_url, str(status)).inc()
        if status != 200:
            raise EngineError(status, raw, headers.get(b"content-type", b"application/json").decode("latin-1"))
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise EngineError(502, orjson.dumps({"error": {"message": f"The engine at {url} answered invalid JSON.",
                                                           "type": "BadGateway", "param": None, "code": 502}})) from exc

    async def score(self, base_url: str, model: str, pairs: Sequence[tuple[str, str]], instruction: str | None,
                    max_tokens_per_doc: int | None) -> tuple[list[float], int]:
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
        answer = await self._post(base_url, "/score", body)
        data = answer["data"]
        if len(data) != len(pairs):
            raise EngineError(502, orjson.dumps({"error": {
                "message": f"The engine answered {len(data)} scores for {len(pairs)} pairs.", "type": "BadGateway",
                "param": None, "code": 502}}))
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
