"""``drop_pongs``: Pong frames vanish; everything else passes. Keepalives then fail."""

from __future__ import annotations

from dataclasses import dataclass

from websockets.frames import Opcode

from wsctl.chaos.faults.base import Chunk, Stub


@dataclass(frozen=True, slots=True)
class DropPongs:
    pass


async def run(config: DropPongs, stub: Stub) -> None:
    while (chunk := await stub.get()) is not None:
        for raw, frame in stub.split(chunk):
            if frame is not None and frame.opcode is Opcode.PONG:
                stub.applied()
                continue
            stub.send(Chunk(raw, chunk.arrived))
    stub.send(None)
