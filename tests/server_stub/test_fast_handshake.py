"""The reference server's fast handshake: a strict subset of websockets' path, same answers."""

from __future__ import annotations

import asyncio

import pytest

from server_stub.auth import issue_token
from server_stub.fast_handshake import FastHandshake, accept_key, parse_upgrade

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
PLAIN = ("GET /ws/a?epoch=e&offset=0 HTTP/1.1\r\nHost: 127.0.0.1:8765\r\n"
         "Upgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
         f"Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n"
         "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
         "Origin: http://a\r\nUser-Agent:  spaced \t\r\n\r\n")


def test_a_plain_upgrade_is_parsed():
    """A browser-like upgrade yields its path with the query, key, origin and every header
    with its value stripped as websockets strips it."""
    upgrade = parse_upgrade(PLAIN.encode())
    assert upgrade is not None
    assert (upgrade.path, upgrade.key, upgrade.origin) == ("/ws/a?epoch=e&offset=0", KEY,
                                                           "http://a")
    assert ("User-Agent", "spaced") in upgrade.items and len(upgrade.items) == 8


@pytest.mark.parametrize("change", [
    ("GET /ws/a", "POST /ws/a"), ("HTTP/1.1\r\nHost", "HTTP/1.0\r\nHost"),
    ("GET /ws/a?", "GET /metrics?"), ("GET /ws/a?", "GET /ws/a#f?"),
    ("Host: 127.0.0.1:8765\r\n", "Host: a\r\nHost: b\r\n"),  # repeated header
    ("Origin: http://a", "Origin: http://a\r\norigin: http://b"),
    ("Upgrade: websocket", "Upgrade: h2c"), ("Upgrade: websocket", "Upgrade: websocket, x"),
    ("keep-alive, Upgrade", "keep-alive"), ("keep-alive, Upgrade", "keep-alive,,Upgrade"),
    ("Version: 13", "Version: 12"), (KEY, KEY[:-1]), (KEY, KEY[:-2] + "A="),
    (KEY, "dGhlIHNhbXBsZSBub25j ZQ=="),
    ("Origin: http://a", "Origin: http://\xe9"),  # obs-text: the generic path decides
    ("User-Agent:", "User Agent:"), ("spaced", "spa\nced"), ("spaced", "spa\rced"),
    ("\r\n\r\n", "\r\nContent-Length: 0\r\n\r\n"),
    ("\r\n\r\n", "\r\nTransfer-Encoding: chunked\r\n\r\n"),
    ("\r\n\r\n", "\r\nSec-WebSocket-Protocol: chat\r\n\r\n"),
    ("\r\n\r\n", "\r\n\r\n\x81"),  # bytes after the head
    ("\r\n\r\n", "\r\n"),  # head not complete in this read
])
def test_anything_unusual_goes_the_generic_way(change):
    """A request websockets would read differently, refuse, or that is incomplete or
    followed by more bytes is not parsed here (None: websockets' own path decides)."""
    old, new = change
    assert old in PLAIN
    assert parse_upgrade(PLAIN.replace(old, new, 1).encode("latin-1")) is None


def test_an_extension_offer_goes_the_generic_way_when_the_server_negotiates():
    """With compression on, an extension offer is left to websockets' negotiation."""
    assert parse_upgrade(PLAIN.encode(), extensions=False) is not None
    assert parse_upgrade(PLAIN.encode(), extensions=True) is None


def test_accept_key_is_rfc_6455s():
    """The accept key of RFC 6455's own example (section 1.3), as websockets computes it."""
    from websockets.utils import accept_key as websockets_accept_key

    assert accept_key(KEY) == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert accept_key(KEY).decode() == websockets_accept_key(KEY)


async def exchange(port: int, head: str) -> bytes:
    """Write ``head`` in one write; the response head (and what followed it so far)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head.encode())
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = await asyncio.wait_for(reader.read(4096), 5)
            if not chunk:
                break
            data += chunk
    finally:
        writer.close()
    return data


def answer(data: bytes) -> tuple[str, dict[str, str]]:
    """Status line and headers (without Date) of a response."""
    head = data.partition(b"\r\n\r\n")[0].decode()
    status, *lines = head.split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    headers.pop("Date")
    return status, headers


def head_for(path: str, origin: str = "http://a") -> str:
    return PLAIN.replace("/ws/a?epoch=e&offset=0", path, 1).replace("http://a", origin)


@pytest.mark.parametrize("path, origin", [
    ("/ws/a", "http://a"),  # admitted: 101
    ("/ws/b", "http://evil"),  # origin refused: 403
    ("/ws/bad*name", "http://a"),  # stream name: 400
    ("/ws/c?epoch=e", "http://a"),  # resume needs both: 400
    ("/ws/d?token=nope", "http://a"),  # bad token: 401/403
])
async def test_fast_and_generic_paths_answer_alike(make_server, path, origin):
    """The same request gets the same status and headers (Date aside) with the fast path
    on and off, and the fast path is what answered a plain upgrade of the reference."""
    answers = []
    for fast in (True, False):
        server = await make_server(origins=("http://a",),
                                   secret="s" if "token" in path else None)
        if not fast:
            server._conn_class.fast_admit = None
        answers.append(answer(await exchange(server.port, head_for(path, origin))))
        if fast and path == "/ws/a":
            (session,) = list(server.pool)
            assert session.conn._answered  # the 101 came from data_received
    assert answers[0] == answers[1]
    assert answers[0][0].startswith("HTTP/1.1 101" if path == "/ws/a" else "HTTP/1.1 4")


async def test_a_good_token_is_admitted_by_the_fast_path(make_server):
    """A valid token opens the stream through the fast path, welcome first."""
    server = await make_server(secret="s")
    token = issue_token("s", "a", 60)
    data = await exchange(server.port, head_for(f"/ws/a?token={token}"))
    assert data.startswith(b"HTTP/1.1 101 "), data[:200]
    assert answer(data)[1]["Sec-WebSocket-Accept"] == accept_key(KEY).decode()


async def test_a_full_server_refuses_through_the_fast_path_with_retry_after(make_server):
    """At capacity the fast path's refusal is websockets' 503 with Retry-After, counted."""
    server = await make_server(max_connections=1)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(head_for("/ws/a").encode())
    await reader.readuntil(b"\r\n\r\n")
    try:
        status, headers = answer(await exchange(server.port, head_for("/ws/b")))
    finally:
        writer.close()
    assert status.startswith("HTTP/1.1 503 ") and headers["Retry-After"] == "1"
    assert server.pool.counters.refused_by_kind["capacity"] == 1


async def test_the_baseline_keeps_websockets_handshake(make_server):
    """The baseline profile never takes the fast path (EP-0001's "before" is stock)."""
    server = await make_server(profile="baseline")
    data = await exchange(server.port, head_for("/ws/a"))
    assert data.startswith(b"HTTP/1.1 101 ")
    (session,) = list(server.pool)
    assert not isinstance(session.conn, FastHandshake)
