"""SqliteStreamStore: streams that survive a crash, in one SQLite file (``--store sqlite:PATH``).

The file holds every stream's epoch, head offset, latest data and producer state (the
job's number and step) and its last ``max_events`` events no older than ``max_age``.
Memory holds only a small hot window per stream (``hot_events``, 8 by default): a resume
within it is answered from memory; an older one reads the file first (``read_history``).

Commits are group commits on one writer thread (the event loop never waits on the disk):
every event appended since the last commit goes in one transaction; then, back on the
loop, the events become visible and the manager sends them. The promise depends on
``synchronous`` (WAL journal either way):

- ``normal`` (default): a committed event survives the server process dying (SIGKILL, OOM
  kill, a crash); a power loss or kernel crash may lose the last commits before a WAL
  checkpoint. Commits cost no fsync.
- ``full``: each commit is fsynced before any client sees its events: they survive a
  power loss too, at the cost of one fsync per commit (milliseconds on most disks).

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
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from server_stub.stores.base import StoredEvent, StreamStore, compact_json
from server_stub.stores.memory import _Log, make_event
from wsctl.errors import InvalidInput

SYNCHRONOUS = ("normal", "full")
HOT_EVENTS = 8
AGE_TRIM_PERIOD = 1.0  # s between deletions of events past max_age

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS streams (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, head INTEGER NOT NULL,
    last_data TEXT, state TEXT);
CREATE TABLE IF NOT EXISTS events (
    stream_id INTEGER NOT NULL, seq INTEGER NOT NULL, ts REAL NOT NULL, frame BLOB NOT NULL,
    PRIMARY KEY (stream_id, seq)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_ts ON events (ts);
"""
_UPSERT = ("INSERT INTO streams (id, name, head, last_data, state) VALUES (?, ?, ?, ?, ?) "
           "ON CONFLICT (id) DO UPDATE SET head = excluded.head, "
           "last_data = excluded.last_data, state = excluded.state")

Row = tuple[int, str, int, str | None, str | None]  # id, name, head, last_data, state


class _Stream(_Log):
    """A stream's hot window (``_Log``: ``head`` is the committed head) plus what is
    appended but not committed yet."""

    __slots__ = ("id", "appended", "pending_data", "state", "dropped")

    def __init__(self, id: int, epoch: str, head: int = 0) -> None:
        super().__init__(epoch, head)
        self.id = id
        self.appended = head  # offset of the latest appended event
        self.pending_data: str | None = None  # its data (compact JSON)
        self.state: dict[str, Any] | None = None
        self.dropped = False


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


class SqliteStreamStore(StreamStore):
    """Durable store in one SQLite file; see the module docstring for its promise."""

    commit_window = 0.005  # events due within 5 ms share one commit

    def __init__(self, path: str | Path, max_events: int = 1000, max_age: float = 120.0, *,
                 hot_events: int = HOT_EVENTS, synchronous: str = "normal",
                 wall: Callable[[], float] = time.time) -> None:
        if synchronous not in SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {SYNCHRONOUS}")
        self.path = str(path)
        self.max_events = max_events
        self.max_age = max_age
        self.hot_events = min(hot_events, max_events)
        self.synchronous = synchronous
        self._wall = wall
        self._writer: ThreadPoolExecutor | None = None
        self._reader: ThreadPoolExecutor | None = None
        self._wcon: sqlite3.Connection | None = None
        self._rcon: sqlite3.Connection | None = None
        self._store_id = ""
        self._next_id = 1
        self._streams: dict[str, _Stream] = {}
        self._pending: list[tuple[_Stream, StoredEvent]] = []
        self._dirty: dict[str, _Stream] = {}
        self._dropped: list[int] = []
        self._trims: dict[int, int] = {}
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
        except (sqlite3.Error, OSError) as exc:
            await self._shutdown()
            raise InvalidInput(f"--store sqlite:{self.path}: cannot open: {exc}") from exc
        for id, name, head, last_data, state in rows:
            stream = _Stream(id, f"{self._store_id}-{id}", head)
            stream.last_data = last_data
            stream.state = json.loads(state) if state else None
            self._streams[name] = stream
        self._size = count

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, isolation_level=None)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute(f"PRAGMA synchronous={self.synchronous.upper()}")
        con.execute("PRAGMA cache_size=-1024")  # KiB: the page cache is shared, not per stream
        return con

    def _open_writer(self) -> tuple[list[Row], int]:
        con = self._wcon = self._connect()
        con.executescript(SCHEMA)
        con.execute("INSERT OR IGNORE INTO meta VALUES ('store_id', ?)", (secrets.token_hex(4),))
        con.execute("INSERT OR IGNORE INTO meta VALUES ('next_id', '1')")
        meta = dict(con.execute("SELECT key, value FROM meta"))
        self._store_id, self._next_id = meta["store_id"], int(meta["next_id"])
        rows = con.execute("SELECT id, name, head, last_data, state FROM streams").fetchall()
        count = con.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        return rows, int(count)

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
        for pool, attr in ((self._writer, "_wcon"), (self._reader, "_rcon")):
            if pool is None:
                continue
            con = getattr(self, attr)
            if con is not None:
                await loop.run_in_executor(pool, con.close)
                setattr(self, attr, None)
            pool.shutdown(wait=True)
        self._writer = self._reader = None

    # -- appending and committing ------------------------------------------------------

    def _stream(self, name: str) -> _Stream:
        stream = self._streams.get(name)
        if stream is None:
            id = self._next_id
            self._next_id += 1
            stream = self._streams[name] = _Stream(id, f"{self._store_id}-{id}")
            self._dirty[name] = stream  # its row goes in with the next commit
        return stream

    def append(self, stream: str, data: dict[str, Any],
               state: dict[str, Any] | None = None) -> StoredEvent:
        s = self._stream(stream)
        s.appended += 1
        event, s.pending_data = make_event(s.appended, self._wall(), data)
        s.state = state
        self._pending.append((s, event))
        self._dirty[stream] = s
        return event

    async def commit(self) -> None:
        if not (self._pending or self._dirty or self._dropped or self._trims):
            return
        if self._writer is None:
            raise RuntimeError("SqliteStreamStore.commit before open()")
        pending, dirty, dropped, trims = self._pending, self._dirty, self._dropped, self._trims
        self._pending, self._dirty, self._dropped, self._trims = [], {}, [], {}
        rows: list[tuple[_Stream, Row]] = []
        for name, s in dirty.items():
            if s.dropped:
                continue
            state = compact_json(s.state) if s.state is not None else None
            data = s.pending_data if s.appended > s.head else s.last_data
            rows.append((s, (s.id, name, s.appended, data, state)))
            if self.max_events > 0 and s.appended > self.max_events:
                trims[s.id] = max(trims.get(s.id, 0), s.appended - self.max_events)
        events = [(s.id, e.offset, e.ts, e.frame) for s, e in pending
                  if not s.dropped and self.max_events > 0]
        now = self._wall()
        cutoff = None
        if now - self._age_trimmed_at >= AGE_TRIM_PERIOD:
            cutoff = now - self.max_age
        began = time.perf_counter()
        try:
            inserted, deleted = await asyncio.get_running_loop().run_in_executor(
                self._writer, self._write, [r for _, r in rows], events, dropped,
                list(trims.items()), cutoff, self._next_id)
        except BaseException:
            # Nothing was written: keep it all for the next commit (nothing was sent).
            self._pending[:0] = pending
            self._dirty = dirty | self._dirty
            self._dropped[:0] = dropped
            for id, upto in trims.items():
                self._trims[id] = max(upto, self._trims.get(id, 0))
            raise
        self.commits += 1
        self.commit_seconds += time.perf_counter() - began
        if cutoff is not None:
            self._age_trimmed_at = now
        self._size += inserted - deleted
        # Durable: make the batch visible (this and the manager's fan-out are one step).
        for s, event in pending:
            if not s.dropped and event.offset == s.head + 1:
                s.push(event, self.hot_events)
        for s, (_, _, head, data, _) in rows:
            s.head = max(s.head, head)
            s.last_data = data
        cutoff_hot = now - self.max_age
        for s, _ in rows:
            s.expire(cutoff_hot)

    def _write(self, rows: list[Row], events: list[tuple[int, int, float, bytes]],
               dropped: list[int], trims: list[tuple[int, int]], cutoff: float | None,
               next_id: int) -> tuple[int, int]:
        """One transaction (writer thread): returns (events inserted, events deleted)."""
        con = self._wcon
        assert con is not None
        deleted = 0
        con.execute("BEGIN IMMEDIATE")
        try:
            if dropped:
                ids = [(id,) for id in dropped]
                deleted += con.executemany("DELETE FROM events WHERE stream_id = ?", ids).rowcount
                con.executemany("DELETE FROM streams WHERE id = ?", ids)
            con.executemany("INSERT INTO events (stream_id, seq, ts, frame) VALUES (?, ?, ?, ?)",
                            events)
            con.executemany(_UPSERT, rows)
            if trims:
                deleted += con.executemany(
                    "DELETE FROM events WHERE stream_id = ? AND seq <= ?", trims).rowcount
            if cutoff is not None:
                deleted += con.execute("DELETE FROM events WHERE ts < ?", (cutoff,)).rowcount
            con.execute("UPDATE meta SET value = ? WHERE key = 'next_id'", (str(next_id),))
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return len(events), deleted

    # -- reading ---------------------------------------------------------------------

    def read(self, stream: str, after: int, limit: int | None = None) -> list[StoredEvent]:
        s = self._streams.get(stream)
        if s is None:
            return []
        s.expire(self._wall() - self.max_age)
        return s.slice(after, limit)

    async def read_history(self, stream: str, after: int,
                           limit: int | None = None) -> list[StoredEvent]:
        s = self._streams.get(stream)
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

    def head(self, stream: str) -> int:
        s = self._streams.get(stream)
        return s.head if s else 0

    def first(self, stream: str) -> int:
        s = self._streams.get(stream)
        if s is None:
            return 1
        s.expire(self._wall() - self.max_age)
        return s.first

    def snapshot(self, stream: str) -> dict[str, Any]:
        s = self._streams.get(stream)
        if s is None:
            return {"offset": 0, "data": None}
        return {"offset": s.head, "data": json.loads(s.last_data) if s.last_data else None}

    def snapshot_json(self, stream: str) -> str:
        s = self._streams.get(stream)
        return s.snapshot_json() if s is not None else '{"offset":0,"data":null}'

    def state(self, stream: str) -> dict[str, Any] | None:
        s = self._streams.get(stream)
        return s.state if s is not None else None

    def trim(self, stream: str, upto: int) -> int:
        s = self._streams.get(stream)
        if s is None:
            return 0
        self._trims[s.id] = max(upto, self._trims.get(s.id, 0))
        return s.drop_oldest(max(0, upto - s.first + 1))

    def drop(self, stream: str) -> None:
        s = self._streams.pop(stream, None)
        if s is not None:
            s.dropped = True
            self._dropped.append(s.id)
            self._dirty.pop(stream, None)

    def streams(self) -> Iterable[str]:
        return self._streams.keys()

    def size(self) -> int:
        return self._size
