"""WebSocket clients for the Locust user (``scenarios/locustfile.py``): blocking sockets,
which Locust's gevent monkey-patching turns into cooperative ones.

Nothing here imports gevent or locust, but these clients block: they belong in a Locust
(gevent) process, never on an asyncio event loop. Both raise what websockets raises (and
OSError, TimeoutError, EOFError), which ``wsctl.errors.classify_connect_error`` names.

    GeventWebSocket(url, timeout=..., user_agent=...)   websockets' sans-I/O protocol, driven
                                                         in the calling greenlet
    sync_connect(url, timeout=..., user_agent=...)      websockets' own sync client
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.sync.client import connect
from websockets.uri import parse_uri

__all__ = ["GeventWebSocket", "sync_connect"]

MAX_SIZE = 2**20

# websockets 17 wants connect() as a context manager unless told the connection is kept.
_open: Callable[..., Any] = (
    functools.partial(connect, legacy=True)
    if "legacy" in inspect.signature(connect).parameters else connect
)


class GeventWebSocket:
    """A WebSocket client on websockets' sans-I/O ``ClientProtocol``, driven in the calling
    greenlet: no reader thread, no queue, no lock per message (the sync client has all
    three). Answers pings; ``recv`` raises ``ConnectionClosed`` like websockets does."""

    def __init__(self, url: str, *, timeout: float, user_agent: str) -> None:
        uri = parse_uri(url)
        sock = socket.create_connection((uri.host, uri.port), timeout=timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if uri.secure:
                sock = ssl.create_default_context().wrap_socket(sock, server_hostname=uri.host)
            self.sock = sock
            self.proto = ClientProtocol(uri, max_size=MAX_SIZE)
            self.pending: deque[str | bytes] = deque()
            self.fragments: list[bytes] = []
            self.text = False
            self.eof = False
            self.timeout: float | None = timeout
            request = self.proto.connect()
            request.headers["User-Agent"] = user_agent
            self.proto.send_request(request)
            self._flush()
            while self.proto.state is State.CONNECTING and self.proto.handshake_exc is None:
                if self.eof:
                    raise EOFError("connection closed during the handshake")
                self._read(timeout)
            if self.proto.handshake_exc is not None:
                raise self.proto.handshake_exc
        except BaseException:
            sock.close()
            raise

    def _flush(self) -> None:
        for chunk in self.proto.data_to_send():
            if chunk:
                self.sock.sendall(chunk)
            else:  # the protocol wants the write side closed
                with contextlib.suppress(OSError):
                    self.sock.shutdown(socket.SHUT_WR)

    def _read(self, timeout: float | None) -> None:
        if timeout != self.timeout:
            self.sock.settimeout(timeout)
            self.timeout = timeout
        data = self.sock.recv(262144)
        proto = self.proto
        if data:
            proto.receive_data(data)
        else:
            self.eof = True
            proto.receive_eof()
        for event in proto.events_received():
            if not isinstance(event, Frame):
                continue  # the handshake response
            opcode = event.opcode
            if opcode is Opcode.TEXT or opcode is Opcode.BINARY or opcode is Opcode.CONT:
                if opcode is not Opcode.CONT:
                    self.text = opcode is Opcode.TEXT
                    self.fragments = []
                if event.fin and not self.fragments:
                    whole = bytes(event.data)
                else:
                    self.fragments.append(bytes(event.data))
                    if not event.fin:
                        continue
                    whole, self.fragments = b"".join(self.fragments), []
                self.pending.append(whole.decode() if self.text else whole)
        self._flush()  # pongs, the close handshake

    def send(self, text: str) -> None:
        if self.proto.state is not State.OPEN:
            raise ConnectionClosed(self.proto.close_rcvd, self.proto.close_sent)
        self.proto.send_text(text.encode())
        self._flush()

    def recv(self, timeout: float | None = None) -> str | bytes:
        pending = self.pending
        while not pending:
            if self.eof or self.proto.close_rcvd is not None:
                raise ConnectionClosed(self.proto.close_rcvd, self.proto.close_sent)
            self._read(timeout)
        return pending.popleft()

    def close(self) -> None:
        """Close handshake (at most a second), then the socket."""
        try:
            if self.proto.state is State.OPEN:
                self.proto.send_close(1000)
                self._flush()
                deadline = time.monotonic() + 1.0
                while not self.eof and time.monotonic() < deadline:
                    self._read(max(0.01, deadline - time.monotonic()))
        except (OSError, ConnectionClosed):
            pass
        finally:
            self.sock.close()


def sync_connect(url: str, *, timeout: float, user_agent: str) -> Any:
    """websockets' sync client (a reader thread per connection), set up like the bench's."""
    return _open(url, open_timeout=timeout, close_timeout=1, compression=None, proxy=None,
                 ping_interval=None, max_size=MAX_SIZE, user_agent_header=user_agent)
