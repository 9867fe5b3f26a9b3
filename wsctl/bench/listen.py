"""Listen mode: a connection only receives what a push-only service sends.

Every message in the measured window is counted (in total and per connection). Only when
the ``protocol`` block names a ``sequence`` or ``timestamp`` path is a message parsed as
JSON (the one cost per message that grows with its size): its number feeds the
connection's ``GenerationTracker`` (lost, duplicated, reordered), its sender's time gives
``delivery_latency`` (sender's wall clock -> this process's wall clock at receipt: the
two clocks must agree, same machine or synced). Pure apart from the receipt time given.
The engine imports this module, so what it needs of the engine's connection and recorder
is named here as two protocols (``Conn``, ``Recorder``), not imported.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

from wsctl.probe.sequence import GenerationTracker

if TYPE_CHECKING:
    from wsctl.probe.dialect import Dialect

__all__ = ["Listener", "merge_per_connection", "per_connection", "unmeasured"]

SEND_METRICS = ("rtt", "rtt.uncorrected", "messages.sent", "messages.per_s",
                "generator.sends_per_cpu_s")
LOSS_METRICS = ("messages.lost", "messages.duplicated", "messages.reordered")


class Conn(Protocol):
    """What listen mode reads and counts on one connection (``wsctl.bench.engine.Conn``)."""

    received: int  # messages in the measured window
    tracker: GenerationTracker | None  # made when the first number arrives

    @property
    def opened_at(self) -> float: ...
    @property
    def closed_at(self) -> float | None: ...


class Recorder(Protocol):
    """The measured window and the counts listen mode adds to
    (``wsctl.bench.engine.Recorder``)."""

    received: int
    invalid: int
    numbered: int
    timed: int
    seq_lost: int
    seq_duplicated: int
    seq_reordered: int

    @property
    def rec_start(self) -> float: ...
    @property
    def rec_end(self) -> float: ...
    @property
    def delivery(self) -> array[int]: ...


class Listener:
    """The per-message work of listen mode, shared by every connection of one engine."""

    __slots__ = ("rec", "wall_offset", "read", "sequenced", "timed")

    def __init__(self, dialect: Dialect | None, rec: Recorder, wall_offset: float) -> None:
        self.rec = rec
        self.wall_offset = wall_offset
        self.sequenced = dialect is not None and dialect.sequence is not None
        self.timed = dialect is not None and dialect.timestamp is not None
        self.read = dialect.read_frame if dialect is not None and (
            self.sequenced or self.timed) else None

    def on_message(self, conn: Conn, data: str | bytes, at: float) -> None:
        rec = self.rec
        if at < rec.rec_start or at > rec.rec_end:
            return
        rec.received += 1
        conn.received += 1
        read = self.read
        if read is None:
            return
        reading = read(data)[1]
        if reading.problem is not None:
            rec.invalid += 1
            return
        if reading.seq is not None:
            rec.numbered += 1
            tracker = conn.tracker
            if tracker is None:
                tracker = conn.tracker = GenerationTracker()
            tracker.seen(reading.seq)
        if reading.sent_at is not None:
            rec.timed += 1
            rec.delivery.append(int((at + self.wall_offset - reading.sent_at) * 1e6))


def settle(conns: Iterable[Conn], rec: Recorder) -> None:
    """The end of a run: every connection's still-missing numbers become lost, and the
    connections' counts are added into ``rec``."""
    for conn in conns:
        tracker = conn.tracker
        if tracker is None:
            continue
        tracker.settle()
        rec.seq_lost += tracker.lost
        rec.seq_duplicated += tracker.duplicated
        rec.seq_reordered += tracker.reordered


def per_connection(conns: Iterable[Conn], rec: Recorder) -> dict[str, Any]:
    """Messages received per connection (min, max, mean) and each connection's rate over
    the part of the measured window it was open; loss per connection when sequenced."""
    received: list[int] = []
    rates: list[float] = []
    lost: list[int] = []
    for conn in conns:
        received.append(conn.received)
        end = min(conn.closed_at if conn.closed_at is not None else rec.rec_end, rec.rec_end)
        span = end - max(conn.opened_at, rec.rec_start)
        if span > 0:
            rates.append(conn.received / span)
        if conn.tracker is not None:
            lost.append(conn.tracker.lost)
    out: dict[str, Any] = {"connections": len(received), "received": _spread(received),
                           "rate_per_s": _spread(rates)}
    if lost:
        out["lost"] = _spread(lost)
        out["with_loss"] = sum(1 for n in lost if n)
    return out


def _spread(values: list[int] | list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0, "min": None, "max": None, "mean": None}
    return {"n": len(values), "min": _round(min(values)), "max": _round(max(values)),
            "mean": round(sum(values) / len(values), 3)}


def _round(value: float) -> float | int:
    return value if isinstance(value, int) else round(value, 3)


def merge_per_connection(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The whole run's per-connection figures from several processes' (means weighted)."""
    parts = [p for p in parts if p]
    out: dict[str, Any] = {"connections": sum(p.get("connections", 0) for p in parts)}
    for key in ("received", "rate_per_s", "lost"):
        spreads = [p[key] for p in parts if p.get(key) and p[key]["n"]]
        if not spreads:
            if any(key in p for p in parts):
                out[key] = _spread([])
            continue
        n = sum(s["n"] for s in spreads)
        out[key] = {"n": n, "min": min(s["min"] for s in spreads),
                    "max": max(s["max"] for s in spreads),
                    "mean": round(sum(s["mean"] * s["n"] for s in spreads) / n, 3)}
    if any("with_loss" in p for p in parts):
        out["with_loss"] = sum(p.get("with_loss", 0) for p in parts)
    return out


def unmeasured(mode: str, dialect: Dialect | None, numbered: int = 0) -> dict[str, str]:
    """Metrics this plan cannot measure, each with what to configure instead (a criterion
    on one is an ERROR verdict quoting it: ``wsctl.results.criteria.unmeasured``).
    ``numbered``: messages that carried a sequence number (none: loss is unmeasured)."""
    seq_path = dialect.sequence if dialect is not None else None
    sequence = seq_path is not None
    timestamp = dialect is not None and dialect.timestamp is not None
    out: dict[str, str] = {}
    if mode == "listen":
        for name in SEND_METRICS:
            out[name] = "--mode listen sends nothing; use --mode echo for round trips"
        if not sequence:
            for name in LOSS_METRICS:
                out[name] = ("give the field that numbers each message: --sequence PATH "
                             "(or sequence: in --protocol FILE)")
        elif not numbered:
            for name in LOSS_METRICS:
                out[name] = f"no message had a number at {seq_path!r}: check --sequence"
        if not timestamp:
            out["delivery_latency"] = ("give the field with the sender's time: --timestamp "
                                       "PATH (or timestamp: in --protocol FILE)")
        if not (sequence or timestamp):
            out["messages.invalid"] = ("no frame is judged without --sequence or "
                                       "--timestamp")
        return out
    for name in LOSS_METRICS:
        out[name] = "bench counts loss in --mode listen with --sequence PATH"
    if mode != "resume":
        out["delivery_latency"] = ("use --mode listen --timestamp PATH (or --mode resume "
                                   "against the reference server)")
    return out
