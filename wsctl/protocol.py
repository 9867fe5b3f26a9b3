"""Resume protocol v1: the messages between the reference server and its clients.

Pure codec, no I/O. One stream per connection at ``/ws/{stream}``; JSON text frames.
Server -> client: ``welcome``, ``event``, ``pong``, ``error``.
Client -> server: ``ping`` and ``ack``. The full contract is in ``docs/protocol.md``.
"""

from __future__ import annotations

import functools
import json
import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import quote_plus

from wsctl.errors import InvalidInput

STREAM_NAME = re.compile(r"[A-Za-z0-9._-]{1,128}")
HEALTH_STREAM = "health"

# Close codes wsctl acts on by name (RFC 6455 numbers; docs/protocol.md lists every
# code the reference server sends).
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_TRY_AGAIN_LATER = 1013

# ``error.code`` values, so clients can act without parsing the message.
ERR_BAD_MESSAGE = "bad_message"
ERR_SLOW_CONSUMER = "slow_consumer"


class ProtocolError(ValueError):
    """A frame that is not a valid protocol v1 message."""


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Application heartbeat the server expects: seconds between pings, and the timeout."""

    interval: float
    timeout: float


@dataclass(frozen=True, slots=True)
class Welcome:
    """First frame on every connection: where the stream is and whether the gap was filled."""

    stream: str
    epoch: str
    offset: int
    recovered: bool
    replayed: int
    heartbeat: Heartbeat
    snapshot: dict[str, Any] | None = None
    type: str = field(default="welcome", init=False)


@dataclass(frozen=True, slots=True)
class Event:
    """One stream event; ``ts`` is the server's wall time in seconds."""

    offset: int
    ts: float
    data: dict[str, Any]
    type: str = field(default="event", init=False)


@dataclass(frozen=True, slots=True)
class Pong:
    """Reply to an application ``ping``; echoes its ``t``."""

    t: float
    type: str = field(default="pong", init=False)


@dataclass(frozen=True, slots=True)
class Error:
    """A problem the client can act on, sent just before a close."""

    code: str
    message: str
    type: str = field(default="error", init=False)


@dataclass(frozen=True, slots=True)
class Ping:
    """Application heartbeat from a client (browsers cannot send protocol pings)."""

    t: float
    type: str = field(default="ping", init=False)


@dataclass(frozen=True, slots=True)
class Ack:
    """The client has every event up to ``offset``; the store may trim them."""

    offset: int
    type: str = field(default="ack", init=False)


ServerMessage = Welcome | Event | Pong | Error
ClientMessage = Ping | Ack


def encode(message: ServerMessage | ClientMessage) -> str:
    """Serialise a message to its JSON text frame, ``type`` first."""
    body = asdict(message)
    if isinstance(message, Welcome) and message.snapshot is None:
        del body["snapshot"]
    return json.dumps({"type": body.pop("type"), **body}, separators=(",", ":"))


def encode_event(offset: int, ts: float, data_json: str) -> str:
    """Fast path for the hot loop: an ``event`` frame from already-serialised data."""
    return f'{{"type":"event","offset":{offset},"ts":{ts!r},"data":{data_json}}}'


def encode_pong(t: float) -> str:
    """Fast path for the server's answer to a ``ping``: ``encode(Pong(t))``'s text (a test
    holds them equal) without ``asdict`` and ``json.dumps`` per ping."""
    if not math.isfinite(t):  # json writes Infinity / NaN, repr inf / nan
        return encode(Pong(t))
    return f'{{"type":"pong","t":{t!r}}}'


MAX_INT = 2**63 - 1  # offsets are 0..MAX_INT; any integer in a message is 64-bit


def _int(text: str) -> int:
    # Length first: int() of thousands of digits is slow and past 4,300 a ValueError.
    if len(text.lstrip("-")) > 19 or not -MAX_INT - 1 <= (value := int(text)) <= MAX_INT:
        shown = text if len(text) <= 24 else text[:24] + "…"
        raise ProtocolError(f"integer {shown} is out of range (64-bit)")
    return value


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ProtocolError(f"number {text[:24]} is out of range")
    return value


def _constant(name: str) -> Any:
    raise ProtocolError(f"{name} is not JSON; numbers must be finite")


def _load(frame: str | bytes) -> dict[str, Any]:
    if isinstance(frame, bytes):
        raise ProtocolError("binary frames are not part of protocol v1; send JSON text")
    try:
        obj = json.loads(frame, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"not JSON: {exc.msg}") from exc
    except RecursionError as exc:
        raise ProtocolError("JSON nested too deeply") from exc
    if not isinstance(obj, dict):
        raise ProtocolError("a message must be a JSON object")
    return obj


def _number(obj: dict[str, Any], name: str) -> float:
    value = obj.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProtocolError(f"{obj.get('type')}.{name} must be a number")
    return float(value)


def _offset(obj: dict[str, Any], name: str = "offset") -> int:
    value = obj.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_INT:
        raise ProtocolError(f"{obj.get('type')}.{name} must be an integer 0..2**63-1")
    return value


def parse_client(frame: str | bytes) -> ClientMessage:
    """Parse a client frame; anything but ``ping`` or ``ack`` raises ``ProtocolError``."""
    obj = _load(frame)
    kind = obj.get("type")
    if kind == "ping":
        return Ping(t=_number(obj, "t"))
    if kind == "ack":
        return Ack(offset=_offset(obj))
    raise ProtocolError(f"unknown message type {kind!r}; expected 'ping' or 'ack'")


def parse_server(frame: str | bytes) -> ServerMessage:
    """Parse a server frame into ``Welcome``, ``Event``, ``Pong`` or ``Error``."""
    obj = _load(frame)
    kind = obj.get("type")
    try:
        if kind == "event":
            data = obj.get("data")
            if not isinstance(data, dict):
                raise ProtocolError("event.data must be an object")
            return Event(offset=_offset(obj), ts=_number(obj, "ts"), data=data)
        if kind == "welcome":
            hb = obj["heartbeat"]
            return Welcome(
                stream=str(obj["stream"]),
                epoch=str(obj["epoch"]),
                offset=_offset(obj),
                recovered=bool(obj["recovered"]),
                replayed=int(obj["replayed"]),
                heartbeat=Heartbeat(float(hb["interval"]), float(hb["timeout"])),
                snapshot=obj.get("snapshot"),
            )
        if kind == "pong":
            return Pong(t=_number(obj, "t"))
        if kind == "error":
            return Error(code=str(obj["code"]), message=str(obj["message"]))
    except (KeyError, TypeError) as exc:
        raise ProtocolError(f"{kind} message is missing or has a bad field: {exc}") from exc
    raise ProtocolError(f"unknown message type {kind!r}")


# form-encoding (urlencode's quote_plus) of a probe's epoch or token, which repeat on
# every reconnect attempt
_form = functools.lru_cache(maxsize=4096)(quote_plus)


def resume_query(epoch: str | None, offset: int | None, token: str | None = None) -> str:
    """Query string for a (re)connect: ``?epoch=E&offset=N[&token=T]``, or '' when fresh
    (form-encoded, as ``urlencode`` writes it). Built on every attempt, refused ones
    included: a probe's epoch and token are encoded once, not per attempt."""
    parts = []
    if epoch is not None and offset is not None:
        parts.append(f"epoch={_form(epoch)}&offset={int(offset)}")
    if token:
        parts.append(f"token={_form(token)}")
    return "?" + "&".join(parts) if parts else ""


def check_url(url: str) -> None:
    """InvalidInput unless ``url`` is a ws:// or wss:// URL with a host; ``{n}`` (each
    probe's or connection's index) may appear in it."""
    from websockets.exceptions import InvalidURI
    from websockets.uri import parse_uri

    if not url.startswith(("ws://", "wss://")):
        raise InvalidInput(f"invalid URL {url!r}: it must start with ws:// or wss://")
    try:
        parse_uri(url.replace("{n}", "0"))
    except (InvalidURI, ValueError) as exc:  # ValueError: port out of range
        raise InvalidInput(f"invalid URL {url!r}: {exc}") from exc


def retry_hint_ms(reason: str) -> int | None:
    """Retry hint carried in a 1001/1013 close reason (``retry_ms=N``), if any."""
    match = re.search(r"retry_ms=(\d+)", reason)
    return int(match.group(1)) if match else None
