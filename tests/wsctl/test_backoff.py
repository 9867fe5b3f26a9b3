"""Backoff policies and retry bookkeeping on virtual time with seeded RNGs."""

import itertools
import random

import pytest

from wsctl.backoff import BackoffPolicy, Retrier, delays


def take(policy, seed=7, n=8):
    return list(itertools.islice(delays(policy, random.Random(seed)), n))


def test_exponential_sequence_is_exact_and_capped():
    """Plain exponential doubles from base and stays at the cap."""
    policy = BackoffPolicy(kind="exponential", base=0.5, cap=10, factor=2)
    assert take(policy) == [0.5, 1.0, 2.0, 4.0, 8.0, 10, 10, 10]


def test_full_jitter_sequence_is_exact_for_a_seed():
    """Full jitter draws uniform(0, min(cap, base*2**n)) from the seeded RNG, in order."""
    policy = BackoffPolicy(kind="full", base=1, cap=5, factor=2)
    rng = random.Random(7)
    expected = [rng.uniform(0, c) for c in (1, 2, 4, 5, 5, 5, 5, 5)]
    assert take(policy, seed=7) == expected
    assert take(policy, seed=7) == take(policy, seed=7)
    assert take(policy, seed=7) != take(policy, seed=8)


def test_full_jitter_literal_values_for_seed_42():
    """A pinned sequence: a change to the formula or draw order shows up here."""
    policy = BackoffPolicy(kind="full", base=1, cap=30, factor=2)
    got = [round(d, 6) for d in take(policy, seed=42, n=4)]
    assert got == [0.639427, 0.050022, 1.100117, 1.785686]


def test_equal_jitter_stays_in_upper_half():
    """Equal jitter is ceiling/2 + uniform(0, ceiling/2), never below half the ceiling."""
    policy = BackoffPolicy(kind="equal", base=1, cap=8, factor=2)
    rng = random.Random(3)
    expected = [c / 2 + rng.uniform(0, c / 2) for c in (1, 2, 4, 8, 8)]
    got = take(policy, seed=3, n=5)
    assert got == expected
    assert all(d >= c / 2 for d, c in zip(got, (1, 2, 4, 8, 8), strict=True))


def test_decorrelated_jitter_follows_previous_delay():
    """Decorrelated jitter is min(cap, uniform(base, previous*3)), starting from base."""
    policy = BackoffPolicy(kind="decorrelated", base=1, cap=6)
    rng = random.Random(5)
    previous, expected = 1.0, []
    for _ in range(6):
        previous = min(6, rng.uniform(1, previous * 3))
        expected.append(previous)
    assert take(policy, seed=5, n=6) == expected
    assert all(1 <= d <= 6 for d in expected)


def test_huge_attempt_counts_do_not_overflow():
    """Thousands of attempts stay at the cap instead of overflowing factor**n."""
    policy = BackoffPolicy(kind="exponential", base=1, cap=3, factor=10)
    assert list(itertools.islice(delays(policy, random.Random(1)), 2000))[-1] == 3


def test_max_attempts_gives_up_after_that_many_attempts():
    """With max_attempts=3 the first connect plus two retries happen, then None."""
    retrier = Retrier(BackoffPolicy(kind="exponential", base=1, max_attempts=3),
                      random.Random(0), now=0.0)
    assert retrier.next_delay(0.0) == 1
    assert retrier.next_delay(1.0) == 2
    assert retrier.next_delay(3.0) is None
    assert retrier.attempts == 3


def test_deadline_clamps_last_wait_then_gives_up():
    """No attempt starts after the deadline; the last wait is shortened to meet it."""
    policy = BackoffPolicy(kind="exponential", base=4, cap=100, deadline=10)
    retrier = Retrier(policy, random.Random(0), now=100.0)
    assert retrier.next_delay(100.0) == 4  # attempt at 104
    assert retrier.next_delay(104.0) == 6  # would be 8; deadline at 110
    assert retrier.next_delay(110.0) is None


def test_min_uptime_reset_only_after_connection_lasted():
    """A connection dropped before min_uptime keeps growing the delay; a long one resets."""
    policy = BackoffPolicy(kind="exponential", base=1, cap=100, min_uptime=5)
    retrier = Retrier(policy, random.Random(0), now=0.0)
    assert retrier.next_delay(0.0) == 1
    retrier.opened(1.0)
    retrier.lost(2.0)  # up 1 s < 5 s: accept-then-drop must not reset
    assert retrier.next_delay(2.0) == 2
    retrier.opened(4.0)
    retrier.lost(10.0)  # up 6 s: reset
    assert retrier.next_delay(10.0) == 1
    assert retrier.attempts == 1


def test_flapping_server_reaches_max_attempts():
    """Accept-then-drop forever exhausts max_attempts instead of retrying at base forever."""
    policy = BackoffPolicy(kind="exponential", base=1, cap=100, min_uptime=5, max_attempts=4)
    retrier = Retrier(policy, random.Random(0), now=0.0)
    now, waits = 0.0, []
    while (delay := retrier.next_delay(now)) is not None:
        waits.append(delay)
        now += delay
        retrier.opened(now)
        now += 0.1
        retrier.lost(now)
    assert waits == [1, 2, 4]


def test_retry_hint_raises_the_wait():
    """A server hint longer than the computed delay wins; a shorter one does not."""
    retrier = Retrier(BackoffPolicy(kind="exponential", base=1), random.Random(0), 0.0)
    assert retrier.next_delay(0.0, hint=2.5) == 2.5
    assert retrier.next_delay(0.0, hint=0.1) == 2


@pytest.mark.parametrize("kwargs", [{"kind": "fibonacci"}, {"factor": 0.5}, {"base": -1},
                                    {"max_attempts": 0}, {"deadline": 0}])
def test_invalid_policies_are_rejected(kwargs):
    """Nonsense parameters raise ValueError with the parameter named."""
    with pytest.raises(ValueError):
        BackoffPolicy(**kwargs)


def test_small_random_is_seeded_and_in_range():
    """SmallRandom repeats per seed, differs across seeds, and stays in [a, b)."""
    from wsctl.backoff import SmallRandom

    first = [SmallRandom(9).uniform(1, 2) for _ in range(3)]
    assert first[0] == first[1] == first[2]
    rng = SmallRandom(9)
    draws = [rng.uniform(0, 1) for _ in range(10_000)]
    assert all(0 <= d < 1 for d in draws)
    assert 0.48 < sum(draws) / len(draws) < 0.52
    assert SmallRandom(10).uniform(0, 1) != SmallRandom(9).uniform(0, 1)
    assert len(set(draws)) == len(draws)


def test_refused_connects_retry_fast_without_advancing_backoff():
    """Free failures wait uniform(fast/2, fast); a costly one then gets the first step."""
    policy = BackoffPolicy(kind="exponential", base=1, cap=100, fast=0.2, fast_for=10)
    retrier = Retrier(policy, random.Random(1), now=0.0)
    waits = [retrier.next_delay(t, free=True) for t in (0.0, 0.2, 0.4, 0.6)]
    assert all(0.1 <= w <= 0.2 for w in waits)
    assert retrier.next_delay(1.0) == 1  # a 503: exponential from the start
    assert retrier.next_delay(2.0) == 2
    assert retrier.attempts == 7 and retrier.free_attempts == 4


def test_fast_path_ends_after_fast_for_and_honours_hints_and_deadline():
    """Past fast_for, or with a Retry-After hint, refused connects back off normally;
    the deadline still cuts a fast wait."""
    policy = BackoffPolicy(kind="exponential", base=4, cap=100, fast=0.5, fast_for=3,
                           deadline=5)
    retrier = Retrier(policy, random.Random(1), now=0.0)
    assert retrier.next_delay(3.5, free=True) == 1.5  # past fast_for: 4, cut to deadline
    retrier = Retrier(policy, random.Random(1), now=0.0)
    assert retrier.next_delay(0.0, hint=2.0, free=True) == 4  # a hint: not free
    retrier = Retrier(policy, random.Random(1), now=0.0)
    assert retrier.next_delay(4.9, free=True) == pytest.approx(0.1)
    assert retrier.next_delay(5.0, free=True) is None


def test_free_attempts_do_not_count_toward_max_attempts():
    """max_attempts limits attempts that cost the server; fast retries are extra."""
    policy = BackoffPolicy(kind="exponential", base=1, max_attempts=2, fast=0.1, fast_for=60)
    retrier = Retrier(policy, random.Random(1), now=0.0)
    for t in range(10):
        assert retrier.next_delay(t * 0.1, free=True) is not None
    assert retrier.next_delay(1.0) == 1
    assert retrier.next_delay(2.0) is None


def test_fast_retry_can_be_turned_off():
    """fast=None: a refused connect backs off like any failure."""
    policy = BackoffPolicy(kind="exponential", base=1, fast=None)
    retrier = Retrier(policy, random.Random(1), now=0.0)
    assert retrier.next_delay(0.0, free=True) == 1


def test_the_policy_scenario_and_cli_defaults_agree() -> None:
    """BackoffPolicy, a scenario's ``probes.backoff`` and ``wsctl probe``'s flags state
    each default separately (the flags as text for --help): all three must give the same
    policy, so a default changed in one place (the fast retry went 100 -> 250 ms) cannot
    leave the others behind."""
    import inspect

    from wsctl.cli.probe import probe
    from wsctl.scenario.model import BackoffSpec
    from wsctl.units import parse_duration

    assert BackoffSpec().policy() == BackoffPolicy()
    flags = {name: p.default for name, p in inspect.signature(probe).parameters.items()}
    from_flags = BackoffPolicy(
        kind=flags["backoff"].value, base=parse_duration(flags["backoff_base"], "b"),
        cap=parse_duration(flags["backoff_cap"], "c"), factor=flags["backoff_factor"],
        min_uptime=parse_duration(flags["min_uptime"], "m"),
        max_attempts=flags["max_attempts"] or None,
        deadline=parse_duration(flags["retry_deadline"], "d") or None,
        fast=parse_duration(flags["retry_fast"], "f") or None,
        fast_for=parse_duration(flags["retry_fast_for"], "ff"))
    assert from_flags == BackoffPolicy()
