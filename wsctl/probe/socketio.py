"""A sans-I/O Socket.IO v5 client over Engine.IO v4's WebSocket transport.

Built on the published specifications (socket.io-protocol v5, engine.io-protocol v4):
one Engine.IO packet per WebSocket frame, ``<type>[<data>]``; Socket.IO packets ride in
Engine.IO ``message`` packets (``4``) as
``<type>[<attachments>-][<namespace>,][<ack id>][<JSON payload>]``. What the client does:

    server                         client
    0{"sid","pingInterval",...}  -> Open          (sends 40[/ns,][auth])
    40[/ns,]{"sid": ...}         -> Connected     (sends the emits queued so far)
    2                            ->               (sends 3: the server's ping answered)
    42[/ns,][id]["name", ...]    -> Event         (an ack id is answered with 43[/ns,]id[])
    43[/ns,]id[...]              -> Ack
    41[/ns,]                     -> Disconnect("io server disconnect")
    44[/ns,]{"message": ...}     -> ConnectError
    1                            -> Disconnect("transport close")
    45-/46- (binary)             -> Unsupported, its attachment frames skipped
    no ping within pingInterval + pingTimeout -> Disconnect("ping timeout") at ``check``

Nothing here touches a socket or reads a clock: frames go in with ``receive_text`` /
``receive_bytes`` and the instant they arrived, events come out of ``events_received``,
frames to write out of ``data_to_send``; ``deadline`` is when ``check`` must be called.
Packets for other namespaces are ignored. docs/own-service.md describes the adapter.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ENGINE_QUERY = "EIO=4&transport=websocket"
DEFAULT_PATH = "/socket.io/"

# Engine.IO v4 packet types
E_OPEN, E_CLOSE, E_PING, E_PONG, E_MESSAGE, E_UPGRADE, E_NOOP = "0123456"
# Socket.IO v5 packet types
S_CONNECT, S_DISCONNECT, S_EVENT, S_ACK, S_CONNECT_ERROR, S_BINARY_EVENT, S_BINARY_ACK = (
    "0123456")

REASON_SERVER_DISCONNECT = "io server disconnect"
REASON_TRANSPORT_CLOSE = "transport close"
REASON_PING_TIMEOUT = "ping timeout"


def engine_url(url: str) -> str:
    """The Engine.IO WebSocket URL for a Socket.IO server at ``url``: a path of ``""`` or
    ``/`` becomes ``/socket.io/`` (any other path is the server's own, kept), and
    ``EIO=4&transport=websocket`` joins the query unless it already names ``EIO``."""
    parts = urlsplit(url)
    path = parts.path if parts.path not in ("", "/") else DEFAULT_PATH
    query = parts.query
    if "EIO=" not in query:
        query = f"{query}&{ENGINE_QUERY}" if query else ENGINE_QUERY
    return urlunsplit((parts.scheme, parts.netloc, path, query, parts.fragment))


# Events (out) --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Open:
    """The Engine.IO handshake: the server's session and its heartbeat, in seconds."""

    sid: str
    ping_interval: float
    ping_timeout: float
    max_payload: int | None = None


@dataclass(frozen=True, slots=True)
class Connected:
    """The namespace accepted the connection."""

    namespace: str
    sid: str | None = None


@dataclass(frozen=True, slots=True)
class Event:
    """An event the server emitted: its name and arguments; ``payload`` is the first."""

    name: str
    args: tuple[Any, ...] = ()
    ack_id: int | None = None

    @property
    def payload(self) -> Any:
        return self.args[0] if self.args else None


@dataclass(frozen=True, slots=True)
class Ack:
    """The server acknowledged an event this client emitted with an ack id."""

    ack_id: int
    args: tuple[Any, ...] = ()


@dataclass(frozen=True, slots=True)
class Disconnect:
    """The session is over: ``reason`` is Socket.IO's own name for why."""

    reason: str


@dataclass(frozen=True, slots=True)
class ConnectError:
    """The namespace refused the connection (CONNECT_ERROR); the session is over."""

    message: str
    data: Any = None


@dataclass(frozen=True, slots=True)
class Unsupported:
    """A packet this client does not decode (binary events); it is skipped."""

    reason: str


@dataclass(frozen=True, slots=True)
class Malformed:
    """A frame that breaks the protocol; it is skipped."""

    reason: str
    frame: str = ""


SocketIOEvent = Open | Connected | Event | Ack | Disconnect | ConnectError | Unsupported | Malformed


@dataclass(slots=True)
class _Packet:
    kind: str
    namespace: str = "/"
    ack_id: int | None = None
    data: Any = None
    attachments: int = 0


class ProtocolError(ValueError):
    """A Socket.IO packet that cannot be decoded."""


def encode(kind: str, namespace: str = "/", data: Any = None, ack_id: int | None = None) -> str:
    """One Socket.IO packet inside an Engine.IO message packet (``4…``)."""
    out = E_MESSAGE + kind
    if namespace != "/":
        out += namespace + ","
    if ack_id is not None:
        out += str(ack_id)
    if data is not None:
        out += json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return out


def decode(text: str) -> _Packet:
    """A Socket.IO packet (without the Engine.IO ``4``); ``ProtocolError`` if malformed."""
    if not text or text[0] not in "0123456":
        raise ProtocolError("unknown Socket.IO packet type")
    packet = _Packet(text[0])
    i = 1
    if packet.kind in (S_BINARY_EVENT, S_BINARY_ACK):
        dash = text.find("-", i)
        if dash < 0 or not text[i:dash].isdigit():
            raise ProtocolError("binary packet without an attachment count")
        packet.attachments = int(text[i:dash])
        i = dash + 1
    if text.startswith("/", i):
        comma = text.find(",", i)
        end = comma if comma >= 0 else len(text)
        packet.namespace = text[i:end]
        i = end + 1
    start = i
    while i < len(text) and text[i].isdigit():
        i += 1
    if i > start:
        packet.ack_id = int(text[start:i])
    if i < len(text):
        try:
            packet.data = json.loads(text[i:])
        except ValueError:
            raise ProtocolError("payload is not JSON") from None
    return packet


@dataclass(slots=True)
class SocketIOClient:
    """One Socket.IO session on one WebSocket connection, to one ``namespace``.

    ``auth`` is sent with the namespace CONNECT packet. ``emit`` before the namespace is
    connected queues the event, as Socket.IO's own client does. After a ``Disconnect`` or
    ``ConnectError`` the session is ``closed``: the driver closes the WebSocket.
    """

    namespace: str = "/"
    auth: dict[str, Any] | None = None
    state: str = "opening"  # opening -> connecting -> connected -> closed
    ping_interval: float | None = None
    ping_timeout: float | None = None
    deadline: float | None = None  # no ping by then: the connection is dead
    _events: list[SocketIOEvent] = field(default_factory=list)
    _outgoing: list[str] = field(default_factory=list)
    _queued: list[str] = field(default_factory=list)
    _skip_binary: int = 0

    def __post_init__(self) -> None:
        if not self.namespace.startswith("/") or "," in self.namespace:
            raise ValueError("a Socket.IO namespace starts with / and has no comma")

    @property
    def closed(self) -> bool:
        return self.state == "closed"

    # -- inputs -------------------------------------------------------------------------

    def receive_text(self, frame: str, now: float) -> None:
        """A text frame arrived at ``now``."""
        if self.closed:
            return
        kind, body = frame[:1], frame[1:]
        if self.state == "opening":
            if kind == E_OPEN:
                self._on_open(body, now)
            else:
                self._malformed("expected the Engine.IO open packet first", frame)
        elif kind == E_PING:
            self._outgoing.append(E_PONG + body)
            self._alive(now)
        elif kind == E_MESSAGE:
            self._on_message(body, frame)
        elif kind == E_CLOSE:
            self._end(Disconnect(REASON_TRANSPORT_CLOSE))
        elif kind not in (E_PONG, E_UPGRADE, E_NOOP):
            self._malformed("unknown Engine.IO packet type", frame)

    def receive_bytes(self, data: bytes, now: float) -> None:
        """A binary frame arrived: an attachment of a skipped binary packet, or a stray."""
        if self._skip_binary:
            self._skip_binary -= 1
        elif not self.closed:
            self._events.append(Unsupported(f"binary frame of {len(data)} bytes"))

    def check(self, now: float) -> None:
        """Time passed: past ``deadline`` without a ping, the connection is dead."""
        if not self.closed and self.deadline is not None and now >= self.deadline:
            self._end(Disconnect(REASON_PING_TIMEOUT))

    def emit(self, event: str, *args: Any, ack_id: int | None = None) -> None:
        """Send an event (queued until the namespace is connected)."""
        if self.closed:
            return
        frame = encode(S_EVENT, self.namespace, [event, *args], ack_id)
        (self._outgoing if self.state == "connected" else self._queued).append(frame)

    def disconnect(self) -> None:
        """Leave the namespace politely (DISCONNECT); the driver then closes the socket."""
        if self.state == "connected":
            self._outgoing.append(encode(S_DISCONNECT, self.namespace))
        self.state = "closed"
        self.deadline = None

    # -- outputs ------------------------------------------------------------------------

    def events_received(self) -> list[SocketIOEvent]:
        """Events since the last call, in order."""
        events, self._events = self._events, []
        return events

    def data_to_send(self) -> list[str]:
        """Text frames to write, in order, since the last call."""
        frames, self._outgoing = self._outgoing, []
        return frames

    # -- packets ------------------------------------------------------------------------

    def _on_open(self, body: str, now: float) -> None:
        try:
            data = json.loads(body)
            interval = data["pingInterval"] / 1000
            timeout = data["pingTimeout"] / 1000
            sid = str(data["sid"])
        except (ValueError, TypeError, KeyError):
            self._malformed("Engine.IO open packet without sid, pingInterval, pingTimeout",
                            E_OPEN + body)
            return
        max_payload = data.get("maxPayload")
        self.ping_interval, self.ping_timeout = interval, timeout
        self.state = "connecting"
        self._alive(now)
        self._events.append(Open(sid, interval, timeout,
                                 max_payload if isinstance(max_payload, int) else None))
        self._outgoing.append(encode(S_CONNECT, self.namespace, self.auth))

    def _alive(self, now: float) -> None:
        if self.ping_interval is not None and self.ping_timeout is not None:
            self.deadline = now + self.ping_interval + self.ping_timeout

    def _on_message(self, body: str, frame: str) -> None:
        try:
            packet = decode(body)
        except ProtocolError as exc:
            self._malformed(str(exc), frame)
            return
        if packet.attachments:
            self._skip_binary += packet.attachments
        if packet.namespace != self.namespace:
            return
        kind, data = packet.kind, packet.data
        if kind == S_EVENT:
            if not (isinstance(data, list) and data and isinstance(data[0], str)):
                self._malformed("an event's payload must be [name, ...]", frame)
                return
            self._events.append(Event(data[0], tuple(data[1:]), packet.ack_id))
            if packet.ack_id is not None:  # so the server's callback does not wait forever
                self._outgoing.append(encode(S_ACK, self.namespace, [], packet.ack_id))
        elif kind == S_CONNECT:
            if self.state != "connecting":
                self._malformed("a namespace CONNECT that was not asked for", frame)
                return
            self.state = "connected"
            sid = data.get("sid") if isinstance(data, dict) else None
            self._events.append(Connected(self.namespace, sid))
            self._outgoing.extend(self._queued)
            self._queued.clear()
        elif kind == S_ACK and packet.ack_id is not None:
            self._events.append(Ack(packet.ack_id, tuple(data) if isinstance(data, list)
                                    else ()))
        elif kind == S_DISCONNECT:
            self._end(Disconnect(REASON_SERVER_DISCONNECT))
        elif kind == S_CONNECT_ERROR:
            message = data.get("message") if isinstance(data, dict) else data
            detail = data.get("data") if isinstance(data, dict) else None
            self._end(ConnectError(str(message), detail))
        elif kind in (S_BINARY_EVENT, S_BINARY_ACK):
            self._events.append(Unsupported(
                f"binary {'event' if kind == S_BINARY_EVENT else 'ack'} with "
                f"{packet.attachments} attachment(s): not decoded"))
        else:
            self._malformed("unexpected Socket.IO packet from a server", frame)

    def _end(self, event: Disconnect | ConnectError) -> None:
        self.state = "closed"
        self.deadline = None
        self._queued.clear()
        self._events.append(event)

    def _malformed(self, reason: str, frame: str) -> None:
        self._events.append(Malformed(reason, frame[:200]))
