"""The instant a probe's event loop learned of I/O: its selector's wake-up.

A loop iteration runs every callback that became ready in one ``select()``: with a
hundred probes' sockets reset at once, their read handlers run one after the other, then
(one iteration later, ``call_soon``) their ``connection_lost``. Stamping each with
``time.monotonic()`` where it runs put the hundredth loss the processing of the ninety-
nine before it late (4-8 ms on this 2-core machine, measured against the wire by
``benchmarks/observer.py``). The selector's return is when the process learned that
every one of those sockets was ready; ``StampedConnection`` stamps with it:

- bytes read (a message, a pong, the 101, a close frame, end of stream): the wake-up of
  the iteration whose read handler got them;
- a connection lost (reset, write error): ``connection_lost`` runs in the iteration
  after the handler that saw the error (asyncio schedules it with ``call_soon``), so the
  wake-up before the current one. Over TLS asyncio's ``SSLProtocol`` schedules it one
  iteration later still, so there the stamp is one wake-up late (never later than a
  stamp taken in the callback).

Bytes the kernel received after the wake-up but read in the same handler are stamped
early by at most the time the iteration had run; a reply to something the connection
sent in the current iteration is stamped at the read instead (it cannot predate the
request). With another loop (uvloop, a caller's own) there is no wake-up to read and the
stamps are ``time.monotonic()`` where the callback runs, as before. The opening 101 of a
probe's own socket carries the kernel's receive stamp where Linux gives one
(``wsctl.probe.tcp.read_first``), which does not move with the process's own delays.
"""

from __future__ import annotations

import asyncio
import selectors
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class WakeSelector(selectors.DefaultSelector):
    """The platform's default selector, noting when each ``select()`` returned."""

    def __init__(self) -> None:
        super().__init__()
        now = time.monotonic()
        self.woke_at = now  # time.monotonic() when the last select() returned
        self.woke_wall = time.time()  # time.time() then
        self.prior_at = now  # the select() before that

    def select(self, timeout: float | None = None
               ) -> list[tuple[selectors.SelectorKey, int]]:
        events = super().select(timeout)
        self.prior_at = self.woke_at
        self.woke_at = time.monotonic()
        self.woke_wall = time.time()
        return events


class WakeStampingLoop(asyncio.SelectorEventLoop):
    """asyncio's selector loop over a ``WakeSelector`` (``io_wake``)."""

    def __init__(self) -> None:
        self.io_wake = WakeSelector()
        super().__init__(self.io_wake)


def io_wake() -> WakeSelector | None:
    """The running loop's ``WakeSelector``; None on any other loop."""
    return getattr(asyncio.get_running_loop(), "io_wake", None)


def woke(wake: WakeSelector | None) -> tuple[float, float]:
    """``(time.monotonic(), time.time())`` of ``wake``'s last wake-up; now without one."""
    if wake is None:
        return time.monotonic(), time.time()
    return wake.woke_at, wake.woke_wall


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on a ``WakeStampingLoop``: what runs probes uses this."""
    with asyncio.Runner(loop_factory=WakeStampingLoop) as runner:
        return runner.run(main)


__all__ = ["WakeSelector", "WakeStampingLoop", "io_wake", "run", "woke"]
