"""StreamStore: offsets, bounds, epochs."""

from server_stub.streams import MemoryStreamStore


class Wall:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_offsets_are_contiguous_from_one_and_read_after():
    """append numbers events 1, 2, 3...; read(after=N) returns N+1... in order."""
    store = MemoryStreamStore(max_events=100)
    offsets = [store.append("a", {"i": i}).offset for i in range(5)]
    assert offsets == [1, 2, 3, 4, 5]
    assert [e.offset for e in store.read("a", 2)] == [3, 4, 5]
    assert [e.offset for e in store.read("a", 2, limit=2)] == [3, 4]
    assert store.read("a", 5) == []
    assert store.head("a") == 5 and store.head("other") == 0


def test_bounded_by_count_and_age():
    """Old events fall out by count and by age; first() tells where history starts."""
    wall = Wall()
    store = MemoryStreamStore(max_events=3, max_age=10.0, wall=wall)
    for i in range(5):
        store.append("a", {"i": i})
    assert store.first("a") == 3 and store.size() == 3
    wall.t += 11
    assert store.read("a", 0) == [] and store.first("a") == 6 and store.size() == 0
    assert store.snapshot("a") == {"offset": 5, "data": {"i": 4}}


def test_trim_and_drop():
    """trim forgets acked events; drop loses the stream and its next use has a new epoch."""
    store = MemoryStreamStore()
    epoch = store.epoch("a")
    for i in range(4):
        store.append("a", {"i": i})
    assert store.trim("a", 2) == 2 and store.first("a") == 3 and store.size() == 2
    store.drop("a")
    assert store.size() == 0 and store.head("a") == 0
    assert store.epoch("a") != epoch


def test_epochs_differ_between_store_instances():
    """A new store (a restarted server) never reuses an epoch."""
    assert MemoryStreamStore().epoch("a") != MemoryStreamStore().epoch("a")


def test_frames_are_protocol_events():
    """Stored frames are ready-to-send protocol v1 events."""
    from wsctl.protocol import Event, parse_server

    store = MemoryStreamStore()
    event = store.append("a", {"step": 1})
    assert parse_server(event.frame.decode()) == Event(1, event.ts, {"step": 1})


def test_zero_retention_keeps_head_and_snapshot_only():
    """With max_events=0 nothing is replayable, but offsets and the snapshot go on."""
    store = MemoryStreamStore(max_events=0)
    for i in range(3):
        store.append("a", {"i": i})
    assert store.read("a", 0) == [] and store.size() == 0
    assert store.first("a") == 4 and store.head("a") == 3
    assert store.snapshot("a") == {"offset": 3, "data": {"i": 2}}


def test_read_returns_times_and_frames_of_the_right_offsets():
    """Replayed events carry their own offset, time and frame after trims and expiry."""
    wall = Wall()
    store = MemoryStreamStore(max_events=4, max_age=100.0, wall=wall)
    appended = []
    for i in range(6):
        wall.t += 1
        appended.append(store.append("a", {"i": i}))
    store.trim("a", 3)
    assert store.read("a", 0) == appended[3:]
    assert store.read("a", 4, limit=1) == [appended[4]]
