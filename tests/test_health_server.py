"""The health endpoint under abuse: connections left idle are bounded and timed out (no thread
per idle connection), and only GET and HEAD are answered."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from conftest import free_port

from monitor.health import MAX_CONNECTIONS, HealthServer, Metrics


@pytest.fixture
def server() -> Iterator[HealthServer]:
    health = HealthServer(("127.0.0.1", free_port()), lambda: (True, "ok: fine"), Metrics(),
                          idle_timeout=2.0)  # fmt: skip
    health.start()
    yield health
    health.stop()


def until(condition, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 15
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.02)


def request(server: HealthServer, method: str, path: str) -> tuple[int, bytes, dict[str, str]]:
    connection = http.client.HTTPConnection(*server.address, timeout=5)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        return response.status, response.read(), dict(response.getheaders())
    finally:
        connection.close()


def test_idle_connections_are_bounded_and_closed(server: HealthServer) -> None:
    threads_before = threading.active_count()
    idle = [
        socket.create_connection(server.address, timeout=10) for _ in range(MAX_CONNECTIONS + 20)
    ]
    try:
        until(lambda: server.httpd.refused >= 20, "the extra connections to be turned away")
        assert threading.active_count() <= threads_before + MAX_CONNECTIONS
        for sock in idle:  # every one is closed: the extras at once, the others when idle
            assert sock.recv(1) == b""
    finally:
        for sock in idle:
            sock.close()
    until(lambda: threading.active_count() <= threads_before, "the handler threads to end")
    status, body, _ = request(server, "GET", "/healthz")
    assert status == 200 and body == b"ok: fine\n"


def test_only_get_and_head_are_answered(server: HealthServer) -> None:
    status, body, headers = request(server, "HEAD", "/healthz")
    assert status == 200 and body == b"" and headers["Content-Length"] == "9"
    status, body, _ = request(server, "GET", "/metrics")
    assert status == 200 and b"news_monitor_ticks_total" in body
    for method in ("POST", "PUT", "DELETE", "OPTIONS", "TRACE", "CONNECT"):
        status, _, _ = request(server, method, "/healthz")
        assert status == 501, method
