"""Simulated alert-processing jobs: each stream's job emits progress at a set rate.

A job runs ``steps`` steps, one event per ``1/rate`` seconds, ending with status
``completed``; the next job on the stream then starts. Jobs keep running while their
clients are disconnected, which is what makes resume worth having. One scheduler
(a deadline heap) drives every stream, not a task per stream. A durable store keeps each
job's progress with its events, so a restarted server resumes the job where the store
says it was (``JobSchedule.start(stream, now, progress)``).
"""

from __future__ import annotations

import heapq
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from wsctl.clock import Clock, MonotonicClock


@dataclass(slots=True)
class Job:
    """Progress of the current job on one stream."""

    number: int = 1
    step: int = 0

    def advance(self, total: int) -> dict[str, Any]:
        """Take one step and return the event data for it."""
        if self.step >= total:
            self.number += 1
            self.step = 0
        self.step += 1
        status = "completed" if self.step == total else "running"
        return {
            "step": self.step,
            "total": total,
            "status": status,
            "message": f"job {self.number}: step {self.step}/{total} {status}",
        }

    def progress(self) -> dict[str, int]:
        """Where the job is, as a store keeps it: ``{"job": number, "step": step}``."""
        return {"job": self.number, "step": self.step}

    @classmethod
    def from_progress(cls, progress: dict[str, object] | None) -> Job:
        """The job a stored ``progress()`` describes (a new one if it is missing or bad)."""
        number = progress.get("job") if progress else None
        step = progress.get("step") if progress else None
        if isinstance(number, int) and isinstance(step, int) and number >= 1 and step >= 0:
            return cls(number, step)
        return cls()


class JobSchedule:
    """Pure scheduling core: which streams are due for their next step at a given time."""

    def __init__(self, rate: float, steps: int) -> None:
        if rate <= 0 or steps <= 0:
            raise ValueError("job rate and steps must be positive")
        self.period = 1.0 / rate
        self.steps = steps
        self._jobs: dict[str, Job] = {}
        self._heap: list[tuple[float, str]] = []

    def __len__(self) -> int:
        return len(self._jobs)

    def __contains__(self, stream: object) -> bool:
        return stream in self._jobs

    def start(self, stream: str, now: float, progress: dict[str, object] | None = None) -> None:
        """Start a job on ``stream`` (at stored ``progress``, else at its beginning); its
        next step is due one period from now. A running job is left as it is."""
        if stream not in self._jobs:
            self._jobs[stream] = Job.from_progress(progress)
            heapq.heappush(self._heap, (now + self.period, stream))

    def progress(self, stream: str) -> dict[str, int] | None:
        """The stream's job progress (None when it has no job)."""
        job = self._jobs.get(stream)
        return job.progress() if job is not None else None

    def follow(self, stream: str, progress: dict[str, object] | None) -> None:
        """Set a running job to stored ``progress`` (another instance produces the stream:
        this one keeps pace, ready to take over); a job without stored progress keeps
        its own."""
        if stream in self._jobs and progress is not None:
            self._jobs[stream] = Job.from_progress(progress)

    def stop(self, stream: str) -> None:
        """Stop the stream's job (its heap entry is dropped lazily)."""
        self._jobs.pop(stream, None)

    def next_due(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def due(self, now: float) -> list[tuple[str, dict[str, Any]]]:
        """Advance every job whose step is due at ``now``; returns (stream, data) in order.

        A stream that fell several periods behind (the loop was blocked) catches up one
        step per period missed, so offsets keep pace with time.
        """
        out: list[tuple[str, dict[str, Any]]] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            when, stream = heapq.heappop(heap)
            job = self._jobs.get(stream)
            if job is None:
                continue
            out.append((stream, job.advance(self.steps)))
            heapq.heappush(heap, (when + self.period, stream))
        return out


class JobRunner:
    """Drives a ``JobSchedule`` on a clock: hands each due step to ``publish``, then awaits
    ``commit`` once for all the steps of that tick (group commit: the store makes them
    durable together and only then are they sent). ``batch_window`` is the least time
    between two ticks, so that steps due within it share one commit (0: wake exactly when
    the next step is due)."""

    def __init__(
        self,
        schedule: JobSchedule,
        publish: Callable[[str, dict[str, Any]], None],
        clock: Clock | None = None,
        max_sleep: float = 0.25,
        commit: Callable[[], Awaitable[None]] | None = None,
        batch_window: float = 0.0,
    ) -> None:
        self.schedule = schedule
        self.publish = publish
        self.clock = clock or MonotonicClock()
        self.max_sleep = max_sleep
        self.commit = commit
        self.batch_window = batch_window

    async def run(self) -> None:
        """Emit due steps forever, waking when the next one is due (and at least every
        ``max_sleep`` s, to notice new streams); cancel the task to stop."""
        while True:
            for stream, data in self.schedule.due(self.clock.now()):
                self.publish(stream, data)
            if self.commit is not None:
                await self.commit()
            delay = self.max_sleep
            next_due = self.schedule.next_due()
            if next_due is not None:
                delay = min(delay, max(self.batch_window, next_due - self.clock.now()))
            await self.clock.sleep(delay)
