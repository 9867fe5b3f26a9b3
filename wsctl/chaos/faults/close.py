"""``close``: send a close frame with ``code`` and ``reason`` to the receiving peer.

``downstream`` (the default) closes towards the client as if the server had sent it;
``upstream`` towards the server. The frame goes out on the next frame boundary (after
the handshake); later frames in that direction are dropped, so the peer's close
handshake completes with the injected code and the TCP connection then ends normally.
"""

from __future__ import annotations

from dataclasses import dataclass

from websockets.frames import Close as CloseFrame
from websockets.frames import Frame, Opcode

from wsctl.chaos.faults.base import Chunk, InvalidAttribute, Stub


@dataclass(frozen=True, slots=True)
class Close:
    code: int = 1001
    reason: str = ""

    def validate(self) -> None:
        if not (1000 <= self.code <= 4999) or self.code in (1004, 1005, 1006, 1015):
            raise InvalidAttribute("code", f"{self.code} can't be sent in a close frame")
        if len(self.reason.encode()) > 123:
            raise InvalidAttribute("reason", "at most 123 bytes")


async def run(config: Close, stub: Stub) -> None:
    payload = CloseFrame(config.code, config.reason).serialize()
    frame = Frame(Opcode.CLOSE, payload).serialize(mask=stub.direction == "upstream")
    sent = False

    def inject() -> None:
        nonlocal sent
        stub.send(Chunk(frame, stub.clock.now()))
        stub.applied()
        sent = True

    while True:
        if not sent and stub.at_frame_boundary():
            inject()
        try:
            # Until sent, wake up now and then: the handshake may complete in the other
            # direction (the server's 101) while this one stays idle.
            chunk = await stub.get(None if sent else 0.05)
        except TimeoutError:
            continue
        if chunk is None:
            break
        pieces = stub.split(chunk)
        for raw, parsed in pieces:
            if sent:
                continue  # after our close frame nothing more goes this way
            stub.send(Chunk(raw, chunk.arrived))
            if parsed is not None:
                inject()
        stub.held = []
    stub.send(None)
