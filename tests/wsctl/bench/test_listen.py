"""Listen mode on a push-only service: counts against what the server sent, loss from the
sequence path, delivery latency from the timestamp path, the protocol block on the wire,
with both transports; and the pure parts (per-message accounting, merging)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.wsctl.bench.pushserver import PushServer
from wsctl.bench.engine import Conn, ListenConn, Recorder
from wsctl.bench.listen import Listener, merge_per_connection, per_connection, settle
from wsctl.bench.plan import REDACTED, BenchPlan
from wsctl.bench.runner import run_plan
from wsctl.bench.session import Options, prepare
from wsctl.errors import InvalidInput
from wsctl.metrics import Result
from wsctl.probe.dialect import parse
from wsctl.results.criteria import judge
from wsctl.results.criteria import parse as parse_criterion

TRANSPORTS = ["websockets", "picows"]
SEQ_TS = {"sequence": "seq", "timestamp": "ts"}


def listen_plan(url: str, connections: int, protocol: dict[str, Any] | None, *,
                transport: str = "websockets", duration: float = 3.0) -> BenchPlan:
    return BenchPlan(url=url + "/ws/feed-{n}", connections=connections, connect_rate=200.0,
                     message_rate=0.0, duration=duration, mode="listen", transport=transport,
                     loop="asyncio", protocol=protocol, drain=0.0)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_counts_loss_and_latency_match_what_the_server_sent(transport: str) -> None:
    """5 listeners, 40 numbers of which 3 are skipped: each connection received exactly
    what the server logged for it, lost is exactly 3 per connection, and every message
    gave a plausible delivery latency."""
    with PushServer(count=40, interval=0.02, skip={5, 6, 17}, wait_for=5) as server:
        result = run_plan(listen_plan(server.url, 5, SEQ_TS, transport=transport))
        assert server.done.is_set()
    m = result.metrics
    sent = [len(v) for v in server.sent.values()]
    assert sent == [37] * 5
    assert m.counters["messages.received"] == sum(sent) == 185
    assert m.counters["messages.lost"] == 3 * 5
    assert m.counters["messages.duplicated"] == m.counters["messages.reordered"] == 0
    assert m.counters["messages.invalid"] == 0
    latency = m.histograms["delivery_latency"]
    assert latency.count == 185
    assert 0 <= latency.summary()["p50"] < 1.0
    per = result.details["per_connection"]
    assert per["connections"] == 5
    assert per["received"]["min"] == per["received"]["max"] == 37
    assert per["lost"]["min"] == per["lost"]["max"] == 3 and per["with_loss"] == 5
    assert per["rate_per_s"]["min"] > 0
    for name in ("messages.sent", "rtt", "messages.per_s", "generator.sends_per_cpu_s"):
        assert not (name in m.counters or name in m.histograms or name in m.gauges), name
    assert result.config["mode"] == "listen"


def test_without_paths_only_counts_and_loss_is_an_error_verdict() -> None:
    """No sequence or timestamp path: messages are counted without parsing, loss and
    latency are not emitted, and a criterion on messages.lost is ERROR saying what to
    configure."""
    with PushServer(count=10, interval=0.02, wait_for=2) as server:
        result = run_plan(listen_plan(server.url, 2, None, duration=2.0))
    m = result.metrics
    assert m.counters["messages.received"] == 20
    assert "messages.lost" not in m.counters and "delivery_latency" not in m.histograms
    assert "messages.invalid" not in m.counters
    verdict = judge(parse_criterion("messages.lost", "== 0"), result)
    assert verdict.status == "error" and "--sequence" in verdict.message
    verdict = judge(parse_criterion("delivery_latency.p99", "< 1s"), result)
    assert verdict.status == "error" and "--timestamp" in verdict.message


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_protocol_block_reaches_the_server(transport: str, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    """Headers (with ${VAR}), the subprotocol, the query and the on_open message (with
    {stream} and {n}) arrive at the server as the block says."""
    monkeypatch.setenv("BENCH_TOKEN", "t0k")
    block = {"headers": {"Authorization": "Bearer ${BENCH_TOKEN}"}, "subprotocols": ["feed.v1"],
             "query": {"key": "{n}"},
             "on_open": [{"type": "subscribe", "channel": "{stream}", "n": "{n}"}]}
    with PushServer(count=3, interval=0.05, wait_for=2) as server:
        run_plan(listen_plan(server.url, 2, block, transport=transport, duration=1.0))
    requests = sorted(server.requests, key=lambda r: r["path"])
    assert [r["path"] for r in requests] == ["/ws/feed-0?key=0", "/ws/feed-1?key=1"]
    for n, r in enumerate(requests):
        headers = {k.lower(): v for k, v in r["headers"].items()}
        assert headers["authorization"] == "Bearer t0k"
        assert r["subprotocol"] == "feed.v1"
        assert json.loads(r["first"]) == {"type": "subscribe", "channel": f"feed-{n}", "n": n}


# --- pure parts ---------------------------------------------------------------------------


class _Engine:
    def __init__(self) -> None:
        self.rec = Recorder(rec_start=0.0, rec_end=100.0)


def _conns(n: int) -> tuple[Recorder, list[Conn]]:
    engine = _Engine()
    return engine.rec, [ListenConn(engine, i) for i in range(n)]  # type: ignore[arg-type]


def test_listener_counts_gaps_duplicates_reorders_and_invalid_frames() -> None:
    """Numbers 1 2 4 3 3 6 on one connection: one reordered, one duplicate, 5 lost at the
    end; a non-numeric seq is invalid; a frame outside the window is not counted."""
    rec, (conn,) = _conns(1)
    listener = Listener(parse({"sequence": "seq", "timestamp": {"path": "ts", "unit": "ms"}}),
                        rec, wall_offset=1000.0)
    for seq in (1, 2, 4, 3, 3, 6):
        listener.on_message(conn, json.dumps({"seq": seq, "ts": 1000_500}), at=1.0)
    listener.on_message(conn, '{"seq": "x"}', at=1.0)
    listener.on_message(conn, "not json", at=1.0)
    listener.on_message(conn, '{"seq": 7}', at=200.0)  # after rec_end
    settle([conn], rec)
    assert (rec.received, conn.received, rec.invalid, rec.numbered) == (8, 8, 1, 6)
    assert (rec.seq_lost, rec.seq_duplicated, rec.seq_reordered) == (1, 1, 1)
    assert list(rec.delivery) == [500_000] * 6  # (1.0 + 1000) s - 1000.5 s
    per = per_connection([conn], rec)
    assert per["received"] == {"n": 1, "min": 8, "max": 8, "mean": 8.0}
    assert per["lost"]["max"] == 1 and per["with_loss"] == 1


def test_listener_without_paths_never_parses() -> None:
    """With no sequence or timestamp path the listener only counts (read is None)."""
    rec, (conn,) = _conns(1)
    listener = Listener(parse({"headers": {"X-A": "b"}}), rec, wall_offset=0.0)
    assert listener.read is None
    listener.on_message(conn, '{"seq": "x"}', at=1.0)
    assert (rec.received, rec.invalid, conn.tracker) == (1, 0, None)


def test_per_connection_figures_merge_weighted() -> None:
    """Two processes' per-connection spreads: min of mins, max of maxes, mean weighted."""
    a = {"connections": 2, "received": {"n": 2, "min": 10, "max": 20, "mean": 15.0},
         "rate_per_s": {"n": 2, "min": 1.0, "max": 2.0, "mean": 1.5}}
    b = {"connections": 1, "received": {"n": 1, "min": 30, "max": 30, "mean": 30.0},
         "rate_per_s": {"n": 1, "min": 3.0, "max": 3.0, "mean": 3.0}}
    merged = merge_per_connection([a, b])
    assert merged["connections"] == 3
    assert merged["received"] == {"n": 3, "min": 10, "max": 30, "mean": 20.0}
    assert merged["rate_per_s"]["mean"] == 2.0 and "lost" not in merged


def test_plan_carries_the_block_and_redacts_literal_headers() -> None:
    """The protocol block survives the worker round trip; in the result's config a
    literal header value is redacted and a ${VAR} template kept."""
    block = {"headers": {"Authorization": "Bearer s3cret", "X-Key": "${KEY}"},
             "sequence": "seq"}
    plan = listen_plan("ws://127.0.0.1:9", 3, block)
    assert BenchPlan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan
    public = plan.public_dict()["protocol"]["headers"]
    assert public == {"Authorization": REDACTED, "X-Key": "${KEY}"}
    assert "s3cret" not in json.dumps(plan.public_dict())


def test_options_build_the_block_and_refuse_what_cannot_work(tmp_path: Any) -> None:
    """Flags add to --protocol FILE; paths outside listen mode, non-JSON --on-open, an
    unset ${VAR} and the Locust engine are refused before anything starts."""
    path = tmp_path / "p.yaml"
    path.write_text("headers: {X-A: a}\non_open: [{type: hello}]\nsequence: id\n")
    prepared = prepare(Options(url="ws://127.0.0.1:9/ws/x", mode="listen", protocol=path,
                               headers=["X-B: b"], on_open=['{"type":"sub"}'],
                               sequence="seq", timestamp="ts"))
    block = prepared.plan.protocol
    assert block is not None
    assert block["headers"] == {"X-A": "a", "X-B": "b"}
    assert block["on_open"] == [{"type": "hello"}, {"type": "sub"}]
    assert (block["sequence"], block["timestamp"]) == ("seq", {"path": "ts"})
    bad = [dict(sequence="seq"),  # echo mode
           dict(mode="listen", on_open=["{not json"]),
           dict(mode="listen", headers=["X-T: ${WSCTL_TEST_UNSET_VAR}"]),
           dict(mode="listen", headers=["no colon"]),
           dict(headers=["X-A: b"], engine="locust")]
    for kw in bad:
        with pytest.raises(InvalidInput):
            prepare(Options(url="ws://127.0.0.1:9/ws/x", **kw))  # type: ignore[arg-type]


def test_result_round_trip_keeps_unmeasured_reasons() -> None:
    """The reasons travel with the result (a --json file, a worker's result)."""
    with PushServer(count=2, interval=0.02, wait_for=1) as server:
        result = run_plan(listen_plan(server.url, 1, None, duration=0.5))
    again = Result.from_dict(json.loads(json.dumps(result.to_dict())))
    assert "--sequence" in again.details["unmeasured"]["messages.lost"]
