"""A userspace stand-in for kube-proxy: one local TCP listener per Service port, forwarding each
connection to one of the Service's ready endpoints, round-robin.

Local mode has no kube-proxy and no cluster IPs, so `http://<svc>.<ns>.svc:<port>` cannot be
reached. Instead a listener on 127.0.0.1 takes the Service's place. kube-proxy takes its backends
from the Service's EndpointSlices; here those stay empty, because pod IPs are loopback addresses
(so that real servers can bind them) and the API server refuses loopback addresses in
EndpointSlices and Endpoints ("may not be in the loopback range"). So `ready_backends` applies the
EndpointSlice controller's own rule to the pods: selected by the Service, Running with an IP,
Ready (the condition pod_runner.py keeps truthful), not terminating; a named targetPort resolved
per pod. Like kube-proxy it balances connections, not requests. With no ready endpoint it answers
HTTP 503 naming the Service (kube-proxy would refuse the connection; a readable reason is kinder
here, and every Service proxied in this project speaks HTTP).

    proxy = ServiceProxy()
    proxy.start()
    port = proxy.listen("default", "reranker", 8000, local_port=8000)
    proxy.set_backends("default", "reranker", 8000, [("127.3.2.5", 8000)])
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import threading
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

log = logging.getLogger(__name__)

Backend = tuple[str, int]


def service_port(service: Mapping[str, Any], port: int) -> Mapping[str, Any]:
    for p in service["spec"].get("ports") or []:
        if p["port"] == port:
            return p
    raise KeyError(f"service {service['metadata']['name']} has no port {port}")


def _target_port(service_port: Mapping[str, Any], pod: Mapping[str, Any]) -> int | None:
    target = service_port.get("targetPort", service_port["port"])
    if isinstance(target, int) or str(target).isdigit():
        return int(target)
    for container in pod["spec"].get("containers") or []:
        for p in container.get("ports") or []:
            if p.get("name") == target and p.get("protocol", "TCP") == service_port.get("protocol", "TCP"):
                return int(p["containerPort"])
    return None  # the pod does not declare the named port: not an endpoint of this port


def ready_backends(service: Mapping[str, Any], port: int, pods: Iterable[Mapping[str, Any]]) -> list[Backend]:
    """The (pod IP, target port) pairs a connection to `service`:`port` may go to, by the
    EndpointSlice controller's rule (see the module docstring). Sorted, deduplicated."""
    sp = service_port(service, port)
    selector = service["spec"].get("selector") or {}
    if not selector:
        return []  # a selector-less Service's endpoints are managed by hand; none here
    out: set[Backend] = set()
    for pod in pods:
        meta, status = pod["metadata"], pod.get("status") or {}
        labels = meta.get("labels") or {}
        if any(labels.get(k) != v for k, v in selector.items()):
            continue
        if meta.get("deletionTimestamp") or status.get("phase") != "Running" or not status.get("podIP"):
            continue
        conditions = {c["type"]: c.get("status") for c in status.get("conditions") or []}
        if conditions.get("Ready") != "True":
            continue
        number = _target_port(sp, pod)
        if number is not None:
            out.add((status["podIP"], number))
    return sorted(out)


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


@dataclass
class _Listener:
    key: tuple[str, str, int]
    server: asyncio.AbstractServer
    port: int
    backends: list[Backend] = field(default_factory=list)
    counter: itertools.count = field(default_factory=itertools.count)

    def pick(self) -> Backend | None:
        if not self.backends:
            return None
        return self.backends[next(self.counter) % len(self.backends)]


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        try:
            if writer.can_write_eof():
                writer.write_eof()
        except (OSError, RuntimeError):
            pass


class ServiceProxy:
    """Listeners run on an asyncio loop in a daemon thread; the methods are thread-safe."""

    def __init__(self, host: str = "127.0.0.1", connect_timeout: float = 5.0) -> None:
        self.host = host
        self.connect_timeout = connect_timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="service-proxy", daemon=True)
        self._listeners: dict[tuple[str, str, int], _Listener] = {}
        self._lock = threading.Lock()

    def start(self) -> "ServiceProxy":
        self._thread.start()
        return self

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)

    def listen(self, namespace: str, service: str, port: int, local_port: int = 0) -> int:
        """Serve `service`:`port` on host:`local_port` (0: any free port); returns the local port."""
        key = (namespace, service, port)
        with self._lock:
            if key in self._listeners:
                return self._listeners[key].port

        async def open_listener() -> _Listener:
            listener: _Listener | None = None

            async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                assert listener is not None
                await self._forward(listener, reader, writer)

            server = await asyncio.start_server(handle, self.host, local_port, reuse_address=True)
            listener = _Listener(key, server, server.sockets[0].getsockname()[1])
            return listener

        listener = self._call(open_listener())
        with self._lock:
            self._listeners[key] = listener
        return listener.port

    def local_port(self, namespace: str, service: str, port: int) -> int | None:
        with self._lock:
            listener = self._listeners.get((namespace, service, port))
            return listener.port if listener else None

    def addresses(self) -> dict[tuple[str, str, int], str]:
        """(namespace, service, port) -> "host:port" of its listener (for local_pod.map_service_names)."""
        with self._lock:
            return {k: f"{self.host}:{v.port}" for k, v in self._listeners.items()}

    def set_backends(self, namespace: str, service: str, port: int, backends: Sequence[Backend]) -> None:
        with self._lock:
            listener = self._listeners[(namespace, service, port)]
            if list(backends) != listener.backends:
                log.info("service %s/%s:%d -> %s", namespace, service, port,
                         ", ".join(f"{a}:{p}" for a, p in backends) or "no ready endpoints")
                listener.backends = list(backends)

    def backends(self, namespace: str, service: str, port: int) -> list[Backend]:
        with self._lock:
            return list(self._listeners[(namespace, service, port)].backends)

    async def _forward(self, listener: _Listener, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> None:
        namespace, service, port = listener.key
        with self._lock:
            backend = listener.pick()
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        reason = f"no ready endpoints for service {namespace}/{service} port {port}"
        if backend is not None:
            try:
                upstream = await asyncio.wait_for(asyncio.open_connection(*backend), self.connect_timeout)
            except (OSError, asyncio.TimeoutError) as exc:
                reason = f"endpoint {backend[0]}:{backend[1]} of service {namespace}/{service} refused: {exc}"
        if upstream is None:
            # Take in the request first: closing a socket with unread data resets the connection,
            # and the client would see that instead of the reason.
            try:
                await asyncio.wait_for(reader.read(65536), 0.5)
            except (asyncio.TimeoutError, ConnectionError):
                pass
            body = (reason + "\n").encode()
            writer.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
                         b"Connection: close\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            try:
                await writer.drain()
            finally:
                writer.close()
            return
        up_reader, up_writer = upstream
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                w.close()

    def stop(self) -> None:
        """Closes every listener (open connections are dropped) and ends the loop thread."""
        if not self._thread.is_alive():
            return

        async def close_all() -> None:
            for listener in list(self._listeners.values()):
                listener.server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        try:
            self._call(close_all())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._listeners.clear()
