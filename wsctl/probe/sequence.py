"""Loss, duplicate and reorder accounting for a numbered sequence.

``SequenceTracker`` judges one stream of numbers (the reference protocol's offsets, echo
seqs); ``GenerationTracker`` wraps it for a service's own numbers across reconnects, where
the count may restart (a new generation, counted as a resync).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Outcome = Literal["ok", "gap", "reordered", "duplicate"]


class SequenceTracker:
    """Counts what arrived against what should have, from sequence numbers alone.

    ``expect(n)`` says the next number due is ``n``. ``seen(n)`` classifies an arrival:
    the one due, an early one (the skipped numbers become *missing*), a late one that
    fills a missing hole (*reordered*), or one already delivered (*duplicate*).
    ``settle()`` turns every still-missing number into *lost*. Memory is one small list
    of missing ranges, not a set of numbers.
    """

    __slots__ = ("next", "highest", "missing", "received", "duplicated", "reordered", "lost")

    def __init__(self) -> None:
        self.next: int | None = None  # the number due next; None until told
        self.highest: int | None = None  # highest number delivered so far
        self.missing: list[list[int]] = []  # [first, last] ranges not delivered yet
        self.received = 0
        self.duplicated = 0
        self.reordered = 0
        self.lost = 0

    def expect(self, n: int) -> None:
        """The next number due is ``n`` (after a welcome or a reset)."""
        self.next = n

    def seen(self, n: int) -> Outcome:
        """Account for number ``n``; returns 'ok', 'gap', 'reordered' or 'duplicate'."""
        self.received += 1
        due = self.next
        outcome: Outcome
        if due is None or n == due:
            outcome = "ok"
        elif n > due:
            self.missing.append([due, n - 1])
            outcome = "gap"
        elif self._fill(n):
            self.reordered += 1
            return "reordered"
        else:
            self.duplicated += 1
            return "duplicate"
        self.next = n + 1
        self.highest = n if self.highest is None else max(self.highest, n)
        return outcome

    def _fill(self, n: int) -> bool:
        for i, (first, last) in enumerate(self.missing):
            if first <= n <= last:
                pieces = [r for r in ([first, n - 1], [n + 1, last]) if r[0] <= r[1]]
                self.missing[i : i + 1] = pieces
                return True
        return False

    def settle(self) -> int:
        """Count every still-missing number as lost; returns how many were added."""
        added = sum(last - first + 1 for first, last in self.missing)
        self.missing.clear()
        self.lost += added
        return added

    def __repr__(self) -> str:
        return (f"SequenceTracker(next={self.next}, received={self.received}, "
                f"lost={self.lost}, duplicated={self.duplicated}, reordered={self.reordered})")


@dataclass(frozen=True, slots=True)
class Judged:
    """What one number was: its ``kind`` and how many numbers it made ``lost`` (a resync
    settles the old generation's holes; nothing else declares loss before ``settle``)."""

    kind: Outcome | Literal["resync"]
    lost: int = 0


class GenerationTracker:
    """A service's own sequence numbers across reconnects, with restarts allowed.

    The rule (docs/own-service.md, "When a sequence restarts"), with ``h`` the highest
    number delivered in the current generation and ``d = h + 1`` the one due:

    - The first number ever starts the count: nothing before it is judged.
    - The first number ``n`` of a connection after ``connected()`` (a reconnect):
      ``n > h`` same generation, ``h+1 … n-1`` are missing (a jump is loss);
      ``n == h`` a duplicate (a resume that repeats the last number);
      ``n < h`` a new generation (the service restarted its count): every number still
      missing from the old one is lost, ``resyncs`` += 1, counting restarts at ``n``.
    - Any other number ``n``: ``n == d`` in order; ``n > d`` a gap, ``d … n-1`` missing;
      ``n < d`` that fills a missing number is reordered (no longer missing), any other
      ``n < d`` a duplicate. A backwards step within a connection is never a restart.
    - ``settle()`` (the end of a run) turns every still-missing number into lost.

    Counts are cumulative over generations; ``last_seq`` is ``h`` (``{last_seq}`` in a
    resume template), ``None`` until a number arrived.
    """

    __slots__ = ("tracker", "fresh", "resyncs")

    def __init__(self) -> None:
        self.tracker = SequenceTracker()
        self.fresh = False  # the next number is the first of a connection after a reconnect
        self.resyncs = 0

    def connected(self) -> None:
        """A new connection opened: its first number is judged against the restart rule."""
        self.fresh = self.tracker.highest is not None

    def seen(self, n: int) -> Judged:
        """Account for number ``n`` (see the class docstring for the rule)."""
        tracker = self.tracker
        fresh, self.fresh = self.fresh, False
        highest = tracker.highest
        if fresh and highest is not None and n < highest:
            lost = tracker.settle()
            self.resyncs += 1
            tracker.highest = tracker.next = None
            tracker.seen(n)
            return Judged("resync", lost)
        if fresh and highest is not None:
            tracker.expect(highest + 1)  # a reconnect continues after the highest number
        return Judged(tracker.seen(n))

    def settle(self) -> int:
        """Every still-missing number becomes lost; returns how many were added."""
        return self.tracker.settle()

    @property
    def last_seq(self) -> int | None:
        return self.tracker.highest

    @property
    def missing(self) -> int:
        """Numbers skipped so far that may still arrive (lost at ``settle``)."""
        return sum(last - first + 1 for first, last in self.tracker.missing)

    @property
    def received(self) -> int:
        return self.tracker.received

    @property
    def lost(self) -> int:
        return self.tracker.lost

    @property
    def duplicated(self) -> int:
        return self.tracker.duplicated

    @property
    def reordered(self) -> int:
        return self.tracker.reordered

    def __repr__(self) -> str:
        t = self.tracker
        return (f"GenerationTracker(last_seq={t.highest}, received={t.received}, "
                f"lost={t.lost}, missing={self.missing}, duplicated={t.duplicated}, "
                f"reordered={t.reordered}, resyncs={self.resyncs})")
