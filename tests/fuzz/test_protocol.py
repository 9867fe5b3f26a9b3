"""Protocol v1 client messages and raw WebSocket frames against a live reference server.

Every input gets the reaction docs/protocol.md documents: a valid ``ping`` its ``pong``, a
valid ``ack`` nothing, any other text or binary message an ``error`` frame and close 1008,
a frame breaking RFC 6455 close 1002, bad UTF-8 1007, too big 1009. Never 1011 (internal
error), never silence; afterwards the server still welcomes a fresh client, holds no
connection and its memory stayed bounded.
"""

from __future__ import annotations

import base64
import json
import math
import os
import socket
import struct
import time
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from tests.fuzz.support import budget, read_until_closed, rss_kib
from wsctl import protocol as p

TEXT, BINARY, CLOSE, PING, PONG = 0x1, 0x2, 0x8, 0x9, 0xA
MAX_MESSAGE = 64 * 1024  # the server's --max-message-size default
SENTINEL = 4242.5  # the t of the ping that shows a connection still works


# -- a WebSocket client by hand -------------------------------------------------------


def connect(port: int, stream: str = "fuzz") -> tuple[socket.socket, p.Welcome]:
    """A socket with the opening handshake done, and the ``welcome`` it got."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /ws/{stream} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        assert chunk, head
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    opcode, payload = next_frame(sock)
    welcome = p.parse_server(payload.decode())
    assert opcode == TEXT and isinstance(welcome, p.Welcome), welcome
    return sock, welcome


def frame(opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0,
          masked: bool = True, length: int | None = None) -> bytes:
    """One client frame; ``length`` overrides the declared payload length."""
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | (rsv & 7) << 4 | opcode & 0xF])
    bit = 0x80 if masked else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 1 << 16:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    if not masked:
        return head + payload
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed mid-frame")
        data += chunk
    return data


def next_frame(sock: socket.socket) -> tuple[int, bytes]:
    """The next (unmasked) server frame as (opcode, payload)."""
    b0, b1 = recv_exactly(sock, 2)
    n = b1 & 0x7F
    if n == 126:
        (n,) = struct.unpack("!H", recv_exactly(sock, 2))
    elif n == 127:
        (n,) = struct.unpack("!Q", recv_exactly(sock, 8))
    return b0 & 0x0F, recv_exactly(sock, n)


def server_frames(data: bytes) -> list[tuple[int, bytes]]:
    """Split what a server sent into (opcode, payload) frames."""
    out, i = [], 0
    while i + 2 <= len(data):
        opcode, n, i = data[i] & 0x0F, data[i + 1] & 0x7F, i + 2
        if n == 126:
            (n,), i = struct.unpack("!H", data[i:i + 2]), i + 2
        elif n == 127:
            (n,), i = struct.unpack("!Q", data[i:i + 8]), i + 8
        out.append((opcode, data[i:i + n]))
        i += n
    return out


def close_code(frames: list[tuple[int, bytes]]) -> int | None:
    """The code of the server's close frame (1005 if it carried none), None if it sent none."""
    for opcode, payload in frames:
        if opcode == CLOSE:
            return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
    return None


def still_serves(server: Any, baseline_kib: int) -> None:
    """A fresh client is welcomed and answered; no connection left; RSS grew < 64 MiB."""
    sock, _ = connect(server.port, "fresh")
    sock.sendall(frame(TEXT, json.dumps({"type": "ping", "t": SENTINEL}).encode()))
    assert p.parse_server(next_frame(sock)[1].decode()) == p.Pong(SENTINEL)
    sock.close()
    deadline = time.monotonic() + 5
    while (held := health(server.port)["connections"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert held == 0, f"{held} connections still held"
    grown = rss_kib(server.proc.pid) - baseline_kib
    assert grown < 64 * 1024, f"server RSS grew {grown} KiB"
    assert "Traceback" not in server.logs(), server.logs()


def health(port: int) -> dict[str, Any]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /ws/health HTTP/1.1\r\nHost: x\r\n\r\n")
        response = read_until_closed(sock)
    return dict(json.loads(response.partition(b"\r\n\r\n")[2]))


# -- messages --------------------------------------------------------------------------

numbers = st.one_of(
    st.integers(), st.integers(min_value=-(2**64), max_value=2**64),
    st.sampled_from([0, -1, 2**53, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 10**309]),
    st.floats(allow_nan=True, allow_infinity=True),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=40))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
messages = st.fixed_dictionaries(
    {"type": st.sampled_from(["ping", "ack", "pong", "welcome", "", "PING"]) | st.text(max_size=8)
     | values},
    optional={"t": values | numbers, "offset": values | numbers, "extra": values},
)
deep = st.integers(1, 3000).map(lambda n: "[" * n + "]" * n)


def valid(obj: Any, last_sent: int) -> bool | None:
    """Whether protocol v1 accepts ``obj`` (docs/protocol.md), written apart from the codec;
    None where it depends on a race (an ack just past the offsets the client had seen)."""
    def sound(value: Any) -> bool:  # every number finite, every integer 64-bit
        if isinstance(value, bool) or value is None or isinstance(value, str):
            return True
        if isinstance(value, int):
            return -(2**63) <= value <= 2**63 - 1
        if isinstance(value, float):
            return math.isfinite(value)
        items = value.values() if isinstance(value, dict) else value
        return all(sound(v) for v in items) and all(sound(k) for k in value)

    if not isinstance(obj, dict) or not sound(obj):
        return False
    number = obj.get("t")
    if obj.get("type") == "ping":
        return isinstance(number, int | float) and not isinstance(number, bool)
    offset = obj.get("offset")
    if obj.get("type") != "ack" or type(offset) is not int or not 0 <= offset <= 2**63 - 1:
        return False
    # "N must not exceed the last offset sent": events may be in flight past the welcome
    return True if offset <= last_sent else None if offset <= last_sent + 5 else False


def exchange(port: int, payload: bytes, opcode: int = TEXT
             ) -> tuple[list[tuple[int, bytes]], p.Welcome]:
    """Send one message then the sentinel ping; once its pong is back, a close 1000. Every
    frame the server sent until it closed, and the welcome it began with."""
    sock, welcome = connect(port)
    frames: list[tuple[int, bytes]] = []
    try:
        sock.sendall(frame(opcode, payload)
                     + frame(TEXT, json.dumps({"type": "ping", "t": SENTINEL}).encode()))
        closing = False
        while not frames or frames[-1][0] != CLOSE:
            frames.append(next_frame(sock))
            if frames[-1] == (TEXT, p.encode(p.Pong(SENTINEL)).encode()):
                sock.sendall(frame(CLOSE, struct.pack("!H", 1000)))
                closing = True
        if not closing:  # the server's close: answer it, as a client must
            sock.sendall(frame(CLOSE, frames[-1][1][:2]))
        read_until_closed(sock)
        return frames, welcome
    finally:
        sock.close()


def check_reaction(frames: list[tuple[int, bytes]], accepted: bool | None,
                   reply: p.Pong | None) -> None:
    """A message protocol v1 accepts gets ``reply`` (or nothing), then the sentinel's pong
    and a normal close; any other an ``error`` frame ``bad_message`` and close 1008."""
    texts = [p.parse_server(payload.decode()) for op, payload in frames if op == TEXT]
    texts = [m for m in texts if not isinstance(m, p.Event)]
    if accepted is None:
        accepted = close_code(frames) == 1000
    if accepted:
        assert texts == [*([reply] if reply else []), p.Pong(SENTINEL)], texts
        assert close_code(frames) == 1000, frames
    else:
        assert len(texts) == 1 and isinstance(texts[0], p.Error), texts
        assert texts[0].code == p.ERR_BAD_MESSAGE
        assert close_code(frames) == 1008, frames


@example({"type": "ping", "t": float("nan")})
@example({"type": "ping", "t": 10**309})
@example({"type": "ack", "offset": 2**63 - 1})
@example({"type": "ack", "offset": 0})
@example({"type": "é" * 100})  # a close reason over 123 bytes of UTF-8: the close never left
@given(messages)
@budget(120)
def test_client_messages_get_their_documented_reaction(server, message):
    """ping -> pong, ack -> nothing, anything else -> error bad_message + 1008; never 1011."""
    frames, welcome = exchange(server.port, json.dumps(message, allow_nan=True).encode())
    accepted = valid(message, welcome.offset)
    reply = p.Pong(float(message["t"])) if accepted and message["type"] == "ping" else None
    check_reaction(frames, accepted, reply)


@example('{"type":"ack","offset":' + "1" * 4400 + "}")
@example('{"type":"ping","t":' + "9" * 400 + "}")
@example('{"type":"ping","t":1e400}')
@given(st.one_of(st.text(max_size=300), deep, st.binary(max_size=300).map(
    lambda b: b.decode("utf-8", "replace"))))
@budget(60)
def test_raw_text_is_a_message_or_a_refusal(server, text):
    """Any UTF-8 text: what the codec accepts is answered, the rest error + 1008."""
    try:
        message: p.ClientMessage | None = p.parse_client(text)
    except p.ProtocolError:
        message = None
    frames, welcome = exchange(server.port, text.encode())
    accepted: bool | None = message is not None
    if isinstance(message, p.Ack) and message.offset > welcome.offset:
        accepted = None if message.offset <= welcome.offset + 5 else False
    reply = p.Pong(message.t) if isinstance(message, p.Ping) else None
    check_reaction(frames, accepted, reply)


# -- raw frames ------------------------------------------------------------------------


@st.composite
def raw_frames(draw: st.DrawFn) -> tuple[bytes, int | None]:
    """A frame with arbitrary flags, opcode, masking and length, and the client close code
    it carries (when it is a close frame the server may echo)."""
    opcode = draw(st.integers(0, 15))
    payload = draw(st.binary(max_size=200) | st.text(max_size=100).map(str.encode))
    if opcode == CLOSE and draw(st.booleans()):
        payload = struct.pack("!H", draw(st.integers(0, 5000))) + payload[:100]
    oversize = draw(st.sampled_from([None, None, None, MAX_MESSAGE + 1, 2**31, 2**63 - 1]))
    data = frame(opcode, b"" if oversize else payload, fin=draw(st.booleans()),
                 rsv=draw(st.integers(0, 7) | st.just(0)), masked=draw(st.booleans()
                                                                       | st.just(True)),
                 length=oversize)
    echoed = None
    if opcode == CLOSE:
        echoed = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
    return data, echoed


ALLOWED = {1000, 1002, 1007, 1008, 1009}  # what docs/protocol.md (and RFC 6455) lets it send


@given(st.lists(raw_frames(), min_size=1, max_size=3))
@budget(150)
def test_raw_frames_get_a_documented_close(server, frames):
    """Arbitrary frames, then a close 1000: the server closes with 1000, 1002, 1007, 1008,
    1009 or the client's own close code echoed; never 1011, never silence."""
    sock, _ = connect(server.port)
    try:
        sock.sendall(b"".join(data for data, _ in frames) + frame(CLOSE, struct.pack("!H", 1000)))
        answer = server_frames(read_until_closed(sock))
    finally:
        sock.close()
    code = close_code(answer)
    echoes = {echoed for _, echoed in frames if echoed is not None}
    assert code in ALLOWED | echoes, (code, answer)


def test_server_survives_the_fuzzing(server):
    """After the examples above (same module, same server): still serving, nothing held."""
    still_serves(server, rss_kib(server.proc.pid))
