"""Sequence accounting: SequenceTracker's cases and GenerationTracker's restart rule."""

import pytest

from wsctl.probe.sequence import GenerationTracker, Judged, SequenceTracker


def feed(tracker: GenerationTracker, *numbers: int) -> list[str]:
    return [tracker.seen(n).kind for n in numbers]


def counts(tracker: GenerationTracker) -> tuple[int, int, int, int, int]:
    """(received, lost, duplicated, reordered, resyncs)"""
    return (tracker.received, tracker.lost, tracker.duplicated, tracker.reordered,
            tracker.resyncs)


# SequenceTracker ---------------------------------------------------------------------


def test_plain_tracker_in_order_gap_fill_and_duplicate():
    """A gap is missing until filled (reordered); a number already delivered is a duplicate."""
    t = SequenceTracker()
    t.expect(1)
    assert [t.seen(n) for n in (1, 2, 5, 3, 3, 6)] == [
        "ok", "ok", "gap", "reordered", "duplicate", "ok"]
    assert t.missing == [[4, 4]] and t.highest == 6 and t.next == 7
    assert t.settle() == 1 and (t.lost, t.duplicated, t.reordered) == (1, 1, 1)


def test_plain_tracker_fill_splits_a_range():
    """Filling the middle of a missing range leaves the two sides missing."""
    t = SequenceTracker()
    t.seen(1)
    t.seen(10)
    assert t.seen(5) == "reordered"
    assert t.missing == [[2, 4], [6, 9]]
    assert t.settle() == 7


# GenerationTracker: within one connection -------------------------------------------


def test_first_number_ever_starts_the_count():
    """Nothing before the first number is judged: starting at 500 loses nothing."""
    t = GenerationTracker()
    t.connected()
    assert feed(t, 500, 501) == ["ok", "ok"]
    assert t.settle() == 0 and t.last_seq == 501


def test_forward_jump_within_a_connection_is_missing_then_lost():
    """n > due: the skipped numbers are missing, and lost at settle."""
    t = GenerationTracker()
    assert feed(t, 1, 2, 6) == ["ok", "ok", "gap"]
    assert t.missing == 3 and t.lost == 0
    assert t.settle() == 3
    assert counts(t) == (3, 3, 0, 0, 0)


def test_backward_step_that_fills_a_hole_is_reordered():
    """A late number that was missing is reordered and no longer counts toward loss."""
    t = GenerationTracker()
    assert feed(t, 1, 3, 2, 4) == ["ok", "gap", "reordered", "ok"]
    assert t.settle() == 0
    assert counts(t) == (4, 0, 0, 1, 0)


def test_backward_step_within_a_connection_is_never_a_restart():
    """Within a connection, n < due that fills no hole is a duplicate, even far back."""
    t = GenerationTracker()
    t.connected()
    assert feed(t, 10, 11, 12, 1, 12) == ["ok", "ok", "ok", "duplicate", "duplicate"]
    assert counts(t) == (5, 0, 2, 0, 0) and t.last_seq == 12


# GenerationTracker: the first number after a reconnect -------------------------------


def test_reconnect_continuing_in_order_loses_nothing():
    """First number after a reconnect == h + 1 (e.g. a resume): in order."""
    t = GenerationTracker()
    feed(t, 1, 2, 3)
    t.connected()
    assert feed(t, 4) == ["ok"]
    assert t.settle() == 0 and t.resyncs == 0


def test_reconnect_with_a_jump_counts_the_gap_as_lost():
    """First number after a reconnect > h + 1: the numbers between are lost (the outage)."""
    t = GenerationTracker()
    feed(t, 1, 2, 3)
    t.connected()
    assert t.seen(20) == Judged("gap")
    assert t.settle() == 16
    assert counts(t) == (4, 16, 0, 0, 0)


def test_reconnect_repeating_the_last_number_is_a_duplicate():
    """First number after a reconnect == h: a duplicate (an inclusive resume), no resync."""
    t = GenerationTracker()
    feed(t, 1, 2, 3)
    t.connected()
    assert feed(t, 3, 4) == ["duplicate", "ok"]
    assert counts(t) == (5, 0, 1, 0, 0)


def test_reconnect_with_a_lower_number_is_a_new_generation():
    """First number after a reconnect < h: a resync; the old holes are lost, the rest not."""
    t = GenerationTracker()
    feed(t, 1, 2, 5, 6)  # 3 and 4 missing in generation one
    t.connected()
    assert t.seen(1) == Judged("resync", lost=2)
    assert feed(t, 2, 3) == ["ok", "ok"]
    assert t.last_seq == 3
    assert t.settle() == 0
    assert counts(t) == (7, 2, 0, 0, 1)


def test_new_generation_judges_its_own_numbers():
    """After a resync, gaps and duplicates are judged against the new generation only."""
    t = GenerationTracker()
    feed(t, 100, 101)
    t.connected()
    assert feed(t, 5, 7, 7, 6) == ["resync", "gap", "duplicate", "reordered"]
    assert t.settle() == 0
    assert counts(t) == (6, 0, 1, 1, 1)


def test_restart_rule_applies_only_to_the_first_number_of_a_connection():
    """The second number of a connection, lower than the first, is not a restart."""
    t = GenerationTracker()
    feed(t, 1, 2, 3)
    t.connected()
    assert feed(t, 10, 2) == ["gap", "duplicate"]
    assert t.resyncs == 0


def test_a_connection_without_numbers_keeps_the_next_one_fresh():
    """Two reconnects with no number between: the next number is still judged as first."""
    t = GenerationTracker()
    feed(t, 5, 6)
    t.connected()
    t.connected()
    assert feed(t, 1) == ["resync"]


def test_reconnect_before_any_number_starts_the_count():
    """A reconnect before any number arrived: the first number starts the count."""
    t = GenerationTracker()
    t.connected()
    t.connected()
    assert feed(t, 42) == ["ok"]
    assert t.settle() == 0 and t.resyncs == 0


@pytest.mark.parametrize(("first_after", "kind", "lost_at_settle", "resyncs"), [
    (11, "ok", 0, 0), (15, "gap", 4, 0), (10, "duplicate", 0, 0), (9, "resync", 0, 1),
    (0, "resync", 0, 1),
])
def test_first_number_after_reconnect_table(first_after, kind, lost_at_settle, resyncs):
    """The restart rule's table, around h = 10."""
    t = GenerationTracker()
    feed(t, 8, 9, 10)
    t.connected()
    assert t.seen(first_after).kind == kind
    assert t.settle() == lost_at_settle and t.resyncs == resyncs
