"""The asyncio driver against fake connectors (virtual time) and real local servers."""

import asyncio
import base64
import hashlib
import random
import time

import pytest
from websockets.asyncio.server import serve
from websockets.datastructures import Headers
from websockets.http11 import Response

from wsctl.backoff import BackoffPolicy
from wsctl.clock import FakeClock
from wsctl.probe import ConnectError, Fleet, Probe, ProbeConfig, ProbeMachine, State
from wsctl.probe.driver import websockets_connector
from wsctl.probe.machine import new_metrics

pytestmark = pytest.mark.timeout(30)


async def test_backoff_attempts_happen_at_exact_virtual_instants():
    """A refusing target is retried at the policy's exact delays on a fake clock."""
    clock = FakeClock()
    attempts: list[float] = []

    async def refuse(url: str, timeout: float):
        attempts.append(clock.now())
        raise ConnectError("refused", "connection refused")

    policy = BackoffPolicy(kind="exponential", base=1, cap=4, max_attempts=5, fast=None)
    config = ProbeConfig("ws://127.0.0.1:9/ws/a", backoff=policy)
    machine = ProbeMachine(0, config, new_metrics(), random.Random(0), clock.now())
    task = asyncio.create_task(Probe(machine, refuse, clock=clock).run())
    await clock.advance(100)
    await task
    assert attempts == [0, 1, 3, 7, 11]
    assert machine.state is State.GAVE_UP


async def test_seeded_full_jitter_run_is_reproducible():
    """Two fleets with the same seed retry at the same virtual instants."""

    async def run(seed):
        clock = FakeClock()
        seen: list[float] = []

        async def refuse(url: str, timeout: float):
            seen.append(clock.now())
            raise ConnectError("refused", "connection refused")

        config = ProbeConfig("ws://127.0.0.1:9/ws/a",
                             backoff=BackoffPolicy(base=1, cap=8, max_attempts=6, fast=None))
        fleet = Fleet(config, 1, seed=seed, connector=refuse, clock=clock, spawn_rate=None)
        task = asyncio.create_task(fleet.run())
        await clock.advance(100)
        await task
        return seen

    first, again, other = await run(11), await run(11), await run(12)
    assert first == again and len(first) == 6
    assert first != other


async def test_retry_deadline_stops_a_probe_on_virtual_time():
    """With a 10 s retry deadline no attempt starts after t=10."""
    clock = FakeClock()
    attempts: list[float] = []

    async def refuse(url: str, timeout: float):
        attempts.append(clock.now())
        raise ConnectError("refused", "connection refused")

    config = ProbeConfig("ws://127.0.0.1:9/ws/a",
                         backoff=BackoffPolicy(kind="exponential", base=1, cap=100, deadline=10,
                                               fast=None))
    fleet = Fleet(config, 1, seed=1, connector=refuse, clock=clock, spawn_rate=None)
    task = asyncio.create_task(fleet.run())
    await clock.advance(60)
    result = await task
    assert attempts == [0, 1, 3, 7, 10]
    assert result.value("probes.gave_up") == 1


async def echo(ws):
    async for message in ws:
        await ws.send(message)


async def test_echo_mode_against_a_plain_websockets_server():
    """Round trips to a stock websockets echo server are counted and timed."""
    async with serve(echo, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        config = ProbeConfig(f"ws://127.0.0.1:{port}/", mode="echo", echo_rate=20,
                             duration=1.0, heartbeat_interval=0.2, heartbeat_timeout=1)
        result = await Fleet(config, 3, seed=1).run()
    sent, received = result.value("messages.sent"), result.value("messages.received")
    assert sent >= 3 * 10  # 20/s for 1 s, with room for a loaded machine
    assert received >= sent - 3  # at most the one in flight per probe at the stop
    assert result.value("messages.lost") == 0
    assert result.value("rtt.count") >= received
    assert result.value("connections.lost") == 0
    assert result.details["states"]["closed"] == 3


async def test_listen_mode_counts_what_a_plain_server_sends():
    """Listen mode counts every frame from a server that knows nothing of wsctl."""

    async def chatter(ws):
        for i in range(10):
            await ws.send(f"hello {i}")
        await ws.wait_closed()

    async with serve(chatter, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        config = ProbeConfig(f"ws://127.0.0.1:{port}/", mode="listen", duration=0.5)
        result = await Fleet(config, 2, seed=1).run()
    assert result.value("messages.received") == 20


async def silent_websocket_server(reader, writer):
    """Completes the opening handshake, then never answers anything (not even pings)."""
    head = await reader.readuntil(b"\r\n\r\n")
    key = next(line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")
               if line.lower().startswith(b"sec-websocket-key:"))
    accept = base64.b64encode(hashlib.sha1(
        key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
    writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
    try:
        while await reader.read(4096):
            pass
    finally:
        writer.close()


async def test_server_that_never_answers_pings_is_detected_dead():
    """A peer that never pongs is declared dead within interval+timeout; nothing hangs."""
    server = await asyncio.start_server(silent_websocket_server, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        config = ProbeConfig(f"ws://127.0.0.1:{port}/", mode="listen", duration=1.2,
                             heartbeat_interval=0.2, heartbeat_timeout=0.2,
                             backoff=BackoffPolicy(kind="exponential", base=0.05, cap=0.05))
        records = []
        fleet = Fleet(config, 1, seed=1, sink=records.extend)
        result = await asyncio.wait_for(fleet.run(), 5)
    finally:
        server.close()
        await server.wait_closed()
    assert result.value("connections.lost") >= 2
    opened_at = None
    losses = 0
    for record in records:
        if record.state is State.OPEN:
            opened_at = record.at
        elif record.state is State.LOST:
            assert "no pong within 0.2s" in record.reason
            assert record.at - opened_at <= 0.4 + 0.3  # interval + timeout + slack
            losses += 1
    assert losses == result.value("connections.lost")


async def test_refused_port_is_reported_as_refused():
    """Connecting to a closed port yields the reason 'connection refused'."""
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    with pytest.raises(ConnectError, match="connection refused"):
        await websockets_connector()(f"ws://127.0.0.1:{port}/", 2)


async def test_503_with_retry_after_is_reported_with_the_hint():
    """An HTTP 503 refusal carries its status and Retry-After seconds."""

    def refuse(conn, request):
        return Response(503, "Service Unavailable", Headers([("Retry-After", "7")]), b"")

    async with serve(echo, "127.0.0.1", 0, process_request=refuse) as server:
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(ConnectError) as info:
            await websockets_connector()(f"ws://127.0.0.1:{port}/", 2)
    assert info.value.kind == "status_503" and info.value.status == 503
    assert info.value.message == "handshake rejected: HTTP 503, retry after 7s"
    assert info.value.retry_after == 7
    assert info.value.costs_server


async def test_refused_connects_are_counted_as_errors_refused():
    """A real refused connect (closed port on 127.0.0.1) counts errors.refused per attempt."""
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    policy = BackoffPolicy(kind="exponential", base=0.01, cap=0.01, max_attempts=3, fast=None)
    config = ProbeConfig(f"ws://127.0.0.1:{port}/ws/a", backoff=policy)
    fleet = Fleet(config, 1, seed=1)
    result = await asyncio.wait_for(fleet.run(), 5)
    assert result.value("errors.refused") == 3 == result.value("connections.failed")
    assert result.value("errors.timeout") == 0  # every fixed kind is measured, at zero too
    assert fleet.errors() == {"connection refused": 1}


async def test_refused_connects_are_retried_fast_until_the_deadline():
    """Nothing listening: the fast path (50 ms here) retries every <= 50 ms (no exponential
    growth) and the retry deadline still ends it."""
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    policy = BackoffPolicy(kind="exponential", base=1, cap=30, fast=0.05, deadline=0.6)
    fleet = Fleet(ProbeConfig(f"ws://127.0.0.1:{port}/ws/a", backoff=policy), 1, seed=1)
    result = await asyncio.wait_for(fleet.run(), 5)
    refused = result.value("errors.refused")
    assert refused is not None and refused >= 10  # exponential from 1 s would make 1
    assert result.value("probes.gave_up") == 1


async def test_http_503_is_counted_with_its_retry_after_honoured():
    """A 503 with Retry-After counts errors.status_503, and the next attempt waits the hint."""
    attempts: list[float] = []

    def refuse(conn, request):
        attempts.append(asyncio.get_running_loop().time())
        return Response(503, "Service Unavailable", Headers([("Retry-After", "0.3")]), b"")

    policy = BackoffPolicy(kind="exponential", base=0.01, cap=0.01, max_attempts=2)
    async with serve(echo, "127.0.0.1", 0, process_request=refuse) as server:
        port = server.sockets[0].getsockname()[1]
        config = ProbeConfig(f"ws://127.0.0.1:{port}/ws/a", backoff=policy)
        result = await asyncio.wait_for(Fleet(config, 1, seed=1).run(), 5)
    assert result.value("errors.status_503") == 2
    assert result.value("errors.refused") == 0
    assert len(attempts) == 2 and attempts[1] - attempts[0] >= 0.3


async def test_stop_closes_open_probes_politely():
    """Fleet.stop() ends run() with every probe closed by a 1000 close."""
    codes: list[int] = []

    async def hold(ws):
        await ws.wait_closed()
        codes.append(ws.close_code)

    async with serve(hold, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        config = ProbeConfig(f"ws://127.0.0.1:{port}/", mode="listen")
        fleet = Fleet(config, 4, seed=1)
        task = asyncio.create_task(fleet.run())
        for _ in range(100):
            await asyncio.sleep(0.02)
            if fleet.states()["open"] == 4:
                break
        fleet.stop()
        result = await asyncio.wait_for(task, 5)
        for _ in range(50):
            if len(codes) == 4:
                break
            await asyncio.sleep(0.02)
    assert result.details["states"]["closed"] == 4
    assert codes == [1000] * 4


@pytest.mark.parametrize("exc, reason", [
    (ConnectionRefusedError(111, "Connection refused"), "connection refused"),
    (__import__("socket").gaierror(-2, "Name or service not known"),
     "DNS lookup failed: Name or service not known"),
    (__import__("ssl").SSLError(1, "[SSL] wrong version number"), "TLS handshake failed"),
    (TimeoutError(), "timed out after 3s opening the connection"),
])
def test_connect_errors_are_named_for_people(exc, reason):
    """Refused, DNS, TLS and timeouts each become a line that says which it was."""
    from wsctl.errors import classify_connect_error

    assert classify_connect_error(exc, 3.0).message.startswith(reason)


async def test_tune_gc_freezes_while_running_and_restores_after():
    """tune_gc freezes the heap once probes are started and undoes it when the run ends."""
    import gc

    before = gc.get_threshold()
    async with serve(echo, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        config = ProbeConfig(f"ws://127.0.0.1:{port}/", mode="listen", duration=0.3)
        fleet = Fleet(config, 2, seed=1, tune_gc=True)
        task = asyncio.create_task(fleet.run())
        await asyncio.sleep(0.15)
        during = gc.get_threshold(), gc.get_freeze_count()
        await task
    assert during[0][0] == 50_000 and during[1] > 0
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


async def test_accept_then_drop_server_cannot_defeat_backoff():
    """A server that accepts then closes at once: waits keep growing, then the probe gives up."""

    async def drop(ws):
        await ws.close(1011, "boom")

    records: list = []
    async with serve(drop, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        policy = BackoffPolicy(kind="exponential", base=0.05, cap=10, min_uptime=1,
                               max_attempts=4)
        config = ProbeConfig(f"ws://127.0.0.1:{port}/", mode="listen", heartbeat="off",
                             backoff=policy)
        result = await asyncio.wait_for(
            Fleet(config, 1, seed=1, sink=records.extend).run(), 5)
    waits = [r.reason for r in records if r.state is State.BACKOFF]
    assert waits == ["retry in 0.050s", "retry in 0.100s", "retry in 0.200s"]
    assert result.value("connections.opened") == 4
    assert result.value("probes.gave_up") == 1


async def test_sigusr1_marks_a_fault_for_detect_time():
    """In run_fleet, SIGUSR1 marks 'fault injected now' on every open probe."""
    import os
    import signal

    from wsctl.probe.runner import run_fleet

    async with serve(echo, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        config = ProbeConfig(f"ws://127.0.0.1:{port}/", mode="listen", duration=0.6)
        fleet = Fleet(config, 2, seed=1)
        task = asyncio.create_task(run_fleet(fleet, view="quiet"))
        for _ in range(100):
            await asyncio.sleep(0.01)
            if fleet.states()["open"] == 2:
                break
        os.kill(os.getpid(), signal.SIGUSR1)
        await asyncio.sleep(0.05)
        marks = [p.machine.fault_at for p in fleet.probes]
        await task
    assert all(m is not None for m in marks)


async def test_the_opening_request_is_on_the_wire_before_the_probe_waits(monkeypatch):
    """Over a socket the probe connected itself, the request is written the moment TCP is
    up, as a browser writes it: it is readable at the server when the probe first waits
    for the response, so the client's own set-up is never counted as the server's. The
    response is then read as before (a 101, then frames flow), and connect_time's start
    is the connector's stamp from before the TCP connect."""
    import socket as socket_module

    from wsctl.probe import driver

    listener = socket_module.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    accepted: list[socket_module.socket] = []
    heads: list[bytes] = []
    read_first = driver.read_first

    async def look_first(*args, **kwargs):
        conn, _ = listener.accept()
        accepted.append(conn)
        conn.setblocking(False)
        heads.append(conn.recv(4096))  # BlockingIOError if nothing was written yet
        key = next(line.split(b":", 1)[1].strip() for line in heads[0].split(b"\r\n")
                   if line.lower().startswith(b"sec-websocket-key:"))
        guid = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
        accept = base64.b64encode(hashlib.sha1(key + guid).digest())
        conn.send(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                  b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept +
                  b"\r\n\r\n\x81\x02hi")
        return await read_first(*args, **kwargs)

    monkeypatch.setattr(driver, "read_first", look_first)
    before = time.monotonic()
    try:
        link = await websockets_connector()(f"ws://127.0.0.1:{port}/ws/a", 2,
                                            headers=[("X-Probe", "1")])
        assert await link.recv() == "hi"
        link.transport.abort()
    finally:
        listener.close()
        for conn in accepted:
            conn.close()
    head = heads[0].decode()
    assert head.startswith("GET /ws/a HTTP/1.1\r\n")
    assert "\r\nX-Probe: 1\r\n" in head and "\r\nUser-Agent: wsctl/" in head
    assert before <= link.started_at <= link.opened_at


async def test_a_101_with_a_wrong_accept_key_fails_the_attempt():
    """The response is checked by websockets' own ClientProtocol: a 101 whose
    Sec-WebSocket-Accept does not match the key is a failed handshake, not a connection."""

    async def wrong_accept(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\n"
                     b"Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n")
        await reader.read()  # until the client hangs up
        writer.close()

    server = await asyncio.start_server(wrong_accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(ConnectError) as info:
            await websockets_connector()(f"ws://127.0.0.1:{port}/ws/a", 2)
    finally:
        server.close()
        await server.wait_closed()
    assert info.value.kind == "protocol"
    assert "invalid Sec-WebSocket-Accept header" in info.value.message
