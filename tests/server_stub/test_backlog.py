"""The listen backlog: a restarted reference server meets every client at once."""

from __future__ import annotations

import contextlib
import select
import signal
import socket
import time

import pytest

from tests.serverproc import ServerProcess

CLIENTS = 300


def handshakes_completed_while_paused(profile: str) -> int:
    """Start a server, SIGSTOP it (it accepts nothing), open CLIENTS TCP connections and
    count those the kernel completed: a full listen queue drops the rest's SYNs."""
    server = ServerProcess("--profile", profile, "--log-level", "warning")
    sockets: list[socket.socket] = []
    try:
        server.signal(signal.SIGSTOP)
        for _ in range(CLIENTS):
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", server.port))
            sockets.append(sock)
        deadline = time.monotonic() + 0.5  # loopback handshakes take microseconds
        done: set[socket.socket] = set()
        while time.monotonic() < deadline and len(done) < CLIENTS:
            _, writable, _ = select.select([], [s for s in sockets if s not in done], [], 0.05)
            done.update(s for s in writable
                        if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0)
        return len(done)
    finally:
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()
        server.close()


@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="needs SIGSTOP")
def test_reference_backlog_holds_a_burst_the_stock_one_drops():
    """300 connects to a paused server all complete with the reference profile's backlog;
    with the baseline's stock 100 the kernel drops the SYNs past about 100."""
    assert handshakes_completed_while_paused("reference") == CLIENTS
    assert handshakes_completed_while_paused("baseline") < CLIENTS * 2 // 3
