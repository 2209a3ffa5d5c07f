"""Everything the page shows, built from results and errors: pure functions, no Gradio, no HTTP."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

import pandas as pd

from rerank_ui.client import (
    EndpointTimeout,
    EndpointUnreachable,
    EngineError,
    HealthProbe,
    InvalidResponse,
    RankedDocument,
    RerankError,
    RerankResponse,
)
from rerank_ui.status import DeploymentStatus

TABLE_COLUMNS = ["Rank", "Score", "Document", "Position"]
CHART_COLUMNS = ["Rank", "Score", "Document"]
CHART_LABEL_CHARS = 60

# How CUDA, PyTorch and vLLM word running out of GPU memory.
_OOM_PATTERN = re.compile(
    r"out of memory|outofmemory|\boom\b|cannot allocate|insufficient memory|kv cache is full", re.I
)


def results_table(results: Sequence[RankedDocument]) -> pd.DataFrame:
    """Ranked table; Position is the document's 1-based line in the input, so people can find it."""
    rows = [
        {"Rank": rank, "Score": round(item.score, 4), "Document": item.text, "Position": item.index + 1}
        for rank, item in enumerate(results, start=1)
    ]
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def _short(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def score_chart(results: Sequence[RankedDocument]) -> pd.DataFrame:
    """Bar chart data, best first: one bar per rank ("#1", "#2", …), the document's start in the tooltip."""
    rows = [
        {"Rank": f"#{rank}", "Score": float(item.score), "Document": _short(item.text, CHART_LABEL_CHARS)}
        for rank, item in enumerate(results, start=1)
    ]
    return pd.DataFrame(rows, columns=CHART_COLUMNS)


def empty_table() -> pd.DataFrame:
    return pd.DataFrame(columns=TABLE_COLUMNS)


def empty_chart() -> pd.DataFrame:
    return pd.DataFrame({"Rank": pd.Series(dtype=str), "Score": pd.Series(dtype=float),
                         "Document": pd.Series(dtype=str)})


def format_latency(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.2f} s"


def usage_text(response: RerankResponse) -> str:
    shown = len(response.results)
    docs = f"{response.document_count} document{'s' if response.document_count != 1 else ''}"
    parts = [f"Ranked **{docs}** in **{format_latency(response.latency_seconds)}**"]
    if response.total_tokens is not None:
        parts.append(f"**{response.total_tokens:,}** tokens")
    if shown < response.document_count:
        parts.append(f"showing the top {shown}")
    return " · ".join(parts)


def _has_oom_marker(message: str) -> bool:
    return _OOM_PATTERN.search(message) is not None


def error_message(error: RerankError) -> str:
    """One or two sentences a person can act on, for each way a rerank call fails."""
    if isinstance(error, EndpointUnreachable):
        return (
            f"The rerank endpoint {error.endpoint} is unreachable ({error.reason}). "
            "The engine may still be starting, or RERANK_ENDPOINT points at the wrong service."
        )
    if isinstance(error, EndpointTimeout):
        return (
            f"The rerank endpoint {error.endpoint} did not answer within {error.seconds:g} s. "
            "Try fewer or shorter documents, or wait if the engine is busy or still loading the model."
        )
    if isinstance(error, EngineError):
        status, message = error.status, error.message
        if status == 503:
            return (f"The engine is not ready yet (HTTP 503: {message}). "
                    "The model may still be loading; try again shortly.")
        if status == 429:
            return f"The engine is busy (HTTP 429: {message}). Try again in a moment."
        if status == 413:
            return f"The request is too large for the engine (HTTP 413: {message}). Send fewer or shorter documents."
        if status >= 500:
            hint = (
                " The engine ran out of memory: send fewer or shorter documents, or ask the operator of this "
                "deployment to lower maxNumBatchedTokens / maxModelLen or use a larger GPU."
                if _has_oom_marker(message)
                else " Check the engine's logs; if it persists, the engine may need a restart."
            )
            return f"The engine failed (HTTP {status}: {message}).{hint}"
        return f"The engine rejected the request (HTTP {status}): {message}"
    if isinstance(error, InvalidResponse):
        return f"Unexpected answer from the rerank endpoint: {error}"
    return f"The rerank call failed: {error}"


def error_block(message: str, title: str = "Could not rerank.") -> str:
    """Markdown shown in place of results; escaped so engine-supplied text cannot inject markup."""
    return f"**{title}** {html.escape(message, quote=False)}"


def _escape(text: str) -> str:
    return html.escape(text, quote=False)


def _headline(text: str) -> str:
    return _escape(text[:1].upper() + text[1:])


def status_banner(status: DeploymentStatus | None, health: HealthProbe) -> str:
    """One line on the engine's state, e.g. "⏳ **Model loading** — 1 of 3 replicas ready"."""
    if status is None:
        if health.ok:
            return "✅ **Ready** — engine healthy"
        return f"⚠️ **Engine not answering** — {_escape(health.detail)}"
    ready, desired = status.ready_replicas, status.desired_replicas
    counts = f"{ready} of {desired} replica{'s' if desired != 1 else ''} ready"
    why = status.explanation
    icon = "⚠️" if status.degraded else "⏳"
    if desired == 0 and ready == 0:
        return "⏸️ **Scaled to zero** — no engine replica is running; requests will fail until it is scaled up."
    if ready == 0:
        headline = _headline(why or "engine starting")
        return f"{icon} **{headline}** — {counts}. Requests will fail until a replica is ready."
    if not health.ok:
        return f"⚠️ **Engine not answering** — {_escape(health.detail)} ({counts})"
    if ready < desired or status.degraded:
        return f"{icon} **{_headline(why or 'scaling')}** — {counts}"
    return f"✅ **Ready** — {counts}"
