"""WebSocketManager: binds connections to streams, resumes them, and fans out events.

The resume handshake and fan-out write to the connection without awaiting (the way
``websockets.broadcast`` does), so a welcome, its replay and the subscription happen in
one step of the event loop: no live event can slip in between, and offsets on one
connection are strictly increasing with no holes and no duplicates. Events reach clients
only once the store has committed them (``publish`` appends, ``flush`` commits the batch
and then fans it out in the same step; stores/base.py): no client holds an offset the
store could lose. A resume older than the store's hot window first awaits the history
(``read_history``), then runs the same one-step handshake with it. A client whose
unsent data passes ``send_buffer`` bytes is a slow consumer: it is closed with 1008 and
can resume; it never grows the server's memory without bound. That holds for what the
server writes on its own too (pongs to a peer that floods pings and never reads). A
close the server decides on is carried out within ``close_timeout``: the close frame is
sent, and a peer that has not finished closing by then (its receive window shut, say)
is aborted.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from server_stub.connection_pool import ConnectionPool, Refusal, Session
from server_stub.jobs import JobSchedule
from server_stub.stores import StoredEvent, StreamStore
from wsctl import protocol as p
from wsctl.clock import Clock, MonotonicClock

log = logging.getLogger("server_stub")
CLOSE_INTERNAL_ERROR = 1011
_json_str = json.encoder.encode_basestring_ascii  # json.dumps' own string encoder (C)


@dataclass(frozen=True, slots=True)
class ResumeRequest:
    """What a client asked for in its URL: the stream, and where it left off."""

    stream: str
    epoch: str | None = None
    offset: int | None = None

    @property
    def resuming(self) -> bool:
        return self.epoch is not None and self.offset is not None


@dataclass(frozen=True, slots=True)
class ResumePlan:
    """The answer to a resume: whether the gap is filled, what to replay, the snapshot
    (as JSON text, ready for the welcome)."""

    recovered: bool
    replay: list[StoredEvent]
    snapshot: str | None
    reason: str


def plan_resume(
    store: StreamStore, request: ResumeRequest, resume_enabled: bool = True,
    history: list[StoredEvent] | None = None,
) -> ResumePlan:
    """Decide a resume: replay the whole gap, or say ``recovered: false`` with a snapshot.

    The gap comes from the store's hot window (``read``), or, when it starts before that,
    from ``history`` (what ``read_history`` returned before this step) joined to the hot
    window; if the two do not meet, the gap cannot be filled and the answer is a resync.
    """
    stream = request.stream
    head = store.head(stream)
    if not request.resuming:
        snapshot = store.snapshot_json(stream) if head else None
        return ResumePlan(True, [], snapshot, "fresh")
    assert request.offset is not None
    if not resume_enabled:
        return ResumePlan(False, [], store.snapshot_json(stream), "resume disabled")
    if request.epoch != store.epoch(stream):
        return ResumePlan(False, [], store.snapshot_json(stream), "epoch changed")
    if request.offset > head:
        return ResumePlan(False, [], store.snapshot_json(stream), "offset ahead of stream")
    replay = store.read(stream, request.offset)
    if request.offset < head and (not replay or replay[0].offset != request.offset + 1):
        replay = [event for event in history or () if event.offset <= head]
        if replay and replay[-1].offset < head:
            replay += store.read(stream, replay[-1].offset)
        if (not replay or replay[0].offset != request.offset + 1
                or replay[-1].offset - replay[0].offset + 1 != len(replay)
                or replay[-1].offset != head):
            return ResumePlan(False, [], store.snapshot_json(stream), "history trimmed")
    return ResumePlan(True, replay, None, "replayed")


def encode_welcome(stream: str, epoch: str, offset: int, recovered: bool, replayed: int,
                   heartbeat_json: str, snapshot_json: str | None = None) -> str:
    """The ``welcome`` frame, written by hand: the same text as
    ``protocol.encode(Welcome(...))`` (a test holds them equal) without building the
    dataclass, ``asdict``'s deep copy and a generic ``json.dumps`` for every connection.

    ``heartbeat_json`` and ``snapshot_json`` are compact JSON (``separators=(",", ":")``).
    """
    snapshot = f',"snapshot":{snapshot_json}' if snapshot_json is not None else ""
    return (f'{{"type":"welcome","stream":{_json_str(stream)},"epoch":{_json_str(epoch)},'
            f'"offset":{offset},"recovered":{"true" if recovered else "false"},'
            f'"replayed":{replayed},"heartbeat":{heartbeat_json}{snapshot}}}')


MAX_REASON = 123  # bytes: a close frame's payload is at most 125, two of them the code


def close_reason(message: str) -> str:
    """``message`` cut to fit a close frame: at most 123 bytes of UTF-8, whole characters
    (cut by characters, non-ASCII text made the frame too long and the close never left)."""
    return message.encode(errors="replace")[:MAX_REASON].decode(errors="ignore")


def abort_after(session: Session, delay: float) -> None:
    """Abort ``session``'s connection in ``delay`` seconds unless it has gone by then: the
    hard deadline of a close the server decided on (websockets' own close first waits for
    the write buffer to drain, which a peer with a shut receive window never lets happen)."""
    def abort() -> None:
        conn = session.conn
        if not conn.connection_lost_waiter.done():
            log.warning("close deadline id=%d addr=%s stream=%s: not closed within %.1fs, "
                        "aborting (%d bytes unsent)", session.id, session.address,
                        session.stream, delay, conn.transport.get_write_buffer_size())
            conn.transport.abort()

    asyncio.get_running_loop().call_later(delay, abort)


class WebSocketManager:
    """Streams, sessions, resume and fan-out for the reference server."""

    def __init__(
        self,
        store: StreamStore,
        pool: ConnectionPool,
        jobs: JobSchedule,
        *,
        heartbeat: p.Heartbeat,
        send_buffer: int = 256 * 1024,
        resume_enabled: bool = True,
        max_streams: int = 0,
        max_streams_per_client: int = 0,
        stream_idle: float = 120.0,
        close_timeout: float = 3.0,
        clock: Clock | None = None,
    ) -> None:
        self.store = store
        self.pool = pool
        self.jobs = jobs
        self.heartbeat = heartbeat
        self._heartbeat_json = json.dumps(
            {"interval": heartbeat.interval, "timeout": heartbeat.timeout},
            separators=(",", ":"))
        self.send_buffer = send_buffer
        self.resume_enabled = resume_enabled
        self.max_streams = max_streams
        self.max_streams_per_client = max_streams_per_client
        self.stream_idle = stream_idle
        self.close_timeout = close_timeout
        self.clock = clock or MonotonicClock()
        self.subscribers: dict[str, set[Session]] = {}
        self._idle_since: dict[str, float] = {}  # oldest first: insertion order is time order
        self._creator: dict[str, str] = {}  # stream -> the client address that made it
        self._made_by: dict[str, set[str]] = {}  # client address -> streams it made
        self.resumes: dict[str, int] = {"fresh": 0, "recovered": 0, "resync": 0}
        self.slow_consumers = 0
        self.store_errors = 0  # commits failed in a row
        self._outbox: list[tuple[str, StoredEvent]] = []  # published, not yet committed
        store.watch(lambda stream, events: self.deliver([(stream, e) for e in events]),
                    self.reset_stream)

    def __repr__(self) -> str:
        return f"WebSocketManager(streams={len(self.jobs)}, store={self.store!r})"

    # -- writing ---------------------------------------------------------------------

    def write(self, session: Session, frame: str | bytes, check_slow: bool = True) -> bool:
        """Queue one text frame on the connection now, without awaiting.

        Returns False when the connection is not open or was closed as a slow consumer.
        """
        conn = session.conn
        if session.closing or conn.protocol.state is not State.OPEN:
            return False
        data = frame.encode() if isinstance(frame, str) else frame
        try:
            conn.protocol.send_text(data)
            conn.send_data()
        except Exception:  # the transport is going away; its close path cleans up
            return False
        counters = self.pool.counters
        counters.messages_out += 1
        counters.bytes_out += len(data)
        return not (check_slow and self.over_buffer(session))

    def over_buffer(self, session: Session) -> bool:
        """True, and the connection closed 1008 as a slow consumer (resumable), when its
        unsent data passes ``send_buffer``; reading from it stops, so a peer flooding
        pings gets no more pongs queued."""
        conn = session.conn
        buffered = conn.transport.get_write_buffer_size()
        if buffered <= self.send_buffer:
            return False
        if not session.closing:
            self.slow_consumers += 1
            log.warning(
                "slow consumer id=%d stream=%s buffered=%d > %d: closing 1008 (resumable)",
                session.id, session.stream, buffered, self.send_buffer,
            )
            self.close_with_error(
                session, p.ERR_SLOW_CONSUMER,
                "too slow to keep up; resume with epoch and offset", p.CLOSE_POLICY,
            )
        conn.transport.pause_reading()
        return True

    def close_with_error(self, session: Session, code: str, message: str, close_code: int) -> None:
        """Send an ``error`` frame, then close with ``close_code`` (in the background),
        aborting the connection if that has not finished within ``close_timeout``."""
        if session.closing:
            return
        self.write(session, p.encode(p.Error(code, message)), check_slow=False)
        session.closing = True
        asyncio.get_running_loop().create_task(
            session.conn.close(close_code, close_reason(message))
        )
        abort_after(session, self.close_timeout)

    # -- streams ---------------------------------------------------------------------

    def publish(self, stream: str, data: dict[str, Any]) -> None:
        """Append one event to the stream (with its job's progress); ``flush`` sends it.
        A stream another instance produces (shared store) is not appended to: its job
        follows the stored progress instead, ready to take over."""
        store = self.store
        if not store.produces(stream):
            self.jobs.follow(stream, store.state(stream))
            return
        event = store.append(stream, data, self.jobs.progress(stream))
        self._outbox.append((stream, event))

    async def flush(self) -> None:
        """Commit what was published (one group commit), then send each event to every
        subscriber, in the step the commit returns in. A failed commit is logged and
        its events wait for the next flush: nothing uncommitted is ever sent."""
        batch, self._outbox = self._outbox, []
        try:
            await self.store.commit()
        except Exception as exc:
            self._outbox[:0] = batch
            self.store_errors += 1
            if self.store_errors == 1 or self.store_errors % 1000 == 0:
                log.error("store commit failed (%d in a row; %d events held back): %s",
                          self.store_errors, len(self._outbox), exc)
            return
        if self.store_errors:
            log.warning("store commit works again after %d failures", self.store_errors)
            self.store_errors = 0
        head = self.store.head  # an event past it was refused by the store: never sent
        self.deliver([(stream, event) for stream, event in batch
                      if event.offset <= head(stream)])

    def deliver(self, batch: list[tuple[str, StoredEvent]]) -> None:
        """Send committed events to their streams' subscribers, each offset at most once
        per connection. The committing instance calls it from ``flush``; a store shared
        by several instances hands the others' committed events to it (``watch``)."""
        subscribers = self.subscribers
        for stream, event in batch:
            subs = subscribers.get(stream)
            if subs:
                offset = event.offset
                for session in list(subs):
                    if offset > session.sent and self.write(session, event.frame):
                        session.sent = offset

    def reset_stream(self, stream: str) -> None:
        """The stream's history changed under this instance (a shared store lost it, or
        it moved on past what can be replayed): close its clients here so that they
        reconnect and are told (``recovered: false``)."""
        for session in list(self.subscribers.get(stream, ())):
            self.close_with_error(session, "stream_reset", "stream history changed; "
                                  "reconnect and resume", CLOSE_INTERNAL_ERROR)

    def restore(self) -> int:
        """Resume the jobs of the streams a durable store brought back (at their stored
        progress); each is idle until a client attaches. Returns how many."""
        now = self.clock.now()
        streams = list(self.store.streams())
        for stream in streams:
            self.jobs.start(stream, now, self.store.state(stream))
            self._idle_since.setdefault(stream, now)
        return len(streams)

    def can_open(self, stream: str) -> bool:
        """False when ``stream`` is new and the server already holds ``max_streams``."""
        return stream in self.jobs or not (0 < self.max_streams <= len(self.jobs))

    def claim(self, stream: str, address: str) -> Refusal | None:
        """Admit a handshake for ``stream`` from ``address`` against the stream limits, or
        say why not. A new stream counts against ``address`` from now until it is reaped
        (it is idle until a connection attaches, so a handshake that never gets there
        cannot hold it for good). A refusal's ``retry_after`` is when the oldest idle
        stream that would free a place expires, or None if no stream is idle."""
        if stream in self.jobs or stream in self._creator:
            return None
        if not self.can_open(stream):
            return Refusal(503, f"server holds its maximum of {self.max_streams} streams",
                           "streams", self._retry_after(self._idle_since))
        made = self._made_by.get(address)
        if made is not None and 0 < self.max_streams_per_client <= len(made):
            return Refusal(
                503, f"{address} has made its maximum of {self.max_streams_per_client} "
                "streams; reuse one, or retry when one has been idle for the replay age",
                "streams_per_client", self._retry_after(made))
        self._creator[stream] = address
        self._made_by.setdefault(address, set()).add(stream)
        self._idle_since.setdefault(stream, self.clock.now())
        return None

    def _retry_after(self, streams: Iterable[str]) -> int | None:
        """Whole seconds until the oldest idle stream of ``streams`` is reaped (None if
        none is idle); reaping runs once a second, hence the extra second."""
        idle = self._idle_since
        since = next(iter(idle.values()), None) if streams is idle else min(
            (idle[s] for s in streams if s in idle), default=None)
        if since is None:
            return None
        return max(1, math.ceil(since + self.stream_idle - self.clock.now()) + 1)

    def attach(self, session: Session, request: ResumeRequest,
               history: list[StoredEvent] | None = None) -> ResumePlan:
        """Welcome, replay and subscribe in one step (no await: nothing can interleave).
        ``history``: what ``prefetch`` read for a gap older than the hot window."""
        stream = request.stream
        session.stream = stream
        self.jobs.start(stream, self.clock.now(), self.store.state(stream))
        epoch = self.store.epoch(stream)
        plan = plan_resume(self.store, request, self.resume_enabled, history)
        head = self.store.head(stream)
        welcome = encode_welcome(stream, epoch, head, plan.recovered, len(plan.replay),
                                 self._heartbeat_json, plan.snapshot)
        self.write(session, welcome, check_slow=False)
        for event in plan.replay:
            self.write(session, event.frame, check_slow=False)
        session.sent = head
        session.acked = request.offset if plan.recovered and request.offset else 0
        self.subscribers.setdefault(stream, set()).add(session)
        self._idle_since.pop(stream, None)
        kind = "fresh" if not request.resuming else "recovered" if plan.recovered else "resync"
        self.resumes[kind] += 1
        log.info(
            "open id=%d addr=%s stream=%s resume=%s reason=%r replayed=%d",
            session.id, session.address, stream, kind, plan.reason, len(plan.replay),
        )
        return plan

    def detach(self, session: Session) -> None:
        """Unsubscribe; a stream with no subscribers starts its idle clock."""
        stream = session.stream
        if stream is None:
            return
        subs = self.subscribers.get(stream)
        if subs is not None:
            subs.discard(session)
            if not subs:
                del self.subscribers[stream]
                self._idle_since[stream] = self.clock.now()

    def reap_idle(self) -> list[str]:
        """Stop jobs and drop history of streams nobody has read for ``stream_idle`` s."""
        cutoff = self.clock.now() - self.stream_idle
        gone = [s for s, since in self._idle_since.items() if since <= cutoff]
        for stream in gone:
            del self._idle_since[stream]
            self.jobs.stop(stream)
            self.store.drop(stream)
            address = self._creator.pop(stream, None)
            made = self._made_by.get(address) if address is not None else None
            if made is not None:
                made.discard(stream)
                if not made:
                    del self._made_by[address]  # type: ignore[arg-type]
        return gone

    # -- one connection --------------------------------------------------------------

    def handle_frame(self, session: Session, frame: str | bytes) -> None:
        """React to one client frame: ``ping`` -> ``pong``, ``ack`` -> trim, else 1008."""
        if session.closing:
            return
        counters = self.pool.counters
        counters.messages_in += 1
        counters.bytes_in += len(frame)
        try:
            message = p.parse_client(frame)
            if isinstance(message, p.Ack) and message.offset > session.sent:
                raise p.ProtocolError(
                    f"ack {message.offset} is past the last offset sent ({session.sent})"
                )
        except p.ProtocolError as exc:
            log.info("bad message id=%d stream=%s: %s", session.id, session.stream, exc)
            self.close_with_error(session, p.ERR_BAD_MESSAGE, str(exc), p.CLOSE_POLICY)
            return
        if isinstance(message, p.Ping):
            self.write(session, p.encode_pong(message.t))
            return
        session.acked = max(session.acked, message.offset)
        assert session.stream is not None
        subs = self.subscribers.get(session.stream, ())
        self.store.trim(session.stream, min((s.acked for s in subs), default=session.acked))

    async def prefetch(self, request: ResumeRequest, tries: int = 3) -> list[StoredEvent] | None:
        """The part of a resume's gap the store holds outside memory, read before the
        one-step handshake (None when the hot window covers the gap, or no resume can
        succeed). Commits may move the hot window on during the read: read again, at
        most ``tries`` times, until what was read meets it."""
        store, stream, offset = self.store, request.stream, request.offset
        if (not self.resume_enabled or offset is None or offset >= store.head(stream)
                or request.epoch != store.epoch(stream)):
            return None
        history: list[StoredEvent] | None = None
        for _ in range(tries):
            if offset + 1 >= store.first(stream):
                return history
            history = await store.read_history(stream, offset)
            if not history or history[0].offset != offset + 1:
                return history  # trimmed: the plan says so
            last = history[-1].offset
            if last >= store.head(stream) or last + 1 >= store.first(stream):
                return history
        return history

    async def serve(self, session: Session, request: ResumeRequest) -> ResumePlan:
        """Run one stream connection until it closes."""
        await self.store.refresh(request.stream)  # a shared store: others may have appended
        history = await self.prefetch(request) if request.resuming else None
        plan = self.attach(session, request, history)
        try:
            async for frame in session.conn:
                self.handle_frame(session, frame)
        except ConnectionClosed:
            pass
        finally:
            self.detach(session)
        return plan
