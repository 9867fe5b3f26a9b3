"""Timed faults: start ``at`` a time, last ``for`` a duration, repeat ``every`` period.

``windows`` is the pure part (when is the fault on?); ``Schedule`` drives it on an
injectable clock, adding and removing a toxic on a proxy (a ``ScheduleTarget``) or on
one of its connections. Durations are read by ``wsctl.units.parse_duration``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from wsctl.chaos.model import Toxic
from wsctl.clock import Clock
from wsctl.errors import Conflict, InvalidInput, NotFound
from wsctl.units import MIN_INTERVAL

_ids = itertools.count(1)


class ScheduleTarget(Protocol):
    """What a schedule switches its toxic on and off on: a proxy."""

    @property
    def connections(self) -> Mapping[str, object]: ...

    def add_toxic(self, toxic: Toxic) -> Toxic: ...

    async def remove_toxic(self, name: str) -> None: ...

    def add_connection_toxic(self, conn_id: str, toxic: Toxic) -> Toxic: ...

    async def remove_connection_toxic(self, conn_id: str, name: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Timing:
    """When a fault is on: from ``at`` for ``duration`` (None: until removed), every ``every``."""

    at: float = 0.0
    duration: float | None = None
    every: float | None = None

    def __post_init__(self) -> None:
        """InvalidInput naming the field if the windows are impossible."""
        for field, value in (("at", self.at), ("for", self.duration)):
            if value is not None and value < 0:
                raise InvalidInput(f"{field}: must not be negative, got {value}")
        if self.every is not None:
            if not self.every >= MIN_INTERVAL:  # a 1 µs period only burns a core
                raise InvalidInput(f"every: must be at least {MIN_INTERVAL * 1000:.0f}ms, "
                                   f"got {self.every}")
            if self.duration is None:
                raise InvalidInput("every: needs a 'for' duration")
            if self.duration >= self.every:
                raise InvalidInput("for: must be shorter than 'every'")

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
        self, proxy: ScheduleTarget, toxic: Toxic, timing: Timing, connection: str | None = None
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
        try:
            if self.connection is None:
                self.proxy.add_toxic(self.toxic)
            else:
                self.proxy.add_connection_toxic(self.connection, self.toxic)
        except (Conflict, NotFound):  # name taken, or the connection gone: window skipped
            self.state = "skipped"
            return
        self.state = "active"
        self.activations += 1

    async def _off(self) -> None:
        self.state = "waiting"
        with contextlib.suppress(NotFound):
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
