"""A small HTTP/1.1 client for the gateway's one kind of upstream call: POST a JSON body to an engine
over a kept-alive connection and read the whole answer.

Why not aiohttp's client: on the miss path it was the largest single cost of a request (request
and response objects, stream readers, cookie and header machinery -- about 40 % of the gateway's
CPU per request in a profile); a request here is one prebuilt byte string written to a pooled
connection and a response parsed by httptools (llhttp, uvicorn's parser). Nothing else is
supported: no redirects, proxies, TLS or cookies -- the engines are plain HTTP inside the cluster.

A reused connection the engine closed meanwhile (uvicorn drops idle ones after 5 s) can fail
before any byte of the answer; that request is sent once more on a new connection, which is safe
because scoring, tokenizing and detokenizing change nothing on the engine.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import httptools


class UpstreamError(Exception):
    """The engine could not be reached, or broke the connection or the protocol. `unanswered`: it failed before
    any byte of an answer (refused, reset, closed), so the engine did not score the request."""

    def __init__(self, message: str, unanswered: bool = False):
        super().__init__(message)
        self.unanswered = unanswered


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future | None = None
        self.closed = False
        self.received = False  # any byte of the current answer
        self.headers: dict[bytes, bytes] = {}
        self.body: list[bytes] = []

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamError(f"invalid HTTP from the engine: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(UpstreamError(f"the engine closed the connection{f': {exc}' if exc else ''}",
                                 unanswered=not self.received))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result((self.parser.get_status_code(), self.headers, b"".join(self.body),
                                    self.parser.should_keep_alive()))

    def _fail(self, exc: Exception) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    async def exchange(self, request: bytes) -> tuple[int, dict[bytes, bytes], bytes, bool]:
        self.headers, self.body, self.received = {}, [], False
        self.waiter = asyncio.get_running_loop().create_future()
        assert self.transport is not None
        self.transport.write(request)
        try:
            return await self.waiter
        finally:
            self.waiter = None


class Http1Pool:
    """Kept-alive connections per engine (``http://host:port``), as many as requests in flight."""

    def __init__(self, timeout: float, connect_timeout: float = 5.0) -> None:
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._idle: dict[str, list[_Connection]] = {}
        self._targets: dict[str, tuple[str, int, bytes]] = {}

    def _target(self, base_url: str) -> tuple[str, int, bytes]:
        target = self._targets.get(base_url)
        if target is None:
            parts = urlsplit(base_url)
            if parts.scheme != "http" or not parts.hostname:
                raise UpstreamError(f"not a plain http:// engine address: {base_url}")
            target = self._targets[base_url] = (parts.hostname, parts.port or 80, parts.netloc.encode())
        return target

    async def _connect(self, host: str, port: int) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, conn = await loop.create_connection(_Connection, host, port)
        except (OSError, TimeoutError) as exc:
            raise UpstreamError(f"cannot connect: {type(exc).__name__}: {exc}", unanswered=True) from exc
        return conn

    async def post(self, base_url: str, path: str, body: bytes, content_type: bytes = b"application/json",
                   timeout: float | None = None) -> tuple[int, dict[bytes, bytes], bytes]:
        """Status, headers (lower-case names) and body of ``POST base_url + path``, within ``timeout`` seconds
        (default: the pool's)."""
        host, port, netloc = self._target(base_url)
        request = b"".join((b"POST ", path.encode(), b" HTTP/1.1\r\nHost: ", netloc, b"\r\nContent-Type: ",
                            content_type, b"\r\nContent-Length: ", str(len(body)).encode(), b"\r\n\r\n", body))
        idle = self._idle.setdefault(base_url, [])
        for attempt in (0, 1):
            conn = None
            while idle and conn is None:
                candidate = idle.pop()
                conn = None if candidate.closed else candidate
            reused = conn is not None
            if conn is None:
                conn = await self._connect(host, port)
            try:
                async with asyncio.timeout(self.timeout if timeout is None else timeout):
                    status, headers, answer, keep_alive = await conn.exchange(request)
            except UpstreamError:
                conn.close()
                if reused and not conn.received and attempt == 0:
                    continue  # closed by the engine while idle: once more on a new connection
                raise
            except BaseException:  # timeout, cancellation: the connection's state is unknown
                conn.close()
                raise
            if keep_alive and not conn.closed:
                idle.append(conn)
            else:
                conn.close()
            return status, headers, answer
        raise AssertionError("unreachable")

    def close(self) -> None:
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()
