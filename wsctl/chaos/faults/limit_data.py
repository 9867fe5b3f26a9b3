"""``limit_data``: forward at most ``bytes`` bytes, then close the connection."""

from __future__ import annotations

from dataclasses import dataclass

from wsctl.chaos.faults.base import Chunk, Stub


@dataclass(frozen=True, slots=True)
class LimitData:
    bytes: int = 0


async def run(config: LimitData, stub: Stub) -> None:
    left = config.bytes
    while (chunk := await stub.get()) is not None:
        if len(chunk.data) > left:
            chunk = Chunk(chunk.data[:left], chunk.arrived)
        if chunk.data:
            stub.send(chunk)
            left -= len(chunk.data)
        if left <= 0:
            stub.held = []
            stub.applied()
            stub.close()
            return
    stub.send(None)
