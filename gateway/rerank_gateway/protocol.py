"""Parsing and validating client requests (pure): the wire shapes in, one `ScoringJob` out.

Accepted shapes are vLLM's (`/v1/rerank`, `/v2/rerank`, `/rerank`, `/score`) plus what Cohere's and
LangChain's clients send: `null` for any optional field, object documents (`{"text": ...}`, or any
object with `rank_fields`), `return_documents`, `max_tokens_per_doc`. Every problem is a
`BadRequest` that names the field; nothing here talks to the network.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import orjson


class BadRequest(Exception):
    """A client error (400 unless ``status`` says otherwise), with the offending field named."""

    def __init__(self, message: str, param: str | None = None, status: int = 400):
        super().__init__(message)
        self.message = message
        self.param = param
        self.status = status


@dataclass(frozen=True)
class Limits:
    max_documents: int = 1000
    max_query_chars: int = 65536
    max_document_chars: int = 1_000_000


@dataclass
class ScoringJob:
    """What a request asks the engines for: scores of (query, document text) pairs."""

    kind: str  # "rerank" or "score"
    model: str | None
    pairs: list[tuple[str, str]]  # (query, document text) in request order
    documents: list[Any] = field(default_factory=list)  # the documents as sent (echoed back in rerank results)
    top_n: int | None = None
    return_documents: bool | None = None  # None: not said (vLLM's default: echo the text)
    instruction: str | None = None
    max_tokens_per_doc: int | None = None


def decode_json(raw: bytes) -> dict[str, Any]:
    """The request body as a JSON object; a 400 for anything else."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"The request body is not valid UTF-8 (byte {exc.start}).") from None
    try:
        body = orjson.loads(text)  # about twice as fast as json.loads on request bodies (bench/gateway.py)
    except json.JSONDecodeError as exc:  # orjson's error is a subclass, with the same position fields
        raise BadRequest(f"The request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}.") from None
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    return body


def _optional_str(body: dict, name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise BadRequest(f"'{name}' must be a string or null, got {_type(value)}.", name)
    return value


def _optional_int(body: dict, name: str, minimum: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"'{name}' must be an integer or null, got {_type(value)}.", name)
    if value < minimum:
        raise BadRequest(f"'{name}' must be at least {minimum}, got {value}.", name)
    return value


def _optional_bool(body: dict, name: str) -> bool | None:
    value = body.get(name)
    if value is not None and not isinstance(value, bool):
        raise BadRequest(f"'{name}' must be true, false or null, got {_type(value)}.", name)
    return value


def _type(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number")


def _check_text(value: str, name: str, limit: int) -> str:
    if len(value) > limit:
        raise BadRequest(f"'{name}' is {len(value)} characters long; at most {limit} are accepted.", name, status=413)
    return value


def document_text(document: Any, index: int, rank_fields: list[str] | None, limits: Limits) -> str:
    """The text a document is scored on.

    A string is itself. An object without ``rank_fields`` is scored on its ``text``; with them, on
    ``field: value`` lines in the order given (Cohere's semantics), so a title can count too.
    """
    name = f"documents[{index}]"
    if isinstance(document, str):
        return _check_text(document, name, limits.max_document_chars)
    if not isinstance(document, dict):
        raise BadRequest(f"'{name}' must be a string or an object, got {_type(document)}.", name)
    if rank_fields is None:
        text = document.get("text")
        if not isinstance(text, str):
            raise BadRequest(f"'{name}' is an object without a string 'text' field; send 'text' or list the "
                             "fields to rank on in 'rank_fields'.", f"{name}.text")
        return _check_text(text, name, limits.max_document_chars)
    lines = []
    for key in rank_fields:
        if key not in document:
            raise BadRequest(f"'{name}' has no field '{key}' named in 'rank_fields'.", f"{name}.{key}")
        value = document[key]
        if not isinstance(value, str):
            value = json.dumps(value, ensure_ascii=False)
        lines.append(f"{key}: {value}")
    return _check_text("\n".join(lines), name, limits.max_document_chars)


def _rank_fields(body: dict) -> list[str] | None:
    value = body.get("rank_fields")
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise BadRequest("'rank_fields' must be a non-empty list of field names or null.", "rank_fields")
    return value


def _common(body: dict) -> dict[str, Any]:
    return {
        "model": _optional_str(body, "model"),
        "instruction": _optional_str(body, "instruction"),
        # 0 is vLLM's "no truncation"; Cohere's clients send null for the same.
        "max_tokens_per_doc": _optional_int(body, "max_tokens_per_doc", 0) or None,
    }


def parse_rerank(body: dict, limits: Limits = Limits()) -> ScoringJob:
    """A `/v1/rerank`, `/v2/rerank` or `/rerank` body."""
    query = body.get("query")
    if query is None:
        raise BadRequest("'query' is required.", "query")
    if not isinstance(query, str):
        raise BadRequest(f"'query' must be a string, got {_type(query)}.", "query")
    _check_text(query, "query", limits.max_query_chars)
    documents = body.get("documents")
    if documents is None:
        raise BadRequest("'documents' is required.", "documents")
    if isinstance(documents, str):
        documents = [documents]
    if not isinstance(documents, list):
        raise BadRequest(f"'documents' must be a list, got {_type(documents)}.", "documents")
    if not documents:
        raise BadRequest("'documents' must contain at least one document.", "documents")
    if len(documents) > limits.max_documents:
        raise BadRequest(f"'documents' has {len(documents)} entries; at most {limits.max_documents} are accepted "
                         "in one request.", "documents", status=413)
    rank_fields = _rank_fields(body)
    if rank_fields is None and all(type(d) is str for d in documents):  # the common case, checked in one pass
        limit = limits.max_document_chars
        for i, d in enumerate(documents):
            if len(d) > limit:
                _check_text(d, f"documents[{i}]", limit)
        texts = documents
    else:
        texts = [document_text(d, i, rank_fields, limits) for i, d in enumerate(documents)]
    return ScoringJob(
        kind="rerank",
        pairs=[(query, t) for t in texts],
        documents=documents,
        top_n=_optional_int(body, "top_n", 0) or None,  # 0 is vLLM's "all"
        return_documents=_optional_bool(body, "return_documents"),
        **_common(body),
    )


# /score's equivalent field pairs, in vLLM's order of precedence.
SCORE_SHAPES = (("queries", "documents"), ("queries", "items"), ("text_1", "text_2"), ("data_1", "data_2"))


def _score_side(value: Any, name: str, limits: Limits) -> list[str]:
    if isinstance(value, str):
        return [_check_text(value, name, limits.max_document_chars)]
    if not isinstance(value, list) or not value:
        raise BadRequest(f"'{name}' must be a string or a non-empty list of strings.", name)
    for i, v in enumerate(value):
        if not isinstance(v, str):
            raise BadRequest(f"'{name}[{i}]' must be a string, got {_type(v)}.", f"{name}[{i}]")
        _check_text(v, f"{name}[{i}]", limits.max_document_chars)
    return value


def parse_score(body: dict, limits: Limits = Limits()) -> ScoringJob:
    """A `/score` body: one query against many texts, or N queries paired 1:1 with N texts."""
    for left, right in SCORE_SHAPES:
        if left in body and right in body:
            break
    else:
        raise BadRequest("'/score' needs 'queries' and 'documents' (or 'text_1'/'text_2', 'data_1'/'data_2', "
                         "'queries'/'items').", "documents")
    firsts, seconds = _score_side(body[left], left, limits), _score_side(body[right], right, limits)
    if len(firsts) == 1:
        firsts = firsts * len(seconds)
    if len(firsts) != len(seconds):
        raise BadRequest(f"'{left}' has {len(firsts)} entries and '{right}' {len(seconds)}: give one, or as many as "
                         f"'{right}'.", left)
    if len(seconds) > limits.max_documents:
        raise BadRequest(f"'{right}' has {len(seconds)} entries; at most {limits.max_documents} are accepted in one "
                         "request.", right, status=413)
    return ScoringJob(kind="score", pairs=list(zip(firsts, seconds)), documents=seconds, **_common(body))
