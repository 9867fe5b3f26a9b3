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
