"""Several server instances in a scenario: ``server.instances`` on a shared store behind
the chaos proxy, ``server.*`` steps naming an instance, ``store: redis`` (a redis-server
of the run's own, or INCONCLUSIVE without one), and the bundled instance-failover run."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psutil
import pytest
from typer.testing import CliRunner

from tests.verdicts import settled
from wsctl.cli.main import app
from wsctl.errors import ActionFailed, InvalidInput
from wsctl.scenario import runner, server_process
from wsctl.scenario.actions import perform
from wsctl.scenario.model import REDIS, ProcessStep, load_suite, loads
from wsctl.scenario.redis_server import MISSING, binary
from wsctl.scenario.runner import run_scenario
from wsctl.scenario.server_process import Scrape, ServerGroup

pytestmark = pytest.mark.timeout(90)
DURABLE = Path(__file__).resolve().parents[3] / "scenarios" / "ep-0001-durable.yaml"


def refused(text: str) -> str:
    with pytest.raises(InvalidInput) as info:
        loads(text, "t.yaml")
    return str(info.value)


# -- the model ---------------------------------------------------------------------------


def test_several_instances_need_a_shared_store() -> None:
    """instances > 1 without a store, or on SQLite (one writer), is refused on its line;
    on redis or redis://… it is accepted and implies the proxy."""
    for store in ("", ", store: memory", ", store: sqlite"):
        message = refused(f"name: t\nduration: 5s\nserver: {{instances: 2{store}}}\n")
        assert message.startswith("t.yaml:3: server.instances: 2 instances share their "
                                  "streams through Redis: give store: redis"), message
        assert "\n" not in message
    for store in ("redis", "redis://127.0.0.1:6379/0"):
        scenario = loads(f"name: t\nduration: 5s\nserver: {{instances: 2, store: "
                         f"'{store}'}}\n", "t.yaml").scenarios[0]
        assert scenario.proxy and scenario.server.instances == 2
        assert "instances" not in " ".join(scenario.server.args())
    assert refused("name: t\nduration: 5s\nproxy: false\nserver: {instances: 2, store: "
                   "redis}\n").startswith("t.yaml:3: proxy: server.instances is 2")


def test_an_instance_out_of_range_is_refused() -> None:
    """A server.* step naming an instance the server does not have is one line naming
    the step's line and the range; a negative one and one on a non-server action too."""
    two = "name: t\nduration: 5s\nserver: {instances: 2, store: redis}\ntimeline:\n"
    assert refused(two + "  - {at: 1s, do: server.kill, instance: 2}\n") == \
        "t.yaml:5: timeline[0].instance: no instance 2: server.instances is 2: 0 to 1"
    assert refused("name: t\nduration: 5s\ntimeline:\n  - {at: 1s, do: server.pause, "
                   "for: 1s, instance: 1}\n") == \
        "t.yaml:4: timeline[0].instance: no instance 1: the server runs one instance, 0"
    assert "greater than or equal to 0" in refused(
        two + "  - {at: 1s, do: server.start, instance: -1}\n")
    assert refused(two + "  - {at: 1s, do: cut, instance: 1}\n") == \
        "t.yaml:5: timeline[0].instance: cut takes no instance"
    step = loads(two + "  - {at: 1s, do: server.restart, instance: 1}\n  - {at: 2s, do: "
                 "server.kill}\n", "t.yaml").scenarios[0].timeline
    assert [(s.do, s.instance) for s in step if isinstance(s, ProcessStep)] == [
        ("server.restart", 1), ("server.kill", 0)]


def test_store_redis_is_the_runs_own_redis_server() -> None:
    """Bare store: redis becomes the URL of the runner's redis-server (a placeholder
    the stage fills in); redis://… is passed on as written."""
    bare = loads("name: t\nduration: 5s\nserver: {store: redis}\n", "t.yaml").scenarios[0]
    assert bare.server.args() == ["--store", REDIS] and bare.server.own_redis
    given = loads("name: t\nduration: 5s\nserver: {store: 'redis://127.0.0.1:1/2'}\n",
                  "t.yaml").scenarios[0]
    assert given.server.args() == ["--store", "redis://127.0.0.1:1/2"]
    assert not given.server.own_redis


# -- actions on one instance ---------------------------------------------------------------


class Member:
    def __init__(self, port: int, *, rss: int | None = 100, state: str = "running",
                 scrape: Scrape | None = None) -> None:
        self.url = f"ws://127.0.0.1:{port}"
        self.port = port
        self.killed = False
        self.start_attempts = 1
        self._rss, self.state, self._scrape = rss, state, scrape
        self.incarnations = 1

    def pid(self) -> int:
        return self.port * 10

    async def kill(self) -> None:
        self.killed = True

    def rss(self) -> int | None:
        return self._rss

    async def scrape(self, timeout: float = 2.0) -> Scrape | None:
        return self._scrape

    def totals(self) -> Scrape:
        return self._scrape or Scrape()


def conn(port: int) -> Any:
    return SimpleNamespace(upstream_address=f"127.0.0.1:{port}")


async def test_a_server_action_acts_on_its_instance_and_counts_its_connections() -> None:
    """server.kill {instance: 1} kills instance 1 only; the detail names it and the
    proxy connections it held then; an index past the group is ActionFailed."""
    members = [Member(8001), Member(8002)]
    proxy = SimpleNamespace(connections={i: conn(8001 + i % 2) for i in range(5)})
    stage = SimpleNamespace(server=ServerGroup(members), proxy=proxy, fleet=None)
    step = ProcessStep(do="server.kill", instance=1)
    detail = await perform(stage, "server.kill", step)
    assert detail == ("instance 1 (127.0.0.1:8002, 2 of 5 proxy connections to it): "
                      "SIGKILL to pid 80020")
    assert [m.killed for m in members] == [False, True]
    with pytest.raises(ActionFailed, match="^no instance 2: the server runs 2, 0 to 1$"):
        await perform(stage, "server.kill", ProcessStep(do="server.kill", instance=2))
    single = SimpleNamespace(server=Member(8003), proxy=None, fleet=None)
    assert await perform(single, "server.kill", ProcessStep(do="server.kill")) == \
        "SIGKILL to pid 80030"
    with pytest.raises(ActionFailed, match="the server runs one instance, 0"):
        await perform(single, "server.kill", ProcessStep(do="server.kill", instance=1))


async def test_a_group_is_measured_as_one_server() -> None:
    """RSS is the running instances' sum; a scrape sums the running instances' figures
    and is None when one of them did not answer; totals add every instance's."""
    up = [Member(1, rss=100, scrape=Scrape(10, 1, 2)), Member(2, rss=50,
                                                             scrape=Scrape(5, 0, 1))]
    group = ServerGroup(up)
    assert group.rss() == 150 and group.url == "ws://127.0.0.1:1"
    assert await group.scrape() == Scrape(15, 1, 3)
    assert group.totals() == Scrape(15, 1, 3)
    down = ServerGroup([Member(1, rss=None, state="stopped", scrape=Scrape(10, 1, 2)),
                        Member(2, rss=50, scrape=Scrape(5, 0, 1))])
    assert down.rss() == 50 and await down.scrape() == Scrape(5, 0, 1)
    assert down.totals() == Scrape(5, 1, 3)  # connections: the running one's
    silent = ServerGroup([Member(1, scrape=None), Member(2, scrape=Scrape(5, 0, 1))])
    assert await silent.scrape() is None


# -- without redis-server ------------------------------------------------------------------


async def test_without_redis_server_the_scenario_is_inconclusive_never_a_pass(monkeypatch):
    """store: redis on a machine with no redis-server: nothing starts, every criterion
    is INCONCLUSIVE saying why (exit 4); with no criterion it is an error."""
    monkeypatch.setattr(runner, "redis_missing", lambda: MISSING)
    scenario = load_suite(DURABLE).scenarios[0]
    outcome = await run_scenario(scenario, file=str(DURABLE))
    assert outcome.verdict == "inconclusive" and outcome.result is None
    assert outcome.error is None and len(outcome.verdicts) == len(scenario.criteria) == 4
    for verdict in outcome.verdicts:
        assert verdict.status == "inconclusive" and verdict.measured is None
        assert verdict.message == (f"not run: {MISSING}; store: redis starts a redis-server "
                                   "for the run (or give store: redis://HOST:PORT/DB)")
    bare = loads("name: t\nduration: 5s\nserver: {store: redis}\n", "t.yaml").scenarios[0]
    assert (await run_scenario(bare)).verdict == "error"
    assert not server_process.LIVE


def test_what_is_missing_for_a_redis_of_the_runs_own(monkeypatch, tmp_path) -> None:
    """No redis-server on PATH: missing() says so in one line and RedisServer refuses to
    start (RunFailed with the same line); no redis package: missing() names the extra."""
    from wsctl.errors import RunFailed
    from wsctl.scenario import redis_server

    monkeypatch.setattr(redis_server.shutil, "which", lambda name: None)
    assert redis_server.missing() == MISSING and "\n" not in MISSING
    with pytest.raises(RunFailed, match="^redis-server is not installed"):
        redis_server.RedisServer(tmp_path)
    monkeypatch.setattr(redis_server.shutil, "which", lambda name: "/usr/bin/" + name)
    monkeypatch.setattr(redis_server.importlib.util, "find_spec", lambda name: None)
    assert redis_server.missing() == ("the redis package is not installed (pip install "
                                      "'wsctl[redis]')")


def test_list_without_a_file_shows_every_bundled_suite() -> None:
    """wsctl run --list lists the default suite first, then ep-0001-durable."""
    result = CliRunner().invoke(app, ["run", "--list"])
    assert result.exit_code == 0, result.output
    files = re.findall(r"^(\S+\.yaml): ", result.stdout, re.MULTILINE)
    assert [Path(f).name for f in files] == ["ep-0001.yaml", "ep-0001-durable.yaml"]
    assert re.search(r"^\s+instance-failover\s+14s\s", result.stdout, re.MULTILINE)


# -- the real thing ------------------------------------------------------------------------


def own_children(word: str) -> list[psutil.Process]:
    """This test process's children whose command line has ``word``, except the
    session's shared redis-server (tests/redisproc.py), which other tests started."""
    from tests import redisproc

    shared = redisproc._shared.proc.pid if redisproc._shared and redisproc._shared.proc \
        else None
    return [p for p in psutil.Process().children(recursive=True)
            if word in " ".join(p.cmdline()) and p.pid != shared]


@pytest.mark.skipif(binary() is None, reason=MISSING)
async def test_instance_failover_every_probe_resumes_on_the_other_instance() -> None:
    """The bundled instance-failover: instance 0 held some probes when it was killed;
    each of them lost its connection and resumed on instance 1 — no resync, nothing lost
    or repeated, none gave up, every probe open at the end — and no server or Redis is
    left after."""
    scenario = load_suite(DURABLE).scenarios[0]
    outcome = await run_scenario(scenario, file=str(DURABLE))
    assert outcome.error is None, outcome.error
    (kill,) = outcome.timeline
    match = re.fullmatch(r"instance 0 \(127\.0\.0\.1:\d+, (\d+) of (\d+) proxy connections "
                         r"to it\): SIGKILL to pid \d+", kill.detail)
    assert match is not None and kill.error is None, kill.detail
    held, count = int(match[1]), scenario.probes.count
    assert 0 < held < int(match[2]) <= count  # round robin: about half on each
    result = outcome.result
    assert result is not None
    counters = result.metrics.counters
    assert counters["connections.lost"] >= held
    assert result.metrics.histograms["resume_time"].count >= held
    assert counters.get("resyncs", 0) == 0 and counters.get("messages.lost", 0) == 0
    assert counters.get("messages.duplicated", 0) == 0 and counters.get("probes.gave_up", 0) == 0
    assert result.metrics.gauges["probes.open"].value == count
    instances = result.details["server"]["instances"]
    assert [i["last_exit"] for i in instances] == [-9, None]
    assert [settled(v) for v in outcome.verdicts] == ["pass"] * 4, outcome.verdicts
    assert not server_process.LIVE
    assert not own_children("server_stub") and not own_children("redis-server")


@pytest.mark.skipif(binary() is None, reason=MISSING)
async def test_a_for_undoes_on_the_same_instance_on_its_port() -> None:
    """server.kill {instance: 1, for: 1s}: instance 1 is killed and started again on its
    own port while instance 0 runs on; every probe is open at the end."""
    suite = loads("""
name: undo
duration: 4s
server: {instances: 2, store: redis, ping_interval: 1s, ping_timeout: 1s, job_rate: 20}
probes: {count: 4, stream: "undo-{n}", backoff: {base: 100ms, cap: 300ms}}
timeline:
  - {at: 1s, do: server.kill, instance: 1, for: 1s}
criteria:
  probes.open: "== 4"
""", "undo.yaml")
    outcome = await run_scenario(suite.scenarios[0], file="undo.yaml")
    assert outcome.error is None, outcome.error
    kill, start = outcome.timeline
    address = re.match(r"instance 1 \((127\.0\.0\.1:\d+), ", kill.detail)
    assert address is not None, kill.detail
    assert start.do == "server.start" and start.detail.startswith(
        f"instance 1 ({address[1]}, 0 of "), start.detail
    assert f"listening on ws://{address[1]} after" in start.detail
    assert outcome.result is not None
    instances = outcome.result.details["server"]["instances"]
    assert [i["incarnations"] for i in instances] == [1, 2]
    assert [settled(v) for v in outcome.verdicts] == ["pass"], outcome.verdicts
    assert not server_process.LIVE and not own_children("redis-server")
