"""SqliteStreamStore: streams that survive a crash, in one SQLite file (``--store sqlite:PATH``).

The file holds every stream's events (each with its producer state: the job's number
and step), at most ``max_events`` of them no older than ``max_age`` as reads see it; the
newest event of a stream is never deleted, because the stream's head, latest data and
state are read back from it after a restart. Streams are numbered rows of their own.
Memory holds only a small hot window per stream (``hot_events``, 8 by default): a resume
within it is answered from memory; an older one reads the file first (``read_history``).

Commits are group commits: every event appended since the last commit goes in one
transaction; then, back on the loop, the events become visible and the manager sends
them. The promise depends on ``synchronous`` (WAL journal either way):

- ``normal`` (default): a committed event survives the server process dying (SIGKILL, OOM
  kill, a crash); a power loss or kernel crash may lose the last commits before a WAL
  checkpoint. A commit is a WAL append with no fsync (about a millisecond), so it runs
  on the event loop; checkpoints, which fsync, run on the writer thread.
- ``full``: each commit is fsynced before any client sees its events: they survive a
  power loss too. The commit runs on the writer thread (the loop serves meanwhile), at
  the cost of one fsync per commit (milliseconds on most disks).

Epochs are ``STOREID-N``: STOREID is drawn when the file is created; N numbers streams in
creation order and is never reused once committed, so a stream dropped and made again
(or a file replaced by another) never matches an epoch a client holds.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from server_stub.stores.base import StoredEvent, compact_json
from server_stub.stores.memory import LogStore, _Log, make_event
from wsctl.errors import InvalidInput

SYNCHRONOUS = ("normal", "full")
HOT_EVENTS = 8
AGE_TRIM_PERIOD = 1.0  # s between deletions of events past max_age
TRIM_SLACK = 32  # a stream's oldest events are deleted 32 at a time, not one per commit
CHECKPOINT_EVERY = 100  # inline commits between two checkpoints (WAL ~ a few MB)

# One row per event, clustered by stream; the newest event of every stream is never
# deleted, so a stream's head, latest data and producer state come back from it.
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS streams (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS events (
    stream_id INTEGER NOT NULL, seq INTEGER NOT NULL, ts REAL NOT NULL, frame BLOB NOT NULL,
    state TEXT, PRIMARY KEY (stream_id, seq)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_ts ON events (ts);
"""
_LOAD = """
SELECT s.id, s.name, e.seq, e.frame, e.state FROM streams AS s
LEFT JOIN events AS e ON e.stream_id = s.id
    AND e.seq = (SELECT MAX(seq) FROM events WHERE stream_id = s.id)
"""
_AGE_TRIM = """
DELETE FROM events WHERE ts < ? AND seq < (
    SELECT MAX(seq) FROM events AS newest WHERE newest.stream_id = events.stream_id)
"""

Row = tuple[int, int, float, bytes, str | None]  # stream id, offset, ts, frame, state
Pending = tuple["_Stream", StoredEvent, str, str | None]  # stream, event, data, state


class _Stream(_Log):
    """A stream's hot window (``_Log``: ``head`` is the committed head) plus what is
    appended but not committed yet."""

    __slots__ = ("id", "appended", "trimmed", "state", "dropped")

    def __init__(self, id: int, epoch: str, head: int = 0) -> None:
        super().__init__(epoch, head)
        # A few events: a list costs a tenth of a deque's 64-slot block.
        self.frames = []  # type: ignore[assignment]
        self.id = id
        self.appended = head  # offset of the latest appended event
        self.trimmed = 0  # events <= this were deleted from the file for size
        self.state: str | None = None  # committed producer state, as compact JSON
        self.dropped = False

    def drop_oldest(self, n: int) -> int:
        n = min(n, len(self.frames))
        del self.frames[:n]  # type: ignore[arg-type]
        del self.times[:n]
        return n


def parse_sqlite(spec: str) -> Callable[[int, float], SqliteStreamStore]:
    """Check ``sqlite:PATH[?synchronous=normal|full&hot=N]`` and return a maker of the
    store (``max_events``, ``max_age``); InvalidInput in one line when it is wrong."""
    text = spec.removeprefix("sqlite:")
    path, _, query = text.partition("?")
    if not path:
        raise InvalidInput(f"--store {spec!r}: give a file, e.g. sqlite:/var/lib/wsctl/streams.db")
    parent = Path(path).expanduser().resolve().parent
    if not parent.is_dir():
        raise InvalidInput(f"--store {spec!r}: directory {parent} does not exist")
    options = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
    unknown = sorted(set(options) - {"synchronous", "hot"})
    if unknown:
        raise InvalidInput(f"--store {spec!r}: unknown option {unknown[0]!r} "
                           "(sqlite takes synchronous=normal|full and hot=N)")
    synchronous = options.get("synchronous", "normal").lower()
    if synchronous not in SYNCHRONOUS:
        raise InvalidInput(f"--store {spec!r}: synchronous must be normal or full")
    hot_text = options.get("hot", str(HOT_EVENTS))
    if not hot_text.isascii() or not hot_text.isdigit():
        raise InvalidInput(f"--store {spec!r}: hot must be a number of events (0 or more)")
    hot = int(hot_text)

    def make(max_events: int, max_age: float) -> SqliteStreamStore:
        return SqliteStreamStore(path, max_events, max_age, hot_events=hot,
                                 synchronous=synchronous)

    return make


class SqliteStreamStore(LogStore[_Stream]):
    """Durable store in one SQLite file; see the module docstring for its promise."""

    commit_window = 0.005  # events due within 5 ms share one commit

    def __init__(self, path: str | Path, max_events: int = 1000, max_age: float = 120.0, *,
                 hot_events: int = HOT_EVENTS, synchronous: str = "normal",
                 inline: bool | None = None, wall: Callable[[], float] = time.time) -> None:
        if synchronous not in SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {SYNCHRONOUS}")
        super().__init__(max_age, wall)
        self.path = str(path)
        self.max_events = max_events
        self.hot_events = min(hot_events, max_events)
        self.synchronous = synchronous
        self._writer: ThreadPoolExecutor | None = None
        self._reader: ThreadPoolExecutor | None = None
        # normal: the commit (no fsync) runs on the loop, checkpoints on the writer thread;
        # full: the commit fsyncs, so it runs on the writer thread.
        self.inline = synchronous == "normal" if inline is None else inline
        self._wcon: sqlite3.Connection | None = None
        self._ccon: sqlite3.Connection | None = None
        self._checkpointing: Future[None] | None = None
        self._rcon: sqlite3.Connection | None = None
        self._store_id = ""
        self._next_id = 1
        self._pending: list[Pending] = []
        self._created: list[tuple[_Stream, str]] = []  # rows for the next commit
        self._dropped: list[int] = []
        self._trims: dict[int, int] = {}  # acknowledged: stream id -> delete up to
        self._size = 0  # events in the file, as of the last commit
        self._age_trimmed_at = 0.0
        self.commits = 0  # figures for benchmarks/store.py
        self.commit_seconds = 0.0

    def __repr__(self) -> str:
        return (f"SqliteStreamStore({self.path!r}, max_events={self.max_events}, "
                f"max_age={self.max_age}, synchronous={self.synchronous!r})")

    # -- lifecycle (files are opened on the threads that use them) ---------------------

    async def open(self) -> None:
        if self._writer is not None:
            return
        loop = asyncio.get_running_loop()
        self._writer = ThreadPoolExecutor(1, "wsctl-sqlite-writer")
        self._reader = ThreadPoolExecutor(1, "wsctl-sqlite-reader")
        try:
            rows, count = await loop.run_in_executor(self._writer, self._open_writer)
            await loop.run_in_executor(self._reader, self._open_reader)
            if self.inline:
                await loop.run_in_executor(self._writer, self._open_checkpointer)
        except (sqlite3.Error, OSError) as exc:
            await self._shutdown()
            raise InvalidInput(f"--store sqlite:{self.path}: cannot open: {exc}") from exc
        for id, name, head, frame, state in rows:
            stream = _Stream(id, f"{self._store_id}-{id}", head or 0)
            if frame is not None:
                stream.last_data = compact_json(json.loads(frame)["data"])
            stream.state = state
            self._logs[name] = stream
        self._size = count

    def _connect(self) -> sqlite3.Connection:
        # check_same_thread off: an inline writer is opened on its thread, used on the loop's
        con = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute(f"PRAGMA synchronous={self.synchronous.upper()}")
        con.execute("PRAGMA cache_size=-512")  # KiB, per connection: not per stream
        return con

    def _open_writer(self) -> tuple[list[tuple[int, str, int | None, bytes | None, str | None]],
                                    int]:
        con = self._wcon = self._connect()
        con.executescript(SCHEMA)
        con.execute("INSERT OR IGNORE INTO meta VALUES ('store_id', ?)", (secrets.token_hex(4),))
        con.execute("INSERT OR IGNORE INTO meta VALUES ('next_id', '1')")
        meta = dict(con.execute("SELECT key, value FROM meta"))
        self._store_id, self._next_id = meta["store_id"], int(meta["next_id"])
        rows = con.execute(_LOAD).fetchall()
        count = con.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        return rows, int(count)

    def _open_checkpointer(self) -> None:
        """Inline commits write the WAL only; this connection, on the writer thread, copies
        it into the database (the part that fsyncs) so the loop never waits for that."""
        assert self._wcon is not None
        self._wcon.execute("PRAGMA wal_autocheckpoint=0")
        self._ccon = self._connect()

    def _checkpoint(self) -> None:
        assert self._ccon is not None
        self._ccon.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def _open_reader(self) -> None:
        self._rcon = self._connect()
        self._rcon.execute("PRAGMA query_only=ON")

    async def close(self) -> None:
        if self._writer is None:
            return
        try:
            await self.commit()
        finally:
            await self._shutdown()

    async def _shutdown(self) -> None:
        loop = asyncio.get_running_loop()
        if self._checkpointing is not None:
            await asyncio.wrap_future(self._checkpointing)
        for pool, attr in ((self._writer, "_ccon"), (self._writer, "_wcon"),
                           (self._reader, "_rcon")):
            con = getattr(self, attr)
            if pool is not None and con is not None:
                await loop.run_in_executor(pool, con.close)
                setattr(self, attr, None)
        for pool in (self._writer, self._reader):
            if pool is not None:
                pool.shutdown(wait=True)
        self._writer = self._reader = None

    # -- appending and committing ------------------------------------------------------

    def _stream(self, name: str) -> _Stream:
        stream = self._logs.get(name)
        if stream is None:
            id = self._next_id
            self._next_id += 1
            stream = self._logs[name] = _Stream(id, f"{self._store_id}-{id}")
            self._created.append((stream, name))  # its row goes in with the next commit
        return stream

    def append(self, stream: str, data: dict[str, Any],
               state: dict[str, Any] | None = None) -> StoredEvent:
        s = self._stream(stream)
        s.appended += 1
        event, data_json = make_event(s.appended, self._wall(), data)
        self._pending.append((s, event, data_json,
                              compact_json(state) if state is not None else None))
        return event

    async def commit(self) -> None:
        if not (self._pending or self._created or self._dropped or self._trims):
            return
        if self._writer is None:
            raise RuntimeError("SqliteStreamStore.commit before open()")
        pending, created, dropped, trims = (
            self._pending, self._created, self._dropped, self._trims)
        self._pending, self._created, self._dropped, self._trims = [], [], [], {}
        keep = max(self.max_events, 1)  # the newest event stays: it carries head and state
        events: list[Row] = []
        for s, event, _, state in pending:
            if s.dropped:
                continue
            events.append((s.id, event.offset, event.ts, event.frame, state))
            if event.offset - keep - s.trimmed >= TRIM_SLACK:
                s.trimmed = event.offset - keep
                trims[s.id] = max(trims.get(s.id, 0), s.trimmed)
        new = [(s.id, name) for s, name in created if not s.dropped]
        now = self._wall()
        cutoff = None
        if now - self._age_trimmed_at >= AGE_TRIM_PERIOD:
            cutoff = now - self.max_age
        began = time.perf_counter()
        work = (new, events, dropped, list(trims.items()), cutoff, self._next_id)
        try:
            if self.inline:
                deleted = self._write(*work)
            else:
                deleted = await asyncio.get_running_loop().run_in_executor(
                    self._writer, self._write, *work)
        except Exception:
            # Nothing was written: keep it all for the next commit (nothing was sent).
            self._pending[:0] = pending
            self._created[:0] = created
            self._dropped[:0] = dropped
            for id, upto in trims.items():
                self._trims[id] = max(upto, self._trims.get(id, 0))
            raise
        self.commits += 1
        self.commit_seconds += time.perf_counter() - began
        if self.inline and self.commits % CHECKPOINT_EVERY == 0 and (
                self._checkpointing is None or self._checkpointing.done()):
            self._checkpointing = self._writer.submit(self._checkpoint)
        if cutoff is not None:
            self._age_trimmed_at = now
        self._size += len(events) - deleted
        # Durable: make the batch visible (this and the manager's fan-out are one step).
        hot, cutoff_hot = self.hot_events, now - self.max_age
        for s, event, data, state in pending:
            if not s.dropped and event.offset == s.head + 1:
                s.push(event, hot)
                s.last_data, s.state = data, state
                s.expire(cutoff_hot)

    def _write(self, new: list[tuple[int, str]], events: list[Row], dropped: list[int],
               trims: list[tuple[int, int]], cutoff: float | None, next_id: int) -> int:
        """One transaction (writer thread); returns how many events it deleted."""
        con = self._wcon
        assert con is not None
        deleted = 0
        con.execute("BEGIN IMMEDIATE")
        try:
            if dropped:
                ids = [(id,) for id in dropped]
                deleted += con.executemany("DELETE FROM events WHERE stream_id = ?", ids).rowcount
                con.executemany("DELETE FROM streams WHERE id = ?", ids)
            con.executemany("INSERT INTO streams (id, name) VALUES (?, ?)", new)
            con.executemany("INSERT INTO events (stream_id, seq, ts, frame, state) "
                            "VALUES (?, ?, ?, ?, ?)", events)
            if trims:
                deleted += con.executemany(
                    "DELETE FROM events WHERE stream_id = ? AND seq <= ?", trims).rowcount
            if cutoff is not None:
                deleted += con.execute(_AGE_TRIM, (cutoff,)).rowcount
            con.execute("UPDATE meta SET value = ? WHERE key = 'next_id'", (str(next_id),))
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return deleted

    # -- reading (read, head, first, snapshot: LogStore, from the hot window) ----------

    async def read_history(self, stream: str, after: int,
                           limit: int | None = None) -> list[StoredEvent]:
        s = self._logs.get(stream)
        if s is None or after >= s.head:
            return []
        if after + 1 >= self.first(stream):
            return s.slice(after, limit)
        if self._reader is None:
            raise RuntimeError("SqliteStreamStore.read_history before open()")
        floor = max(after, s.head - self.max_events)
        rows = await asyncio.get_running_loop().run_in_executor(
            self._reader, self._read_rows, s.id, floor, s.head,
            self._wall() - self.max_age, -1 if limit is None else limit)
        return [StoredEvent(seq, ts, frame) for seq, ts, frame in rows]

    def _read_rows(self, id: int, after: int, upto: int, cutoff: float,
                   limit: int) -> list[tuple[int, float, bytes]]:
        con = self._rcon
        assert con is not None
        return con.execute(
            "SELECT seq, ts, frame FROM events WHERE stream_id = ? AND seq > ? AND seq <= ? "
            "AND ts >= ? ORDER BY seq LIMIT ?", (id, after, upto, cutoff, limit)).fetchall()

    def epoch(self, stream: str) -> str:
        return self._stream(stream).epoch





    def state(self, stream: str) -> dict[str, Any] | None:
        s = self._logs.get(stream)
        return json.loads(s.state) if s is not None and s.state else None

    def trim(self, stream: str, upto: int) -> int:
        s = self._logs.get(stream)
        if s is None:
            return 0
        in_file = min(upto, s.head - 1)  # the newest event stays: it carries head and state
        if in_file > 0:
            self._trims[s.id] = max(in_file, self._trims.get(s.id, 0))
        return s.drop_oldest(max(0, upto - s.first + 1))

    def drop(self, stream: str) -> None:
        s = self._logs.pop(stream, None)
        if s is not None:
            s.dropped = True
            self._dropped.append(s.id)


    def size(self) -> int:
        return self._size
