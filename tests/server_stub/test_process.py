"""The server as a real process: signals, graceful shutdown, port conflicts."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.server_stub.helpers import recv_message
from wsctl import protocol as p


async def test_sigterm_closes_every_client_with_1001_and_exits_0(server_process):
    """SIGTERM: every client gets 1001 with a retry hint, and the process exits 0."""
    server = server_process("--job-rate", "20", "--retry-hint", "1500ms")
    clients = [await connect(f"{server.url}/ws/s{i}") for i in range(5)]
    for ws in clients:
        assert isinstance(await recv_message(ws), p.Welcome)
    t0 = time.monotonic()
    server.signal(signal.SIGTERM)
    for ws in clients:
        with pytest.raises(ConnectionClosed):
            while True:
                await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 1001
        assert p.retry_hint_ms(ws.close_reason or "") == 1500
    assert await asyncio.to_thread(server.proc.wait, 10) == 0
    assert time.monotonic() - t0 < 5


async def test_sigint_is_graceful_too(server_process):
    """Ctrl-C (SIGINT) shuts down the same way: 1001, exit 0."""
    server = server_process()
    async with connect(f"{server.url}/ws/a") as ws:
        await recv_message(ws)
        server.signal(signal.SIGINT)
        with pytest.raises(ConnectionClosed):
            while True:
                await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 1001
    assert await asyncio.to_thread(server.proc.wait, 10) == 0


def test_port_in_use_is_one_line_and_exit_3(server_process):
    """A second server on a taken port says so in one line and exits 3."""
    first = server_process()
    port = first.url.rsplit(":", 1)[1]
    result = subprocess.run(
        [sys.executable, "-m", "server_stub", "--port", port],
        capture_output=True, text=True, timeout=20,
    )
    assert result.returncode == 3
    assert result.stderr.strip().count("\n") == 0
    assert "address already in use" in result.stderr and "Traceback" not in result.stderr
