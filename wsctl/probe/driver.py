"""The asyncio driver: runs one ``ProbeMachine`` over a real (or injected) connection.

It is deliberately short: wait for the next frame or the machine's next deadline,
feed what happened to the machine, carry out the actions it returns. Network errors
become a ``ConnectError`` (kind, words a person can act on, retry hint) in
``websockets_connector``, through the one classifier in ``wsctl.errors``.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, cast

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed, InvalidURI
from websockets.extensions import ClientExtensionFactory
from websockets.extensions.permessage_deflate import enable_client_permessage_deflate
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from wsctl import __version__
from wsctl.clock import Clock, MonotonicClock
from wsctl.errors import ConnectError, classify_connect_error
from wsctl.probe.ioclock import io_wake, woke
from wsctl.probe.machine import (
    Abort,
    Action,
    Close,
    Closed,
    Connect,
    Connected,
    ConnectFailed,
    PongReceived,
    ProbeMachine,
    Received,
    Record,
    Send,
    SendPing,
    Stop,
    Tick,
)
from wsctl.probe.tcp import open_socket, read_first, stamp_arrivals


class Link(Protocol):
    """What the driver needs from an open connection (websockets' ClientConnection fits)."""

    transport: asyncio.Transport

    async def recv(self) -> str | bytes: ...

    async def send(self, message: str) -> None: ...

    async def ping(self) -> Awaitable[float]: ...

    async def close(self, code: int = 1000, reason: str = "") -> None: ...


# connector(url, timeout), with headers=((name, value), ...) and subprotocols=(...) as
# keywords too when the protocol block gives them (so a plain two-argument fake still fits).
Connector = Callable[..., Awaitable[Link]]
RecordSink = Callable[[list[Record]], None]

_MESSAGE_OPCODES = (Opcode.TEXT, Opcode.BINARY, Opcode.CONT)
_USER_AGENT = f"wsctl/{__version__}"  # what websockets' connect() sends too


class StampedConnection(ClientConnection):
    """websockets' client connection that notes when things happened in the I/O callback
    that sees them, not when the task awaiting them next runs: with hundreds of probes on
    one loop, a burst of losses or opens would otherwise be stamped tens of milliseconds
    late, one after the other. On a ``WakeStampingLoop`` (what runs probes) the stamp is
    the selector's wake-up that reported the socket (``wsctl.probe.ioclock``), so a burst
    is not stamped later for each socket handled before it; elsewhere
    ``time.monotonic()`` in the callback.

    ``started_at``: the connector's stamp just before the TCP connect. ``opened_at``: the
    101 response arrived (through ``_handshake_over``, on Linux, the kernel's stamp of
    its arrival on the socket). ``arrivals``: one ``(monotonic, wall)`` per whole message, in
    the order ``recv()`` returns them. ``pong_at``: the last pong. ``lost_at``: the first
    of a close frame, end of stream or the connection lost.
    """

    started_at: float | None = None
    opened_at: float | None = None
    pong_at: float | None = None
    lost_at: float | None = None
    _read_at: tuple[float, float] = (0.0, 0.0)
    _sent_in = -1.0  # the wake-up of the iteration that last wrote (on a WakeStampingLoop)
    # Bytes read before the transport existed and when they came (_handshake_over).
    first: tuple[bytes, tuple[float, float]] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.arrivals: deque[tuple[float, float]] = deque()
        self._wake = io_wake()

    def _now(self) -> tuple[float, float]:
        """When the bytes being handled arrived: the wake-up that reported the socket,
        unless this connection wrote since (a reply cannot predate its request)."""
        wake = self._wake
        if wake is not None and wake.woke_at == self._sent_in:
            wake = None  # it wrote in this iteration: the read itself is the instant
        return woke(wake)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        first, self.first = self.first, None
        if first is not None and first[0]:
            # Before the transport's first read (it starts reading after this call).
            self._read_at = first[1]
            super().data_received(first[0])

    def send_data(self) -> None:
        if self._wake is not None:
            self._sent_in = self._wake.woke_at
        super().send_data()

    def data_received(self, data: bytes) -> None:
        self._read_at = self._now()
        super().data_received(data)

    def process_event(self, event: Any) -> None:
        at = self._read_at
        if isinstance(event, Frame):
            opcode = event.opcode
            if opcode in _MESSAGE_OPCODES:
                if event.fin:
                    self.arrivals.append(at)
            elif opcode is Opcode.PONG:
                self.pong_at = at[0]
            elif opcode is Opcode.CLOSE and self.lost_at is None:
                self.lost_at = at[0]
        elif isinstance(event, Response) and self.opened_at is None:
            self.opened_at = at[0]
        super().process_event(event)

    def eof_received(self) -> None:
        if self.lost_at is None:
            self.lost_at = self._now()[0]
        super().eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.lost_at is None:
            # asyncio calls this one iteration after the handler that saw the reset
            # (call_soon): that iteration's wake-up is when the loop learned of it.
            wake = self._wake
            self.lost_at = time.monotonic() if wake is None else wake.prior_at
        super().connection_lost(exc)


def websockets_connector(
    ssl_context: ssl.SSLContext | None = None,
    max_size: int | None = 2**20,
    *,
    deflate: bool = False,
) -> Connector:
    """Connect with ``websockets``: no library keepalive (the machine runs the heartbeat),
    no proxy, and no compression unless ``deflate`` — then permessage-deflate is offered
    as browsers offer it (its zlib state costs ~45 KiB per connection on both sides).

    A ``ws://`` URL whose host is an IP address (wsctl.probe.tcp connects it) takes
    ``_handshake_over``; anything else websockets' ``connect()``."""
    extensions = enable_client_permessage_deflate(None) if deflate else None

    async def connect(url: str, timeout: float, *,
                      headers: Sequence[tuple[str, str]] = (),
                      subprotocols: Sequence[str] = ()) -> Link:
        offered = [Subprotocol(name) for name in subprotocols] or None
        started = time.monotonic()
        try:
            # A refused connect stays cheap; None for a host name (wsctl.probe.tcp).
            sock = await open_socket(url)
            if sock is not None and url.startswith("ws:"):
                link = await _handshake_over(sock, url, headers, offered, extensions, max_size)
            else:
                options: dict[str, Any] = {"sock": sock}
                if ssl_context is not None and url.startswith("wss:"):
                    options["ssl"] = ssl_context  # else websockets uses the system's defaults
                link = cast(StampedConnection, await ws_connect(
                    url,
                    open_timeout=timeout,
                    ping_interval=None,
                    close_timeout=1,
                    compression="deflate" if deflate else None,
                    proxy=None,
                    max_size=max_size,
                    additional_headers=list(headers) or None,
                    subprotocols=offered,
                    user_agent_header=_USER_AGENT,
                    create_connection=StampedConnection,
                    **options,
                ))
        except InvalidURI:
            raise
        except Exception as exc:
            raise classify_connect_error(exc, timeout) from exc
        link.started_at = started
        return link

    return connect


async def _handshake_over(
    sock: socket.socket,
    url: str,
    headers: Sequence[tuple[str, str]],
    subprotocols: list[Subprotocol] | None,
    extensions: Sequence[ClientExtensionFactory] | None,
    max_size: int | None,
) -> StampedConnection:
    """websockets' client connection over ``sock``, just connected, its opening request
    written on the socket at once, as a browser sends it the moment TCP is up.

    websockets' ``connect()`` builds the same connection but writes the request only
    after ``create_connection`` has made the transport and resumed it: a loop iteration
    or two later, behind every other probe's callbacks, and ~0.3 ms of its own set-up
    on top; all of it was counted in ``connect_time`` as if it were the server's (0.5-0.9
    ms of a busy worker, measured by stamping each step). The same sans-I/O
    ``ClientProtocol`` makes the request and checks the response, so the handshake is
    validated exactly as websockets validates it; a redirect is a failed attempt, as it is
    over any socket given to ``connect()`` and for a browser's WebSocket.

    The first bytes of the response are read here, with the kernel's stamp of their
    arrival where there is one (``wsctl.probe.tcp.read_first``): ``opened_at`` is when
    the 101 reached the socket, not when this process next ran. The transport is made
    after them and hands them to the connection first (``StampedConnection.first``)."""
    protocol = ClientProtocol(parse_uri(url), extensions=extensions,
                              subprotocols=subprotocols, max_size=max_size)
    link = StampedConnection(protocol, ping_interval=None, close_timeout=1)
    transport: asyncio.Transport | None = None
    loop = asyncio.get_running_loop()
    try:
        link.request = request = protocol.connect()
        if headers:
            request.headers.update(headers)
        request.headers.setdefault("User-Agent", _USER_AGENT)
        protocol.send_request(request)
        data = b"".join(protocol.data_to_send())
        stamped = stamp_arrivals(sock)
        sent_at = time.monotonic()
        try:
            sent = sock.send(data)  # a fresh socket's buffer holds a request head
        except BlockingIOError:
            sent = 0
        if sent < len(data):
            await loop.sock_sendall(sock, data[sent:])
        link.first = await read_first(sock, sent_at)
        if stamped:
            stamp_arrivals(sock, False)  # one recvmsg() wanted it; recv() cannot read it
        transport, _ = await loop.create_connection(lambda: link, sock=sock)
        await asyncio.wait([link.response_rcvd, link.connection_lost_waiter],
                           return_when=asyncio.FIRST_COMPLETED)
        if protocol.handshake_exc is not None:
            raise protocol.handshake_exc
    except BaseException:
        if transport is not None:
            transport.abort()
        else:
            sock.close()
        raise
    return link


def _close_code(exc: ConnectionClosed) -> tuple[int, str]:
    if exc.rcvd is not None:
        return exc.rcvd.code, exc.rcvd.reason
    return 1006, "connection lost without a close frame"


class Probe:
    """Drives one machine: ``run()`` until it is closed or gives up; ``request_stop()``."""

    __slots__ = ("machine", "_clock", "_connector", "_sink", "_link", "_task", "_stopping",
                 "_timer", "_timer_at", "_receiving", "_woken", "_stamps")

    def __init__(
        self,
        machine: ProbeMachine,
        connector: Connector,
        *,
        clock: Clock | None = None,
        sink: RecordSink | None = None,
    ) -> None:
        self.machine = machine
        self._clock: Clock = clock or MonotonicClock()
        self._connector = connector
        self._sink = sink
        self._link: Link | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        # One wake-up timer per probe, re-armed only when the deadline moves earlier, rather
        # than a timeout per recv(): thousands of probes receiving events would otherwise
        # churn (and, while cancelled timers wait in the loop's heap, hold) a timer each.
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._receiving = False
        self._woken = False
        # A link's own instants (StampedConnection) are time.monotonic(): usable only when
        # that is the clock the machine runs on.
        self._stamps = isinstance(self._clock, MonotonicClock)

    def _instant(self, stamp: float | None) -> float:
        """The link's stamp of an event when it has one, else now."""
        return stamp if stamp is not None and self._stamps else self._clock.now()

    def request_stop(self) -> None:
        """Close politely and end ``run()`` as soon as possible."""
        self._stopping = True
        # If a wake-up already cancelled recv(), that cancellation now means "stop".
        if self._task is not None and not self._task.done() and not self._woken:
            self._task.cancel()

    async def run(self) -> None:
        machine = self.machine
        self._task = asyncio.current_task()
        actions = machine.start(self._clock.now())
        try:
            while True:
                try:
                    if self._stopping:
                        raise asyncio.CancelledError
                    await self._perform(actions)
                    self._flush()
                    if machine.done:
                        return
                    actions = await self._next()
                except asyncio.CancelledError:
                    if not self._stopping:
                        raise
                    task = asyncio.current_task()
                    if task is not None:
                        task.uncancel()
                    self._stopping = False
                    self._task = None  # a second stop request must not cancel the close
                    actions = machine.handle(Stop(self._clock.now()))
                    if machine.done and not actions:
                        return
        finally:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._link is not None:
                self._link.transport.abort()
                self._link = None
            self._flush()

    def _arm(self, deadline: float) -> None:
        """Make sure we are woken by ``deadline`` (an earlier timer already does it)."""
        if self._timer is not None:
            if self._timer_at <= deadline:
                return  # it fires first; the spurious Tick is harmless and re-arms
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        self._timer_at = deadline
        self._timer = loop.call_at(loop.time() + (deadline - self._clock.now()), self._wake)

    def _wake(self) -> None:
        self._timer = None
        if self._receiving and self._task is not None and not (self._woken or self._stopping):
            self._woken = True
            self._task.cancel()  # interrupts recv(), which websockets documents as safe

    def _flush(self) -> None:
        if self._sink is not None and self.machine.records:
            self._sink(self.machine.take_records())
        elif self.machine.records:
            self.machine.records.clear()

    async def _perform(self, actions: list[Action]) -> None:
        while actions:
            action, actions = actions[0], actions[1:]
            if isinstance(action, Connect):
                actions = await self._connect(action) + actions
            elif isinstance(action, Send):
                if self._link is not None:
                    try:
                        await self._link.send(action.text)
                    except ConnectionClosed:
                        pass  # the next recv reports the close
            elif isinstance(action, SendPing):
                if self._link is not None:
                    try:
                        waiter = await self._link.ping()
                    except ConnectionClosed:
                        continue
                    callback = functools.partial(self._on_pong, action.at, self._link)
                    asyncio.ensure_future(waiter).add_done_callback(callback)
            elif isinstance(action, Abort):
                if self._link is not None:
                    self._link.transport.abort()
                    self._link = None
            elif isinstance(action, Close):
                link, self._link = self._link, None
                if link is not None:
                    try:
                        await link.close(action.code, action.reason)
                    except (ConnectionClosed, OSError):
                        pass
            else:  # pragma: no cover - exhaustive
                raise TypeError(action)

    async def _connect(self, action: Connect) -> list[Action]:
        machine = self.machine
        clock = self._clock
        deadline = machine.deadline  # the run's end bounds a hanging attempt too
        budget = action.timeout
        if deadline is not None:
            budget = min(budget, max(0.0, deadline - clock.now()))
        extra: dict[str, Any] = {}
        if action.headers:
            extra["headers"] = action.headers
        if action.subprotocols:
            extra["subprotocols"] = action.subprotocols
        try:
            async with asyncio.timeout(budget):
                link = await self._connector(action.url, action.timeout, **extra)
        except TimeoutError:
            now = clock.now()
            if deadline is not None and now >= deadline:
                return machine.handle(Tick(now))
            timed_out = classify_connect_error(TimeoutError(), action.timeout)
            return machine.handle(ConnectFailed(now, timed_out.message, kind=timed_out.kind))
        except ConnectError as exc:
            return machine.handle(ConnectFailed(clock.now(), exc.message, exc.retry_after,
                                                exc.kind))
        self._link = link
        started = getattr(link, "started_at", None)
        return machine.handle(Connected(self._instant(getattr(link, "opened_at", None)),
                                        started if self._stamps else None))

    async def _next(self) -> list[Action]:
        """Wait for whatever comes first: a frame, a close, or the machine's deadline."""
        machine = self.machine
        clock = self._clock
        deadline = machine.deadline
        link = self._link
        if link is None:
            if deadline is None:  # nothing will ever happen: treat as stopped
                return machine.handle(Stop(clock.now()))
            await clock.sleep(deadline - clock.now())
            return machine.handle(Tick(clock.now()))
        if deadline is not None:
            if deadline <= clock.now():
                return machine.handle(Tick(clock.now()))
            self._arm(deadline)
        self._receiving = True
        try:
            frame = await link.recv()
        except asyncio.CancelledError:
            if not self._woken or self._stopping:
                raise
            self._woken = False
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            return machine.handle(Tick(clock.now()))
        except ConnectionClosed as exc:
            self._link = None
            code, reason = _close_code(exc)
            return machine.handle(Closed(self._instant(getattr(link, "lost_at", None)), code,
                                         reason))
        finally:
            self._receiving = False
        arrivals = getattr(link, "arrivals", None)
        if arrivals:
            at, wall = arrivals.popleft()
            if self._stamps:
                return machine.handle(Received(at, wall, frame))
        return machine.handle(Received(clock.now(), time.time(), frame))

    def _on_pong(self, sent_at: float, link: Link, waiter: asyncio.Future[float]) -> None:
        if waiter.cancelled() or waiter.exception() is not None or link is not self._link:
            return
        self.machine.handle(PongReceived(self._instant(getattr(link, "pong_at", None)),
                                         sent_at))

    def __repr__(self) -> str:
        return f"Probe({self.machine!r})"
