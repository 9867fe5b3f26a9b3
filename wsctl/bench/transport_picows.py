"""The ``picows`` bench transport: picows (Cython WebSocket framing) behind the bench interface.

picows parses frames in C and calls a listener per frame, so a message reaches the
:class:`~wsctl.bench.transport_base.Receiver` with no Python-level parser, queue or future
in between. This module adapts it to :mod:`wsctl.bench.transport_base`:

* text and binary messages (fragmented ones reassembled) -> ``on_message(data, at)``;
* the peer's close frame is answered and the TCP connection closed; ``on_close`` gets the
  peer's code (1005 for a close frame without one, ``None`` when no close frame came);
* server pings are answered by picows itself (``enable_auto_pong``);
* connect failures become :class:`~wsctl.errors.ConnectError` kinds (picows' own handshake
  errors mapped here, the rest by ``wsctl.errors.classify_connect_error``).

picows is imported here and only here, so ``--transport websockets`` never loads it.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl as ssl_module
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from picows import (
    WSCloseCode,
    WSError,
    WSFrame,
    WSInvalidStatusError,
    WSListener,
    WSMsgType,
    WSParsedURL,
    WSTransport,
    WSUpgradeRequest,
    WSUpgradeResponse,
    ws_connect,
)

from wsctl.bench.transport_base import Channel, Receiver
from wsctl.errors import ConnectError, classify_connect_error, status_connect_error

__all__ = ["PicowsTransport", "transport"]

CLOSE_TIMEOUT = 2.0
"""Seconds ``close()`` waits for the peer's close frame before dropping the TCP connection."""

READ_BUFFER = 2048
"""Initial size of picows' read buffer per connection (its default is 16 KiB, most of a held
connection's memory); it grows by doubling when a larger frame comes."""

NO_STATUS = 1005
"""RFC 6455 code reported for a close frame that carried no status code."""

# One logger for every connection. Given a logging.Logger (or a name), picows makes a child
# Logger per connection (~0.5 KiB each, kept until the connection goes); given anything else,
# it uses that as it is.
_LOGGER = logging.LoggerAdapter(logging.getLogger("picows.client"))

_TEXT = WSMsgType.TEXT
_BINARY = WSMsgType.BINARY
_CONTINUATION = WSMsgType.CONTINUATION
_CLOSE = WSMsgType.CLOSE
_monotonic = time.monotonic


class _Listener(WSListener):
    """Per-connection picows listener: frames in, receiver callbacks out."""

    __slots__ = ("receiver", "on_message", "fragments", "fragment_text", "closed",
                 "close_timer")

    def __init__(self, receiver: Receiver) -> None:
        super().__init__()
        self.receiver = receiver
        self.on_message = receiver.on_message  # bound once: called for every message
        self.fragments: list[bytes] | None = None
        self.fragment_text = False
        self.closed = False
        self.close_timer: asyncio.TimerHandle | None = None

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        msg_type = frame.msg_type
        if msg_type is _TEXT:
            if frame.fin:
                self.on_message(frame.get_payload_as_utf8_text(), _monotonic())
            else:
                self.fragments = [frame.get_payload_as_bytes()]
                self.fragment_text = True
        elif msg_type is _BINARY:
            if frame.fin:
                self.on_message(frame.get_payload_as_bytes(), _monotonic())
            else:
                self.fragments = [frame.get_payload_as_bytes()]
                self.fragment_text = False
        elif msg_type is _CONTINUATION:
            if self.fragments is None:
                return  # a continuation with no start: nothing to append to
            self.fragments.append(frame.get_payload_as_bytes())
            if frame.fin:
                whole = b"".join(self.fragments)
                self.fragments = None
                self.on_message(whole.decode() if self.fragment_text else whole,
                                _monotonic())
        elif msg_type is _CLOSE:
            # picows leaves the closing handshake to us: echo the code, then hang up.
            if not transport.is_close_frame_sent:
                code = frame.get_close_code()
                transport.send_close(code if code != WSCloseCode.NO_INFO else WSCloseCode.OK)
            transport.disconnect()
        # PING is answered by picows (enable_auto_pong); a PONG needs nothing.

    def pause_writing(self) -> None:
        """Backpressure is read from ``Channel.buffered``; without this picows logs a warning
        on every crossing of the write buffer's high-water mark."""

    def resume_writing(self) -> None:
        """See :meth:`pause_writing`."""

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if self.close_timer is not None:
            self.close_timer.cancel()
            self.close_timer = None
        if self.closed:
            return
        self.closed = True
        handshake = transport.close_handshake
        received = handshake.recv if handshake is not None else None
        if received is None:
            self.receiver.on_close(None, "")
        else:
            code = int(received.code.value)
            self.receiver.on_close(code if code else NO_STATUS, received.reason or "")


class _PicowsChannel:
    """Channel over a picows :class:`WSTransport`; ``send`` writes the frame now."""

    __slots__ = ("_transport", "_listener", "send")

    def __init__(self, transport: WSTransport, listener: _Listener) -> None:
        self._transport = transport
        self._listener = listener
        # ``send(text)`` is picows' own send with the type bound: no Python frame per
        # message. After a close frame or disconnect picows ignores the write; on_close
        # reports it.
        self.send: Callable[[str], None] = partial(transport.send, _TEXT)

    def close(self, code: int = 1000, reason: str = "") -> None:
        transport = self._transport
        listener = self._listener
        if transport.is_disconnected or transport.is_close_frame_sent:
            return
        transport.send_close(WSCloseCode(code), reason.encode())
        # The peer should answer and hang up; if it does not, drop the connection.
        listener.close_timer = asyncio.get_running_loop().call_later(
            CLOSE_TIMEOUT, transport.disconnect)

    async def wait_closed(self) -> None:
        try:
            await self._transport.wait_disconnected()
        except Exception:
            pass

    @property
    def buffered(self) -> int:
        return int(self._transport.underlying_transport.get_write_buffer_size())


class PicowsTransport:
    """The ``picows`` transport; no compression, no proxy, pings answered automatically."""

    name = "picows"

    async def connect(
        self,
        url: str,
        receiver: Receiver,
        *,
        timeout: float,
        ssl: ssl_module.SSLContext | None = None,
        headers: Sequence[tuple[str, str]] = (),
        subprotocols: Sequence[str] = (),
    ) -> Channel:
        listener = _Listener(receiver)
        # We open the TCP socket ourselves so that a timeout during the HTTP upgrade can
        # still reach it: picows keeps its transport to itself until the handshake is done.
        sockets: list[socket.socket] = []

        async def open_socket(parsed: WSParsedURL) -> socket.socket:
            return await _open_socket(parsed, sockets)

        def factory(request: WSUpgradeRequest, response: WSUpgradeResponse) -> _Listener:
            return listener

        extra: dict[str, Any] = {}
        if ssl is not None:
            extra["ssl_context"] = ssl
        wanted = list(headers)
        if subprotocols:  # picows has no option for it: the header, as RFC 6455 writes it
            wanted.append(("Sec-WebSocket-Protocol", ", ".join(subprotocols)))
        if wanted:
            extra["extra_headers"] = wanted
        try:
            async with asyncio.timeout(timeout):
                transport, got = await ws_connect(
                    factory,
                    url,
                    websocket_handshake_timeout=None,  # the asyncio.timeout above covers it
                    enable_auto_ping=False,
                    enable_auto_pong=True,
                    max_frame_size=2**31 - 1,
                    read_buffer_init_size=READ_BUFFER,
                    logger_name=_LOGGER,
                    socket_factory=open_socket,
                    use_aiofastnet=False,
                    **extra,
                )
        except BaseException as exc:
            _hang_up(sockets)
            if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt | SystemExit):
                raise
            raise _classify(exc, timeout) from exc
        if got is None:
            # picows returns without a listener when the peer hung up mid-handshake.
            _hang_up(sockets)
            raise classify_connect_error(EOFError())
        return _PicowsChannel(transport, listener)


async def _open_socket(parsed: WSParsedURL, sockets: list[socket.socket]) -> socket.socket:
    """Resolve and connect a non-blocking TCP socket, remembered in ``sockets``."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(parsed.host, parsed.port, type=socket.SOCK_STREAM)
    error: OSError | None = None
    for family, kind, proto, _, address in infos:
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await loop.sock_connect(sock, address)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        except BaseException:
            sock.close()
            raise
        sockets.append(sock)
        return sock
    raise error if error is not None else OSError(f"no address for {parsed.host}")


def _hang_up(sockets: list[socket.socket]) -> None:
    """Make a half-open connection's transport close itself (it sees EOF and closes).

    ``shutdown`` rather than ``close``: the asyncio transport still owns the descriptor.
    """
    for sock in sockets:
        if sock.fileno() != -1:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _classify(exc: BaseException, timeout: float) -> ConnectError:
    """picows' handshake errors, then the one classifier for everything else."""
    if isinstance(exc, WSInvalidStatusError) and exc.response is not None:
        response = exc.response
        return status_connect_error(int(response.status), response.headers.get("Retry-After"))
    if isinstance(exc, WSError):  # a bad URL, or a malformed answer to the upgrade
        return ConnectError("protocol", f"WebSocket handshake failed: {exc}")
    return classify_connect_error(exc, timeout)


def transport() -> PicowsTransport:
    """A new :class:`PicowsTransport` (the module's factory)."""
    return PicowsTransport()
