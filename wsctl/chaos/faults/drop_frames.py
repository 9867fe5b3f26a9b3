"""``drop_frames``: data frames (text, binary, continuation) vanish; control frames and the
TCP connection stay up, so the peer sees silence, not an error."""

from __future__ import annotations

from dataclasses import dataclass

from websockets.frames import DATA_OPCODES

from wsctl.chaos.faults.base import Chunk, Stub


@dataclass(frozen=True, slots=True)
class DropFrames:
    pass


async def run(config: DropFrames, stub: Stub) -> None:
    while (chunk := await stub.get()) is not None:
        for raw, frame in stub.split(chunk):
            if frame is not None and frame.opcode in DATA_OPCODES:
                stub.applied()
                continue
            stub.send(Chunk(raw, chunk.arrived))
    stub.send(None)
