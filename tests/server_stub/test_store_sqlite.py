"""The SQLite store: what survives a reopen, what a commit promises, and --store parsing."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from server_stub.config import config_from_options
from server_stub.connection_pool import ConnectionPool
from server_stub.jobs import JobSchedule
from server_stub.stores import MemoryStreamStore, StreamStore, store_maker
from server_stub.stores.sqlite import SqliteStreamStore
from server_stub.websocket_manager import ResumeRequest, WebSocketManager
from tests.server_stub.test_liveness import _FakeConn
from wsctl import protocol as p
from wsctl.errors import InvalidInput


async def _opened(path: Path, **kw: object) -> SqliteStreamStore:
    store = SqliteStreamStore(path, **kw)  # type: ignore[arg-type]
    await store.open()
    return store


async def test_reopen_keeps_epoch_head_state_and_history(tmp_path):
    """A second store on the same file (a restarted server) has the same epoch, head,
    snapshot and job state, replays the same frames, and continues at head + 1."""
    first = await _opened(tmp_path / "s.db")
    epoch = first.epoch("a")
    frames = [first.append("a", {"i": i}, {"job": 2, "step": i}).frame for i in range(1, 6)]
    await first.commit()
    # no close(): as after a SIGKILL, only what was committed counts
    second = await _opened(tmp_path / "s.db")
    try:
        assert second.epoch("a") == epoch
        assert second.head("a") == 5
        assert second.state("a") == {"job": 2, "step": 5}
        assert json.loads(second.snapshot_json("a")) == {"offset": 5, "data": {"i": 5}}
        assert [e.frame for e in await second.read_history("a", 1)] == frames[1:]
        assert second.append("a", {"i": 6}).offset == 6
        await second.commit()
    finally:
        await second.close()
        await first._shutdown()


async def test_appended_is_invisible_and_lost_until_committed(tmp_path):
    """An event appended but not committed is in no read, head or snapshot, and a reopen
    does not have it: the offset is assigned again."""
    store = await _opened(tmp_path / "s.db")
    store.append("a", {"i": 1})
    await store.commit()
    store.append("a", {"i": 2})
    assert store.head("a") == 1
    assert [e.offset for e in store.read("a", 0)] == [1]
    assert json.loads(store.snapshot_json("a"))["offset"] == 1
    again = await _opened(tmp_path / "s.db")
    try:
        assert again.head("a") == 1
        assert again.append("a", {"i": 2}).offset == 2
    finally:
        await again.close()
        await store._shutdown()  # crashed: what it had pending never reaches the file


async def test_epoch_numbers_are_never_reused_after_a_drop(tmp_path):
    """A stream dropped and made again after a reopen gets an epoch it never had."""
    store = await _opened(tmp_path / "s.db")
    epochs = {store.epoch("a")}
    store.append("a", {})
    store.drop("a")
    await store.commit()
    await store.close()
    store = await _opened(tmp_path / "s.db")
    try:
        assert store.epoch("a") not in epochs
    finally:
        await store.close()


async def test_memory_holds_only_the_hot_window(tmp_path):
    """With hot_events=3, memory holds the last 3 events; the file holds replay_size."""
    store = await _opened(tmp_path / "s.db", max_events=50, hot_events=3)
    try:
        for i in range(20):
            store.append("a", {"i": i})
        await store.commit()
        assert [e.offset for e in store.read("a", 0)] == [18, 19, 20]
        assert store.first("a") == 18
        assert len(await store.read_history("a", 0)) == 20
        assert store.size() == 20
    finally:
        await store.close()


class _GatedStore(MemoryStreamStore):
    """A memory store whose commit waits until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def commit(self) -> None:
        await self.gate.wait()


async def test_nothing_is_sent_before_the_commit_returns():
    """The manager sends a published event only after the store's commit has returned,
    and sends it once."""
    store = _GatedStore()
    manager = WebSocketManager(store, ConnectionPool(), JobSchedule(1.0, 10),
                               heartbeat=p.Heartbeat(1, 1))
    conn = _FakeConn()
    session = manager.pool.admit(conn, "127.0.0.1")
    manager.attach(session, ResumeRequest("b"))
    sent_before = len(conn.written)
    manager.publish("a", {"i": 1})
    manager.subscribers["a"] = {session}
    flush = asyncio.get_running_loop().create_task(manager.flush())
    await asyncio.sleep(0.01)
    assert len(conn.written) == sent_before
    store.gate.set()
    await flush
    assert len(conn.written) == sent_before + 1
    assert json.loads(conn.written[-1])["offset"] == 1


class _FailingStore(MemoryStreamStore):
    async def commit(self) -> None:
        raise OSError("disk full")


async def test_failed_commit_holds_events_back_and_counts():
    """A commit that fails sends nothing and keeps the events for the next flush."""
    store: StreamStore = _FailingStore()
    manager = WebSocketManager(store, ConnectionPool(), JobSchedule(1.0, 10),
                               heartbeat=p.Heartbeat(1, 1))
    manager.publish("a", {"i": 1})
    await manager.flush()
    await manager.flush()
    assert manager.store_errors == 2
    assert len(manager._outbox) == 1


@pytest.mark.parametrize("spec, message", [
    ("disk", "use memory, sqlite:PATH or redis://HOST:PORT/DB"),
    ("memory:x", "takes no options"),
    ("sqlite:", "give a file"),
    ("sqlite:/no/such/dir/s.db", "does not exist"),
    ("sqlite:/tmp/s.db?synchronous=sometimes", "normal or full"),
    ("sqlite:/tmp/s.db?fast=1", "unknown option 'fast'"),
    ("sqlite:/tmp/s.db?hot=-1", "hot must be"),
])
def test_bad_store_is_one_line(spec, message):
    """A --store the server cannot use is refused in one line naming the problem."""
    with pytest.raises(InvalidInput) as caught:
        config_from_options(store=spec)
    assert message in caught.value.message and "\n" not in caught.value.message


def test_store_maker_builds_each_kind(tmp_path):
    """memory and sqlite:PATH?synchronous=full&hot=4 build the stores they name."""
    assert isinstance(store_maker("memory")(10, 1.0), MemoryStreamStore)
    store = store_maker(f"sqlite:{tmp_path}/s.db?synchronous=full&hot=4")(10, 1.0)
    assert isinstance(store, SqliteStreamStore)
    assert (store.synchronous, store.hot_events, store.max_events) == ("full", 4, 10)


async def test_unopenable_file_is_bad_input(tmp_path):
    """A path that is not a database is one line of InvalidInput at open."""
    bad = tmp_path / "s.db"
    bad.write_bytes(b"not a database" * 100)
    with pytest.raises(InvalidInput, match="cannot open"):
        await _opened(bad)


@pytest.mark.parametrize("command", [
    [sys.executable, "-m", "server_stub"], [str(Path(sys.executable).parent / "wsctl"), "serve"]])
@pytest.mark.parametrize("store", ["disk", "sqlite:/no/such/dir/s.db", "NOTADB"])
def test_bad_store_exits_2_with_one_line(command, store, tmp_path):
    """Both commands refuse a bad --store (or a file that is not a database) with exit 2
    and one line on stderr, before listening."""
    if store == "NOTADB":
        bad = tmp_path / "s.db"
        bad.write_bytes(b"not a database" * 100)
        store = f"sqlite:{bad}"
    done = subprocess.run([*command, "--port", "0", "--store", store], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "--store" in done.stderr
    assert "listening" not in done.stdout


def test_scenario_store_maps_onto_the_server_flag(tmp_path):
    """In a scenario, store: sqlite is a file in the runner's scratch dir, sqlite:PATH is
    passed on as is, and a bad value is a field error naming the problem."""
    from pydantic import ValidationError

    from wsctl.scenario.model import ServerSpec
    from wsctl.scenario.server_process import ServerProcess as Child

    child = Child("reference", ServerSpec(store="sqlite").args(), tmp_path)
    assert f"sqlite:{tmp_path}/streams.db" in child.spec.command
    assert ServerSpec(store=f"sqlite:{tmp_path}/a.db").args() == [
        "--store", f"sqlite:{tmp_path}/a.db"]
    with pytest.raises(ValidationError, match="use memory, sqlite:PATH or redis://HOST:PORT/DB"):
        ServerSpec(store="disk")
