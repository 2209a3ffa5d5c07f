"""Response bodies (pure): vLLM's rerank/score shapes plus Cohere's `meta`, and error bodies."""

from __future__ import annotations

import time
import uuid
from typing import Any

from .protocol import ScoringJob


def _usage(prompt_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}


def _meta() -> dict[str, Any]:
    # Cohere's clients read meta.billed_units; one request is one search unit on Cohere's price list.
    return {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}}


def _document(document: Any) -> dict[str, Any]:
    # vLLM and Cohere return {"text": ...} for a string; an object document comes back as sent.
    return {"text": document} if type(document) is str else document


def rerank_response(job: ScoringJob, model: str, scores: list[float], prompt_tokens: int) -> dict[str, Any]:
    """Results best first, cut to ``top_n``, each with its original index.

    The document text is echoed unless the client said ``return_documents: false`` (vLLM's own
    default is to echo, so clients that say nothing see what they saw before the gateway).
    """
    order = sorted(range(len(scores)), key=scores.__getitem__, reverse=True)  # stable: ties keep request order
    if job.top_n:
        order = order[: job.top_n]
    if job.return_documents is False:
        results = [{"index": i, "relevance_score": scores[i]} for i in order]
    else:
        documents = job.documents
        results = [{"index": i, "relevance_score": scores[i], "document": _document(documents[i])} for i in order]
    return {"id": f"rerank-{uuid.uuid4().hex}", "model": model, "usage": _usage(prompt_tokens), "results": results,
            "meta": _meta()}


def score_response(model: str, scores: list[float], prompt_tokens: int) -> dict[str, Any]:
    return {
        "id": f"score-{uuid.uuid4().hex}", "object": "list", "created": int(time.time()), "model": model,
        "data": [{"index": i, "object": "score", "score": s} for i, s in enumerate(scores)],
        "usage": {**_usage(prompt_tokens), "completion_tokens": 0},
    }


ERROR_TYPES = {400: "BadRequestError", 404: "NotFoundError", 413: "RequestEntityTooLarge",
               503: "ServiceUnavailable", 504: "GatewayTimeout"}


def error_body(status: int, message: str, param: str | None = None) -> dict[str, Any]:
    """vLLM's error shape, so clients that parse the engine's errors parse ours."""
    return {"error": {"message": message, "type": ERROR_TYPES.get(status, "Error"), "param": param, "code": status}}
