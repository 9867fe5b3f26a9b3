"""``slow_close``: hold the end of the stream (the peer's FIN) for ``delay`` ms."""

from __future__ import annotations

from dataclasses import dataclass

from wsctl.chaos.faults.base import Stub


@dataclass(frozen=True, slots=True)
class SlowClose:
    delay: int = 0  # ms


async def run(config: SlowClose, stub: Stub) -> None:
    while (chunk := await stub.get()) is not None:
        stub.send(chunk)
    await stub.clock.sleep(config.delay / 1000)  # EOF is held meanwhile
    stub.send(None)
