"""The Socket.IO adapter and the protocol block against a real python-socketio server.

The server is python-socketio's ASGI app under uvicorn on 127.0.0.1 port 0, with a short
ping interval; the client is a small ``websockets`` loop around ``SocketIOClient``, the
shape of what the probe's driver does with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import socketio as pysio
import uvicorn
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from wsctl.probe.dialect import Context, Dialect
from wsctl.probe.sequence import GenerationTracker
from wsctl.probe.socketio import (
    Connected,
    ConnectError,
    Disconnect,
    Event,
    Open,
    SocketIOClient,
    SocketIOEvent,
)

# python-engineio advertises pingInterval in whole seconds (int(interval) * 1000): a
# shorter interval would be announced as 0, so the test uses the shortest honest one.
PING_INTERVAL = 1.0
PING_TIMEOUT = 0.5
TICK = 0.02
NAMESPACE = "/feed"


@dataclass
class Service:
    """The running server, what it saw, and its URL."""

    sio: pysio.AsyncServer
    url: str
    subscribed: list[Any] = field(default_factory=list)
    sids: list[str] = field(default_factory=list)
    sent: list[int] = field(default_factory=list)


class _Uvicorn(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # the test runner owns signals
        pass


@pytest.fixture
async def service() -> AsyncIterator[Service]:
    sio = pysio.AsyncServer(async_mode="asgi", ping_interval=PING_INTERVAL,
                            ping_timeout=PING_TIMEOUT, logger=False, engineio_logger=False)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    svc = Service(sio, f"ws://127.0.0.1:{sock.getsockname()[1]}")
    tasks: list[asyncio.Task[None]] = []

    @sio.on("connect", namespace=NAMESPACE)
    async def on_connect(sid: str, environ: dict[str, Any], auth: Any) -> None:
        if not isinstance(auth, dict) or auth.get("token") != "s3cret":
            raise pysio.exceptions.ConnectionRefusedError("bad token")
        svc.sids.append(sid)

    @sio.on("subscribe", namespace=NAMESPACE)
    async def on_subscribe(sid: str, data: Any) -> None:
        svc.subscribed.append(data)

        async def ticks() -> None:
            seq = 0
            while True:
                seq += 1
                svc.sent.append(seq)
                await sio.emit("tick", {"seq": seq, "ts": time.time() * 1000}, to=sid,
                               namespace=NAMESPACE)
                if seq % 5 == 0:  # not a counted event
                    await sio.emit("status", {"ok": True}, to=sid, namespace=NAMESPACE)
                await asyncio.sleep(TICK)

        tasks.append(asyncio.get_running_loop().create_task(ticks()))

    config = uvicorn.Config(pysio.ASGIApp(sio), log_level="warning", lifespan="off",
                            access_log=False, ws="websockets-sansio")
    server = _Uvicorn(config)
    serving = asyncio.get_running_loop().create_task(server.serve([sock]))
    while not server.started:
        assert not serving.done(), "uvicorn did not start"
        await asyncio.sleep(0.005)
    try:
        yield svc
    finally:
        for task in tasks:
            task.cancel()
        server.should_exit = True
        await serving
        sock.close()


DIALECT = Dialect.model_validate({
    "adapter": "socketio",
    "on_open": [["subscribe", {"channel": "{stream}", "probe": "{n}"}]],
    "sequence": "seq",
    "timestamp": "ts",
    "socketio": {"namespace": NAMESPACE, "events": ["tick"], "auth": {"token": "${TOKEN}"}},
})
CTX = Context(stream="alert-1", n=1, env={"TOKEN": "s3cret"})


@dataclass
class Session:
    """What one client connection went through."""

    events: list[tuple[float, SocketIOEvent]] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)
    closed_by_server: bool = False

    def of(self, kind: type) -> list[Any]:
        return [event for _, event in self.events if isinstance(event, kind)]


async def run_client(url: str, *, dialect: Dialect = DIALECT, ctx: Context = CTX,
                     seconds: float, answer_pings: bool = True,
                     on_event: Any = None) -> Session:
    """Drive one SocketIOClient over a real WebSocket for ``seconds`` or until it closes."""
    loop = asyncio.get_running_loop()
    client: SocketIOClient = dialect.socketio_client(ctx)
    for message in dialect.open_messages(ctx):
        client.emit(*message)
    session = Session()
    end = loop.time() + seconds
    async with connect(dialect.url(url, ctx), ping_interval=None, close_timeout=0.5) as ws:
        while not client.closed and loop.time() < end:
            for frame in client.data_to_send():
                if answer_pings or frame != "3":
                    session.sent.append(frame)
                    await ws.send(frame)
            timeout = end - loop.time()
            if client.deadline is not None:
                timeout = min(timeout, client.deadline - loop.time())
            try:
                frame = await asyncio.wait_for(ws.recv(), max(timeout, 0))
            except TimeoutError:
                client.check(loop.time())
            except ConnectionClosed:
                session.closed_by_server = True
                break
            else:
                if isinstance(frame, str):
                    client.receive_text(frame, loop.time())
                else:
                    client.receive_bytes(frame, loop.time())
            for event in client.events_received():
                session.events.append((loop.time(), event))
                if on_event is not None:
                    await on_event(event)
        for frame in client.data_to_send():
            session.sent.append(frame)
    return session


async def test_events_arrive_with_their_sequence_numbers(service: Service) -> None:
    """on_open's emit subscribes (templates filled); counted ticks are in order, none lost,
    with a delivery latency from the server's ms timestamp; other events are not counted."""
    session = await run_client(service.url, seconds=0.6)
    assert service.subscribed == [{"channel": "alert-1", "probe": 1}]
    opened = session.of(Open)[0]
    assert (opened.ping_interval, opened.ping_timeout) == (PING_INTERVAL, PING_TIMEOUT)
    assert session.of(Connected)[0].namespace == NAMESPACE
    events = session.of(Event)
    counted = [e for e in events if DIALECT.counts_event(e.name)]
    assert {e.name for e in events} == {"tick", "status"}
    assert counted and all(e.name == "tick" for e in counted)
    tracker = GenerationTracker()
    tracker.connected()
    now = time.time()
    for event in counted:
        reading = DIALECT.read(event.payload)
        assert reading.seq is not None and reading.sent_at is not None
        assert 0 <= now - reading.sent_at < 5  # ms were read as ms
        tracker.seen(reading.seq)
    assert [DIALECT.read(e.payload).seq for e in counted] == list(
        range(1, len(counted) + 1))
    assert tracker.settle() == 0 and tracker.duplicated == tracker.reordered == 0
    assert len(counted) >= 10


async def test_connection_survives_several_ping_intervals(service: Service) -> None:
    """Pings answered: the session outlives 4 ping intervals (each past the previous
    deadline), no disconnect."""
    seconds = 4 * PING_INTERVAL + PING_TIMEOUT
    session = await run_client(service.url, seconds=seconds)
    assert not session.closed_by_server
    assert session.of(Disconnect) == []
    assert session.sent.count("3") >= 4
    assert len(session.of(Event)) > 0.5 * seconds / TICK


async def test_unanswered_pings_get_the_session_closed(service: Service) -> None:
    """Control: a client that does not answer pings is dropped by the server, so the test
    above proves something."""
    session = await run_client(service.url, seconds=4 * (PING_INTERVAL + PING_TIMEOUT),
                               answer_pings=False)
    assert session.closed_by_server or session.of(Disconnect)


async def test_server_side_disconnect_is_reported_with_its_reason(service: Service) -> None:
    """sio.disconnect(sid) on the server reaches the client as Disconnect('io server
    disconnect'), and the session ends."""

    async def kick(event: SocketIOEvent) -> None:
        if isinstance(event, Event) and event.name == "tick" and event.payload["seq"] == 3:
            await service.sio.disconnect(service.sids[0], namespace=NAMESPACE)

    session = await run_client(service.url, seconds=3.0, on_event=kick)
    assert session.of(Disconnect) == [Disconnect("io server disconnect")]
    assert session.events[-1][1] == Disconnect("io server disconnect")


async def test_refused_namespace_is_a_connect_error(service: Service) -> None:
    """A wrong token: the server's ConnectionRefusedError arrives as ConnectError."""
    ctx = Context(stream="alert-1", n=1, env={"TOKEN": "wrong"})
    session = await run_client(service.url, ctx=ctx, seconds=3.0)
    assert session.of(ConnectError) == [ConnectError("bad token")]
    assert session.of(Event) == []


SERVER_SCRIPT = """
import asyncio, socket, sys
import socketio, uvicorn

sio = socketio.AsyncServer(async_mode="asgi", ping_interval={interval},
                           ping_timeout={timeout}, logger=False, engineio_logger=False)

@sio.on("connect", namespace="/feed")
async def connect(sid, environ, auth):
    async def ticks():
        seq = 0
        while True:
            seq += 1
            await sio.emit("tick", {{"seq": seq}}, to=sid, namespace="/feed")
            await asyncio.sleep(0.05)
    asyncio.get_running_loop().create_task(ticks())

sock = socket.socket()
sock.bind(("127.0.0.1", 0))
sock.listen(16)
print(sock.getsockname()[1], flush=True)
config = uvicorn.Config(socketio.ASGIApp(sio), log_level="warning", lifespan="off",
                        ws="websockets-sansio")
asyncio.run(uvicorn.Server(config).serve([sock]))
"""


@pytest.fixture
async def paused_service(tmp_path: Any) -> AsyncIterator[tuple[asyncio.subprocess.Process,
                                                                 str]]:
    script = tmp_path / "sio_app.py"
    script.write_text(SERVER_SCRIPT.format(interval=PING_INTERVAL, timeout=PING_TIMEOUT))
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(script), stdout=asyncio.subprocess.PIPE)
    try:
        assert process.stdout is not None
        port = int(await asyncio.wait_for(process.stdout.readline(), 20))
        yield process, f"ws://127.0.0.1:{port}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGCONT)
            process.kill()
        await process.wait()


async def test_paused_server_is_detected_within_ping_interval_plus_timeout(
        paused_service: tuple[asyncio.subprocess.Process, str]) -> None:
    """SIGSTOP the server process: no more pings, and the client reports 'ping timeout'
    no later than pingInterval + pingTimeout after the last ping it answered."""
    process, url = paused_service
    dialect = Dialect.model_validate({"adapter": "socketio",
                                      "socketio": {"namespace": NAMESPACE}})
    stopped: list[float] = []

    async def pause(event: SocketIOEvent) -> None:
        if isinstance(event, Event) and event.payload["seq"] == 2 and not stopped:
            process.send_signal(signal.SIGSTOP)
            stopped.append(asyncio.get_running_loop().time())

    session = await run_client(url, dialect=dialect, seconds=10.0, on_event=pause)
    [(detected_at, event)] = [(t, e) for t, e in session.events if isinstance(e, Disconnect)]
    assert event == Disconnect("ping timeout")
    assert stopped
    waited = detected_at - stopped[0]
    assert 0 < waited <= PING_INTERVAL + PING_TIMEOUT + 0.5
