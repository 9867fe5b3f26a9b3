"""The timeline executor: carries out a scenario's steps on a clock, never early.

A step with ``at`` runs at that instant after the start (late only if the previous step
was still running, and then the real instant is recorded); a step without ``at`` runs
right after the previous one finished; ``wait`` holds the next step back for its
``for``; a ``for`` on any other step schedules its undo (the step's ``undo``, from the
action table ``actions.py``: kill -> start, pause -> resume, proxy.down -> up, toxic ->
removed) that long after the step really happened. Undos due before the next step run
first, in time order.

What an action *does* is not known here: ``perform`` does it. The executor only decides
when, and records each action as it happened (``TimelineEntry``). It runs on any
``Clock``, so tests drive it on a ``FakeClock`` and assert exact virtual instants.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from wsctl.clock import Clock
from wsctl.errors import ActionFailed
from wsctl.results.outcome import TimelineEntry


class StepLike(Protocol):
    """What the executor reads of a step (``wsctl.scenario.model.Step`` fits)."""

    @property
    def at(self) -> float | None: ...
    @property
    def do(self) -> str: ...
    @property
    def for_(self) -> float | None: ...
    @property
    def line(self) -> int: ...
    @property
    def is_fault(self) -> bool: ...
    @property
    def undo(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Action:
    """One thing to do: ``do`` is the action carried out (``server.start`` when undoing a
    kill), ``step`` the step it comes from, ``planned`` seconds since the start."""

    do: str
    step: StepLike
    planned: float
    undo: bool = False

    @property
    def is_fault(self) -> bool:
        """A fault being injected (undos never are)."""
        return not self.undo and self.step.is_fault


Perform = Callable[[Action, float], Awaitable[str]]
Before = Callable[[Action], Awaitable[None]]


class Timeline:
    """Run ``steps`` from ``start`` (an instant of ``clock``); ``perform(action, instant)``
    carries each out and returns a detail line, or raises ``ActionFailed``.

    ``before(action)``, if given, is awaited just before an action's instant is taken
    (the runner samples the server there, so the sampling does not delay the fault).
    ``entries`` grows as actions happen; on a failure the executor records it in the
    entry's ``error``, sets ``failed`` and stops.
    """

    def __init__(
        self,
        steps: Sequence[StepLike],
        *,
        clock: Clock,
        start: float,
        perform: Perform,
        before: Before | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.steps = list(steps)
        self.clock = clock
        self.start = start
        self.perform = perform
        self.before = before
        self.wall = wall
        self.entries: list[TimelineEntry] = []
        self.failed: TimelineEntry | None = None
        self.failed_action: Action | None = None
        self._undos: list[tuple[float, int, Action]] = []
        self._seq = itertools.count()

    async def run(self) -> None:
        """Carry out every step and every undo; returns early after a failure."""
        start = self.start
        for step in self.steps:
            if step.at is not None:
                planned = step.at
            else:
                planned = self.clock.now() - start  # right after the previous one
            if not await self._until(start + planned):
                return
            if step.do == "wait":
                now = self.clock.now()
                wait = step.for_ or 0.0
                self._record(Action("wait", step, planned), now, f"{wait:g}s")
                if not await self._until(now + wait):
                    return
                continue
            action = Action(step.do, step, planned)
            instant = await self._do(action)
            if instant is None:
                return
            if step.for_ is not None and step.undo is not None:
                due = instant + step.for_
                heapq.heappush(self._undos, (due, next(self._seq),
                                             Action(step.undo, step, due - start, undo=True)))
        await self._until(None)

    async def _until(self, instant: float | None) -> bool:
        """Carry out the undos due by ``instant`` (all of them for None), then wait for
        ``instant``. False when an undo failed."""
        while self._undos and (instant is None or self._undos[0][0] <= instant):
            due, _, action = heapq.heappop(self._undos)
            await self._sleep_until(due)
            if await self._do(action) is None:
                return False
        if instant is not None:
            await self._sleep_until(instant)
        return True

    async def _sleep_until(self, instant: float) -> None:
        # A loop timer may fire a hair early; an action must never run before its time.
        while (left := instant - self.clock.now()) > 0:
            await self.clock.sleep(left)

    async def _do(self, action: Action) -> float | None:
        """Carry out ``action``; its real instant, or None when it failed."""
        if self.before is not None:
            await self.before(action)
        instant, wall = self.clock.now(), self.wall()
        try:
            detail = await self.perform(action, instant)
        except ActionFailed as exc:
            self.failed = self._record(action, instant, "", str(exc), wall)
            self.failed_action = action
            return None
        self._record(action, instant, detail, wall=wall)
        return instant

    def _record(self, action: Action, instant: float, detail: str,
                error: str | None = None, wall: float | None = None) -> TimelineEntry:
        wall = self.wall() if wall is None else wall
        entry = TimelineEntry(at=instant - self.start, wall=wall, do=action.do,
                              planned=round(action.planned, 6), detail=detail, error=error)
        self.entries.append(entry)
        return entry
