"""Scenario files: what validates, and every kind of invalid file named by file and line."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from wsctl.errors import InvalidInput
from wsctl.scenario.model import load_suite, loads

GOOD = """\
name: server-restart
description: The server is killed mid-stream and back 2 s later; every probe resumes.
server: {profile: reference, ping_interval: 1s, job_rate: 5}
proxy: true
probes: {count: 20, stream: "alert-{n}", heartbeat: {interval: 1s, timeout: 1s}}
duration: 30s
timeline:
  - {at: 5s, do: server.kill}
  - {at: 7s, do: server.start}
  - {at: 15s, for: 5s, do: toxic, toxic: {type: latency, attributes: {latency: 300}}}
  - {do: wait, for: 1s}
  - {do: probes.add, count: 50}
criteria:
  reconnect_time.mean: "< 5s"
  reconnect_time.p99: {expect: "< 3s", ep: "Reconnection happens within 5 seconds"}
  messages.lost: "== 0"
"""


def test_design_example_validates_with_lines_and_durations() -> None:
    """The DESIGN.md example loads; durations are seconds and steps know their lines."""
    suite = loads(GOOD, "good.yaml")
    (scenario,) = suite.scenarios
    assert suite.name == "server-restart" and scenario.duration == 30.0
    steps = [(s.do, s.at, s.for_, s.line, s.is_fault) for s in scenario.timeline]
    assert steps == [
        ("server.kill", 5.0, None, 8, True),
        ("server.start", 7.0, None, 9, False),
        ("toxic", 15.0, 5.0, 10, True),
        ("wait", None, 1.0, 11, False),
        ("probes.add", None, None, 12, False),
    ]
    assert scenario.server.args() == ["--job-rate", "5.0", "--ping-interval", "1.0s"]
    assert [c.key for c in scenario.criteria] == [
        "reconnect_time.mean", "reconnect_time.p99", "messages.lost"]
    assert scenario.criteria[1].ep == "Reconnection happens within 5 seconds"


def test_probe_config_points_at_the_given_address() -> None:
    """Probes use /ws/<stream> on the server or proxy address, or fill {stream} in a url."""
    probes = loads(GOOD, "good.yaml").scenarios[0].probes
    config = probes.probe_config("ws://127.0.0.1:9000", 30.0)
    assert config.url == "ws://127.0.0.1:9000/ws/alert-{n}"
    assert config.heartbeat_interval == 1.0 and config.duration == 30.0
    assert probes.url("wss://example.test/feeds/{stream}") == "wss://example.test/feeds/alert-{n}"


def test_suite_defaults_merge_and_baseline_names_an_earlier_scenario() -> None:
    """defaults fill every scenario (scenario wins); baseline refers back."""
    text = textwrap.dedent("""\
        name: compare
        defaults: {duration: 10s, probes: {count: 7, mode: resume}}
        scenarios:
          - name: before
            server: {profile: baseline}
          - name: after
            baseline: before
            probes: {count: 9}
            criteria: {connect_time.p50: "<= 0.8 * baseline"}
        """)
    suite = loads(text, "suite.yaml")
    before, after = suite.scenarios
    assert (before.probes.count, after.probes.count) == (7, 9)
    assert after.duration == 10.0 and after.baseline == "before"
    assert before.server.profile == "baseline" and after.criteria[0].relative


INVALID = [
    ("bad YAML", "name: t\nduration: [5s\n", 3, "(YAML)"),
    ("empty file", "", 1, "empty"),
    ("not a mapping", "- a\n- b\n", 1, "expected a mapping"),
    ("unknown field", "name: t\nduration: 5s\ndurations: 5s\n", 3, "durations: unknown field"),
    ("duplicate key", "name: t\nduration: 5s\nduration: 6s\n", 3, "duplicate key"),
    ("missing duration", "name: t\nproxy: true\n", 1, "duration: required field is missing"),
    ("bad duration", "name: t\nduration: 5 sec\n", 2, "cannot read '5 sec' as a duration"),
    ("bad step duration", "name: t\nduration: 5s\ntimeline:\n  - {at: soon, do: cut}\n",
     4, "timeline[0].at: cannot read 'soon'"),
    ("unknown action", "name: t\nduration: 5s\ntimeline:\n  - {at: 1s, do: server.explode}\n",
     4, "timeline[0].do: unknown action 'server.explode'"),
    ("unknown metric", 'name: t\nduration: 5s\ncriteria:\n  reconect_time.mean: "< 5s"\n',
     4, "criteria.reconect_time.mean: unknown metric"),
    ("unit on a count", 'name: t\nduration: 5s\ncriteria:\n  messages.lost: "< 5s"\n',
     4, "cannot be compared in 's'"),
    ("unknown toxic", "name: t\nduration: 5s\nproxy: true\ntimeline:\n"
     "  - {at: 1s, do: toxic, toxic: {type: latncy}}\n", 5, "invalid toxic type"),
    ("bad toxic attribute", "name: t\nduration: 5s\nproxy: true\ntimeline:\n"
     "  - {at: 1s, do: toxic, toxic: {type: latency, attributes: {latency: fast}}}\n",
     5, "latency: expected an integer"),
    ("proxy action without proxy", "name: t\nduration: 5s\ntimeline:\n  - {at: 1s, do: cut}\n",
     4, "set proxy: true"),
    ("process action on a url server",
     'name: t\nduration: 5s\nserver: {url: "ws://127.0.0.1:1/ws/{stream}"}\n'
     "timeline:\n  - {at: 1s, do: server.kill}\n", 5, "needs a server wsctl runs"),
    ("step after the end", "name: t\nduration: 5s\nproxy: true\ntimeline:\n"
     "  - {at: 6s, do: cut}\n", 5, "after the scenario's end"),
    ("for on an instant action", "name: t\nduration: 5s\nproxy: true\ntimeline:\n"
     "  - {at: 1s, do: cut, for: 1s}\n", 5, "cut cannot take for"),
    ("probes.add without count", "name: t\nduration: 5s\ntimeline:\n"
     "  - {at: 1s, do: probes.add}\n", 4, "needs a count"),
    ("bad stream", 'name: t\nduration: 5s\nprobes: {stream: "a b"}\n', 3, "probes.stream"),
    ("suite scenario field", "name: s\nscenarios:\n  - name: a\n    duration: 5s\n"
     "    probe: {count: 1}\n", 5, "scenarios[0].probe: unknown field"),
    ("unknown baseline", "name: s\nscenarios:\n  - name: a\n    duration: 5s\n"
     "    baseline: zzz\n", 5, "not an earlier scenario"),
    ("infinite duration", "name: t\nduration: .inf\n", 2, "duration: at most 87600h"),
    ("NaN duration", "name: t\nduration: .nan\n", 2, "duration: cannot read nan"),
    ("infinite at", "name: t\nduration: 5s\ntimeline:\n  - {at: .inf, do: server.kill}\n",
     4, "timeline[0].at: at most 87600h"),
    ("huge for", "name: t\nduration: 5s\ntimeline:\n  - {do: wait, for: 1.0e+400}\n",
     4, "timeline[0].for: at most 87600h"),
    ("deep nesting", "name: t\nduration: 5s\nx: " + "[" * 3000 + "]" * 3000 + "\n",
     3, "(YAML): nested deeper than 64 levels"),
]


@pytest.mark.parametrize(("case", "text", "line", "fragment"), INVALID,
                         ids=[c[0] for c in INVALID])
def test_invalid_files_name_file_line_and_field(
    case: str, text: str, line: int, fragment: str
) -> None:
    """Every kind of invalid file is one InvalidInput starting FILE:LINE:."""
    with pytest.raises(InvalidInput) as info:
        loads(text, "bad.yaml")
    message = str(info.value)
    assert message.startswith(f"bad.yaml:{line}: "), message
    assert fragment in message


def test_missing_file_is_invalid_input(tmp_path: Path) -> None:
    """A file that is not there is named in the error."""
    with pytest.raises(InvalidInput, match="no such scenario file"):
        load_suite(tmp_path / "nope.yaml")


@pytest.mark.parametrize(("case", "text", "line", "fragment"),
                         [INVALID[0], INVALID[8], INVALID[9]], ids=lambda v: str(v)[:20])
def test_run_refuses_invalid_files_with_exit_2(
    tmp_path: Path, case: str, text: str, line: int, fragment: str
) -> None:
    """`wsctl run BAD.yaml` prints FILE:LINE and exits 2 without starting anything."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    before = set(tmp_path.iterdir())
    proc = subprocess.run(
        [sys.executable, "-c", "from wsctl.cli.main import run; run()", "run", str(bad),
         "--report-dir", str(tmp_path / "reports")],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert f"{bad}:{line}: " in proc.stderr and fragment in proc.stderr
    assert "Traceback" not in proc.stderr
    assert set(tmp_path.iterdir()) == before  # no report directory: nothing ran
