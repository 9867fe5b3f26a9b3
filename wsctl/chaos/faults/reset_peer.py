"""``reset_peer``: once data arrives, wait ``timeout`` ms, then reset the connection (RST).

Data arriving meanwhile is dropped, as in Toxiproxy; both peers see a connection reset.
"""

from __future__ import annotations

from dataclasses import dataclass

from wsctl.chaos.faults.base import Stub


@dataclass(frozen=True, slots=True)
class ResetPeer:
    timeout: int = 0  # ms


async def run(config: ResetPeer, stub: Stub) -> None:
    await stub.get()
    stub.held = []
    await stub.clock.sleep(config.timeout / 1000)
    stub.held = []
    stub.applied()
    stub.reset()
