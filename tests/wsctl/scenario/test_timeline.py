"""The timeline executor on a fake clock: exact virtual instants, never early, undos."""

import asyncio
from dataclasses import dataclass

import pytest

from wsctl.clock import FakeClock
from wsctl.errors import ActionFailed
from wsctl.scenario.actions import ACTIONS
from wsctl.scenario.timeline import Action, Timeline


@dataclass
class Step:
    do: str
    at: float | None = None
    for_: float | None = None
    line: int = 1

    @property
    def is_fault(self) -> bool:
        return ACTIONS[self.do].fault

    @property
    def undo(self) -> str | None:
        return ACTIONS[self.do].undo


class Recorder:
    """A perform that records (action, instant) and may take virtual time or fail."""

    def __init__(self, clock, takes=None, fails=()):
        self.clock = clock
        self.done: list[tuple[str, float]] = []
        self.takes = takes or {}
        self.fails = set(fails)

    async def __call__(self, action: Action, instant: float) -> str:
        assert instant == self.clock.now()
        self.done.append((action.do, instant))
        if action.do in self.fails:
            raise ActionFailed(f"cannot {action.do}: the server is not running")
        if action.do in self.takes:
            await self.clock.sleep(self.takes[action.do])
        return f"did {action.do}"


async def drive(timeline: Timeline, clock: FakeClock, until: float, step: float = 0.05):
    """Run the timeline while advancing virtual time in small steps up to ``until``."""
    task = asyncio.create_task(timeline.run())
    while clock.now() < until and not task.done():
        await clock.advance(step)
    await clock.advance(0)
    if not task.done():
        task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_steps_with_at_run_at_their_exact_instants():
    """Steps with ``at`` happen at start + at, never before, with their planned time kept."""
    clock = FakeClock(100.0)
    perform = Recorder(clock)
    steps = [Step("server.kill", at=2.0), Step("server.start", at=3.5), Step("cut", at=7.0)]
    timeline = Timeline(steps, clock=clock, start=100.0, perform=perform, wall=lambda: 0.0)
    await drive(timeline, clock, 110.0)
    assert perform.done == [("server.kill", 102.0), ("server.start", 103.5), ("cut", 107.0)]
    assert [(e.do, e.at, e.planned) for e in timeline.entries] == [
        ("server.kill", 2.0, 2.0), ("server.start", 3.5, 3.5), ("cut", 7.0, 7.0)]
    assert [e.detail for e in timeline.entries] == ["did server.kill", "did server.start",
                                                   "did cut"]


async def test_relative_steps_run_right_after_the_previous_one_finished():
    """A step without ``at`` runs when the previous finished (here: a 1.5 s restart);
    entries carry the wall time of the instant the action began."""
    clock = FakeClock(0.0)
    perform = Recorder(clock, takes={"server.restart": 1.5})
    steps = [Step("server.restart", at=1.0), Step("cut"), Step("wait", for_=2.0),
             Step("proxy.down")]
    timeline = Timeline(steps, clock=clock, start=0.0, perform=perform,
                        wall=lambda: 1e9 + clock.now())
    await drive(timeline, clock, 10.0)
    assert perform.done == [("server.restart", 1.0), ("cut", 2.5), ("proxy.down", 4.5)]
    assert timeline.entries[0].wall == 1e9 + 1.0  # when it began, not when it finished
    assert [(e.do, e.at) for e in timeline.entries] == [
        ("server.restart", 1.0), ("cut", 2.5), ("wait", 2.5), ("proxy.down", 4.5)]
    assert timeline.entries[2].detail == "2s"


async def test_a_late_step_records_the_real_instant_and_its_plan():
    """When the previous step overruns a step's ``at``, it runs at once and says so."""
    clock = FakeClock(0.0)
    perform = Recorder(clock, takes={"server.start": 3.0})
    steps = [Step("server.start", at=1.0), Step("server.kill", at=2.0)]
    timeline = Timeline(steps, clock=clock, start=0.0, perform=perform)
    await drive(timeline, clock, 10.0)
    kill = timeline.entries[1]
    assert (kill.do, kill.at, kill.planned) == ("server.kill", 4.0, 2.0)


async def test_for_schedules_the_undo_after_the_real_instant_in_time_order():
    """``for`` undoes kill/pause/toxic/proxy.down that long after each happened, and
    an undo due before the next step runs first."""
    clock = FakeClock(0.0)
    perform = Recorder(clock)
    steps = [Step("server.pause", at=1.0, for_=2.0), Step("toxic", at=1.5, for_=5.0),
             Step("server.kill", at=4.0, for_=1.0), Step("proxy.down", at=5.5, for_=0.5)]
    timeline = Timeline(steps, clock=clock, start=0.0, perform=perform)
    await drive(timeline, clock, 10.0)
    assert perform.done == [
        ("server.pause", 1.0), ("toxic", 1.5), ("server.resume", 3.0), ("server.kill", 4.0),
        ("server.start", 5.0), ("proxy.down", 5.5), ("proxy.up", 6.0), ("toxic.remove", 6.5)]
    undo = next(e for e in timeline.entries if e.do == "toxic.remove")
    assert undo.planned == 6.5


async def test_undos_run_after_the_last_step_too():
    """With no later step, pending undos still happen at their instants."""
    clock = FakeClock(0.0)
    perform = Recorder(clock)
    timeline = Timeline([Step("server.term", at=0.5, for_=3.0)], clock=clock, start=0.0,
                        perform=perform)
    await drive(timeline, clock, 5.0)
    assert perform.done == [("server.term", 0.5), ("server.start", 3.5)]


async def test_a_failed_action_is_recorded_and_stops_the_timeline():
    """Killing a server that is not running: the entry carries the error; nothing later
    (not even the pending undo) runs."""
    clock = FakeClock(0.0)
    perform = Recorder(clock, fails={"server.start"})
    steps = [Step("server.kill", at=1.0, for_=1.0), Step("server.start", at=1.5),
             Step("cut", at=3.0)]
    timeline = Timeline(steps, clock=clock, start=0.0, perform=perform)
    await drive(timeline, clock, 5.0)
    assert perform.done == [("server.kill", 1.0), ("server.start", 1.5)]
    assert timeline.failed is not None
    assert timeline.failed.error == "cannot server.start: the server is not running"
    assert timeline.failed_action is not None and timeline.failed_action.do == "server.start"
    assert [e.error is None for e in timeline.entries] == [True, False]


async def test_before_hook_runs_before_the_instant_is_taken():
    """``before`` (the runner's server sampling) may take time without making the action's
    recorded instant earlier than when it really happened."""
    clock = FakeClock(0.0)
    perform = Recorder(clock)
    seen = []

    async def before(action):
        seen.append((action.do, action.is_fault, clock.now()))
        await clock.sleep(0.25)

    timeline = Timeline([Step("server.kill", at=1.0, for_=1.0)], clock=clock, start=0.0,
                        perform=perform, before=before)
    await drive(timeline, clock, 4.0)
    assert seen == [("server.kill", True, 1.0), ("server.start", False, 2.25)]
    assert perform.done == [("server.kill", 1.25), ("server.start", 2.5)]


@pytest.mark.parametrize("early", [1e-9, 0.001])
async def test_never_early_even_when_the_clock_wakes_early(early):
    """A sleep that returns a hair early is slept again: the action is never early."""

    class EarlyClock(FakeClock):
        async def sleep(self, seconds):
            await super().sleep(max(0.0, seconds - early) if seconds > 2 * early else seconds)

    clock = EarlyClock(0.0)
    perform = Recorder(clock)
    timeline = Timeline([Step("cut", at=2.0)], clock=clock, start=0.0, perform=perform)
    await drive(timeline, clock, 3.0)
    assert perform.done and perform.done[0][1] >= 2.0


async def test_a_step_without_an_undo_schedules_nothing_after_its_for():
    """cut has no undo in the action table: even given a ``for`` (the model refuses one),
    nothing runs after it."""
    clock = FakeClock(0.0)
    perform = Recorder(clock)
    timeline = Timeline([Step("cut", at=1.0, for_=1.0)], clock=clock, start=0.0,
                        perform=perform)
    await drive(timeline, clock, 5.0)
    assert perform.done == [("cut", 1.0)]
