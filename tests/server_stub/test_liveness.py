"""Half-open peers, slow consumers and leaks, on real sockets."""

from __future__ import annotations

import asyncio
import gc
import os
import time
from types import SimpleNamespace

import psutil
from websockets.asyncio.client import connect
from websockets.protocol import State

from server_stub.connection_pool import ConnectionPool
from server_stub.jobs import JobSchedule
from server_stub.streams import MemoryStreamStore
from server_stub.websocket_manager import ResumeRequest, WebSocketManager
from tests.server_stub.helpers import parse_frames, raw_handshake, recv_message
from wsctl import protocol as p


async def _read_until_eof(reader: asyncio.StreamReader, limit: float) -> bytes:
    data = b""
    while chunk := await asyncio.wait_for(reader.read(65536), limit):
        data += chunk
    return data


async def test_peer_that_stops_answering_pings_is_closed_1011_in_time(make_server):
    """A client that never answers pings gets close 1011 within interval + timeout."""
    interval, timeout = 0.4, 0.4
    server = await make_server(ping_interval=interval, ping_timeout=timeout, job_rate=5.0)
    host, port = "127.0.0.1", server.port
    reader, writer, _ = await raw_handshake(host, port, "/ws/half-open")
    t0 = time.monotonic()
    try:
        data = await _read_until_eof(reader, 5.0)
    finally:
        writer.close()
        await writer.wait_closed()
    elapsed = time.monotonic() - t0
    frames = parse_frames(data)
    opcodes = [op for op, _ in frames]
    assert 0x9 in opcodes  # the server pinged
    close = [payload for op, payload in frames if op == 0x8]
    assert close and int.from_bytes(close[0][:2], "big") == 1011
    assert interval + timeout - 0.05 <= elapsed <= interval + timeout + 0.5
    assert server.dead_detected == 1
    assert server.health()["dead_detected"] == 1


async def test_answering_client_is_never_closed(make_server):
    """A normal client (websockets answers pings) survives many ping rounds."""
    server = await make_server(ping_interval=0.1, ping_timeout=0.2, job_rate=5.0)
    async with connect(f"{server.url}/ws/a") as ws:
        await recv_message(ws)
        await asyncio.sleep(1.0)
        assert ws.protocol.state is State.OPEN
    assert server.dead_detected == 0


async def test_per_connection_keepalive_mode_also_counts_dead(make_server):
    """In per-connection mode websockets' keepalive closes a silent peer; it is counted."""
    server = await make_server(health_mode="per-connection", ping_interval=0.3,
                               ping_timeout=0.3, job_rate=5.0)
    reader, writer, _ = await raw_handshake("127.0.0.1", server.port, "/ws/a")
    try:
        data = await _read_until_eof(reader, 5.0)
    finally:
        writer.close()
        await writer.wait_closed()
    close = [payload for op, payload in parse_frames(data) if op == 0x8]
    assert int.from_bytes(close[0][:2], "big") == 1011
    await asyncio.sleep(0.05)
    assert server.dead_detected == 1


class _FakeTransport:
    def __init__(self) -> None:
        self.buffered = 0
        self.reading = True
        self.aborted = False

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def pause_reading(self) -> None:
        self.reading = False

    def abort(self) -> None:
        self.aborted = True


class _FakeConn:
    """Just enough of a websockets connection to watch what the manager writes."""

    def __init__(self) -> None:
        self.transport = _FakeTransport()
        self.written: list[bytes] = []
        self.closed_with: tuple[int, str] | None = None
        self.protocol = SimpleNamespace(state=State.OPEN, send_text=self._send)
        self.connection_lost_waiter = asyncio.get_running_loop().create_future()

    def _send(self, data: bytes) -> None:
        self.written.append(data)
        self.transport.buffered += len(data)

    def send_data(self) -> None:
        pass

    async def close(self, code: int, reason: str) -> None:
        self.closed_with = (code, reason)


async def test_slow_consumer_is_closed_and_memory_stays_bounded():
    """A client that does not read is closed 1008 once its buffer passes send_buffer."""
    pool = ConnectionPool()
    manager = WebSocketManager(MemoryStreamStore(), pool, JobSchedule(1.0, 100),
                               heartbeat=p.Heartbeat(1, 1), send_buffer=2000,
                               close_timeout=0.05)
    conn = _FakeConn()
    session = pool.admit(conn, "127.0.0.1")
    manager.attach(session, ResumeRequest("a"))
    for i in range(200):
        manager.publish("a", {"i": i})
    await manager.flush()
    await asyncio.sleep(0)
    assert conn.closed_with is not None and conn.closed_with[0] == 1008
    assert session.closing
    assert p.parse_server(conn.written[-1].decode()) == p.Error(
        p.ERR_SLOW_CONSUMER, "too slow to keep up; resume with epoch and offset")
    assert conn.transport.buffered < 2000 + 1000  # nothing more was queued after the close
    assert manager.slow_consumers == 1
    assert not conn.transport.reading  # nothing the peer sends can queue more (pongs)
    assert not conn.transport.aborted
    await asyncio.sleep(0.1)  # the close never completes (the peer does not read) ...
    assert conn.transport.aborted  # ... so it is aborted at close_timeout


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _sockets_on(port: int) -> int:
    """This process's TCP sockets to or from ``port`` other than the listener."""
    return sum(1 for c in psutil.Process().net_connections("tcp")
               if c.status != psutil.CONN_LISTEN
               and port in (c.laddr.port if c.laddr else None, c.raddr.port if c.raddr else None))


async def test_thousand_connect_disconnect_cycles_leak_nothing(make_server):
    """After 1,000 connect/close cycles: pool empty, fds and tasks back where they began."""
    server = await make_server(job_rate=5.0)
    # Warm up with the same cycles, so that whatever this process opens once, lazily,
    # is in the baseline.
    for i in range(50):
        async with connect(f"{server.url}/ws/warmup{i % 5}", compression=None) as ws:
            if i % 10 == 0:
                await recv_message(ws)
    for _ in range(200):  # the server's side of the warm-up may still be closing
        if len(server.pool) == 0:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.1)
    gc.collect()  # an event loop an earlier test left unclosed must not close mid-count
    fds, tasks = _fds(), len(asyncio.all_tasks())
    port = int(server.url.rsplit(":", 1)[1])
    for i in range(1000):
        async with connect(f"{server.url}/ws/s{i % 50}", compression=None) as ws:
            if i % 100 == 0:
                await recv_message(ws)
    for _ in range(200):  # closes finish in the background: allow a loaded machine 10 s
        if len(server.pool) == 0 and len(asyncio.all_tasks()) <= tasks and _fds() <= fds:
            break
        await asyncio.sleep(0.05)
    assert len(server.pool) == 0
    assert server.pool.counters.opened == 1050
    assert sum(server.pool.counters.closed_by_code.values()) == 1050
    assert len(asyncio.all_tasks()) == tasks
    # Every socket of the 1,000 connections is closed, on both sides (sockets in
    # TIME_WAIT belong to the kernel, not to this process), and the descriptor count is
    # where it began.
    assert _sockets_on(port) == 0
    assert _fds() == fds
    assert len(server.monitor.tracker) == 0
