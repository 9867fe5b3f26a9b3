"""The bench's ``websockets`` transport: asyncio ClientConnection, whole messages handed
to the receiver as they are parsed. Imported only when ``--transport websockets`` is
asked for (``wsctl.bench.transport.get_transport``), so that a worker on the default
picows transport does not load websockets' client.
"""

from __future__ import annotations

import asyncio
import ssl as ssl_module
import time
from collections.abc import Sequence
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.typing import Subprotocol

from wsctl.bench.transport_base import Channel, Receiver
from wsctl.errors import classify_connect_error

__all__ = ["WebsocketsTransport"]


_TEXT = Opcode.TEXT
_BINARY = Opcode.BINARY
_CONT = Opcode.CONT
_OPEN = State.OPEN


class _LeanConnection(ClientConnection):
    """ClientConnection that hands whole messages to a receiver instead of queueing them."""

    receiver: Receiver | None = None
    _fragments: list[bytes] | None = None
    _fragment_text = False
    _reported = False

    def process_event(self, event: Any) -> None:
        receiver = self.receiver
        if receiver is None or not isinstance(event, Frame):
            # The handshake response (and frames before a receiver is attached).
            super().process_event(event)
            return
        opcode = event.opcode
        if opcode is _TEXT or opcode is _BINARY:
            if event.fin:
                data = event.data
                if opcode is _TEXT:
                    receiver.on_message(bytes(data).decode(), time.monotonic())
                else:
                    receiver.on_message(bytes(data), time.monotonic())
            else:
                self._fragments = [bytes(event.data)]
                self._fragment_text = opcode is _TEXT
        elif opcode is _CONT:
            if self._fragments is None:
                return
            self._fragments.append(bytes(event.data))
            if event.fin:
                whole = b"".join(self._fragments)
                self._fragments = None
                at = time.monotonic()
                receiver.on_message(whole.decode() if self._fragment_text else whole, at)
        else:
            super().process_event(event)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        receiver = self.receiver
        if receiver is not None and not self._reported:
            self._reported = True
            rcvd = self.protocol.close_rcvd
            if rcvd is None:
                receiver.on_close(None, "")
            else:
                receiver.on_close(int(rcvd.code), rcvd.reason)


class _WebsocketsChannel:
    """Channel over a :class:`_LeanConnection`: sends write the frame to the socket now."""

    __slots__ = ("_conn", "_protocol", "_closing")

    def __init__(self, conn: _LeanConnection) -> None:
        self._conn = conn
        self._protocol = conn.protocol
        self._closing: asyncio.Task[None] | None = None

    def send(self, data: str) -> None:
        protocol = self._protocol
        if protocol.state is not _OPEN:
            return  # closing or closed: on_close reports it; nothing to write to
        protocol.send_text(data.encode())
        self._conn.send_data()

    def close(self, code: int = 1000, reason: str = "") -> None:
        if self._closing is None:
            self._closing = asyncio.get_running_loop().create_task(self._conn.close(code, reason))

    async def wait_closed(self) -> None:
        if self._closing is not None:
            try:
                await self._closing
            except Exception:
                pass
        await self._conn.wait_closed()

    @property
    def buffered(self) -> int:
        transport = self._conn.transport
        return int(transport.get_write_buffer_size()) if transport is not None else 0


class WebsocketsTransport:
    """The ``websockets`` transport: asyncio ClientConnection, no proxy, no compression."""

    name = "websockets"

    def __init__(self, *, compression: str | None = None) -> None:
        self.compression = compression

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
        extra: dict[str, Any] = {}
        if ssl is not None:
            extra["ssl"] = ssl
        if headers:
            extra["additional_headers"] = list(headers)
        if subprotocols:
            extra["subprotocols"] = [Subprotocol(name) for name in subprotocols]
        try:
            conn = await connect(
                url,
                create_connection=_LeanConnection,
                compression=self.compression,
                proxy=None,
                open_timeout=timeout,
                ping_interval=None,
                ping_timeout=None,
                close_timeout=2.0,
                max_size=None,
                user_agent_header=None,
                **extra,
            )
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt | SystemExit):
                raise
            raise classify_connect_error(exc, timeout) from exc
        assert isinstance(conn, _LeanConnection)
        conn.receiver = receiver
        # Frames that arrived before the receiver was attached sit in the assembler.
        _drain_early(conn, receiver)
        if conn.protocol.state is not _OPEN and not conn._reported:
            # Closed between the handshake and now: report it like any other close.
            conn._reported = True
            rcvd = conn.protocol.close_rcvd
            receiver.on_close(
                None if rcvd is None else int(rcvd.code), "" if rcvd is None else rcvd.reason
            )
        return _WebsocketsChannel(conn)


def _drain_early(conn: _LeanConnection, receiver: Receiver) -> None:
    """Deliver messages queued in the assembler before the receiver was attached."""
    assembler = conn.recv_messages
    frames = getattr(getattr(assembler, "frames", None), "queue", None)
    if not frames:
        return
    at = time.monotonic()
    parts: list[bytes] = []
    text = False
    while frames:
        frame = frames.popleft()
        if frame.opcode is _TEXT or frame.opcode is _BINARY:
            parts = [bytes(frame.data)]
            text = frame.opcode is _TEXT
        else:
            parts.append(bytes(frame.data))
        if frame.fin:
            whole = b"".join(parts)
            receiver.on_message(whole.decode() if text else whole, at)
            parts = []
    maybe_resume = getattr(assembler, "maybe_resume", None)
    if maybe_resume is not None:
        maybe_resume()
