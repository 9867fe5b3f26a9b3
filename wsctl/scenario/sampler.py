"""What a scenario looked like over time, from the probes' records: pure bookkeeping.

``Sampler.records`` is the fleet's record sink (called with each probe's state changes
as they happen); it keeps the number of open connections, the connection attempts in
every 1 s bucket since the start (for ``reconnect.peak_attempts_per_s``), connections
ended by close code (``closes.<code>``) and the attempts and losses since the last
sample. ``sample`` closes an interval and appends a
row to the series. No I/O and no await: instants are passed in.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable

from wsctl.errors import connect_kind_costs_server
from wsctl.probe.machine import Record, State
from wsctl.results.outcome import Series

COLUMNS = ("connections", "attempts", "messages", "lost")


class Sampler:
    """Counts from records since ``start`` (an instant of the records' clock)."""

    def __init__(self, start: float, interval: float = 1.0) -> None:
        self.start = start
        self.interval = interval
        self.open = 0
        self.attempts = 0
        self.lost = 0
        self.last_change: float | None = None  # last time a connection opened or closed
        self.buckets: Counter[int] = Counter()  # attempts per 1 s since the start
        # Attempts that reached a server (opened, or failed in a way that cost it work),
        # per 1 s bucket of their outcome; refused connects (nothing listening) are not.
        self.server_buckets: Counter[int] = Counter()
        self.closes: Counter[int] = Counter()  # connections ended by close code
        self._interval_attempts = 0
        self._interval_lost = 0
        self._messages_seen = 0
        self._series = Series(interval=interval)
        for column in COLUMNS:
            self._series.columns[column] = []

    def records(self, records: Iterable[Record]) -> None:
        """The fleet's sink: fold state changes into the counts."""
        for record in records:
            state, previous = record.state, record.previous
            if state is State.CONNECTING:  # the first attempt ("start") or a retry
                self.attempts += 1
                self._interval_attempts += 1
                self.buckets[max(0, math.floor(record.at - self.start))] += 1
            elif state is previous:
                continue  # a note (resumed, resync), not a state change
            if previous is State.CONNECTING and (
                    state is State.OPEN or (record.kind is not None
                                            and connect_kind_costs_server(record.kind))):
                self.server_buckets[max(0, math.floor(record.at - self.start))] += 1
            if state is State.OPEN and previous is not State.OPEN:
                self.open += 1
                self.last_change = record.at
            elif previous is State.OPEN and state is not State.OPEN:
                self.open -= 1
                self.last_change = record.at
            if state is State.LOST:
                self.lost += 1
                self._interval_lost += 1
            if record.code is not None and previous is State.OPEN:
                self.closes[record.code] += 1  # lost (1001, 1006, …) or closed (1000)

    def steady(self, now: float, probes: int, settle: float = 2.0) -> bool:
        """Every probe open and none opened or closed for ``settle`` seconds."""
        return (probes > 0 and self.open == probes and self.last_change is not None
                and now - self.last_change >= settle)

    def sample(self, now: float, messages_received: int, server_rss: float | None = None,
               connections: int | None = None) -> None:
        """Close the interval ending at ``now``: one row of the series. ``connections``
        overrides the open count (the last row: the level before the probes stopped)."""
        series = self._series
        series.t.append(round(now - self.start, 3))
        columns = series.columns
        columns["connections"].append(self.open if connections is None else connections)
        columns["attempts"].append(self._interval_attempts)
        columns["messages"].append(max(0, messages_received - self._messages_seen))
        columns["lost"].append(self._interval_lost)
        if server_rss is not None:  # owned server: bytes, 0 while it is not running
            columns.setdefault("server_rss", [0.0] * (len(series.t) - 1)).append(server_rss)
        self._messages_seen = messages_received
        self._interval_attempts = 0
        self._interval_lost = 0

    @property
    def peak_attempts_per_s(self) -> int:
        """Most connection attempts started in any one 1 s bucket since the start."""
        return max(self.buckets.values(), default=0)

    @property
    def peak_server_attempts_per_s(self) -> int:
        """Most attempts that reached a server (opened, or failed at a cost to it: HTTP
        status, timeout, reset, accept-then-drop) in any one 1 s bucket: the load a storm
        puts on the server. Connects refused while nothing listens are not in it."""
        return max(self.server_buckets.values(), default=0)

    def series(self) -> Series:
        return self._series
