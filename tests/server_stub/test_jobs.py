"""Simulated jobs: one schedule for all streams."""

import pytest

from server_stub.jobs import JobSchedule


def test_steps_are_due_once_per_period():
    """A stream started at t=0 with rate 2/s is due at 0.5, 1.0, 1.5 ..."""
    sched = JobSchedule(rate=2.0, steps=3)
    sched.start("a", 0.0)
    assert sched.due(0.49) == []
    assert [d["step"] for _, d in sched.due(0.5)] == [1]
    assert sched.due(0.9) == []
    assert [d["step"] for _, d in sched.due(1.0)] == [2]


def test_job_completes_then_next_job_starts():
    """The last step is 'completed'; the step after it starts job 2 at step 1."""
    sched = JobSchedule(rate=1.0, steps=2)
    sched.start("a", 0.0)
    data = [d for _, d in sched.due(4.0)]
    assert [(d["step"], d["status"]) for d in data] == [
        (1, "running"), (2, "completed"), (1, "running"), (2, "completed")]
    assert data[2]["message"].startswith("job 2:")


def test_catch_up_after_a_stall_and_stop():
    """A loop blocked for 3 periods emits the 3 missed steps; a stopped stream emits none."""
    sched = JobSchedule(rate=1.0, steps=100)
    sched.start("a", 0.0)
    sched.start("b", 0.5)
    assert [s for s, _ in sched.due(3.0)] == ["a", "b", "a", "b", "a"]
    sched.stop("a")
    assert [s for s, _ in sched.due(10.0)] == ["b"] * 7
    assert len(sched) == 1


def test_rate_must_be_positive():
    """A zero rate is refused."""
    with pytest.raises(ValueError):
        JobSchedule(rate=0, steps=1)


async def test_runner_publishes_each_step_on_time_on_a_fake_clock():
    """Driven on virtual time, the runner publishes each step exactly when it is due."""
    import asyncio

    from server_stub.jobs import JobRunner
    from wsctl.clock import FakeClock

    clock = FakeClock()
    sched = JobSchedule(rate=4.0, steps=10)
    published: list[tuple[float, str, int]] = []
    runner = JobRunner(sched, lambda s, d: published.append((clock.now(), s, d["step"])), clock)
    task = asyncio.get_running_loop().create_task(runner.run())
    await clock.advance(0)
    sched.start("a", clock.now())
    await clock.advance(1.0)
    task.cancel()
    assert [(round(t, 9), s, step) for t, s, step in published] == [
        (0.25, "a", 1), (0.5, "a", 2), (0.75, "a", 3), (1.0, "a", 4)]
