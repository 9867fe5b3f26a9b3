"""``wsctl probe`` with a protocol block: --protocol FILE and its flags, and the exit 1
warning when a run's figures are not a measurement."""

import json
import threading
import time

import pytest
from typer.testing import CliRunner
from websockets.sync.server import serve

from wsctl.cli.main import app

pytestmark = pytest.mark.timeout(30)
runner = CliRunner()


@pytest.fixture
def seq_url():
    """A websockets (sync) server sending {"seq": N, "ts": t} every 20 ms per connection,
    skipping every 5th number; it records the request headers, subprotocol and the first
    message each client sent."""
    seen = []

    def handler(ws):
        try:
            first = ws.recv(timeout=0.3)
        except TimeoutError:
            first = None
        seen.append({"headers": dict(ws.request.headers), "path": ws.request.path,
                     "subprotocol": ws.subprotocol, "first": first})
        for n in range(1, 10_000):
            if n % 5:
                ws.send(json.dumps({"seq": n, "ts": time.time()}))
            time.sleep(0.02)

    def select(_connection, offered):
        return "v2.feed" if "v2.feed" in offered else None

    with serve(handler, "127.0.0.1", 0, select_subprotocol=select) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield f"ws://127.0.0.1:{server.socket.getsockname()[1]}/ws/{{stream}}", seen
        server.shutdown()
        thread.join(5)


def test_protocol_file_and_flags_speak_and_judge_the_service(seq_url, tmp_path, monkeypatch):
    """The file's headers (env filled) and query, --subprotocol, --on-open and --sequence
    reach the service; every 5th number skipped is lost; only measurable metrics appear
    and details.unmeasured says why the others are not."""
    url, seen = seq_url
    monkeypatch.setenv("FEED_TOKEN", "t0k")
    block = tmp_path / "protocol.yaml"
    block.write_text('protocol:\n  headers: {Authorization: "Bearer ${FEED_TOKEN}"}\n'
                     '  query: {client: "{stream}"}\n')
    out = tmp_path / "result.json"
    result = runner.invoke(app, [
        "probe", url, "--mode", "listen", "--protocol", str(block), "--subprotocol",
        "v2.feed", "--on-open", '{"type":"subscribe","channel":"{stream}"}',
        "--sequence", "seq", "--stream", "feed-{n}", "--duration", "1s",
        "--view", "quiet", "--json", str(out)])
    assert result.exit_code == 0, result.output
    [hello] = seen
    assert hello["headers"]["authorization"] == "Bearer t0k"
    assert hello["path"] == "/ws/feed-0?client=feed-0"
    assert hello["subprotocol"] == "v2.feed"
    assert json.loads(hello["first"]) == {"type": "subscribe", "channel": "feed-0"}
    obj = json.loads(out.read_text())
    metrics = obj["metrics"]
    received, lost = metrics["messages.received"]["value"], metrics["messages.lost"]["value"]
    assert received >= 10
    # numbers 1..H arrived but every 5th: H - H // 5 received, H // 5 lost (H % 5 != 0)
    highest = next(h for h in range(1, 10_000) if h % 5 and h - h // 5 == received)
    assert lost == highest // 5
    assert "delivery_latency" not in metrics and "messages.sent" not in metrics
    assert "protocol.timestamp" in obj["details"]["unmeasured"]["delivery_latency"]
    assert obj["config"]["dialect"]["sequence"] == "seq"


@pytest.mark.parametrize(("args", "message"), [
    (["--socketio"], "protocol.adapter: resume mode cannot speak Socket.IO"),
    (["--mode", "echo", "--socketio"], "protocol.adapter: echo mode cannot speak Socket.IO"),
    (["--mode", "listen", "--header", "nocolon"], "--header 'nocolon': write 'Name: value'"),
    (["--mode", "listen", "--on-open", "{bad"], "--on-open '{bad': not JSON"),
    (["--mode", "listen", "--header", "Host: x"], "protocol.headers.Host: set by"),
    (["--mode", "listen", "--header", "X: ${WSCTL_TEST_UNSET_VAR}"],
     "environment variable WSCTL_TEST_UNSET_VAR is not set"),
    (["--mode", "listen", "--protocol", "/nonexistent/p.yaml"], "no such protocol file"),
])
def test_protocol_mistakes_exit_2_before_connecting(args, message):
    """A block the mode cannot use, a bad flag or a missing variable: one line, exit 2."""
    result = runner.invoke(app, ["probe", "ws://127.0.0.1:1/ws/a", *args])
    assert result.exit_code == 2, result.output
    assert message in result.stderr


def test_protocol_file_error_names_file_and_line(tmp_path):
    """A wrong field in --protocol FILE is FILE:LINE: field: problem, exit 2."""
    block = tmp_path / "p.yaml"
    block.write_text("sequence: seq\ntimestamp: {path: ts, unit: hours}\n")
    result = runner.invoke(app, ["probe", "ws://127.0.0.1:1/ws/a", "--mode", "listen",
                                 "--protocol", str(block)])
    assert result.exit_code == 2
    assert f"{block}:2: timestamp.unit:" in result.stderr


def test_default_mode_on_a_foreign_server_warns_and_exits_1(seq_url):
    """The issue's silent failure: resume mode on a service that is not protocol v1 gets
    only invalid frames; the run ends with a one-line warning naming the cause, exit 1."""
    url, _ = seq_url
    result = runner.invoke(app, ["probe", url, "--duration", "1s", "--view", "quiet",
                                 "--heartbeat", "off", "--connect-timeout", "5s"])
    assert result.exit_code == 1, result.output
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("wsctl probe: warning: 100% of frames")
    assert "use --mode listen with a protocol block" in last
