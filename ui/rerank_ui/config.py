"""Settings of the rerank UI, read from the environment the operator gives its Deployment.

    RERANK_ENDPOINT             rerank URL to POST to (http://<name>.<ns>.svc:8000/v1/rerank); a bare
                                server URL gets /v1/rerank appended
    RERANK_MODEL                served model name sent as `model`
    RERANK_DEFAULT_INSTRUCTION  prefills the instruction box (the deployment's spec.instruction)
    RERANK_MAX_DOCUMENTS        documents per request (100)
    RERANK_MAX_DOCUMENT_CHARS   characters per document, query and instruction (8000)
    RERANK_TIMEOUT_SECONDS      whole rerank call, connect to last byte (60)
    RERANK_CONCURRENCY_LIMIT    rerank calls in flight at once from this UI replica (4)
    RERANK_QUEUE_MAX_SIZE       calls allowed to wait for a slot before new ones are turned away (64)
    RERANK_MAX_UPLOAD_BYTES     size of an uploaded document file (5 MiB)
    RERANK_STATUS_FILE          the operator's status.json (see rerank_ui.status); unset: health probe only
    RERANK_UI_USERNAME/PASSWORD basic auth, both or neither (from the deployment's auth Secret)
    GRADIO_SERVER_NAME/PORT     listen address (0.0.0.0:7860)

Every variable is optional; a bad value fails fast at start-up with a message naming the variable,
rather than surfacing later as a confusing error in the page.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_ENDPOINT = "http://127.0.0.1:8000/v1/rerank"
RERANK_PATH = "/v1/rerank"
# Path endings of rerank routes (vLLM serves all three); /health sits beside them at the server's root.
_RERANK_SUFFIXES = ("/v1/rerank", "/v2/rerank", "/rerank")
# The operator's default instruction (rerank_operator/serving/prompt.py): this image has no operator package
# to import it from, so it is copied, and tests/unit/test_one_home.py fails when the two differ.
DEFAULT_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"


class ConfigError(ValueError):
    """An environment variable holds a value the UI cannot run with."""


@dataclass(frozen=True)
class Settings:
    endpoint: str = DEFAULT_ENDPOINT
    """The URL rerank requests are POSTed to, e.g. http://reranker.search.svc:8000/v1/rerank."""
    model: str = ""
    """Served model name sent as `model`; empty leaves it to the engine's default."""
    default_instruction: str = DEFAULT_INSTRUCTION
    max_documents: int = 100
    max_document_chars: int = 8000
    """Cap on each document and on the query, in characters."""
    timeout_seconds: float = 60.0
    concurrency_limit: int = 4
    """Rerank calls running at once across all users of this UI replica."""
    queue_max_size: int = 64
    """Requests allowed to wait beyond the running ones before new ones are turned away."""
    max_upload_bytes: int = 5 * 1024 * 1024
    status_file: Path | None = None
    username: str | None = None
    password: str | None = None
    server_name: str = "0.0.0.0"
    server_port: int = 7860

    @property
    def health_url(self) -> str:
        return health_url_for(self.endpoint)

    @property
    def auth(self) -> tuple[str, str] | None:
        if self.username and self.password:
            return (self.username, self.password)
        return None


def _int(environ: Mapping[str, str], name: str, default: int, *, minimum: int, maximum: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if not minimum <= value <= maximum:
        raise ConfigError(f"{name} must be between {minimum} and {maximum}, got {value}")
    return value


def _float(environ: Mapping[str, str], name: str, default: float, *, minimum: float, maximum: float) -> float:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, got {raw!r}") from None
    if not minimum <= value <= maximum:
        raise ConfigError(f"{name} must be between {minimum:g} and {maximum:g}, got {value:g}")
    return value


def normalize_endpoint(raw: str, *, name: str = "RERANK_ENDPOINT") -> str:
    """The rerank URL to POST to. A bare server URL (no path) gets /v1/rerank, a URL ending in /v1 gets
    /rerank; any other path is taken as given (a gateway may serve reranking elsewhere)."""
    url = raw.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"{name} must be an http(s) URL such as http://reranker.search.svc:8000/v1/rerank, got {raw!r}"
        )
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise ConfigError(f"{name} has an invalid port: {raw!r}") from None
    if parts.query or parts.fragment:
        raise ConfigError(f"{name} must not carry a query string or fragment, got {raw!r}")
    if not parts.path:
        return url + RERANK_PATH
    if parts.path.endswith("/v1"):
        return url + "/rerank"
    return url


def health_url_for(endpoint: str) -> str:
    """vLLM's GET /health beside the rerank route: .../v1/rerank -> .../health, otherwise <origin>/health."""
    for suffix in _RERANK_SUFFIXES:
        if endpoint.endswith(suffix):
            return endpoint[: -len(suffix)] + "/health"
    parts = urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc}/health"


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ

    username = env.get("RERANK_UI_USERNAME", "").strip() or None
    password = env.get("RERANK_UI_PASSWORD", "") or None
    if bool(username) != bool(password):
        missing = "RERANK_UI_PASSWORD" if username else "RERANK_UI_USERNAME"
        raise ConfigError(f"basic auth needs both RERANK_UI_USERNAME and RERANK_UI_PASSWORD; {missing} is empty")

    status_file = env.get("RERANK_STATUS_FILE", "").strip()
    instruction = env.get("RERANK_DEFAULT_INSTRUCTION")

    return Settings(
        endpoint=normalize_endpoint(env.get("RERANK_ENDPOINT", "").strip() or DEFAULT_ENDPOINT),
        model=env.get("RERANK_MODEL", "").strip(),
        default_instruction=DEFAULT_INSTRUCTION if instruction is None else instruction.strip(),
        max_documents=_int(env, "RERANK_MAX_DOCUMENTS", 100, minimum=1, maximum=10_000),
        max_document_chars=_int(env, "RERANK_MAX_DOCUMENT_CHARS", 8000, minimum=16, maximum=1_000_000),
        timeout_seconds=_float(env, "RERANK_TIMEOUT_SECONDS", 60.0, minimum=0.1, maximum=3600),
        concurrency_limit=_int(env, "RERANK_CONCURRENCY_LIMIT", 4, minimum=1, maximum=1024),
        queue_max_size=_int(env, "RERANK_QUEUE_MAX_SIZE", 64, minimum=1, maximum=100_000),
        max_upload_bytes=_int(env, "RERANK_MAX_UPLOAD_BYTES", 5 * 1024 * 1024, minimum=1024, maximum=1 << 30),
        status_file=Path(status_file) if status_file else None,
        username=username,
        password=password,
        server_name=env.get("GRADIO_SERVER_NAME", "").strip() or "0.0.0.0",
        server_port=_int(env, "GRADIO_SERVER_PORT", 7860, minimum=1, maximum=65535),
    )
