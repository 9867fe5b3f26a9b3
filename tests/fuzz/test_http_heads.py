"""HTTP request heads sent raw to the reference server: whatever the method, path, headers
(repeated, with control bytes, over-long), the answer is a well-formed HTTP status line —
101 for a valid upgrade, 200 for the HTTP routes, else a 4xx (or 503) — never a 500, never
silence; and the server keeps serving."""

from __future__ import annotations

import re
import socket

from hypothesis import example, given
from hypothesis import strategies as st

from tests.fuzz.support import budget, read_until_closed, rss_kib
from tests.fuzz.test_protocol import still_serves

STATUS = re.compile(rb"HTTP/1\.1 (\d{3}) [^\r\n]*\r\n")
UPGRADE = [("Upgrade", "websocket"), ("Connection", "Upgrade"),
           ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Version", "13")]

token = st.text(st.characters(codec="ascii", exclude_characters="\r\n"), min_size=0, max_size=30)
wild = st.text(st.characters(exclude_characters="\r\n"), max_size=60)
headers = st.lists(st.tuples(
    st.sampled_from(["Host", "Upgrade", "Connection", "Origin", "Sec-WebSocket-Key",
                     "Sec-WebSocket-Version", "Content-Length", "Transfer-Encoding",
                     "Authorization", "X-" + "a" * 9000]) | token,
    st.sampled_from(["websocket", "Upgrade", "13", "127.0.0.1", "0", "-1", "chunked",
                     "\x00\x1b[2J", "v" * 9000]) | wild,
), max_size=8)
paths = st.sampled_from(["/ws/health", "/metrics", "/", "/ws/a", "/ws/" + "a" * 129,
                         "/ws/%00", "*", "/ws/a?offset=x&epoch=", "/" + "p" * 9000]) | wild


@example("GET", "/ws/a", [("Host", "a"), ("Host", "b"), *UPGRADE], True)  # repeated Host
@example("GET", "/ws/health", [("Origin", "a"), ("Origin", "b")], False)
@example("GET", "/ws/a", [("H" + "\x00" * 3, "x")], True)  # was closed without an answer
@example("GET", "/metrics", [], True)  # an HTTP route answers 200 to an upgrade too
@given(st.sampled_from(["GET", "POST", "HEAD", "PUT", "OPTIONS", "get", "G\x00T", ""]) | token,
       paths, headers, st.booleans())
@budget(150)
def test_any_head_gets_a_status_line(server, method, path, extra, upgrade):
    """A status line within 5 s; 101 only for an upgrade; never 5xx but 503."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1",
             *(f"{k}: {v}" for k, v in (UPGRADE if upgrade else []) + extra)]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogatepass")
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(head)
        answer = read_until_closed(sock, limit=4096) if not upgrade else sock.recv(4096)
    match = STATUS.match(answer)
    assert match, answer[:300]
    status = int(match.group(1))
    assert status in (101, 200, 503) or 400 <= status < 500, answer  # 200: HTTP routes
    assert status != 101 or upgrade


def test_server_survives_the_heads(server):
    """After the examples (same server): a fresh client is welcomed, nothing is held."""
    still_serves(server, rss_kib(server.proc.pid))
