"""The local stand-in for kube-proxy: a Service's ready pods -> backends (pure), and real TCP
forwarding through the proxy to real local HTTP servers."""

from __future__ import annotations

import http.server
import threading
import urllib.error
import urllib.request

import pytest

from rerank_localdev.service_proxy import ServiceProxy, port_free, ready_backends

SERVICE = {"metadata": {"name": "reranker"},
           "spec": {"selector": {"app": "rr", "component": "engine"},
                    "ports": [{"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}]}}


def _pod(ip, ready=True, labels=None, phase="Running", deleting=False, port_name="http", port=8000):
    meta = {"name": f"p-{ip}", "labels": {"app": "rr", "component": "engine", "extra": "x"} if labels is None else labels}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta,
            "spec": {"containers": [{"name": "c", "ports": [{"name": port_name, "containerPort": port}]}]},
            "status": {"phase": phase, "podIP": ip,
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def test_ready_backends_are_the_selected_ready_running_pods():
    pods = [
        _pod("127.5.1.3"),
        _pod("127.5.1.2", ready=False),  # still loading
        _pod("127.5.1.4", deleting=True),  # terminating: no new connections
        _pod("127.5.1.5", phase="Pending"),
        _pod("127.5.1.6", labels={"app": "rr", "component": "ui"}),  # another Service's pods
        _pod("127.5.1.7", port_name="metrics"),  # does not declare the named target port
        _pod("127.5.2.2", port=8123),  # named port resolved per pod
        _pod(None),
    ]
    assert ready_backends(SERVICE, 8000, pods) == [("127.5.1.3", 8000), ("127.5.2.2", 8123)]


def test_numeric_target_port_and_selectorless_services():
    service = {"metadata": {"name": "s"}, "spec": {"selector": {"app": "rr"}, "ports": [{"port": 80, "targetPort": 7860}]}}
    assert ready_backends(service, 80, [_pod("127.5.1.3")]) == [("127.5.1.3", 7860)]
    service["spec"]["ports"][0].pop("targetPort")
    assert ready_backends(service, 80, [_pod("127.5.1.3")]) == [("127.5.1.3", 80)]
    service["spec"].pop("selector")
    assert ready_backends(service, 80, [_pod("127.5.1.3")]) == []


def test_unknown_service_port_is_an_error():
    with pytest.raises(KeyError, match="no port 81"):
        ready_backends(SERVICE, 81, [])


class _Named(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        body = self.server.label.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):  # noqa: N802
        data = self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def backends():
    servers = []
    for i, ip in enumerate(["127.0.0.1", "127.0.0.2"]):
        srv = http.server.ThreadingHTTPServer((ip, 0), _Named)
        srv.label = f"backend-{i}"
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
    yield [(s.server_address[0], s.server_address[1]) for s in servers]
    for s in servers:
        s.shutdown()
        s.server_close()


@pytest.fixture
def proxy():
    p = ServiceProxy().start()
    yield p
    p.stop()


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_connections_round_robin_over_ready_backends(proxy, backends):
    port = proxy.listen("default", "reranker", 8000)
    proxy.set_backends("default", "reranker", 8000, backends)
    seen = [_get(f"http://127.0.0.1:{port}/")[1] for _ in range(4)]
    assert seen == ["backend-0", "backend-1", "backend-0", "backend-1"]
    assert proxy.addresses() == {("default", "reranker", 8000): f"127.0.0.1:{port}"}


def test_request_bodies_pass_through_unchanged(proxy, backends):
    port = proxy.listen("default", "reranker", 8000)
    proxy.set_backends("default", "reranker", 8000, backends[:1])
    payload = ("x" * 300_000).encode()  # several reads and writes each way
    req = urllib.request.Request(f"http://127.0.0.1:{port}/", data=payload, method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.read() == payload


def test_no_ready_endpoint_answers_503_naming_the_service(proxy, backends):
    port = proxy.listen("ns1", "reranker", 8000)
    status, body = _get(f"http://127.0.0.1:{port}/v1/rerank")
    assert status == 503
    assert "no ready endpoints for service ns1/reranker port 8000" in body
    # Endpoints appear: traffic flows; they go away: 503 again.
    proxy.set_backends("ns1", "reranker", 8000, backends[1:])
    assert _get(f"http://127.0.0.1:{port}/") == (200, "backend-1")
    proxy.set_backends("ns1", "reranker", 8000, [])
    assert _get(f"http://127.0.0.1:{port}/")[0] == 503


def test_a_refusing_endpoint_answers_503_naming_it(proxy):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    port = proxy.listen("default", "reranker", 8000)
    proxy.set_backends("default", "reranker", 8000, [("127.0.0.1", dead)])
    status, body = _get(f"http://127.0.0.1:{port}/")
    assert status == 503 and f"127.0.0.1:{dead}" in body


def test_a_requested_local_port_is_used_and_then_taken(proxy):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        wanted = s.getsockname()[1]
    assert port_free(wanted)
    assert proxy.listen("default", "reranker-ui", 80, wanted) == wanted
    assert not port_free(wanted)
    assert proxy.listen("default", "reranker-ui", 80) == wanted  # idempotent
