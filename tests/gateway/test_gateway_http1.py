"""The gateway's HTTP/1.1 client to the engines, against real HTTP servers on loopback: kept-alive
reuse, a connection the server closed while idle, chunked answers, errors and timeouts."""

from __future__ import annotations

import asyncio
import socket

import pytest
from aiohttp import web

from rerank_gateway.http1 import Http1Pool, UpstreamError


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _serve(app: web.Application, **kwargs) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, **kwargs)
    await runner.setup()
    port = _free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}"


def _echo_app(peers: list) -> web.Application:
    async def echo(request: web.Request) -> web.Response:
        peers.append(request.transport.get_extra_info("peername"))
        body = await request.read()
        return web.Response(body=b'{"echo":' + body + b'}', content_type="application/json")

    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for part in (b'{"data":', b"[1,2,", b"3]}"):
            await response.write(part)
        await response.write_eof()
        return response

    async def refuse(request: web.Request) -> web.Response:
        return web.Response(status=400, body=b'{"error":{"message":"bad"}}', content_type="application/json")

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(text="late")

    app = web.Application()
    app.router.add_post("/echo", echo)
    app.router.add_post("/chunked", chunked)
    app.router.add_post("/refuse", refuse)
    app.router.add_post("/slow", slow)
    return app


def test_answers_are_read_whole_and_connections_are_kept_alive():
    async def go():
        peers: list = []
        runner, url = await _serve(_echo_app(peers))
        pool = Http1Pool(timeout=10)
        try:
            answers = [await pool.post(url, "/echo", b'{"n":%d}' % i) for i in range(5)]
            status, headers, body = await pool.post(url, "/chunked", b"{}")
            refused = await pool.post(url, "/refuse", b"{}")
            # Concurrent requests each get a connection of their own.
            together = await asyncio.gather(*(pool.post(url, "/echo", b"1") for _ in range(4)))
        finally:
            pool.close()
            await runner.cleanup()
        return peers, answers, (status, headers, body), refused, together

    peers, answers, chunked, refused, together = asyncio.run(go())
    assert [a[2] for a in answers] == [b'{"echo":{"n":%d}}' % i for i in range(5)]
    assert all(a[0] == 200 and a[1][b"content-type"].startswith(b"application/json") for a in answers)
    assert len(set(peers[:5])) == 1  # one kept-alive connection for the sequential requests
    assert chunked[0] == 200 and chunked[2] == b'{"data":[1,2,3]}'
    assert refused[0] == 400 and refused[2] == b'{"error":{"message":"bad"}}'
    assert [t[2] for t in together] == [b'{"echo":1}'] * 4


def test_a_connection_the_server_closed_while_idle_is_replaced_without_an_error():
    async def go():
        peers: list = []
        # The server drops idle kept-alive connections after 0.2 s (uvicorn's default is 5 s).
        runner, url = await _serve(_echo_app(peers), keepalive_timeout=0.2)
        pool = Http1Pool(timeout=10)
        try:
            first = await pool.post(url, "/echo", b"1")
            await asyncio.sleep(0.6)
            second = await pool.post(url, "/echo", b"2")
        finally:
            pool.close()
            await runner.cleanup()
        return peers, first, second

    peers, first, second = asyncio.run(go())
    assert first[2] == b'{"echo":1}' and second[2] == b'{"echo":2}'
    assert peers[0] != peers[1]  # a new connection


def test_unreachable_engines_and_timeouts_are_errors_and_leave_no_connection():
    async def go():
        pool = Http1Pool(timeout=0.3, connect_timeout=1)
        with pytest.raises(UpstreamError, match="cannot connect") as refused:
            await pool.post(f"http://127.0.0.1:{_free_port()}", "/score", b"{}")
        assert refused.value.unanswered  # nothing was scored: another engine may take the request
        runner, url = await _serve(_echo_app([]))
        try:
            with pytest.raises(TimeoutError):
                await pool.post(url, "/slow", b"{}")
            assert pool._idle[url] == []  # the timed-out connection was closed, not pooled
            ok = await pool.post(url, "/echo", b"3")
        finally:
            pool.close()
            await runner.cleanup()
        with pytest.raises(UpstreamError, match="http://"):
            await pool.post("https://127.0.0.1:1", "/score", b"{}")
        return ok

    assert asyncio.run(go())[2] == b'{"echo":3}'


def test_garbage_from_the_engine_is_an_upstream_error():
    async def go():
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(1000)
            writer.write(b"this is not HTTP\r\n\r\n")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        pool = Http1Pool(timeout=5)
        try:
            with pytest.raises(UpstreamError) as garbage:
                await pool.post(f"http://127.0.0.1:{port}", "/score", b"{}")
            assert not garbage.value.unanswered  # it answered (badly): not sent again elsewhere
        finally:
            pool.close()
            server.close()
            await server.wait_closed()

    asyncio.run(go())


def test_a_connection_closed_before_any_answer_is_unanswered():
    async def go():
        async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(1000)  # read the request, answer nothing: an engine shutting down
            writer.close()

        server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        pool = Http1Pool(timeout=5)
        try:
            with pytest.raises(UpstreamError, match="closed") as closed:
                await pool.post(f"http://127.0.0.1:{port}", "/score", b"{}")
            assert closed.value.unanswered
        finally:
            pool.close()
            server.close()
            await server.wait_closed()

    asyncio.run(go())
