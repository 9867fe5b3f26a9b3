"""The pytest plugin, run as a team would: generated test files in a child pytest.

Each test writes a test file (or scenario file) with ``pytester`` and runs it in a
subprocess (event loops, signals and process groups stay out of this session), then
checks the outcomes, the failure text and — with psutil — that no process is left.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.wsctl.scenario.groups import running

pytest_plugins = ["pytester"]

INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
asyncio_default_test_loop_scope = function
filterwarnings = error
"""

STARLETTE_APP = '''
import asyncio
import time

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute


async def health(request):
    return JSONResponse({"ok": True})


async def feed(websocket):
    """Numbered messages every 50 ms, from 1 on each connection."""
    await websocket.accept()
    seq = 0
    try:
        while True:
            seq += 1
            await websocket.send_json({"seq": seq, "ts": time.time()})
            await asyncio.sleep(0.05)
    except Exception:
        pass


app = Starlette(routes=[Route("/health", health), WebSocketRoute("/ws/{name}", feed)])
'''


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    pytester.makeini(INI)
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:randomly",
                                         *args, timeout=90)


def test_each_fixture_passes_against_the_reference_server_and_a_starlette_app(
        pytester: pytest.Pytester) -> None:
    """Server, service, chaos and probe fixtures work from sync and async tests, and the
    figures they give reflect the faults the test injected."""
    pytester.makepyfile(app=STARLETTE_APP)
    pytester.makepyfile(test_reliability='''
        import sys
        import time

        HEARTBEAT = {"kind": "protocol", "interval": 0.3, "timeout": 0.3}


        def test_reference_server(wsctl_server, wsctl_chaos, wsctl_probes):
            server = wsctl_server(ping_interval=0.5, ping_timeout=0.5, job_rate=20)
            assert server.url.startswith("ws://127.0.0.1:") and server.rss > 0
            proxy = wsctl_chaos(server)
            probes = wsctl_probes(proxy, count=2)
            server.kill()
            assert server.state == "stopped"
            server.start()
            probes.wait_recovered(10)
            proxy.cut()
            probes.wait_recovered(10)
            with proxy.down():
                assert proxy.connections == 0
            probes.wait_recovered(10)
            proxy.toxic("drop_pongs")
            assert proxy.toxics == ["drop_pongs_downstream"]
            result = probes.result()
            assert result.reconnect_time.count >= 6   # 2 probes x 3 faults
            assert result.reconnect_time.mean < 5
            assert result.detect_time.count >= 4
            assert result.messages.lost == 0
            assert result.probes.gave_up == 0


        def test_starlette_service(wsctl_service, wsctl_chaos, wsctl_probes):
            service = wsctl_service(
                command=[sys.executable, "-m", "uvicorn", "app:app", "--host", "127.0.0.1",
                         "--port", "{port}"],
                url="ws://127.0.0.1:{port}/ws/{stream}",
                ready="http://127.0.0.1:{port}/health", stop_timeout=3)
            assert service.rss > 0
            proxy = wsctl_chaos(service)
            probes = wsctl_probes(proxy, count=2, mode="listen", heartbeat=HEARTBEAT,
                                  protocol={"sequence": "seq", "timestamp": "ts"})
            with proxy.toxic("latency", latency=200):
                time.sleep(0.6)
            assert proxy.toxics == []
            with service.pause():
                assert service.state == "paused"
                time.sleep(1.0)
            probes.wait_recovered(10)
            service.restart()
            probes.wait_recovered(10)
            service.terminate()
            assert service.state == "stopped" and service.rss is None
            service.start()
            probes.wait_recovered(10)
            result = probes.result()
            assert result.delivery_latency.max >= 0.2
            assert result.detect_time.max < 2
            # restart and terminate break every connection (a pause may not, on a slow
            # machine, if the pings happen to pass around it)
            assert result.reconnect_time.count >= 4
            assert result.messages.received > 0
            assert result.resyncs >= 4   # each new connection starts again at 1


        async def test_from_an_async_test(wsctl_server, wsctl_probes):
            server = wsctl_server()
            probes = wsctl_probes(server, count=1)
            with server.pause():
                pass
            assert probes.result().connect_time.count == 1
    ''')
    result = _run(pytester)
    result.assert_outcomes(passed=3)


def test_a_failing_assertion_shows_the_metric_values(pytester: pytest.Pytester) -> None:
    """``assert result.X.mean < N`` failing prints the histogram's figures; a metric the
    probes cannot measure says what to configure instead of giving 0."""
    pytester.makepyfile(test_figures='''
        def test_histogram(wsctl_server, wsctl_probes):
            result = wsctl_probes(wsctl_server(), count=2).result()
            assert result.connect_time.mean < 0

        def test_counter(wsctl_server, wsctl_probes):
            result = wsctl_probes(wsctl_server(), count=2).result()
            assert result.messages.duplicated > 0

        def test_unmeasured(wsctl_server, wsctl_probes):
            result = wsctl_probes(wsctl_server(), count=1, mode="listen").result()
            assert result.messages.lost == 0
    ''')
    result = _run(pytester)
    result.assert_outcomes(failed=3)
    out = result.stdout.str()
    assert "where" in out
    result.stdout.fnmatch_lines([
        "*= connect_time(count=2, mean=* ms, p50=* ms, p99=* ms, max=* ms).mean*",
        "*= messages(received=*, lost=0, duplicated=0, reordered=0*).duplicated*",
        "*NotMeasured: messages.lost cannot be measured by these probes: listen mode*"
        "set protocol.sequence*",
    ])


def _pids(path: Path) -> list[int]:
    return [pid for line in path.read_text().splitlines() for pid in json.loads(line)]


def _gone(pids: list[int], within: float = 5.0) -> list[int]:
    """The pids still alive (not zombies) after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        alive = running(pids)
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)


def test_a_failing_raising_or_interrupted_test_leaves_no_process(
        pytester: pytest.Pytester) -> None:
    """The service's whole process group (a child too) is gone after a test that fails,
    raises, or is interrupted by Ctrl-C while the service is paused."""
    pids = pytester.path / "pids.txt"
    pytester.makepyfile(test_cleanup=f'''
        import json
        import os
        import signal
        import sys

        import psutil
        import pytest

        SERVICE = [sys.executable, "-c", (
            "import subprocess, sys, time; "
            "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
            "print('ready', flush=True); time.sleep(60)")]


        @pytest.fixture
        def service(wsctl_service):
            service = wsctl_service(command=SERVICE, url="ws://127.0.0.1:9/ws", ready="^ready")
            tree = psutil.Process(service.pid)
            while not tree.children():
                pass
            with open({str(pids)!r}, "a") as out:
                pids = [service.pid] + [p.pid for p in tree.children(recursive=True)]
                out.write(json.dumps(pids) + "\\n")
            return service


        def test_fails(service):
            assert service.state == "failed on purpose"


        def test_raises(service):
            raise RuntimeError("on purpose")


        def test_interrupted_while_paused(service):
            service.pause()
            os.kill(os.getpid(), signal.SIGINT)
    ''')
    result = _run(pytester)
    result.stdout.fnmatch_lines(["*KeyboardInterrupt*", "*2 failed*"])
    seen = _pids(pids)
    assert len(seen) == 6  # a leader and its child, three times
    assert _gone(seen) == []


SCENARIOS = """
name: tiny
defaults:
  duration: 2s
  probes: {count: 2, heartbeat: {interval: 500ms, timeout: 500ms}}
scenarios:
  - name: passes
    description: A kill and a start; every probe comes back.
    timeline:
      - {at: 500ms, do: server.kill}
      - {at: 800ms, do: server.start}
    criteria:
      probes.gave_up: "== 0"
      connections.lost: ">= 1"  # counts: no timing a loaded CI host could make INCONCLUSIVE
  - name: fails
    description: Nothing is duplicated, so more than 0 duplicates fails.
    criteria:
      messages.duplicated: "> 0"
"""


def test_a_scenario_file_gives_one_item_per_scenario(pytester: pytest.Pytester) -> None:
    """Opted in by the ini glob, each scenario is an item whose outcome is its verdict,
    whose failure text is the criteria table, and which --junitxml reports; a YAML file
    the glob does not name is not collected."""
    folder = pytester.mkdir("scenarios")
    (folder / "suite.yaml").write_text(SCENARIOS)
    (pytester.path / "other.yaml").write_text("not: [a, scenario]\n")
    pytester.makeini(INI + "wsctl_scenarios = scenarios/*.yaml\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-v",
                                           "--junitxml=junit.xml", timeout=90)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "scenarios/suite.yaml::passes PASSED*",
        "scenarios/suite.yaml::fails FAILED*",
        "*fails — FAILED*",
        "*messages.duplicated*> 0*0*FAIL*",
    ])
    junit = (pytester.path / "junit.xml").read_text()
    assert 'name="fails"' in junit and "messages.duplicated" in junit


FAKE_RUN = '''
from wsctl.metrics import MetricSet, Result
from wsctl.results.criteria import Verdict, parse
from wsctl.results.outcome import ScenarioOutcome
import wsctl.testing.scenarios as scenarios


class InconclusiveRun:
    """Stands in for ScenarioRun: every scenario comes out INCONCLUSIVE."""

    def __init__(self, scenario, file, **_):
        self.scenario, self.file = scenario, file

    async def execute(self):
        criterion = parse("reconnect_time.mean", "< 5s")
        verdict = Verdict(criterion, "inconclusive", 0.2, 5.0,
                          message="the probes' loop lagged 900 ms")
        return ScenarioOutcome(self.scenario.name, "", self.file,
                               Result("run", MetricSet()), [verdict])


scenarios.ScenarioRun = InconclusiveRun  # items are not functions: no fixture reaches them
'''

ONE_SCENARIO = """
name: lagged
duration: 1s
criteria: {reconnect_time.mean: "< 5s"}
"""


@pytest.mark.parametrize(("setting", "outcome"), [("", "skipped"), ("fail", "failed")])
def test_an_inconclusive_scenario_is_a_skip_or_as_configured_a_failure(
        pytester: pytest.Pytester, setting: str, outcome: str) -> None:
    """INCONCLUSIVE skips with its reason by default and fails with
    ``wsctl_inconclusive = fail``; a YAML file named on the command line is collected
    without any ini glob, one nobody named is not."""
    pytester.makeconftest(FAKE_RUN)
    (pytester.path / "lagged.yaml").write_text(ONE_SCENARIO)
    pytester.makeini(INI + (f"wsctl_inconclusive = {setting}\n" if setting else ""))
    unnamed = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=60)
    assert unnamed.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rs", "lagged.yaml",
                                           timeout=60)
    result.assert_outcomes(**{outcome: 1})
    if outcome == "skipped":
        result.stdout.fnmatch_lines(["*INCONCLUSIVE — reconnect_time.mean: the probes' "
                                     "loop lagged 900 ms*"])
    else:
        result.stdout.fnmatch_lines(["*lagged — INCONCLUSIVE*"])
