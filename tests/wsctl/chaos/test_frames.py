"""Frame boundary tracking and splitting, on bytes made by websockets' own encoder."""

from __future__ import annotations

import random

from websockets.frames import Close, Frame, Opcode

from wsctl.chaos.frames import FRAMES, OPAQUE, FrameSplitter, FrameTracker

REQUEST = b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
RESPONSE = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"


def frames(masked: bool) -> list[tuple[Frame, bytes]]:
    made = [
        Frame(Opcode.TEXT, b"hello"),
        Frame(Opcode.BINARY, b"\x00" * 300),  # 16-bit length
        Frame(Opcode.PING, b"p"),
        Frame(Opcode.BINARY, b"\x01" * 70_000),  # 64-bit length
        Frame(Opcode.PONG, b"p"),
        Frame(Opcode.CLOSE, Close(1000, "bye").serialize()),
    ]
    return [(f, f.serialize(mask=masked)) for f in made]


def chop(data: bytes, rng: random.Random) -> list[bytes]:
    out, i = [], 0
    while i < len(data):
        n = rng.randint(1, 40) if rng.random() < 0.7 else rng.randint(1, 5000)
        out.append(data[i : i + n])
        i += n
    return out


def test_splitter_finds_every_frame_however_the_bytes_are_chopped() -> None:
    """Handshake passes through, then each frame comes out whole with its raw bytes."""
    for masked, head in ((True, REQUEST), (False, RESPONSE)):
        made = frames(masked)
        stream = head + b"".join(raw for _, raw in made)
        splitter = FrameSplitter(FrameTracker(upstream=masked).snapshot())
        pieces = []
        for part in chop(stream, random.Random(3)):
            pieces += splitter.feed(part)
        parsed = [(f.opcode, raw) for raw, f in pieces if f is not None]
        assert parsed == [(f.opcode, raw) for f, raw in made]
        assert b"".join(raw for raw, _ in pieces) == stream


def test_tracker_snapshot_lets_a_splitter_join_mid_frame() -> None:
    """A splitter started mid-frame passes the rest of that frame, then parses the next."""
    made = frames(False)
    body = b"".join(raw for _, raw in made)
    tracker = FrameTracker(upstream=False)
    cut = len(made[0][1]) + 100  # inside the 300-byte binary frame
    tracker.feed(RESPONSE)
    tracker.feed(body[:cut])
    assert tracker.mode == FRAMES and tracker.remaining > 0
    splitter = FrameSplitter(tracker.snapshot())
    pieces = splitter.feed(body[cut:])
    assert pieces[0][1] is None  # the rest of the frame in progress
    assert [f.opcode for _, f in pieces[1:] if f] == [f.opcode for f, _ in made[2:]]
    assert b"".join(raw for raw, _ in pieces) == body[cut:]


def test_tracker_joins_mid_header() -> None:
    """Half a frame header already sent: that frame passes whole, the next is parsed."""
    made = frames(True)
    body = b"".join(raw for _, raw in made)
    tracker = FrameTracker(upstream=True)
    tracker.feed(REQUEST + body[:1])
    splitter = FrameSplitter(tracker.snapshot())
    pieces = splitter.feed(body[1:])
    assert pieces[0] == (made[0][1][1:], None)
    assert pieces[1][1] is not None and pieces[1][1].opcode is Opcode.BINARY


def test_non_websocket_streams_are_opaque() -> None:
    """A refused upgrade (not 101) makes the stream opaque: bytes pass, nothing is parsed."""
    tracker = FrameTracker(upstream=False)
    tracker.feed(b"HTTP/1.1 503 Service Unavailable\r\n\r\n\x81\x05hello")
    assert tracker.mode == OPAQUE
    splitter = FrameSplitter(FrameTracker(upstream=False).snapshot())
    data = b"HTTP/1.1 200 OK\r\n\r\n\x81\x05hello"
    assert all(f is None for _, f in splitter.feed(data))
