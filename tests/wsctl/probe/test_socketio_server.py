"""The Socket.IO adapter and the protocol block against a real python-socketio server.

The server is python-socketio's ASGI app under uvicorn on 127.0.0.1 port 0, with a short
ping interval; the client is a small ``websockets`` loop around ``SocketIOClient``, the
shape of what the probe's driver does with it.
"""

from __future__ import annotations

import asyncio
import signal
import time
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.wsctl.probe.conftest import NAMESPACE, PING_INTERVAL, PING_TIMEOUT, TICK, Service
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
