"""Reconnect delay policies: pure generators plus the per-outage retry bookkeeping.

``delays(policy, rng)`` yields the wait before each successive reconnect attempt:

- ``full`` (default): ``uniform(0, min(cap, base * factor**n))`` — AWS "full jitter".
- ``equal``: half the ceiling plus ``uniform(0, ceiling / 2)``.
- ``decorrelated``: ``min(cap, uniform(base, previous * 3))`` — AWS "decorrelated
  jitter"; ``factor`` does not apply to it.
- ``exponential``: ``min(cap, base * factor**n)``, no jitter.

``Retrier`` applies a policy to one connection's life: it counts attempts, resets the
counter only after a connection stayed up ``min_uptime`` seconds (so a server that
accepts then drops at once cannot defeat backoff), and gives up after ``max_attempts``
or once ``deadline`` seconds have passed since the outage began. No I/O, no sleeping:
callers pass the time in.

Failures that cost the server nothing — a connect refused by the kernel because nothing
listens — are retried after a short jittered wait, ``uniform(fast / 2, fast)``, for the
first ``fast_for`` seconds of an outage: a restarted server is found within ``fast``
seconds of listening instead of at the next exponential step. They neither advance the
exponential sequence nor count toward ``max_attempts`` (the deadline still applies).
Failures that cost the server work (HTTP 503/5xx, handshake timeouts, a connection
accepted then dropped) keep exponential backoff, which is what bounds a storm.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal, Protocol

BackoffKind = Literal["full", "equal", "decorrelated", "exponential"]
KINDS: tuple[BackoffKind, ...] = ("full", "equal", "decorrelated", "exponential")


class Uniform(Protocol):
    """The one thing backoff needs from an RNG (``random.Random`` has it)."""

    def uniform(self, a: float, b: float) -> float: ...


class SmallRandom:
    """A seeded SplitMix64 generator in 56 bytes, for fleets of thousands of probes.

    ``random.Random`` keeps 2.5 KiB of Mersenne Twister state; one per probe would be a
    tenth of a probe's memory budget. Backoff jitter needs reproducibility, not quality.
    """

    __slots__ = ("_state",)

    def __init__(self, seed: int) -> None:
        self._state = seed & 0xFFFFFFFFFFFFFFFF

    def random(self) -> float:
        """A float in [0, 1)."""
        self._state = (self._state + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
        z = self._state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
        z ^= z >> 31
        return (z >> 11) / 9007199254740992.0  # 53 bits

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.random()

    def __repr__(self) -> str:
        return "SmallRandom(...)"


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """How long to wait between reconnect attempts and when to stop trying.

    ``max_attempts`` counts connection attempts in one outage (the first connect counts
    as one); ``None`` means no limit. ``deadline`` is seconds from the start of an outage
    after which no new attempt is made; ``None`` means no limit.
    """

    kind: BackoffKind = "full"
    base: float = 0.5
    cap: float = 30.0
    factor: float = 2.0
    min_uptime: float = 2.0
    max_attempts: int | None = None
    deadline: float | None = None
    fast: float | None = 0.25  # ceiling of the wait after a free failure; None: no fast path
    fast_for: float = 30.0  # seconds from an outage's start that the fast path lasts

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"backoff kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if self.base < 0 or self.cap < 0:
            raise ValueError("backoff base and cap must be >= 0")
        if self.factor < 1:
            raise ValueError("backoff factor must be >= 1")
        if self.min_uptime < 0:
            raise ValueError("min uptime must be >= 0")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError("max attempts must be >= 1")
        if self.deadline is not None and self.deadline <= 0:
            raise ValueError("retry deadline must be > 0")
        if self.fast is not None and self.fast <= 0:
            raise ValueError("fast retry interval must be > 0 (or off)")
        if self.fast_for < 0:
            raise ValueError("fast retry window must be >= 0")

    @property
    def bound(self) -> float:
        """The longest single wait this policy can produce (before any server retry hint)."""
        return self.cap


def delays(policy: BackoffPolicy, rng: Uniform) -> Iterator[float]:
    """Yield the wait before attempt 1, 2, 3, … of one outage, forever."""
    ceiling = min(policy.cap, policy.base)
    previous = policy.base
    while True:
        if policy.kind == "full":
            yield rng.uniform(0.0, ceiling)
        elif policy.kind == "equal":
            yield ceiling / 2 + rng.uniform(0.0, ceiling / 2)
        elif policy.kind == "decorrelated":
            previous = min(policy.cap, rng.uniform(policy.base, previous * 3))
            yield previous
        else:
            yield ceiling
        # Grow by multiplication, never by ``factor**n``, which overflows after ~1000 tries.
        ceiling = min(policy.cap, ceiling * policy.factor)


class Retrier:
    """Per-connection retry state: attempts in the current outage, resets, giving up."""

    __slots__ = ("policy", "_rng", "_delays", "attempts", "free_attempts", "window_start",
                 "_opened_at")

    def __init__(self, policy: BackoffPolicy, rng: Uniform, now: float) -> None:
        self.policy = policy
        self._rng = rng
        self._delays = delays(policy, rng)
        self.attempts = 1  # the first connect is an attempt, made without waiting
        self.free_attempts = 0  # of those, retried fast after a free failure
        self.window_start = now
        self._opened_at: float | None = None

    def opened(self, now: float) -> None:
        """A connection is open (it only resets the counter once it has lasted)."""
        self._opened_at = now

    def lost(self, now: float) -> None:
        """The open connection is gone; reset the counter if it stayed up long enough."""
        opened_at, self._opened_at = self._opened_at, None
        if opened_at is not None and now - opened_at >= self.policy.min_uptime:
            self.attempts = 0
            self.free_attempts = 0
            self.window_start = now
            self._delays = delays(self.policy, self._rng)

    def next_delay(self, now: float, hint: float | None = None, *, free: bool = False
                   ) -> float | None:
        """Wait before the next attempt, or ``None`` to give up; counts that attempt.

        A server's retry hint (seconds) raises the wait to at least the hint. ``free``:
        the failure cost the server nothing (connection refused), so within ``fast_for``
        of the outage's start the wait is ``uniform(fast / 2, fast)``.
        """
        policy = self.policy
        fast = policy.fast
        if free and hint is None and fast is not None and \
                now - self.window_start < policy.fast_for:
            delay = self._rng.uniform(fast / 2, fast)
            if policy.deadline is not None:
                remaining = self.window_start + policy.deadline - now
                if remaining <= 0:
                    return None
                delay = min(delay, remaining)
            self.attempts += 1
            self.free_attempts += 1
            return delay
        if policy.max_attempts is not None and \
                self.attempts - self.free_attempts >= policy.max_attempts:
            return None
        delay = next(self._delays)
        if hint is not None:
            delay = max(delay, hint)
        if policy.deadline is not None:
            remaining = self.window_start + policy.deadline - now
            if remaining <= 0:
                return None
            delay = min(delay, remaining)
        self.attempts += 1
        return delay

    def __repr__(self) -> str:
        return f"Retrier(attempts={self.attempts}, window_start={self.window_start})"
