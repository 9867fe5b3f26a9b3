"""Peers that send without reading, or shut their receive window, cannot hold the
server's memory or a slot: pongs count against --send-buffer, heartbeats cannot be
answered blind, and a close the server decides on ends within --close-timeout."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
import time

import pytest

HANDSHAKE = (
    "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
PING, PONG = 0x9, 0xA


def client_frame(opcode: int, payload: bytes) -> bytes:
    """One masked client frame (payload under 126 bytes: control frames)."""
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return struct.pack("!BB", 0x80 | opcode, 0x80 | len(payload)) + mask + masked


def _request(port: int, path: str) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return HANDSHAKE.format(path=path, port=port, key=key).encode()


def _small_window(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: the window


async def open_unread(port: int, path: str) -> socket.socket:
    """A WebSocket on a socket with a 4 KB receive buffer, handshake done by hand; after
    the response head the test never reads from it."""
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    _small_window(sock)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    await loop.sock_sendall(sock, _request(port, path))
    head = b""
    while b"\r\n\r\n" not in head:
        head += await loop.sock_recv(sock, 1)  # byte by byte: nothing after the head
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


async def shrink_server_side(server: object) -> None:
    """Give the server's end of the one connection a small kernel send buffer, so what it
    writes stays in its own buffer (on loopback the kernel would take megabytes)."""
    while not len(server.pool):  # type: ignore[attr-defined]
        await asyncio.sleep(0.01)
    session = next(iter(server.pool))  # type: ignore[attr-defined]
    sock = session.conn.transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)


async def gone(server: object, timeout: float) -> bool:
    """Wait until the server holds no connection."""
    deadline = time.monotonic() + timeout
    while len(server.pool):  # type: ignore[attr-defined]
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc")
def test_a_ping_flood_that_never_reads_is_closed_with_bounded_memory(server_process):
    """A peer flooding protocol pings without reading is closed once the pongs queued for
    it pass --send-buffer; the server's RSS grows by a few MB, not hundreds."""
    server = server_process("--send-buffer", "65536", "--close-timeout", "1s",
                            "--job-rate", "0.001", "--ping-interval", "60s")  # no events
    sock = socket.socket()
    _small_window(sock)
    sock.settimeout(5)
    sock.connect(("127.0.0.1", server.port))
    sock.sendall(_request(server.port, "/ws/flood"))
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    rss_before = _rss_kib(server.proc.pid)
    batch = client_frame(PING, b"p" * 125) * 400
    sock.settimeout(0.2)
    deadline, closed, sent = time.monotonic() + 8, False, 0
    try:
        while time.monotonic() < deadline:
            try:
                sock.sendall(batch)
                sent += len(batch)
            except TimeoutError:
                continue  # the server stopped reading: wait for its abort
            except OSError:
                closed = True
                break
    finally:
        rss_after = _rss_kib(server.proc.pid)
        sock.close()
    assert closed, f"still open after {sent} bytes of pings"
    assert rss_after - rss_before < 20_000, (rss_before, rss_after)
    assert "slow consumer" in server.logs()


async def test_blind_pongs_with_a_fixed_payload_do_not_keep_a_peer_alive(make_server):
    """A peer that never reads the heartbeat pings but sends pongs with the old fixed
    payload is found dead: the ping payload is random and must be echoed."""
    server = await make_server(ping_interval=0.2, ping_timeout=0.3, job_rate=0.01)
    sock = await open_unread(server.port, "/ws/blind")
    loop = asyncio.get_running_loop()
    try:
        deadline = time.monotonic() + 3
        while server.dead_detected == 0 and time.monotonic() < deadline:
            await loop.sock_sendall(sock, client_frame(PONG, b"wsctl-hb"))
            await asyncio.sleep(0.05)
        assert server.dead_detected == 1
        assert await gone(server, 3)
    finally:
        sock.close()


async def test_a_slow_consumer_with_a_shut_window_is_aborted_at_the_close_timeout(
        make_server):
    """Closed 1008 as a slow consumer while its receive window stays shut, a peer is
    aborted --close-timeout later: the slot and buffers do not wait for it."""
    server = await make_server(job_rate=1000.0, job_steps=10**6, send_buffer=32 * 1024,
                               close_timeout=0.5, ping_interval=60.0, ping_timeout=60.0)
    sock = await open_unread(server.port, "/ws/fast")
    await shrink_server_side(server)
    try:
        deadline = time.monotonic() + 6
        while server.manager.slow_consumers == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert server.manager.slow_consumers == 1
        assert await gone(server, 2.0)
    finally:
        sock.close()


async def test_a_dead_peer_with_a_shut_window_is_aborted_at_the_close_timeout(make_server):
    """Found dead (1011) while data for it is still buffered, a peer that reads nothing
    is aborted --close-timeout later instead of holding its slot until it leaves."""
    server = await make_server(job_rate=1000.0, job_steps=10**6, send_buffer=64 * 2**20,
                               close_timeout=0.5, ping_interval=0.5, ping_timeout=0.5)
    sock = await open_unread(server.port, "/ws/dead")
    await shrink_server_side(server)
    try:
        deadline = time.monotonic() + 4
        while server.dead_detected == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert server.dead_detected == 1
        assert len(server.pool) == 1  # the close waits on what is buffered ...
        assert await gone(server, 2.0)  # ... until the close timeout
    finally:
        sock.close()
