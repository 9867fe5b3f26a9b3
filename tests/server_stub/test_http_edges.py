"""Hostile HTTP heads against the reference server: always a short answer, never a 500."""

from __future__ import annotations

import asyncio
import logging

import pytest


async def raw_request(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Write ``data`` in one write and read everything until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
        await writer.wait_closed()


UPGRADE = ("Upgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")


@pytest.mark.parametrize("path", ["/ws/a", "/ws/health", "/metrics", "/"])
@pytest.mark.parametrize("extra", ["Upgrade: websocket\r\n", "Origin: http://a\r\n"
                                   "Origin: http://b\r\n", "Host: x\r\n"])
async def test_duplicate_handshake_headers_are_400_without_traceback(
        make_server, caplog, path, extra):
    """A duplicated Upgrade, Origin or Host header is answered 400 naming it, logged as one
    line without a traceback, on every path."""
    server = await make_server(origins=("http://a",))
    head = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{UPGRADE}{extra}\r\n"
    with caplog.at_level(logging.DEBUG):
        response = await raw_request(server.port, head.encode())
    assert response.startswith(b"HTTP/1.1 400 "), response[:200]
    assert b"duplicate" in response and b"header" in response, response
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records]


async def test_pipelined_requests_get_an_answer(make_server):
    """Two GETs of /ws/health in one write get at least the first one's 200, never silence."""
    server = await make_server()
    one = b"GET /ws/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    response = await raw_request(server.port, one * 2)
    assert response.startswith(b"HTTP/1.1 200 "), response[:200]
    assert b'"status"' in response


def masked_text(payload: bytes) -> bytes:
    """One masked client text frame (payload under 126 bytes)."""
    mask = b"\x01\x02\x03\x04"
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + mask + body


async def test_frames_sent_with_the_upgrade_request_are_still_read(make_server):
    """A frame written in the same write as the upgrade request is answered after the 101
    (held during the handshake, parsed at once after it, not when more data comes)."""
    from tests.server_stub.helpers import parse_frames

    server = await make_server()
    head = f"GET /ws/a HTTP/1.1\r\nHost: 127.0.0.1\r\n{UPGRADE}\r\n".encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(head + masked_text(b'{"type":"ping","t":42}'))
    await writer.drain()
    data = b""
    try:
        while b'"pong"' not in data:
            data += await asyncio.wait_for(reader.read(4096), 5)
    finally:
        writer.close()
    status, _, rest = data.partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 101"), status
    assert (1, b'{"type":"pong","t":42.0}') in parse_frames(rest), parse_frames(rest)
