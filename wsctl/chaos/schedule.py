"""Timed faults: start ``at`` a time, last ``for`` a duration, repeat ``every`` period.

``windows`` is the pure part (when is the fault on?); ``Schedule`` drives it on an
injectable clock, adding and removing a toxic on a proxy or on one connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from wsctl.clock import Clock

if TYPE_CHECKING:
    from wsctl.chaos.proxy import Proxy, Toxic

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_ids = itertools.count(1)


def parse_duration(value: Any, field: str) -> float:
    """Seconds from a number (seconds) or a string such as ``250ms``, ``5s``, ``2m``."""
    if isinstance(value, bool):
        raise ValueError(f"{field}: expected a duration, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    else:
        raise ValueError(f"{field}: expected a duration like 250ms, 5s or 2m, got {value!r}")
    if seconds < 0:
        raise ValueError(f"{field}: must not be negative")
    return seconds


@dataclass(frozen=True, slots=True)
class Timing:
    """When a fault is on: from ``at`` for ``duration`` (None: until removed), every ``every``."""

    at: float = 0.0
    duration: float | None = None
    every: float | None = None

    def __post_init__(self) -> None:
        if self.every is not None:
            if self.every <= 0:
                raise ValueError("every: must be > 0")
            if self.duration is None:
                raise ValueError("every: needs a 'for' duration")
            if self.duration >= self.every:
                raise ValueError("for: must be shorter than 'every'")

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Timing:
        at = parse_duration(body.get("at", 0), "at")
        duration = parse_duration(body["for"], "for") if body.get("for") is not None else None
        every = parse_duration(body["every"], "every") if body.get("every") is not None else None
        return cls(at, duration, every)

    def to_json(self) -> dict[str, Any]:
        return {"at": self.at, "for": self.duration, "every": self.every}


def windows(timing: Timing) -> Iterator[tuple[float, float | None]]:
    """(on, off) offsets in seconds from the schedule's start; off None means it stays on."""
    start = timing.at
    while True:
        off = None if timing.duration is None else start + timing.duration
        yield start, off
        if timing.every is None:
            return
        start += timing.every


class Schedule:
    """A toxic switched on and off by a ``Timing`` on a proxy (or one of its connections)."""

    def __init__(
        self, proxy: Proxy, toxic: Toxic, timing: Timing, connection: str | None = None
    ) -> None:
        self.id = str(next(_ids))
        self.proxy = proxy
        self.toxic = toxic
        self.timing = timing
        self.connection = connection
        self.state = "pending"
        self.activations = 0
        self.task: asyncio.Task[None] | None = None

    def start(self, clock: Clock) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run(clock))

    async def cancel(self) -> None:
        """Stop the schedule; a toxic it switched on is removed."""
        if self.task is not None and not self.task.done():
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        if self.state == "active":
            await self._off()
        self.state = "cancelled"

    async def _run(self, clock: Clock) -> None:
        t0 = clock.now()
        for on, off in windows(self.timing):
            await clock.sleep(t0 + on - clock.now())
            if self.connection is not None and self.connection not in self.proxy.connections:
                break  # its connection is gone: nothing left to do
            self._on()
            if off is None:
                return
            await clock.sleep(t0 + off - clock.now())
            if self.state == "active":
                await self._off()
        self.state = "done"

    def _on(self) -> None:
        from wsctl.chaos.proxy import ChaosError

        try:
            if self.connection is None:
                self.proxy.add_toxic(self.toxic)
            else:
                self.proxy.add_connection_toxic(self.connection, self.toxic)
        except ChaosError:  # name taken, or the connection is gone: this window is skipped
            self.state = "skipped"
            return
        self.state = "active"
        self.activations += 1

    async def _off(self) -> None:
        from wsctl.chaos.proxy import ChaosError

        self.state = "waiting"
        with contextlib.suppress(ChaosError):
            if self.connection is None:
                await self.proxy.remove_toxic(self.toxic.name)
            else:
                await self.proxy.remove_connection_toxic(self.connection, self.toxic.name)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "toxic": self.toxic.to_json(),
            **self.timing.to_json(),
            "connection": self.connection,
            "state": self.state,
            "activations": self.activations,
        }
