"""probes.protocol in scenario files: validated with the file, and the issue's false PASS
through ``wsctl run``'s runner against a team-style service behind the proxy."""

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from wsctl.errors import InvalidInput
from wsctl.scenario.model import loads
from wsctl.scenario.runner import run_suite

SEQ_SERVER = Path(__file__).parents[2] / "services" / "seq_server.py"
HEAD = 'name: p\nduration: 1s\nserver: {url: "ws://127.0.0.1:1/ws/{stream}"}\n'


@pytest.mark.parametrize(("probes", "expected"), [
    ("probes:\n  mode: listen\n  protocol:\n    timestamp: {path: ts, unit: hours}\n",
     "p.yaml:7: probes.protocol.timestamp.unit: Input should be"),
    ("probes:\n  mode: echo\n  protocol:\n    adapter: socketio\n",
     "p.yaml:7: probes.protocol.adapter: echo mode cannot speak Socket.IO"),
    ("probes:\n  mode: listen\n  protocol:\n    headers:\n      X-A: '${WSCTL_UNSET_VAR_X}'\n",
     "p.yaml:6: probes.protocol: headers.X-A: environment variable WSCTL_UNSET_VAR_X"),
])
def test_protocol_mistakes_are_file_line_errors(probes, expected):
    """A wrong field, a block the mode cannot use, an unset ${VAR}: FILE:LINE, nothing runs."""
    with pytest.raises(InvalidInput) as info:
        loads(HEAD + probes, "p.yaml")
    assert str(info.value).startswith(expected), str(info.value)


def test_protocol_reaches_the_probe_config():
    """The block and the stream name go into every probe's config."""
    suite = loads(HEAD + "probes:\n  mode: listen\n  stream: feed-{n}\n  protocol:\n"
                  "    sequence: seq\n", "p.yaml")
    config = suite.scenarios[0].probes.probe_config("ws://h/ws/{stream}", 1.0)
    assert config.dialect is not None and config.dialect.sequence == "seq"
    assert config.url_for(2) == "ws://h/ws/feed-2"


@pytest.fixture
def seq_server():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, str(SEQ_SERVER), str(port), "--interval",
                             "0.02"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and "listening" in proc.stdout.readline()
    yield f"ws://127.0.0.1:{port}/ws/{{stream}}"
    proc.kill()
    proc.wait()
    proc.stdout.close()


SCENARIO = """
name: own
scenarios:
  - name: {name}
    duration: 3s
    server: {{url: "{url}"}}
    proxy: true
    probes: {{count: 2, mode: listen, heartbeat: {{kind: "off"}},
              backoff: {{base: 50ms, cap: 200ms}}{protocol}}}
    timeline:
      - {{at: 1s, for: 1s, do: proxy.down}}
    criteria:
      messages.lost: "== 0"
      reconnect_time.count: ">= 2"
"""


@pytest.mark.timeout(60)
async def test_run_listen_without_sequence_is_error_and_with_it_fails(seq_server):
    """wsctl run, 1 s proxy.down on a service numbering its messages: without a sequence
    messages.lost == 0 is ERROR naming protocol.sequence (the issue's false PASS); with
    protocol.sequence it FAILs with the numbers the probes missed."""
    plain = loads(SCENARIO.format(name="plain", url=seq_server, protocol=""), "a.yaml")
    judged = loads(SCENARIO.format(name="judged", url=seq_server,
                                   protocol=", protocol: {sequence: seq}"), "b.yaml")
    plain_outcome = (await run_suite(plain)).scenarios[0]
    judged_outcome = (await run_suite(judged)).scenarios[0]
    for outcome in (plain_outcome, judged_outcome):
        assert outcome.error is None, outcome.error
    lost = {v.criterion.key: v for v in plain_outcome.verdicts}["messages.lost"]
    assert lost.status == "error" and "protocol.sequence" in lost.message
    lost = {v.criterion.key: v for v in judged_outcome.verdicts}["messages.lost"]
    # 2 probes x ~1 s at 50 numbers a second, minus a reconnect's worth of slack
    assert lost.status == "fail" and lost.measured is not None and lost.measured >= 40
