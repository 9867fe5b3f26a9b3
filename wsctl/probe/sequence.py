"""Loss, duplicate and reorder accounting for a numbered sequence (offsets, echo seqs)."""

from __future__ import annotations


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

    def seen(self, n: int) -> str:
        """Account for number ``n``; returns 'ok', 'gap', 'reordered' or 'duplicate'."""
        self.received += 1
        due = self.next
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
