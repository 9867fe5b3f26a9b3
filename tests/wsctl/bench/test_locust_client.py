"""The Locust user's blocking clients (wsctl.bench.locust_client), outside Locust: plain
blocking sockets against local servers in a thread. Their failures get the same kinds as
every wsctl client (wsctl.errors), so the Locust result counts the same errors.<kind>."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from wsctl.bench.locust_client import GeventWebSocket, sync_connect
from wsctl.errors import ConnectError, classify_connect_error

pytestmark = pytest.mark.timeout(30)

CLIENTS: list[Callable[..., Any]] = [GeventWebSocket, sync_connect]
WAIT = 5.0


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def read_request(sock: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return
        data += chunk


@contextmanager
def tcp_server(answer: Callable[[socket.socket], None]) -> Iterator[str]:
    """A threaded TCP server on 127.0.0.1 that reads the upgrade and runs ``answer``."""

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            read_request(self.request)
            answer(self.request)

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"ws://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(WAIT)


def busy(sock: socket.socket) -> None:
    sock.sendall(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\n"
                 b"Content-Length: 0\r\nConnection: close\r\n\r\n")


def hang_up(sock: socket.socket) -> None:
    pass  # the handler returns and socketserver closes the connection


def failure(client: Callable[..., Any], url: str) -> ConnectError:
    with pytest.raises(Exception) as caught:
        client(url, timeout=WAIT, user_agent="test")
    return classify_connect_error(caught.value, WAIT)


@pytest.mark.parametrize("client", CLIENTS)
def test_closed_port_is_refused(client: Callable[..., Any]) -> None:
    """A real refused connect (nothing listening on 127.0.0.1) is kind refused."""
    assert failure(client, f"ws://127.0.0.1:{closed_port()}/").kind == "refused"


@pytest.mark.parametrize("client", CLIENTS)
def test_http_503_is_status_503_with_its_hint(client: Callable[..., Any]) -> None:
    """HTTP 503 with Retry-After: 7 is status_503 with a 7 s retry hint."""
    with tcp_server(busy) as url:
        error = failure(client, url)
    assert (error.kind, error.retry_after) == ("status_503", 7.0)


@pytest.mark.parametrize("client", CLIENTS)
def test_accept_then_drop_is_dropped(client: Callable[..., Any]) -> None:
    """A server that reads the upgrade and hangs up is kind dropped, not reset or other."""
    with tcp_server(hang_up) as url:
        assert failure(client, url).kind == "dropped"
