"""The connection log cannot be forged or flooded by request bytes."""

from __future__ import annotations

import json
import socket

from server_stub.logs import FIELD_LIMIT


def _raw_request(port: int, path: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     b"Sec-WebSocket-Version: 13\r\nOrigin: https://evil.example\r\n\r\n")
        return sock.recv(4096)


def _hostile_lines(server_process, fmt: str) -> list[str]:
    server = server_process("--log-level", "info", "--log-format", fmt,
                            "--origin", "https://app.example")
    _raw_request(server.port, b"/ws/\x1b[2J\x1b]0;pwned\x07" + b"b" * 8000)
    _raw_request(server.port, b"/ws/a\x00\x1b[31mRED")
    server.signal(15)
    server.proc.wait(10)
    return [line for line in server.logs().splitlines() if "refused" in line]


def test_text_log_escapes_control_bytes_and_cuts_long_paths(server_process):
    """A path with ESC, BEL and 8 KB becomes one printable, bounded text line."""
    lines = _hostile_lines(server_process, "text")
    assert len(lines) == 2, lines
    for line in lines:
        assert line.isprintable(), repr(line)
    assert "\\x1b[2J" in lines[0] and "\\x07" in lines[0]
    assert len(lines[0]) < FIELD_LIMIT + 400 and "chars)" in lines[0]


def test_json_log_is_cut_and_escaped_too(server_process):
    """In JSON lines the message is escaped and cut the same way, and each line parses."""
    lines = _hostile_lines(server_process, "json")
    assert len(lines) == 2, lines
    msg = json.loads(lines[0])["msg"]
    assert msg.isprintable() and "\\x1b[2J" in msg
    assert len(msg) < FIELD_LIMIT + 400
