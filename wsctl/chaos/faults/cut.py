"""``cut``: reset the connection (TCP RST) the moment the fault reaches it.

Clients see an abnormal closure (1006). While the fault stays active every new
connection is cut as well; give it a ``for`` in a schedule to cut once.
"""

from __future__ import annotations

from dataclasses import dataclass

from wsctl.chaos.faults.base import Stub


@dataclass(frozen=True, slots=True)
class Cut:
    pass


async def run(config: Cut, stub: Stub) -> None:
    stub.applied()
    stub.reset()
