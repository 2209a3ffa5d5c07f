"""Running the project's images in tests: each image built once per session through the same code as
`make images` (podman's layer cache makes a rebuild of an unchanged image take seconds), and containers
that are always removed, however the test ends.

Containers share the host's network (`--network host`): they reach the control plane and the engine on
127.0.0.1 and serve on free 127.0.0.1 ports, and nothing else routes anywhere.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from rerank_localdev import images

# A container outlives a killed test process (conmon keeps it); podman ends it after this many seconds.
CONTAINER_TIME_LIMIT_S = 1800


def built_image(name: str) -> str:
    """images/<name>/Dockerfile built and tagged as `make images` does it, once per session (the node tests
    load the same builds); returns the tag."""
    return images.build_current(name)


def image_config(ref: str) -> dict:
    import json

    return json.loads(images.podman("image", "inspect", ref).stdout)[0]["Config"]


def run_once(ref: str, *args: str, options: Sequence[str] = (), timeout: float = 120) -> subprocess.CompletedProcess:
    """``podman run --rm`` to completion (a short command inside the image). No network: podman's default
    bridge would leave an interface and firewall chains on the host."""
    return subprocess.run(["podman", "run", "--rm", "--network", "none", *options, ref, *args], env=images.environment(),
                          capture_output=True, text=True, timeout=timeout)


@dataclass
class Container:
    name: str
    process: subprocess.Popen

    def logs(self, lines: int = 80) -> str:
        proc = images.podman("logs", "--tail", str(lines), self.name, check=False)
        return proc.stdout + proc.stderr

    def exited(self) -> int | None:
        return self.process.poll()


@contextlib.contextmanager
def running_container(ref: str, *args: str, options: Sequence[str] = ()) -> Iterator[Container]:
    """``podman run`` in the background on the host network; force-removed on the way out."""
    name = f"rerank-test-{uuid.uuid4().hex[:10]}"
    command = ["podman", "run", "--name", name, "--network", "host", "--timeout", str(CONTAINER_TIME_LIMIT_S),
               *options, ref, *args]
    process = subprocess.Popen(command, env=images.environment(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    container = Container(name, process)
    try:
        yield container
    finally:
        images.podman("rm", "--force", "--time", "10", name, check=False, timeout=120)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=30)
        if process.poll() is None:
            process.kill()
            process.wait()


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def wait_for_http(container: Container, url: str, timeout: float) -> str:
    """Waits until ``url`` answers 200 (the body), failing early with the logs if the container exits."""
    deadline = time.monotonic() + timeout
    while True:
        if container.exited() is not None:
            raise AssertionError(f"the container exited with {container.exited()} before {url} answered:\n"
                                 f"{container.logs()}")
        with contextlib.suppress(OSError):
            status, body = http_get(url, timeout=3)
            if status == 200:
                return body
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} did not answer 200 within {timeout:.0f} s:\n{container.logs()}")
        time.sleep(1)
