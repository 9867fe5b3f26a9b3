"""The protocol block: validation, file errors, templates, URL/headers/messages, readings."""

import json
from datetime import UTC, datetime

import pytest

from wsctl.errors import InvalidInput
from wsctl.probe.dialect import (
    AUTO_MS_FROM,
    MISSING,
    Context,
    Dialect,
    Reading,
    frame,
    get_path,
    load,
    loads,
    render,
    sequence_number,
    wall_seconds,
)

ENV = {"TOKEN": "s3cret", "ROOM": "a b"}


def ctx(last_seq: int | None = None, **kwargs) -> Context:
    return Context(stream=kwargs.pop("stream", "alert-3"), n=kwargs.pop("n", 3),
                   last_seq=last_seq, env=kwargs.pop("env", ENV))


def errors_of(text: str) -> str:
    with pytest.raises(InvalidInput) as info:
        loads(text, "p.yaml")
    return str(info.value)


# Validation ---------------------------------------------------------------------------


def test_full_block_loads_from_yaml():
    """Every field of DESIGN.md section 11's example is accepted; shorthand forms expand."""
    block = loads("""
adapter: none
headers: {Authorization: "Bearer ${TOKEN}"}
subprotocols: [graphql-ws]
query: {room: "{stream}"}
on_open: [{type: subscribe, channel: "{stream}"}, "raw text"]
sequence: data.offset
timestamp: ts
resume: {query: "since={last_seq}"}
heartbeat: {send: {type: ping}, answer: {type: pong}}
""")
    assert block.sequence == "data.offset"
    assert block.timestamp is not None and block.timestamp.path == "ts"
    assert block.timestamp.unit == "auto"
    assert block.measures == {"messages.lost", "messages.duplicated", "messages.reordered",
                              "resyncs", "delivery_latency", "rtt", "resume_time"}


def test_empty_block_measures_nothing_extra():
    """With no sequence, timestamp or heartbeat, the block makes no metric measurable."""
    assert Dialect().measures == frozenset()


def test_a_file_may_wrap_the_block_in_protocol():
    """A --protocol file may be the block itself or {protocol: block}; errors keep lines."""
    assert loads("protocol:\n  sequence: seq\n").sequence == "seq"
    assert errors_of("protocol:\n  sequence: seq\n  bogus: 1\n") == (
        "p.yaml:3: protocol.bogus: unknown field")


def test_json_file_loads(tmp_path):
    """JSON is accepted (it is YAML); load() reads a path."""
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"sequence": "seq", "timestamp": {"path": "t", "unit": "ms"}}))
    block = load(path)
    assert block.timestamp is not None and block.timestamp.unit == "ms"


def test_missing_file_is_invalid_input(tmp_path):
    """A protocol file that does not exist is a one-line InvalidInput."""
    with pytest.raises(InvalidInput, match="no such protocol file"):
        load(tmp_path / "nope.yaml")


@pytest.mark.parametrize(("text", "expected"), [
    ("adapter: grpc\n", "p.yaml:1: adapter: Input should be 'none' or 'socketio'"),
    ("sequence: seq\nextra: 1\n", "p.yaml:2: extra: unknown field"),
    ("sequence: 'a..b'\n", "p.yaml:1: sequence: a field path is names joined by dots"),
    ("timestamp: {path: ts, unit: us}\n", "p.yaml:1: timestamp.unit: Input should be"),
    ("headers:\n  Sec-WebSocket-Protocol: x\n",
     "p.yaml:2: headers.Sec-WebSocket-Protocol: set by subprotocols: [...], not by headers"),
    ("headers:\n  'bad name': x\n", "p.yaml:2: headers.bad name: not a valid header name"),
    ("subprotocols: [ok, 'not ok']\n", "p.yaml:1: subprotocols[1]: a subprotocol is one"),
    ("on_open:\n  - 5\n", "p.yaml:2: on_open[0]: a message is a JSON object"),
    ("resume: {}\n", "p.yaml:1: resume: give one of query"),
    ("resume: {query: a, message: b}\n", "p.yaml:1: resume: give one of query"),
    ("resume: {query: 'since={last_seq}'}\n", "p.yaml:1: resume: needs sequence"),
    ("heartbeat: {send: ping, answer: {}}\n", "p.yaml:1: heartbeat.answer: name at least one"),
    ("heartbeat: {send: ping}\n", "p.yaml:1: heartbeat.answer: required field is missing"),
    ("socketio: {namespace: /x}\n", "p.yaml:1: socketio: only with adapter: socketio"),
    ("adapter: socketio\nsocketio: {namespace: feed}\n",
     "p.yaml:2: socketio.namespace: a namespace starts with /"),
    ("adapter: socketio\non_open:\n  - {type: subscribe}\n",
     "p.yaml:3: on_open[0]: with adapter socketio, a message is an emit"),
    ("adapter: socketio\nresume: {message: {since: 1}}\n",
     "p.yaml:2: resume.message: with adapter socketio"),
    ("adapter: socketio\nheartbeat: {send: ping, answer: {type: pong}}\n",
     "p.yaml:2: heartbeat: with adapter socketio, liveness comes from Engine.IO"),
    ("sequence: seq\nsequence: id\n", "p.yaml:2: sequence: duplicate key"),
    ("timestamp: 5\n", "p.yaml:1: timestamp: a field path such as ts, or {path: ts"),
    ("query:\n  a: [1]\n", "p.yaml:2: query.a: a value here is a string, a number or"),
    ("resume: {query: 5}\n", "p.yaml:1: resume.query: a query is text such as"),
    ("resume:\n  query:\n    since: {x: 1}\n", "p.yaml:3: resume.query.since: a value"),
    ("heartbeat:\n  send: ping\n  answer: {'a..b': 1}\n",
     "p.yaml:3: heartbeat.answer.a..b: a field path is names joined by dots"),
    ("- sequence\n", "p.yaml:1: (top level): expected a mapping of protocol fields"),
    ("sequence: [\n", "p.yaml:2: (YAML)"),
])
def test_errors_name_file_line_and_field(text, expected):
    """Each invalid block is one InvalidInput line: FILE:LINE: field: problem."""
    assert errors_of(text).startswith(expected)


def test_exit_code_of_invalid_input_is_2():
    """A bad protocol file is usage error territory (exit 2): nothing started."""
    with pytest.raises(InvalidInput) as info:
        loads("adapter: x\n")
    assert info.value.exit_code == 2


# Templates ----------------------------------------------------------------------------


def test_render_fills_placeholders_and_keeps_other_braces():
    """{stream}, {n}, {last_seq}, ${ENV} are replaced; unknown braces and keys stay."""
    value = {"{stream}": "{stream}/{n}/{last_seq}", "raw": '{"x": {y}}', "t": "${TOKEN}"}
    assert render(value, ctx(41), "on_open[0]") == {
        "{stream}": "alert-3/3/41", "raw": '{"x": {y}}', "t": "s3cret"}


def test_whole_string_number_placeholders_become_numbers():
    """"{n}" and "{last_seq}" alone become JSON numbers; no last number yet is null."""
    message = {"probe": "{n}", "since": "{last_seq}", "text": "from {last_seq}"}
    assert render(message, ctx(7), "m") == {"probe": 3, "since": 7, "text": "from 7"}
    assert render(message, ctx(None), "m") == {"probe": 3, "since": None, "text": "from "}


def test_missing_env_var_names_the_field():
    """A ${VAR} that is not set is InvalidInput naming the field and the variable."""
    block = Dialect(headers={"Authorization": "Bearer ${NOPE}"})
    with pytest.raises(InvalidInput, match=r"protocol\.headers\.Authorization: environment "
                       r"variable NOPE is not set"):
        block.headers_for(ctx())


def test_check_env_finds_variables_in_every_templated_field():
    """check_env fails for a variable used only in the resume message or Socket.IO auth."""
    resume = Dialect(sequence="seq", resume={"message": {"token": "${LATE}"}})
    with pytest.raises(InvalidInput, match=r"resume\.message\.token: .*LATE"):
        resume.check_env({})
    auth = Dialect(adapter="socketio", socketio={"auth": {"token": "${SIO}"}})
    with pytest.raises(InvalidInput, match=r"socketio\.auth\.token: .*SIO"):
        auth.check_env({})
    auth.check_env({"SIO": "x"})


# Building a connection ----------------------------------------------------------------


def test_url_adds_query_and_resume_query_only_after_a_number():
    """query is always added (values encoded); the resume query only once last_seq is known."""
    block = Dialect(query={"room": "${ROOM}", "n": "{n}", "live": True},
                    sequence="seq", resume={"query": "since={last_seq}"})
    base = "ws://h:1/ws/alert-3?v=2"
    assert block.url(base, ctx(None)) == "ws://h:1/ws/alert-3?v=2&room=a%20b&n=3&live=true"
    assert block.url(base, ctx(99)).endswith("&live=true&since=99")


def test_resume_query_mapping_form_and_omitted_last_seq_parameter():
    """A mapping resume query is encoded; a query value of "{last_seq}" is left out while
    no number has arrived."""
    block = Dialect(query={"after": "{last_seq}"}, sequence="seq",
                    resume={"query": {"since": "{last_seq}"}})
    assert block.url("ws://h/x", ctx(None)) == "ws://h/x"
    assert block.url("ws://h/x", ctx(5)) == "ws://h/x?after=5&since=5"


def test_socketio_url_uses_the_engine_path():
    """adapter socketio: /socket.io/?EIO=4&transport=websocket, then the block's query."""
    block = Dialect(adapter="socketio", query={"token": "t"})
    assert block.url("ws://127.0.0.1:8000", ctx()) == (
        "ws://127.0.0.1:8000/socket.io/?EIO=4&transport=websocket&token=t")


def test_headers_are_rendered_in_order():
    """Handshake headers come back as (name, value) pairs with templates filled."""
    block = Dialect(headers={"Authorization": "Bearer ${TOKEN}", "X-Stream": "{stream}"})
    assert block.headers_for(ctx()) == [("Authorization", "Bearer s3cret"),
                                        ("X-Stream", "alert-3")]


def test_open_messages_then_resume_message_after_a_number():
    """on_open messages are sent every time; the resume message only once last_seq is known."""
    block = Dialect(on_open=[{"type": "subscribe", "channel": "{stream}"}, "hello {n}"],
                    sequence="seq",
                    resume={"message": {"type": "replay", "from": "{last_seq}"}})
    assert block.open_messages(ctx(None)) == [{"type": "subscribe", "channel": "alert-3"},
                                              "hello 3"]
    assert block.open_messages(ctx(12))[-1] == {"type": "replay", "from": 12}
    assert [frame(m) for m in block.open_messages(ctx(None))] == [
        '{"type":"subscribe","channel":"alert-3"}', "hello 3"]


def test_socketio_client_gets_namespace_and_rendered_auth():
    """socketio_client() builds a session that connects to the namespace with auth filled."""
    block = Dialect(adapter="socketio",
                    socketio={"namespace": "/feed", "auth": {"token": "${TOKEN}"}})
    client = block.socketio_client(ctx())
    client.receive_text('0{"sid":"a","pingInterval":1000,"pingTimeout":1000}', 0.0)
    assert client.data_to_send() == ['40/feed,{"token":"s3cret"}']


def test_heartbeat_message_and_answer():
    """The heartbeat is rendered; an answer matches only when every named field is equal."""
    block = Dialect(heartbeat={"send": {"op": "ping", "id": "{n}"},
                               "answer": {"op": "pong", "meta.ok": True}})
    assert block.heartbeat_message(ctx()) == {"op": "ping", "id": 3}
    assert block.is_heartbeat_answer({"op": "pong", "meta": {"ok": True}})
    assert not block.is_heartbeat_answer({"op": "pong", "meta": {"ok": False}})
    assert not block.is_heartbeat_answer({"op": "pong"})
    assert not Dialect().is_heartbeat_answer({"op": "pong"})
    assert Dialect().heartbeat_message(ctx()) is None


def test_socketio_event_filter():
    """events: [...] names the events that count; without it every event counts."""
    assert Dialect(adapter="socketio").counts_event("anything")
    block = Dialect(adapter="socketio", socketio={"events": ["tick"]})
    assert block.counts_event("tick") and not block.counts_event("status")


# Reading messages ---------------------------------------------------------------------


def test_get_path_walks_objects_and_list_items():
    """Dotted paths go through objects; a number picks a list item; absent is MISSING."""
    message = {"data": {"offset": 5, "items": [{"seq": 1}, {"seq": 2}]}}
    assert get_path(message, "data.offset") == 5
    assert get_path(message, "data.items.1.seq") == 2
    assert get_path(message, "data.items.2.seq") is MISSING
    assert get_path(message, "data.nope") is MISSING
    assert get_path([1], "x") is MISSING
    assert get_path({"a": None}, "a") is None


def test_read_extracts_sequence_and_timestamp():
    """A message with both paths gives its number and its wall time in seconds."""
    block = Dialect(sequence="data.offset", timestamp={"path": "ts", "unit": "ms"})
    assert block.read({"data": {"offset": 9}, "ts": 1_700_000_000_500}) == Reading(
        9, 1_700_000_000.5)


def test_messages_without_the_paths_are_counted_not_judged():
    """A message lacking the paths (or not JSON) reads as no number, no time, no problem."""
    block = Dialect(sequence="seq", timestamp="ts")
    assert block.read({"type": "status"}) == Reading()
    assert block.read("text") == Reading()
    assert block.read_frame("not json") == (None, Reading())
    assert block.read_frame(b'{"seq": 4}') == ({"seq": 4}, Reading(4))


def test_present_but_bad_values_are_a_problem():
    """A path whose value is not a number/time is reported as the message's problem."""
    block = Dialect(sequence="seq", timestamp="ts")
    reading = block.read({"seq": "x1", "ts": True})
    assert reading.seq is None and reading.sent_at is None
    assert reading.problem == "seq: not a sequence number: 'x1'; ts: not a timestamp: True"


def test_block_without_paths_reads_nothing():
    """With no sequence or timestamp configured, nothing is extracted."""
    assert Dialect().read({"seq": 1, "ts": 2}) == Reading()


@pytest.mark.parametrize(("value", "expected"), [
    (5, 5), (5.0, 5), ("17", 17), ("-2", -2), (" 3 ", 3)])
def test_sequence_number_accepts_integers_in_their_json_forms(value, expected):
    """Integers, integral floats and decimal strings are sequence numbers."""
    assert sequence_number(value) == expected


@pytest.mark.parametrize("value", [True, 1.5, "1e3", "abc", None, [1]])
def test_sequence_number_refuses_the_rest(value):
    """Booleans, fractions and other values are not sequence numbers."""
    with pytest.raises(ValueError):
        sequence_number(value)


def test_timestamp_units_and_auto_threshold():
    """s and ms are taken as told; auto reads values from 1e11 up as milliseconds."""
    now_s, now_ms = 1_700_000_000.25, 1_700_000_000_250
    assert wall_seconds(now_s, "s") == now_s
    assert wall_seconds(now_ms, "ms") == now_s
    assert wall_seconds(now_s, "auto") == now_s
    assert wall_seconds(now_ms, "auto") == now_s
    assert wall_seconds(AUTO_MS_FROM, "auto") == AUTO_MS_FROM / 1000
    assert wall_seconds(AUTO_MS_FROM - 1, "auto") == AUTO_MS_FROM - 1


def test_timestamp_iso_strings():
    """ISO 8601 strings are wall times; Z and offsets are honoured, no zone is UTC."""
    expected = datetime(2024, 5, 1, 12, 0, 0, 500000, tzinfo=UTC).timestamp()
    assert wall_seconds("2024-05-01T12:00:00.5Z", "auto") == expected
    assert wall_seconds("2024-05-01T14:00:00.5+02:00", "s") == expected
    assert wall_seconds("2024-05-01T12:00:00.5", "ms") == expected


@pytest.mark.parametrize("value", [True, "yesterday", float("nan"), None, {}])
def test_timestamp_refuses_non_times(value):
    """Booleans, NaN, free text and other values are not timestamps."""
    with pytest.raises(ValueError):
        wall_seconds(value, "auto")


def test_the_guides_example_block_is_valid():
    """docs/own-service.md's first YAML example loads as a protocol block."""
    from pathlib import Path

    guide = (Path(__file__).parents[3] / "docs" / "own-service.md").read_text()
    example = guide.split("```yaml\n", 1)[1].split("```", 1)[0]
    block = loads(example, "own-service.md")
    assert block.sequence == "seq" and block.resume is not None
