"""The action table: one row per action, typed steps, and what perform() refuses."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from wsctl.errors import ActionFailed, Conflict, RunFailed
from wsctl.scenario.actions import ACTIONS, IN_FILES, UNDOABLE, perform
from wsctl.scenario.model import STEP_MODELS, ProbesAdd, ProcessStep, ToxicStep, loads


def test_every_action_a_file_may_name_has_a_step_model_and_no_other() -> None:
    """The discriminated union on ``do`` and the table name the same actions."""
    assert set(STEP_MODELS) == set(IN_FILES)
    assert "toxic.remove" in ACTIONS and "toxic.remove" not in IN_FILES


def test_undos_are_actions_on_the_same_target_and_never_faults() -> None:
    """Each undo is in the table, acts on what its action acts on, and injects nothing;
    cut is an instant (a reset) with nothing to undo."""
    for name in UNDOABLE:
        undo = ACTIONS[ACTIONS[name].undo or ""]
        assert undo.needs == ACTIONS[name].needs and not undo.fault, name
    assert ACTIONS["cut"].undo is None and ACTIONS["cut"].fault
    assert {ACTIONS[n].undo for n in UNDOABLE} == {"server.start", "server.resume",
                                                  "toxic.remove", "proxy.up"}


def test_steps_load_as_typed_models() -> None:
    """Each step is the model of its action, with its own typed fields and its undo."""
    suite = loads("""
name: t
duration: 10s
proxy: true
timeline:
  - {at: 1s, do: server.kill, for: 1s}
  - {at: 3s, do: toxic, for: 2s, toxic: {type: latency, attributes: {latency: 5}}}
  - {at: 6s, do: probes.add, count: 7}
""", "t.yaml")
    kill, toxic, add = suite.scenarios[0].timeline
    assert isinstance(kill, ProcessStep) and kill.undo == "server.start" and kill.is_fault
    assert isinstance(toxic, ToxicStep) and toxic.toxic["type"] == "latency"
    assert toxic.undo == "toxic.remove"
    assert isinstance(add, ProbesAdd) and add.count == 7 and not add.is_fault


class FakeServer:
    def __init__(self, fails: bool = False) -> None:
        self.fails = fails
        self.start_attempts = 1
        self.url = "ws://127.0.0.1:1"

    def pid(self) -> int:
        return 42

    async def kill(self) -> None:
        if self.fails:
            raise RunFailed("cannot kill: the server is not running")


class FakeProxy:
    def __init__(self) -> None:
        self.toxics: dict[str, Any] = {}
        self.enabled = True
        self.connections: dict[int, Any] = {}
        self.listen = "127.0.0.1:2"

    async def stop(self) -> None:
        raise Conflict("proxy refused")


def stage(**kw: Any) -> Any:
    return SimpleNamespace(**{"server": None, "proxy": None, "fleet": None, **kw})


async def test_perform_dispatches_and_translates_every_refusal() -> None:
    """An action runs its coroutine on its target; a missing target, a server error
    and a proxy refusal all become ActionFailed with the reason."""
    assert await perform(stage(server=FakeServer()), "server.kill", None) == \
        "SIGKILL to pid 42"
    with pytest.raises(ActionFailed, match="needs a server wsctl runs"):
        await perform(stage(), "server.kill", None)
    with pytest.raises(ActionFailed, match="^cannot kill: the server is not running$"):
        await perform(stage(server=FakeServer(fails=True)), "server.kill", None)
    with pytest.raises(ActionFailed, match="needs the chaos proxy"):
        await perform(stage(), "cut", None)
    with pytest.raises(ActionFailed, match="^proxy refused$"):
        await perform(stage(proxy=FakeProxy()), "proxy.down", None)
    proxy = FakeProxy()
    proxy.toxics["slow"] = object()
    step = ToxicStep(do="toxic", toxic={"type": "latency", "name": "slow"})
    with pytest.raises(ActionFailed, match="'slow' is still active"):
        await perform(stage(proxy=proxy), "toxic", step)


async def test_probes_add_on_a_finished_fleet_is_refused() -> None:
    """A storm needs running probes to join: a finished fleet is an ActionFailed."""
    fleet = SimpleNamespace(running=False)
    with pytest.raises(ActionFailed, match="every probe has finished"):
        await perform(stage(fleet=fleet), "probes.add", ProbesAdd(do="probes.add", count=3))
