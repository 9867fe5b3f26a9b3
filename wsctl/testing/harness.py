"""What the pytest fixtures hand a test: a service, the reference server, a chaos proxy,
a probe fleet — each with plain (blocking) methods.

Everything runs on one ``Harness`` per test: an asyncio event loop in a background
thread. The probes and the proxy therefore keep measuring and relaying while the test
itself blocks (``time.sleep(2)``), a sync test needs no event loop of its own, and an
async test (pytest-asyncio, anyio) can call the same methods — each returns within the
time its action takes, as a scenario's action would. The pieces are wsctl's own:
``ServiceProcess`` and ``ServerProcess`` for processes, ``Chaos``/``Proxy`` for the
proxy, ``Fleet`` for probes, and every verb is the scenario action of the same name
(``wsctl.scenario.actions.ACTIONS``): same messages, and a verb that injects a fault
marks its instant on every running fleet first, so ``detect_time`` is measured from it.

``Harness.close()`` ends everything whatever state the test left it in (a paused
service, a proxy down, probes running) and never raises.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import itertools
import logging
import shlex
import threading
import time
import types
from collections.abc import Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

from pydantic import ValidationError

from wsctl import yamlfile
from wsctl.chaos.proxy import Chaos, Proxy
from wsctl.errors import ActionFailed, InvalidInput, RunFailed, WsctlError
from wsctl.probe import dialect, ioclock
from wsctl.probe.driver import websockets_connector
from wsctl.probe.fleet import Fleet
from wsctl.probe.machine import State
from wsctl.scenario.actions import ACTIONS
from wsctl.scenario.model import ProbesSpec, ServerSpec
from wsctl.scenario.server_process import ServerProcess
from wsctl.scenario.service import ServiceProcess, service_from
from wsctl.scenario.stage import STOP_GRACE, _host_port, probe_url
from wsctl.testing.result import ProbeResult

log = logging.getLogger(__name__)

T = TypeVar("T")
CLOSE_TIMEOUT = 15.0  # teardown's bound on stopping probes and the proxy


class HasUrl(Protocol):
    @property
    def url(self) -> str: ...


def _url(target: str | HasUrl) -> str:
    return target if isinstance(target, str) else target.url


class Undo:
    """The return value of a verb that can be undone: use it as a context manager to
    undo on leaving the block (``with service.pause():``), or ignore it."""

    def __init__(self, undo: Callable[[], None], detail: str) -> None:
        self._undo = undo
        self.detail = detail  # what the verb did, as a scenario's timeline says it

    def __enter__(self) -> Undo:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._undo()

    def __repr__(self) -> str:
        return f"<{self.detail}>"


class Harness:
    """One test's event loop (in a thread) and everything started on it."""

    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self.loop = ioclock.WakeStampingLoop()  # the probes' instants: docs/probe.md
        self._thread = threading.Thread(target=self.loop.run_forever, name="wsctl-loop",
                                        daemon=True)
        self._thread.start()
        self.services: list[ServiceProcess] = []
        self.fleets: list[Probes] = []
        self.chaos: Chaos | None = None
        self._names = itertools.count(1)

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the harness's loop and wait for its result."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise

    def act(self, do: str, target: object, step: object = None) -> str:
        """Carry out scenario action ``do`` on ``target`` (as ``actions.perform`` does);
        a fault first marks its instant on every running fleet. Its detail line."""
        spec = ACTIONS[do]
        assert spec.run is not None
        run = spec.run

        async def go() -> str:
            if spec.fault:
                self.mark_fault()
            try:
                return await run(target, step)
            except ActionFailed:
                raise
            except WsctlError as exc:
                raise ActionFailed(exc.message) from None

        return self.call(go())

    def mark_fault(self) -> None:
        """Tell every running fleet that a fault is injected now (loop thread only)."""
        for probes in self.fleets:
            probes.mark_fault()

    def name(self, what: str) -> str:
        return f"{what}-{next(self._names)}"

    def close(self) -> None:
        """Stop probes, proxy and every process; then the loop. Never raises."""
        async def stop_all() -> None:
            for probes in self.fleets:
                with contextlib.suppress(Exception):
                    await probes.stop()
            if self.chaos is not None:
                with contextlib.suppress(Exception):
                    await self.chaos.close()
            current = asyncio.current_task()
            rest = [t for t in asyncio.all_tasks() if t is not current]
            for task in rest:
                task.cancel()
            if rest:
                await asyncio.wait(rest, timeout=2.0)

        if self._thread.is_alive():
            try:
                self.call(stop_all(), timeout=CLOSE_TIMEOUT)
            except BaseException:  # teardown goes on whatever happened
                log.exception("wsctl: stopping probes and proxy failed")
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5.0)
        for service in self.services:
            service.close()  # SIGKILL to the group, paused or not, and reap it
        if not self._thread.is_alive():
            self.loop.close()


class Service:
    """A service process the test owns (``wsctl_service`` or ``wsctl_server``).

    ``url`` (``{port}`` filled, ``{stream}`` kept), ``port``, ``pid``, ``rss`` (bytes, the
    whole process tree), ``state``; verbs: ``kill()``, ``terminate()``, ``pause()`` (a
    context manager that resumes on exit), ``resume()``, ``start()``, ``restart()``."""

    def __init__(self, harness: Harness, process: ServiceProcess) -> None:
        self._harness = harness
        self.process = process

    @property
    def url(self) -> str:
        return self.process.url

    @property
    def port(self) -> int | None:
        return self.process.port

    @property
    def pid(self) -> int | None:
        return self.process.pid() if self.process.state != "stopped" else None

    @property
    def rss(self) -> int | None:
        """Resident memory of the process tree in bytes (None when it is not running)."""
        return self.process.rss()

    @property
    def state(self) -> str:
        """``running``, ``paused``, ``stopping`` or ``stopped``."""
        return self.process.state

    @property
    def log_path(self) -> Path:
        """Where its stdout and stderr go."""
        return self.process.log_path

    def output(self, lines: int = 20) -> str:
        """The last lines its current (or last) incarnation wrote."""
        return self.process.output_tail(lines)

    def start(self) -> str:
        """Start it again on the same port and wait until it is ready."""
        return self._harness.act("server.start", self.process)

    def kill(self) -> str:
        """SIGKILL to its process group (a crash: no close frames); returns once gone."""
        return self._harness.act("server.kill", self.process)

    def terminate(self, wait: bool = True) -> str:
        """Its stop signal (SIGTERM by default): a graceful shutdown; with ``wait``,
        returns once it exited (SIGKILL after its stop timeout)."""
        detail = self._harness.act("server.term", self.process)
        if wait:
            self._harness.call(self.process.wait_stopped(self.process.spec.stop_timeout))
        return detail

    def pause(self) -> Undo:
        """SIGSTOP to the group: peers see a half-open connection. ``with
        service.pause():`` resumes on leaving the block."""
        detail = self._harness.act("server.pause", self.process)

        def undo() -> None:
            if self.process.paused:
                self.resume()

        return Undo(undo, detail)

    def resume(self) -> str:
        """SIGCONT after a pause."""
        return self._harness.act("server.resume", self.process)

    def restart(self) -> str:
        """The stop signal, wait for the exit, start again on the same port."""
        return self._harness.act("server.restart", self.process)

    def __repr__(self) -> str:
        return f"Service({shlex.join(self.process.command)!r}, {self.state}, url={self.url!r})"


def start_service(harness: Harness, command: Sequence[str] | str, url: str,
                  ready: str | None = None, *, cwd: str | Path | None = None,
                  env: Mapping[str, str] | None = None, stop_signal: str | int = "SIGTERM",
                  stop_timeout: float = 10.0, ready_timeout: float = 30.0) -> Service:
    """``wsctl_service(...)``: the scenario's ``server: {command: …}`` as a running
    Service. ``ready``: an ``http://`` URL answering 2xx, ``tcp`` (the URL's host and
    port accept), ``tcp://HOST:PORT``, ``log:REGEX``, or a bare regex on its output."""
    if ready == "tcp":
        ready = None  # ServiceProcess's default: the URL's host and port accept
    elif ready is not None and not ready.startswith(("http://", "https://", "tcp://",
                                                     "log:")):
        ready = f"log:{ready}"
    spec = service_from(command, url, ready, cwd=str(cwd) if cwd is not None else None,
                        env=env, stop_signal=stop_signal, stop_timeout=stop_timeout,
                        ready_timeout=ready_timeout)
    name = harness.name("service")
    process = ServiceProcess(spec, harness.scratch / f"{name}.log", name="the service")
    return _started(harness, process)


def start_server(harness: Harness, profile: str = "reference", **options: Any) -> Service:
    """``wsctl_server(...)``: the reference server (``python -m server_stub``) with the
    options of a scenario's embedded ``server:`` block (``ping_interval=0.5``,
    ``job_rate=20``, …; durations in seconds or as text, ``"500ms"``)."""
    try:
        spec = ServerSpec.model_validate({"profile": profile, **options})
    except ValidationError as exc:
        raise InvalidInput("wsctl_server: " + _problems(exc)) from None
    if not spec.embedded:
        raise InvalidInput("wsctl_server runs the reference server: for your own service "
                           "use wsctl_service(command=..., url=...)")
    scratch = harness.scratch / harness.name("server")
    scratch.mkdir(parents=True)
    return _started(harness, ServerProcess(profile, spec.args(), scratch))


def _started(harness: Harness, process: ServiceProcess) -> Service:
    harness.services.append(process)  # closed at teardown even if it never got ready
    harness.call(process.start())
    return Service(harness, process)


def _problems(exc: ValidationError) -> str:
    return "; ".join(f"{yamlfile.dotted(loc) or '(options)'}: {message}"
                     for loc, message in yamlfile.problems(exc))


class ChaosProxy:
    """A chaos proxy in front of one upstream (``wsctl_chaos``). ``url`` is the
    upstream's URL with the proxy's address; the verbs are Toxiproxy's."""

    def __init__(self, harness: Harness, proxy: Proxy, upstream_url: str) -> None:
        self._harness = harness
        self.proxy = proxy
        self.upstream_url = upstream_url

    @property
    def url(self) -> str:
        """Where clients connect to go through the proxy (``{stream}`` kept)."""
        return probe_url(self.upstream_url, self.proxy.listen)

    @property
    def address(self) -> str:
        """``host:port`` the proxy listens on."""
        return self.proxy.listen

    @property
    def toxics(self) -> list[str]:
        """The names of the toxics in place."""
        return list(self.proxy.toxics)

    @property
    def connections(self) -> int:
        """Client connections relayed right now."""
        return len(self.proxy.connections)

    def toxic(self, type: str, *, stream: str = "downstream", toxicity: float = 1.0,
              name: str | None = None, **attributes: Any) -> Undo:
        """Add a toxic now (Toxiproxy's fields; ``attributes`` as keywords:
        ``toxic("latency", latency=300, jitter=50)``); ``with`` removes it on exit,
        otherwise it stays until ``remove_toxic(name)`` or the end of the test."""
        body: dict[str, Any] = {"type": type, "stream": stream, "toxicity": toxicity,
                                "attributes": attributes}
        if name is not None:
            body["name"] = name
        step = types.SimpleNamespace(toxic=body)  # what the action reads of a toxic step
        try:
            detail = self._harness.act("toxic", self.proxy, step)
        except ValueError as exc:  # a malformed field (actions.parse_toxic)
            raise InvalidInput(f"toxic {type!r}: {exc}") from None
        added = detail.split(":", 1)[0]

        def undo() -> None:
            if added in self.proxy.toxics:
                self.remove_toxic(added)

        return Undo(undo, detail)

    def remove_toxic(self, name: str) -> str:
        """Remove a toxic by name; what it holds is forwarded."""
        async def remove() -> None:
            try:
                await self.proxy.remove_toxic(name)
            except WsctlError:
                raise ActionFailed(f"no toxic named {name!r}; in place: "
                                   f"{', '.join(self.proxy.toxics) or 'none'}") from None

        self._harness.call(remove())
        return f"{name} removed"

    def down(self) -> Undo:
        """Stop listening and close every connection; ``with`` brings it up on exit."""
        detail = self._harness.act("proxy.down", self.proxy)

        def undo() -> None:
            if not self.proxy.enabled:
                self.up()

        return Undo(undo, detail)

    def up(self) -> str:
        """Listen again (on the same address)."""
        return self._harness.act("proxy.up", self.proxy)

    def cut(self) -> str:
        """Reset every connection now (RST: clients see 1006)."""
        return self._harness.act("cut", self.proxy)

    def __repr__(self) -> str:
        return f"ChaosProxy({self.address} -> {self.proxy.upstream}, toxics={self.toxics})"


def start_proxy(harness: Harness, upstream: str | HasUrl) -> ChaosProxy:
    """``wsctl_chaos(upstream)``: a proxy on a free port relaying to ``upstream`` (a
    ``ws://`` URL, or anything with a ``url``: a Service)."""
    url = _url(upstream)

    async def create() -> Proxy:
        if harness.chaos is None:
            harness.chaos = Chaos()
        try:
            return await harness.chaos.create(name=harness.name("proxy"),
                                              listen="127.0.0.1:0", upstream=_host_port(url))
        except WsctlError as exc:
            raise InvalidInput(f"chaos proxy to {url}: {exc.message}") from None

    return ChaosProxy(harness, harness.call(create()), url)


class Probes:
    """A running probe fleet (``wsctl_probes``). ``fault()`` marks a fault's instant;
    ``wait_open()`` / ``wait_recovered()`` wait for the probes; ``result()`` stops them
    and gives what they measured."""

    def __init__(self, harness: Harness, fleet: Fleet) -> None:
        self._harness = harness
        self.fleet = fleet
        self.last_fault: float | None = None
        self._task: asyncio.Task[Any] | None = None
        self._result: ProbeResult | None = None

    @property
    def url(self) -> str:
        return self.fleet.config.url

    @property
    def count(self) -> int:
        return self.fleet.size

    async def start(self) -> None:
        self._task = asyncio.create_task(self.fleet.run())

    def mark_fault(self) -> None:
        """(Loop thread.) A fault is being injected now."""
        if self._result is None:
            self.last_fault = time.monotonic()
            self.fleet.inject_fault(self.last_fault)

    def fault(self) -> None:
        """Mark that a fault is injected now (one wsctl did not inject itself): each
        open probe measures ``detect_time`` from this instant. wsctl's own verbs
        (``kill``, ``pause``, ``toxic``, ``down``, ``cut``, …) mark theirs."""

        async def mark() -> None:
            self.mark_fault()

        self._harness.call(mark())

    def states(self) -> dict[str, int]:
        """How many probes are in each state now (``open``, ``backoff``, …)."""
        async def read() -> dict[str, int]:
            return self.fleet.states()

        return self._harness.call(read())

    def wait_open(self, timeout: float = 10.0) -> None:
        """Until every probe is open; ``AssertionError`` with their states and errors
        after ``timeout`` seconds."""
        self._wait(lambda m: m.state is State.OPEN, timeout, "open")

    def wait_recovered(self, timeout: float = 10.0) -> None:
        """Until every probe is open on a connection made after the last fault (the
        fault broke it and it came back); after a fault that breaks no connection (a
        latency toxic) this waits out ``timeout``."""
        since = self.last_fault
        if since is None:
            self.wait_open(timeout)
            return
        self._wait(lambda m: m.state is State.OPEN and m.opened_at > since, timeout,
                   "reconnected since the last fault")

    def _wait(self, ready: Callable[[Any], bool], timeout: float, what: str) -> None:
        async def until() -> str | None:
            deadline = time.monotonic() + timeout
            while True:
                self._raise_if_failed()
                probes = self.fleet.probes
                if len(probes) >= self.fleet.size and all(ready(p.machine) for p in probes):
                    return None
                if time.monotonic() >= deadline:
                    done = sum(1 for p in probes if ready(p.machine))
                    errors = self.fleet.errors()
                    return (f"{done} of {self.fleet.size} probes {what} after {timeout:g}s "
                            f"(states {self.fleet.states()}"
                            + (f"; errors {errors}" if errors else "") + f"; url {self.url})")
                await asyncio.sleep(0.02)

        problem = self._harness.call(until())
        if problem is not None:
            raise AssertionError(problem)

    def _raise_if_failed(self) -> None:
        task = self._task
        if task is not None and task.done() and not task.cancelled() and task.exception():
            raise RunFailed(f"the probes failed: {task.exception()!r}")

    async def stop(self) -> ProbeResult:
        """(Loop thread.) Stop the probes (politely, then cancelled) and keep the result."""
        if self._result is not None:
            return self._result
        task = self._task
        if task is not None:
            self.fleet.stop()
            _, pending = await asyncio.wait([task], timeout=STOP_GRACE)
            for late in pending:
                late.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
            if not task.cancelled() and task.done() and task.exception() is not None:
                raise RunFailed(f"the probes failed: {task.exception()!r}")
        result = self.fleet.result()
        result.details["faults"] = self.fleet.faults
        self._result = ProbeResult(result)
        return self._result

    def result(self) -> ProbeResult:
        """Stop the probes and give what they measured (the same object when asked
        again): ``result.reconnect_time.mean``, ``result.messages.lost``, …"""
        return self._harness.call(self.stop())

    def __repr__(self) -> str:
        return f"Probes({self.url!r}, count={self.count})"


def start_probes(harness: Harness, target: str | HasUrl, *, count: int = 5,
                 mode: str = "resume", protocol: Mapping[str, Any] | str | Path | None = None,
                 wait: bool | float = True, seed: int | None = None, **probes: Any
                 ) -> Probes:
    """``wsctl_probes(target, ...)``: ``count`` probes against ``target`` (a URL with
    ``{stream}``, a URL without a path — the reference server's ``/ws/<stream>`` is
    added — or anything with a ``url``). ``protocol``: the protocol block as a mapping
    or a YAML/JSON file; ``probes``: the other fields of a scenario's ``probes:`` block
    (``stream``, ``heartbeat={"interval": 0.5, "timeout": 0.5}``, ``backoff=…``).
    ``wait``: until every probe is open (True: 10 s, or that many seconds)."""
    fields: dict[str, Any] = {"count": count, "mode": mode, **probes}
    if protocol is not None:
        fields["protocol"] = dialect.load(protocol) if isinstance(protocol, str | Path) \
            else dict(protocol)
    try:
        spec = ProbesSpec.model_validate(fields)
    except ValidationError as exc:
        raise InvalidInput("wsctl_probes: " + _problems(exc)) from None
    config = dataclasses.replace(spec.probe_config(_url(target), 1.0), duration=None)

    async def create() -> Probes:
        fleet = Fleet(config, spec.count, seed=seed, spawn_rate=spec.spawn_rate,
                      connector=websockets_connector(deflate=spec.deflate))
        probes_ = Probes(harness, fleet)
        await probes_.start()
        return probes_

    started = harness.call(create())
    harness.fleets.append(started)
    if wait:
        started.wait_open(10.0 if wait is True else float(wait))
    return started


__all__ = ["ChaosProxy", "Harness", "Probes", "Service", "Undo", "start_probes",
           "start_proxy", "start_server", "start_service"]
