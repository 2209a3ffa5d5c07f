"""Starting the real rerank UI for tests, in-process (fast) or as the `rerank-ui` process (as deployed),
and the small real HTTP test servers that stand in for an engine in its failure modes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from rerank_ui.app import build_app, launch
from rerank_ui.config import Settings, normalize_endpoint

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "artifacts"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def closed_endpoint() -> str:
    """A rerank URL on loopback where nothing listens: connecting is refused."""
    return f"http://127.0.0.1:{free_port()}/v1/rerank"


# --- test servers -------------------------------------------------------------------------------------

@dataclass
class Reply:
    status: int = 200
    body: Any = None
    """JSON-encoded unless bytes."""
    delay_seconds: float = 0.0
    """Think this long before answering (an engine busy with a long batch)."""
    trickle_seconds: float = 0.0
    """Send the body one byte at a time with this pause between bytes (a slow, not silent, server)."""


@dataclass
class ServerRecord:
    requests: list[dict] = field(default_factory=list)
    """Each POST: {"path", "body" (parsed JSON), "client_port"}."""
    in_flight: int = 0
    max_in_flight: int = 0
    gate: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)


def echo_rerank(body: dict) -> Reply:
    """A well-formed vLLM-shaped rerank answer: score = 1 / (1 + position), usage = characters."""
    docs = body["documents"]
    results = [{"index": i, "document": {"text": d}, "relevance_score": 1 / (1 + i)} for i, d in enumerate(docs)]
    chars = len(body["query"]) + sum(len(d) for d in docs)
    return Reply(200, {"id": "rerank-test", "model": body.get("model", ""), "results": results[: body["top_n"]],
                       "usage": {"prompt_tokens": chars, "total_tokens": chars}})


@contextmanager
def engine_test_server(respond: Callable[[dict], Reply], *, gated: bool = False) -> Iterator[tuple[str, ServerRecord]]:
    """A real HTTP/1.1 server on loopback answering POST /v1/rerank with `respond(request JSON)` and
    GET /health with 200. With `gated`, each POST waits until `state.gate` is set (an engine busy with
    earlier work), so tests can observe how many calls the UI lets through at once.
    Yields (rerank URL, state)."""
    state = ServerRecord()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, so connection reuse by the client is observable

        def log_message(self, *args):  # quiet
            pass

        def _send(self, reply: Reply) -> None:
            time.sleep(reply.delay_seconds)
            payload = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if reply.trickle_seconds:
                for i in range(len(payload)):
                    self.wfile.write(payload[i:i + 1])
                    self.wfile.flush()
                    time.sleep(reply.trickle_seconds)
            else:
                self.wfile.write(payload)

        def do_GET(self):
            self._send(Reply(200, {}) if self.path == "/health" else Reply(404, {"detail": "Not Found"}))

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with state.lock:
                state.requests.append({"path": self.path, "body": body, "client_port": self.client_address[1]})
                state.in_flight += 1
                state.max_in_flight = max(state.max_in_flight, state.in_flight)
            try:
                if gated:
                    state.gate.wait(timeout=30)
                self._send(respond(body))
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (its timeout): that is what some tests provoke
            finally:
                with state.lock:
                    state.in_flight -= 1

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/rerank", state
    finally:
        state.gate.set()
        server.shutdown()
        server.server_close()


# --- the UI -------------------------------------------------------------------------------------------

@contextmanager
def running_ui(settings: Settings) -> Iterator[str]:
    """Serve the page in this process on a free loopback port; yields its base URL."""
    port = free_port()
    demo = build_app(settings)
    launch(demo, settings, server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


def wait_until_serving(url: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"rerank-ui exited with {process.returncode}")
        try:
            if httpx.get(url + "gradio_api/app_id", timeout=2, trust_env=False).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"rerank-ui did not serve {url} within {timeout} s")


@contextmanager
def running_ui_process(env: Mapping[str, str], *, cwd: Path) -> Iterator[str]:
    """Run the `rerank-ui` entry point as the container does, configured only by environment."""
    port = free_port()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("RERANK_", "GRADIO_"))}
    full_env.update({"GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port), **env})
    rerank_ui = Path(sys.executable).with_name("rerank-ui")
    log = tempfile.TemporaryFile(mode="w+")
    process = subprocess.Popen([str(rerank_ui)], env=full_env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        try:
            wait_until_serving(url, process)
        except (RuntimeError, TimeoutError) as err:
            log.seek(0)
            raise RuntimeError(f"{err}; its output:\n{log.read()[-4000:]}") from None
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


# --- the real engine ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Backend:
    endpoint: str
    """The rerank URL the UI posts to."""
    model: str
    default_instruction: str
    """The deployment's spec.instruction, which the operator hands the UI as RERANK_DEFAULT_INSTRUCTION."""


@pytest.fixture(scope="session")
def rerank_backend(request) -> Backend:
    """The project's real CPU vLLM reranker (session fixture `rerank_engine` of tests/fixtures/engine.py)."""
    try:
        engine = request.getfixturevalue("rerank_engine")
    except pytest.FixtureLookupError:
        pytest.skip("the rerank_engine fixture (tests/fixtures/engine.py) is not available")
    return Backend(normalize_endpoint(engine.base_url), engine.model, getattr(engine, "default_instruction", ""))


def status_file(directory: Path, *, ready: int, desired: int, conditions: list[dict] | None = None) -> Path:
    """Write a status.json in the shape the operator writes it (see rerank_ui.status)."""
    path = directory / "status.json"
    path.write_text(json.dumps({"replicas": desired, "readyReplicas": ready, "desiredReplicas": desired,
                                "conditions": conditions or []}))
    return path
