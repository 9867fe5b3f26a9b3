"""A run whose figures describe failures is no measurement: an error naming the cause."""

from __future__ import annotations

import sys
from pathlib import Path

from wsctl.scenario.model import loads
from wsctl.scenario.runner import run_suite

SERVER = Path(__file__).parents[2] / "services" / "seq_server.py"


async def test_resume_mode_on_a_foreign_protocol_is_an_error_not_a_pass(tmp_path: Path) -> None:
    """Resume-mode probes on a service that sends {"seq": N}: every frame is invalid, so
    the scenario is an error naming the cause, even though gave_up == 0 would pass."""
    suite = loads(f"""
name: foreign
server:
  command: [{sys.executable!r}, {str(SERVER)!r}, "{{port}}"]
  url: "ws://127.0.0.1:{{port}}/ws/{{stream}}"
  ready: "http://127.0.0.1:{{port}}/ws/health"
probes: {{count: 3, connect_timeout: 10s}}
duration: 2s
criteria:
  probes.gave_up: "== 0"
""", str(tmp_path / "foreign.yaml"))
    report = await run_suite(suite)
    (outcome,) = report.scenarios
    assert outcome.error is not None and "the measurement is invalid" in outcome.error
    assert "frames" in outcome.error
    assert report.exit_code != 0
