"""Small client-side helpers for server tests: receive typed messages, raw handshakes."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import struct

from websockets.exceptions import ConnectionClosed

from wsctl import protocol as p


async def recv_message(ws: object, timeout: float = 5.0) -> p.ServerMessage:
    """Next protocol message from a websockets client connection."""
    frame = await asyncio.wait_for(ws.recv(), timeout)  # type: ignore[attr-defined]
    return p.parse_server(frame)


async def read_until_closed(ws: object, timeout: float = 5.0) -> None:
    """Read and drop frames until the server closes ``ws`` (TimeoutError if a frame or the
    close takes longer than ``timeout``)."""
    with contextlib.suppress(ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), timeout)  # type: ignore[attr-defined]


async def closed_going_away(clients: list, retry_ms: int, timeout: float = 5.0) -> None:
    """Every client is closed 1001 (going away) with ``retry_ms`` as its retry hint."""
    for ws in clients:
        await read_until_closed(ws, timeout)
        assert ws.close_code == 1001
        assert p.retry_hint_ms(ws.close_reason or "") == retry_ms


async def recv_events(ws: object, n: int, timeout: float = 5.0) -> list[p.Event]:
    """The next ``n`` messages, which must all be events."""
    events = []
    for _ in range(n):
        message = await recv_message(ws, timeout)
        assert isinstance(message, p.Event), message
        events.append(message)
    return events


async def raw_handshake(host: str, port: int, path: str) -> tuple[
        asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    """Open a TCP connection and do a WebSocket handshake by hand.

    Returns the reader, the writer and whatever bytes followed the response headers. The
    caller then owns the socket: nothing answers pings unless the caller does.
    """
    reader, writer = await asyncio.open_connection(host, port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer, b""


def parse_frames(data: bytes) -> list[tuple[int, bytes]]:
    """Split unmasked server frames into (opcode, payload)."""
    frames = []
    i = 0
    while i + 2 <= len(data):
        opcode = data[i] & 0x0F
        length = data[i + 1] & 0x7F
        i += 2
        if length == 126:
            (length,) = struct.unpack("!H", data[i:i + 2])
            i += 2
        elif length == 127:
            (length,) = struct.unpack("!Q", data[i:i + 8])
            i += 8
        frames.append((opcode, data[i:i + length]))
        i += length
    return frames
