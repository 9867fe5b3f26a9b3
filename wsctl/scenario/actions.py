"""Every action a scenario's timeline can take, in one table.

A row says what the action acts on (the server process, the chaos proxy, the probe
fleet, or nothing), whether it injects a fault (probes then measure ``detect_time`` from
its instant), what undoes it when a step has ``for``, and the coroutine that carries it
out: ``run(target, step) -> detail``, where ``target`` is what it acts on and ``step``
the typed step of the file (``wsctl.scenario.model``) — for an undo, the step it undoes.
The model and the stage import this table, so it names what it needs of them as small
protocols (``Targets``, ``WithToxic``, ``WithCount`` below) rather than importing them.

Only actions with an undo take ``for``. ``cut`` has none: it resets every connection at
one instant and leaves nothing behind to remove (a ``toxic`` of type ``cut`` can be
given ``for``). ``wait`` is the timeline's own: it holds the next step back and acts on
nothing. A new action is a row here and, if its fields are new, a step model in
``model.py``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import signal
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable
from urllib.parse import urlsplit

from wsctl.errors import ActionFailed, InvalidInput, WsctlError

if TYPE_CHECKING:
    from wsctl.chaos.model import Toxic
    from wsctl.chaos.proxy import Proxy
    from wsctl.probe.fleet import Fleet
    from wsctl.probe.workers import AnyFleet
    from wsctl.scenario.service import ServiceProcess

Needs = Literal["server", "proxy", "probes", "nothing"]
Run = Callable[[Any, Any], Awaitable[str]]  # (what it acts on, the step) -> detail line


@runtime_checkable
class Instances(Protocol):
    """Several instances of the server (``wsctl.scenario.server_process.ServerGroup``):
    a ``server.*`` action acts on the one its step names."""

    @property
    def members(self) -> Sequence[ServiceProcess]: ...


class Targets(Protocol):
    """What the actions act on (``wsctl.scenario.stage.Stage``); None: not there."""

    @property
    def server(self) -> ServiceProcess | Instances | None: ...
    @property
    def proxy(self) -> Proxy | None: ...
    @property
    def fleet(self) -> AnyFleet | None: ...


class WithToxic(Protocol):
    """A step naming a toxic (``wsctl.scenario.model.ToxicStep``)."""

    @property
    def toxic(self) -> dict[str, Any]: ...


class WithCount(Protocol):
    """A step adding probes (``wsctl.scenario.model.ProbesAdd``)."""

    @property
    def count(self) -> int: ...


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """One action: what it acts on, whether it is a fault, its undo, its coroutine
    (None: the timeline carries it out itself), and whether a file may name it (an
    undo-only action may not)."""

    needs: Needs
    run: Run | None
    help: str
    fault: bool = False
    undo: str | None = None
    in_files: bool = True


# -- the chaos core, each call in one place ------------------------------------------


def parse_toxic(body: dict[str, Any]) -> Toxic:
    """A step's ``toxic:`` mapping as the chaos core's Toxic; ValueError saying what is
    wrong with it (the scenario model reports it against the file's line)."""
    from wsctl.chaos.model import toxic_from_mapping

    try:
        return toxic_from_mapping(body)
    except InvalidInput as exc:  # a malformed field is a ValueError already
        raise ValueError(str(exc)) from None


@contextlib.contextmanager
def _refusals() -> Iterator[None]:
    """Around calls into the proxy: its refusals become ActionFailed."""
    try:
        yield
    except WsctlError as exc:
        raise ActionFailed(exc.message) from None


# -- the server process ---------------------------------------------------------------
# The embedded reference server (``ServerProcess``) and a team's ``command`` server are
# both a ``ServiceProcess``: the same signals to the same process group.


def _signal(name: str | None, send: Callable[[ServiceProcess], Awaitable[None]]) -> Run:
    """``name``: the signal sent (None: the server's stop signal, SIGTERM by default)."""

    async def run(server: ServiceProcess, _step: object) -> str:
        pid = server.pid()
        await send(server)
        sent = name or signal.Signals(server.spec.stop_signal).name
        return f"{sent} to pid {pid}"

    return run


def _starting(start: Callable[[ServiceProcess], Awaitable[float]]) -> Run:
    async def run(server: ServiceProcess, _step: object) -> str:
        took = await start(server)
        tries = (f", {server.start_attempts} tries: port busy"
                 if server.start_attempts > 1 else "")
        return f"pid {server.pid()} listening on {server.url} after {took:.2f}s{tries}"

    return run


def _instance(stage: Targets, index: int) -> tuple[ServiceProcess, str]:
    """Server instance ``index`` and, with several, how it is named in the detail line:
    its address and the proxy's connections to it just before the action (so a report
    shows that probes were on the instance a fault hit)."""
    server = stage.server
    assert server is not None
    if not isinstance(server, Instances):
        if index != 0:
            raise ActionFailed(f"no instance {index}: the server runs one instance, 0")
        return server, ""
    members = server.members
    if index >= len(members):
        raise ActionFailed(f"no instance {index}: the server runs {len(members)}, 0 to "
                           f"{len(members) - 1}")
    member = members[index]
    address = urlsplit(member.url).netloc
    where = f"instance {index} ({address}"
    if stage.proxy is not None:
        connections = list(stage.proxy.connections.values())
        held = sum(1 for conn in connections if conn.upstream_address == address)
        where += f", {held} of {len(connections)} proxy connections to it"
    return member, where + ")"


# -- the chaos proxy ------------------------------------------------------------------


async def _add_toxic(proxy: Proxy, step: WithToxic) -> str:
    toxic = parse_toxic(step.toxic)
    if toxic.name in proxy.toxics:
        raise ActionFailed(f"a toxic named {toxic.name!r} is still active; give this one "
                           "another name: toxic: {name: ..., ...}")
    with _refusals():
        proxy.add_toxic(toxic)
    attributes = ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(toxic.config).items())
    return f"{toxic.name}: {toxic.type} {toxic.stream}" + \
        (f" ({attributes})" if attributes else "")


async def _remove_toxic(proxy: Proxy, step: WithToxic) -> str:
    name = parse_toxic(step.toxic).name
    with _refusals():
        await proxy.remove_toxic(name)
    return f"{name} removed"


async def _proxy_down(proxy: Proxy, _step: object) -> str:
    if not proxy.enabled:
        raise ActionFailed("the proxy is already down")
    held = len(proxy.connections)
    with _refusals():
        await proxy.stop()
    return f"{proxy.listen} stopped listening; {held} connections closed"


async def _proxy_up(proxy: Proxy, _step: object) -> str:
    if proxy.enabled:
        raise ActionFailed("the proxy is already up")
    with _refusals():
        await proxy.start()
    return f"listening on {proxy.listen}"


async def _cut(proxy: Proxy, _step: object) -> str:
    connections = list(proxy.connections.values())
    for conn in connections:
        conn.reset()
    return f"{len(connections)} connections reset (RST)"


# -- the probes -------------------------------------------------------------------------


async def _add_probes(fleet: Fleet, step: WithCount) -> str:
    if not fleet.running:
        raise ActionFailed("every probe has finished: there is no running fleet to add to")
    fleet.add(step.count)
    rate = fleet.spawn_rate
    pace = f"at {rate:g}/s" if rate else "at once"
    return f"{step.count} probes added {pace} ({fleet.size} in all)"


ACTIONS: dict[str, ActionSpec] = {
    "server.kill": ActionSpec("server", _signal("SIGKILL", lambda s: s.kill()),
                              "SIGKILL: no close frames, history lost", fault=True,
                              undo="server.start"),
    "server.term": ActionSpec("server", _signal(None, lambda s: s.term()),
                              "SIGTERM: graceful shutdown, close 1001", fault=True,
                              undo="server.start"),
    "server.pause": ActionSpec("server", _signal("SIGSTOP", lambda s: s.pause()),
                               "SIGSTOP: peers see a half-open connection", fault=True,
                               undo="server.resume"),
    "server.resume": ActionSpec("server", _signal("SIGCONT", lambda s: s.resume()),
                                "SIGCONT after a pause"),
    "server.start": ActionSpec("server", _starting(lambda s: s.start()),
                               "start the server again, on the same port"),
    "server.restart": ActionSpec("server", _starting(lambda s: s.restart()),
                                 "SIGTERM, wait for the exit, start again", fault=True),
    "toxic": ActionSpec("proxy", _add_toxic, "add a chaos fault", fault=True,
                        undo="toxic.remove"),
    "toxic.remove": ActionSpec("proxy", _remove_toxic, "remove the step's toxic",
                               in_files=False),
    "proxy.down": ActionSpec("proxy", _proxy_down, "disable the proxy", fault=True,
                             undo="proxy.up"),
    "proxy.up": ActionSpec("proxy", _proxy_up, "enable the proxy"),
    "cut": ActionSpec("proxy", _cut, "reset every connection now (1006)", fault=True),
    "probes.add": ActionSpec("probes", _add_probes,
                             "start count more probes at probes.spawn_rate"),
    "wait": ActionSpec("nothing", None, "hold the next step back for its for"),
}
# What a file may write in ``do``, in the order the table gives them.
IN_FILES = tuple(name for name, spec in ACTIONS.items() if spec.in_files)
UNDOABLE = tuple(name for name, spec in ACTIONS.items() if spec.undo is not None)


async def perform(stage: Targets, do: str, step: Any) -> str:
    """Carry out action ``do`` for ``step`` on ``stage``; its detail line. Every refusal
    (a missing target, a server that is not running, the proxy saying no) is
    ``ActionFailed``."""
    spec = ACTIONS[do]
    target: Any = {"server": stage.server, "proxy": stage.proxy, "probes": stage.fleet,
                   "nothing": None}[spec.needs]
    if target is None and spec.needs != "nothing":
        what = {"server": "a server wsctl runs (embedded or server.command; wsctl does "
                          "not own a url server's process)",
                "proxy": "the chaos proxy (proxy: true)", "probes": "the probe fleet"}
        raise ActionFailed(f"{do} needs {what[spec.needs]}")
    if spec.run is None:
        raise ActionFailed(f"{do} is carried out by the timeline, not performed")
    where = ""
    if spec.needs == "server":  # a ProcessStep's instance (the model is not imported)
        target, where = _instance(stage, getattr(step, "instance", 0))
    try:
        detail = await spec.run(target, step)
    except ActionFailed:
        raise
    except WsctlError as exc:
        raise ActionFailed(f"{where}: {exc.message}" if where else exc.message) from None
    return f"{where}: {detail}" if where else detail


__all__ = ["ACTIONS", "IN_FILES", "UNDOABLE", "ActionSpec", "Instances", "Needs",
           "parse_toxic", "perform"]
