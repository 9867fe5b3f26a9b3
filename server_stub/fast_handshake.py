"""The common opening handshake answered in the I/O callback that reads it.

websockets answers a handshake from its handler task: a generator parses the request
line by line into a ``Headers`` object, ``asyncio.wait`` wakes the task a loop iteration
or two later, ``process_request`` and ``accept()`` run, and the 101 is assembled as
another ``Headers`` object (with a ``Date`` formatted afresh) and written from an async
context manager. Profiled on the reference server (docs/server.md), that path is most
of a connection's set-up cost above a bare responder.

``FastHandshake`` answers in ``data_received`` instead, in one step, when the request's
whole head arrives in one read and is a plain WebSocket upgrade of ``GET /ws/...``:
every header line as websockets' parser requires it (token name, visible value), each
header at most once, a 16-byte key, version 13, no body, no subprotocol offer (nor an
extension offer when the server has extensions). Admission goes through the same checks
as every request (``ReferenceServer.admit_upgrade``: stream name, draining, origin,
token, limits); a refusal is sent by websockets' own path. Anything else — a head split
over reads, bytes after it, a repeated header, a line websockets would refuse — goes
through websockets' generic path untouched, which stays the one that answers errors: the
fast path accepts a strict subset of what websockets accepts.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from websockets import http11
from websockets.asyncio.connection import Connection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response
from websockets.protocol import CONNECTING, OPEN, Event

from server_stub.pipelining import OneRequestConnection

if TYPE_CHECKING:
    from websockets.asyncio.server import ServerConnection

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_TOKEN = r"[-!#$%&'*+.^_`|~0-9a-zA-Z]+"  # websockets.http11's header name grammar
# A head this path takes, checked whole by one regex (the C engine, not a Python loop):
# GET of /ws/... in visible ASCII, HTTP/1.1, then header lines of a token name and a
# visible-ASCII value (obs-text, a bare CR or LF: the generic path decides).
_HEAD = re.compile(rf"GET (/ws/[\x21-\x7e]*) HTTP/1\.1\r\n(?:{_TOKEN}:[\t\x20-\x7e]*\r\n)*")
_HEADER = re.compile(rf"({_TOKEN}):[ \t]*([\t\x20-\x7e]*?)[ \t]*\r\n")  # value stripped
_KEY = re.compile(r"[A-Za-z0-9+/]{22}==")  # base64 of exactly 16 bytes, as websockets asks
_CONNECTION_TOKEN = re.compile(_TOKEN)
# Headers whose presence means websockets would decide differently (a body, a
# subprotocol to negotiate): the generic path handles them.
_GENERIC_ONLY = ("transfer-encoding", "content-length", "sec-websocket-protocol")
_MAX_HEAD = 4096  # a browser's upgrade head is ~0.5-2 KiB; websockets' own limits lie above
_MAX_HEADERS = 64


@dataclass(frozen=True, slots=True)
class Upgrade:
    """A plain WebSocket upgrade request, parsed: what admission and the 101 need."""

    path: str  # with the query string, as websockets' Request.path
    key: str
    origin: str | None
    items: list[tuple[str, str]]  # every header as sent, for the Request object


def parse_upgrade(data: bytes, extensions: bool = False) -> Upgrade | None:
    """``data`` as a plain upgrade of ``GET /ws/...``, or None when websockets' generic
    path must decide (anything unusual, malformed, incomplete or followed by more bytes).
    ``extensions``: the server negotiates extensions, so an offer goes the generic way."""
    if len(data) > _MAX_HEAD or not data.endswith(b"\r\n\r\n"):
        return None
    try:
        text = data[:-2].decode("ascii")
    except UnicodeDecodeError:
        return None
    match = _HEAD.fullmatch(text)
    if match is None:
        return None
    path = match.group(1)
    items = _HEADER.findall(text, match.end(1) + 11)  # after " HTTP/1.1\r\n"
    if len(items) > _MAX_HEADERS or "#" in path:
        return None
    seen = {name.lower(): value for name, value in items}
    if len(seen) != len(items):  # a repeated header: the generic path answers it
        return None
    for name in _GENERIC_ONLY:
        if name in seen:
            return None
    if extensions and "sec-websocket-extensions" in seen:
        return None
    key = seen.get("sec-websocket-key")
    if (seen.get("upgrade", "").lower() != "websocket"
            or seen.get("sec-websocket-version") != "13"
            or key is None or not _KEY.fullmatch(key)):
        return None
    tokens = [t.strip(" \t") for t in seen.get("connection", "").split(",")]
    if not all(_CONNECTION_TOKEN.fullmatch(t) for t in tokens) or \
            "upgrade" not in (t.lower() for t in tokens):
        return None
    return Upgrade(path, key, seen.get("origin"), items)


def accept_key(key: str) -> bytes:
    """``Sec-WebSocket-Accept`` for a client's key (RFC 6455 section 4.2.2)."""
    return base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest())


class _DateCache:
    """The HTTP ``Date`` header's value, formatted once per second rather than per 101."""

    second = -1
    text = b""

    @classmethod
    def now(cls) -> bytes:
        second = int(time.time())
        if second != cls.second:
            cls.text = email.utils.formatdate(second, usegmt=True).encode()
            cls.second = second
        return cls.text


def switching_protocols(accept: bytes, server_header: bytes) -> bytes:
    """The 101 response, with the headers websockets' ``accept()`` sends (no extension,
    no subprotocol: the fast path takes only requests that negotiate none)."""
    return (b"HTTP/1.1 101 Switching Protocols\r\nDate: " + _DateCache.now() +
            b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
            accept + b"\r\nServer: " + server_header + b"\r\n\r\n")


# admit(conn, path, origin) -> None when admitted (a pool slot taken), else the refusal
Admit = Callable[["ServerConnection", str, "str | None"], "Response | None"]


class FastHandshake(OneRequestConnection):
    """A server connection that answers a plain upgrade from ``data_received``.

    Subclasses set ``fast_admit`` (the server's admission, None: no fast path),
    ``fast_server_header`` and ``fast_extensions``. ``request`` and ``response`` of a
    connection answered here are made when first read (nothing on the server reads
    them; building websockets' ``Headers`` was a tenth of the path's cost)."""

    fast_admit: Admit | None = None
    fast_server_header = b""
    fast_extensions = False
    _first_read = True
    _upgrade: Upgrade | None = None
    _accept = b""
    _answered = False
    _early_response: Response | None = None
    _request: Request | None = None
    _response: Response | None = None

    @property
    def request(self) -> Request | None:
        upgrade = self._upgrade
        if self._request is None and upgrade is not None:
            self._request = Request(upgrade.path, Headers(upgrade.items))
        return self._request

    @request.setter
    def request(self, value: Request | None) -> None:
        self._request = value

    @property
    def response(self) -> Response | None:
        if self._response is None and self._answered:
            self._response = Response(101, "Switching Protocols", Headers([
                ("Upgrade", "websocket"), ("Connection", "Upgrade"),
                ("Sec-WebSocket-Accept", self._accept.decode()),
                ("Server", self.fast_server_header.decode())]))
        return self._response

    @response.setter
    def response(self, value: Response | None) -> None:
        self._response = value

    def data_received(self, data: bytes) -> None:
        if self._first_read:
            self._first_read = False
            if self.fast_admit is not None and self._answer(data):
                return
        super().data_received(data)

    def _answer(self, data: bytes) -> bool:
        """Decide the handshake now if ``data`` is a plain upgrade; False: not handled."""
        protocol = self.protocol
        if protocol.state is not CONNECTING or self._request is not None:
            return False
        upgrade = parse_upgrade(data, self.fast_extensions)
        if upgrade is None or not self.server.is_serving():
            return False
        assert self.fast_admit is not None
        refusal = self.fast_admit(self, upgrade.path, upgrade.origin)
        self._upgrade = upgrade
        if refusal is not None:  # sent by websockets' own path, as any other refusal
            self._early_response = refusal
        else:
            self._accept = accept = accept_key(upgrade.key)
            protocol.writes.append(switching_protocols(accept, self.fast_server_header))
            protocol.state = OPEN
            protocol.parser = protocol.parse()  # frames from here on, not a request
            next(protocol.parser)
            self._answered = True
            self.send_data()
        self.request_rcvd.set_result(None)
        return True

    def process_event(self, event: Event) -> None:
        if self._answered:  # every event is a frame: the request was never an event
            Connection.process_event(self, event)
        else:
            super().process_event(event)

    async def handshake(self, process_request: Any = None, process_response: Any = None,
                        server_header: Any = http11.SERVER) -> None:
        if self.fast_admit is None:  # no fast path (baseline): websockets' handshake as is
            await super().handshake(process_request, process_response, server_header)
            return
        if not self.request_rcvd.done():
            await asyncio.wait([self.request_rcvd, self.connection_lost_waiter],
                               return_when=asyncio.FIRST_COMPLETED)
        if self._answered:
            return
        early = self._early_response
        if early is not None:
            def refuse(conn: ServerConnection, request: Request) -> Response:
                return early
            process_request = refuse
        await super().handshake(process_request, process_response, server_header)
