"""Where WebSocket frames begin and end in a proxied byte stream.

``FrameTracker`` follows one direction of a connection cheaply (header arithmetic only)
so that a WebSocket fault added to a live connection starts exactly on a frame
boundary. ``FrameSplitter`` is what such a fault uses: it cuts the bytes into the
opening handshake (passed through), whole frames (parsed with websockets' sans-I/O
``Frame.parse``) and, when the stream is not WebSocket, opaque bytes (passed through).
Raw bytes of frames that are forwarded are never re-encoded.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Generator
from dataclasses import dataclass

from websockets.extensions.base import Extension
from websockets.frames import Frame
from websockets.streams import StreamReader
from websockets.typing import ExtensionName

HANDSHAKE, FRAMES, OPAQUE = "handshake", "frames", "opaque"
MAX_HANDSHAKE = 64 * 1024
_UPGRADE = re.compile(rb"(?im)^upgrade:[ \t]*websocket[ \t]*\r?$")


class _Opaque(Extension):
    """Lets compressed (RSV1) frames parse without inflating them: we only need their
    opcode and boundaries, and forward their raw bytes."""

    name = ExtensionName("wsctl-opaque")

    def decode(self, frame: Frame, *, max_size: int | None = None) -> Frame:
        return dataclasses.replace(frame, rsv1=False) if frame.rsv1 else frame

    def encode(self, frame: Frame) -> Frame:  # pragma: no cover - never encodes
        return frame


_EXTENSIONS = [_Opaque()]


def _handshake_is_websocket(head: bytes, upstream: bool) -> bool:
    if upstream:
        return head.startswith(b"GET ") and _UPGRADE.search(head) is not None
    return head.startswith(b"HTTP/1.1 101")


def _header_size(buf: bytes) -> tuple[int, int] | None:
    """(header length, payload length) of the frame starting ``buf``, or None if incomplete."""
    if len(buf) < 2:
        return None
    b1 = buf[1]
    length = b1 & 0x7F
    size = 2
    if length == 126:
        size = 4
        if len(buf) < size:
            return None
        length = int.from_bytes(buf[2:4], "big")
    elif length == 127:
        size = 10
        if len(buf) < size:
            return None
        length = int.from_bytes(buf[2:10], "big")
    if b1 & 0x80:
        size += 4
    if len(buf) < size:
        return None
    return size, length


@dataclass(slots=True)
class TrackerState:
    """A snapshot of where a stream is: in the handshake, inside a frame, or opaque."""

    mode: str
    upstream: bool
    handshake: bytes = b""
    header: bytes = b""  # bytes of a frame header already seen (header incomplete)
    remaining: int = 0  # payload bytes of the current frame still to come


class FrameTracker:
    """Counts its way through one direction's bytes; costs a few operations per chunk."""

    __slots__ = ("mode", "upstream", "handshake", "header", "remaining")

    def __init__(self, upstream: bool) -> None:
        self.upstream = upstream
        self.mode = HANDSHAKE
        self.handshake = b""
        self.header = b""
        self.remaining = 0

    def snapshot(self) -> TrackerState:
        return TrackerState(self.mode, self.upstream, self.handshake, self.header, self.remaining)

    def give_up(self) -> None:
        """Stop tracking: the stream is not (or no longer) WebSocket frames."""
        self.mode = OPAQUE
        self.handshake = self.header = b""

    def feed(self, data: bytes) -> None:
        mode = self.mode
        if mode == FRAMES:
            self._frames(data)
        elif mode == HANDSHAKE:
            buf = self.handshake + data
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.handshake = buf
                if len(buf) > MAX_HANDSHAKE:
                    self.give_up()
                return
            self.handshake = b""
            if _handshake_is_websocket(buf[:end], self.upstream):
                self.mode = FRAMES
                self._frames(buf[end + 4 :])
            else:
                self.give_up()

    def _frames(self, data: bytes) -> None:
        pos, n = 0, len(data)
        while True:
            left = n - pos
            if self.remaining:
                if self.remaining >= left:
                    self.remaining -= left
                    return
                pos += self.remaining
                self.remaining = 0
                left = n - pos
            if left <= 0:
                return
            seen = self.header
            buf = seen + data[pos : pos + 14]
            sizes = _header_size(buf)
            if sizes is None:
                self.header = buf
                return
            self.header = b""
            pos += sizes[0] - len(seen)
            self.remaining = sizes[1]


class FrameSplitter:
    """Cuts bytes into ``(raw, frame)`` pieces; ``frame`` is None for pass-through bytes.

    Starts from a ``TrackerState`` so it can join a live stream: the rest of a frame
    already under way, and the handshake, come out as pass-through pieces.
    """

    def __init__(self, state: TrackerState) -> None:
        self.mode = state.mode
        self.upstream = state.upstream
        self._handshake = state.handshake
        self._skip = state.remaining
        self._sent_prefix = len(state.header)
        self._reader = StreamReader()
        self._raw = bytearray(state.header)
        if state.header:
            self._reader.feed_data(state.header)
        self._parser = self._new_parser()

    def _new_parser(self) -> Generator[None, None, Frame]:
        return Frame.parse(
            self._reader.read_exact, mask=self.upstream, max_size=None, extensions=_EXTENSIONS
        )

    def at_boundary(self) -> bool:
        """True between two frames of a WebSocket stream (never in the handshake or opaque)."""
        return self.mode == FRAMES and not self._skip and len(self._raw) == self._sent_prefix

    def pending(self) -> bytes:
        """Bytes received but not yet returned in a piece (a partial frame)."""
        return bytes(self._raw[self._sent_prefix :])

    def feed(self, data: bytes) -> list[tuple[bytes, Frame | None]]:
        out: list[tuple[bytes, Frame | None]] = []
        while data:
            if self.mode == OPAQUE:
                out.append((data, None))
                return out
            if self.mode == HANDSHAKE:
                buf = self._handshake + data
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    self._handshake = buf
                    if len(buf) > MAX_HANDSHAKE:
                        self.mode = OPAQUE
                    out.append((data, None))
                    return out
                used = end + 4 - len(self._handshake)
                self._handshake = b""
                ws = _handshake_is_websocket(buf[:end], self.upstream)
                self.mode = FRAMES if ws else OPAQUE
                out.append((data[:used], None))
                data = data[used:]
                continue
            if self._skip:
                take = min(self._skip, len(data))
                self._skip -= take
                out.append((data[:take], None))
                data = data[take:]
                continue
            self._frames(data, out)
            return out
        return out

    def _frames(self, data: bytes, out: list[tuple[bytes, Frame | None]]) -> None:
        self._reader.feed_data(data)
        self._raw += data
        while True:
            try:
                next(self._parser)
                return  # needs more data
            except StopIteration as done:
                frame: Frame = done.value
                end = len(self._raw) - len(self._reader.buffer)
                raw = bytes(self._raw[self._sent_prefix : end])
                del self._raw[:end]
                # A frame whose first bytes already went out can't be dropped any more.
                out.append((raw, None if self._sent_prefix else frame))
                self._sent_prefix = 0
                self._parser = self._new_parser()
            except Exception:  # not a frame we understand: stop interpreting, pass bytes on
                raw = self.pending()
                self._raw.clear()
                self._sent_prefix = 0
                self.mode = OPAQUE
                if raw:
                    out.append((raw, None))
                return
