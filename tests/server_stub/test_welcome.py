"""The hand-written welcome encoder and the snapshot text it carries."""

from __future__ import annotations

import json

import pytest

from server_stub.streams import MemoryStreamStore
from server_stub.websocket_manager import encode_welcome
from wsctl import protocol as p

HEARTBEATS = [p.Heartbeat(5.0, 5.0), p.Heartbeat(1.0, 0.25), p.Heartbeat(20, 20),
              p.Heartbeat(0.1, 1e-05)]
WELCOMES = [
    p.Welcome("alert-1", "e1b2c3", 0, True, 0, HEARTBEATS[0]),
    p.Welcome("a.b_c-D", "0f" * 16, 41, True, 12, HEARTBEATS[1]),
    p.Welcome("s", "ep", 7, False, 0, HEARTBEATS[2],
              snapshot={"offset": 7, "data": {"step": 7, "total": 100, "status": "running",
                                              "message": "step 7 of 100"}}),
    p.Welcome("s", "ep", 0, False, 0, HEARTBEATS[3], snapshot={"offset": 0, "data": None}),
    p.Welcome("ünï-cödé", "époque\u2603\U0001f600\"\\\n", 3, False, 0, HEARTBEATS[0],
              snapshot={"offset": 3, "data": {"message": "naïve \u2603 \U0001f600 \"q\" \\",
                                              "n": [1, 2.5, None, True, -0.0, 1e300]}}),
    p.Welcome("big", "x", 10**15, True, 10**6, HEARTBEATS[1], snapshot={}),
]


def _compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


@pytest.mark.parametrize("welcome", WELCOMES, ids=lambda w: f"{w.stream}-{w.recovered}")
def test_hand_encoded_welcome_is_the_protocol_codec_text(welcome: p.Welcome) -> None:
    """encode_welcome writes exactly the text protocol.encode (json.dumps of the dataclass
    dict) writes, snapshot or not, recovered or not, unicode included."""
    hb = _compact({"interval": welcome.heartbeat.interval,
                   "timeout": welcome.heartbeat.timeout})
    snapshot = _compact(welcome.snapshot) if welcome.snapshot is not None else None
    text = encode_welcome(welcome.stream, welcome.epoch, welcome.offset, welcome.recovered,
                          welcome.replayed, hb, snapshot)
    assert text == p.encode(welcome)
    assert p.parse_server(text) == welcome


def test_snapshot_json_is_the_snapshot_serialised() -> None:
    """The memory store's snapshot_json is json.dumps of its snapshot(), for an unknown
    stream, a stream with events, and unicode data."""
    store = MemoryStreamStore(max_events=10, max_age=60.0)
    assert store.snapshot_json("none") == _compact(store.snapshot("none"))
    store.append("a", {"step": 1, "message": "ünï \u2603 \U0001f600", "x": [1.5, None]})
    store.append("a", {"step": 2, "message": "naïve", "ratio": 0.1})
    assert store.snapshot_json("a") == _compact(store.snapshot("a"))
    assert json.loads(store.snapshot_json("a"))["data"]["ratio"] == 0.1
