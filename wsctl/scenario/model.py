"""Scenario files: YAML in, validated pydantic models out, errors as ``FILE:LINE: field``.

A file holds one scenario (DESIGN.md section 8) or a suite of them::

    name: ep-0001
    description: EP-0001's success criteria
    defaults: {probes: {count: 20}}      # merged into every scenario (scenario wins)
    scenarios:
      - name: server-restart
        duration: 20s
        ...

Everything a run needs is checked here, before anything starts: fields, durations,
actions and what each action needs, toxics (against wsctl chaos's own table), criteria
(against the metric catalog), and that process actions have a process to act on. The
format is documented in docs/scenarios.md.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from wsctl import yamlfile
from wsctl.backoff import BackoffKind, BackoffPolicy
from wsctl.errors import InvalidInput
from wsctl.probe.dialect import Dialect
from wsctl.probe.machine import HeartbeatKind, Mode, ProbeConfig
from wsctl.results.criteria import Criterion, CriterionError, parse
from wsctl.scenario.actions import ACTIONS, IN_FILES, UNDOABLE, parse_toxic
from wsctl.scenario.service import ServiceCommand, service_from
from wsctl.yamlfile import FieldError

_NAME = re.compile(r"[A-Za-z0-9._-]{1,128}")


def _duration(value: Any) -> Any:
    """Durations are written ``250ms``, ``5s``, ``2m``; a bare number is seconds."""
    from wsctl.units import parse_duration

    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 250ms, 5s or 2m")
    try:
        return parse_duration(value, "duration")
    except InvalidInput as exc:
        raise ValueError(str(exc).removeprefix("duration: ")) from None


Duration = Annotated[float, BeforeValidator(_duration)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class HeartbeatSpec(_Model):
    """Probe liveness: ``auto`` = the application ping in resume mode, protocol pings
    otherwise; interval and timeout unset: the server's welcome says (else 5 s / 5 s)."""

    kind: HeartbeatKind = "auto"
    interval: Duration | None = Field(default=None, gt=0)
    timeout: Duration | None = Field(default=None, gt=0)


class BackoffSpec(_Model):
    """Reconnect delays (wsctl.backoff.BackoffPolicy; docs/probe.md)."""

    kind: BackoffKind = "full"
    base: Duration = 0.5
    cap: Duration = 30.0
    factor: float = Field(default=2.0, ge=1)
    min_uptime: Duration = 2.0
    max_attempts: int | None = Field(default=None, ge=1)
    deadline: Duration | None = Field(default=None, gt=0)
    fast: Duration | None = Field(default=0.25, ge=0)  # 0 or null: no fast path
    fast_for: Duration = Field(default=30.0, ge=0)

    def policy(self) -> BackoffPolicy:
        return BackoffPolicy(kind=self.kind, base=self.base, cap=self.cap, factor=self.factor,
                             min_uptime=self.min_uptime, max_attempts=self.max_attempts,
                             deadline=self.deadline, fast=self.fast or None,
                             fast_for=self.fast_for)


class ServerSpec(_Model):
    """The server under test: the embedded reference server (``profile`` and its options),
    the team's own as a process wsctl runs (``command`` with ``url`` and ``ready``), or a
    server wsctl only connects to (``url`` alone)."""

    profile: Literal["reference", "baseline"] = "reference"
    url: str | None = None
    # The team's service (wsctl.scenario.service): what to run, and how to stop it.
    command: list[str] | str | None = None
    ready: str | None = None
    cwd: str | None = None
    env: dict[str, str] = {}
    stop_signal: str | int = "SIGTERM"
    stop_timeout: Duration = Field(default=10.0, gt=0)
    ready_timeout: Duration = Field(default=30.0, gt=0)
    # Options of the embedded server.
    ping_interval: Duration | None = Field(default=None, gt=0)
    ping_timeout: Duration | None = Field(default=None, gt=0)
    max_connections: int | None = Field(default=None, ge=0)
    max_per_client: int | None = Field(default=None, ge=0)
    max_streams: int | None = Field(default=None, ge=0)
    replay_size: int | None = Field(default=None, ge=0)
    replay_age: Duration | None = Field(default=None, gt=0)
    job_rate: float | None = Field(default=None, gt=0, le=1000)
    job_steps: int | None = Field(default=None, ge=1)
    send_buffer: int | None = Field(default=None, ge=1024)
    health_mode: Literal["scheduler", "per-connection"] | None = None
    shutdown_timeout: Duration | None = Field(default=None, gt=0)
    retry_hint: Duration | None = Field(default=None, ge=0)
    # memory | sqlite (a file in the run's own scratch directory) | sqlite:PATH |
    # redis (a redis-server the runner starts for the run) | redis://HOST:PORT/DB
    store: str | None = None
    # Reference server processes, each on its own port, behind the chaos proxy; more than
    # one share their streams through a Redis store.
    instances: int = Field(default=1, ge=1, le=16)

    @field_validator("store")
    @classmethod
    def _store(cls, value: str | None) -> str | None:
        from server_stub.stores import store_maker

        if value is not None and value not in OWN_STORES:
            try:
                store_maker(value)
            except InvalidInput as exc:
                raise ValueError(exc.message.removeprefix(f"--store {value!r}: ")) from None
        return value

    @field_validator("url")
    @classmethod
    def _ws_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"wss?://[^/\s]+", value):
            raise ValueError("must be a ws:// or wss:// URL, e.g. ws://host:8000/ws/{stream}")
        return value

    @field_validator("env", "command", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        """Numbers are meant as text: ``PORT: 8080``, ``[node, s.js, --port, 8080]``."""
        def text(v: Any) -> Any:
            return str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v

        if isinstance(value, dict):
            return {k: text(v) for k, v in value.items()}
        if isinstance(value, list):
            return [text(v) for v in value]
        return value

    def in_folder(self, folder: Path) -> None:
        """Make a command server's ``cwd`` absolute: relative to ``folder`` (the scenario
        file's), which is also its default."""
        if self.command is not None:
            self.cwd = str((folder / (self.cwd or ".")).resolve())

    @model_validator(mode="after")
    def _one_kind_of_server(self) -> ServerSpec:
        given = self.model_fields_set
        if self.command is None:
            stray = sorted(given & set(SERVICE_FIELDS))
            if stray:
                raise _At((stray[0],), "only with command (the service wsctl starts)")
            if self.url is not None and "{port}" in self.url:
                raise _At(("url",), "{port} is for a server wsctl starts: give command "
                          "too, or write the port")
        else:
            if self.url is None:
                raise _At(("url",), "command needs url: where the probes connect, e.g. "
                          "ws://127.0.0.1:{port}/ws/{stream}")
            try:
                self.service()
            except InvalidInput as exc:
                field = next((f for f in ("ready", "stop_signal", "url") if
                              exc.message.startswith((f, f"the {f}"))), "command")
                raise _At((field,), exc.message) from None
        if self.url is not None:
            options = sorted(given - {"url", "command", *SERVICE_FIELDS})
            if options:
                raise _At((options[0],), "only for the embedded server; with "
                          f"{'command' if self.command is not None else 'url'} the server "
                          "is yours to configure")
        if self.instances > 1 and not self.shared_store:
            raise _At(("instances",), f"{self.instances} instances share their streams "
                      "through Redis: give store: redis (wsctl starts a redis-server for "
                      "the run) or store: redis://HOST:PORT/DB")
        return self

    @property
    def shared_store(self) -> bool:
        """Several instances can share the store (Redis)."""
        return self.store is not None and \
            self.store.partition(":")[0] in ("redis", "rediss")

    @property
    def own_redis(self) -> bool:
        """The runner starts a redis-server for the run (``store: redis``)."""
        return self.embedded and self.store == "redis"

    @property
    def embedded(self) -> bool:
        return self.url is None

    @property
    def owned(self) -> bool:
        """wsctl runs the process (embedded or ``command``): ``server.*`` actions work."""
        return self.embedded or self.command is not None

    def service(self) -> ServiceCommand:
        """The ``command`` server as ``wsctl.scenario.service`` runs it (InvalidInput)."""
        assert self.command is not None and self.url is not None
        return service_from(self.command, self.url, self.ready, cwd=self.cwd, env=self.env,
                            stop_signal=self.stop_signal, stop_timeout=self.stop_timeout,
                            ready_timeout=self.ready_timeout)

    def args(self) -> list[str]:
        """Extra ``python -m server_stub`` flags for the options set in the file; the
        server's own defaults (``server_stub.config.OPTIONS``) hold for the rest."""
        from server_stub.config import OPTIONS

        out: list[str] = []
        if not self.embedded:
            return out
        for name in sorted(self.model_fields_set - {"url", "profile", "instances"}):
            value = getattr(self, name)
            if value is None:
                continue
            option = OPTIONS[name]
            if name == "store" and value in OWN_STORES:
                value = OWN_STORES[value]  # the runner's: gone after the run
            out += [option.flag, f"{value}s" if option.kind == "duration" else str(value)]
        return out


# In ``args()``, the scratch directory the runner makes for the server (ServerProcess),
# and the URL of the redis-server it starts for ``store: redis`` (Stage).
SCRATCH = "{scratch}"
REDIS = "{redis}"
# Bare store names: a store the runner makes for the run, as the server's --store.
OWN_STORES = {"sqlite": f"sqlite:{SCRATCH}/streams.db", "redis": REDIS}


# The fields of a command server beside command and url.
SERVICE_FIELDS = ("ready", "cwd", "env", "stop_signal", "stop_timeout", "ready_timeout")


class ProbesSpec(_Model):
    """The probe fleet (wsctl probe's options; docs/probe.md)."""

    count: int = Field(default=10, ge=1, le=20_000)
    stream: str = "alert-{n}"
    mode: Mode = "resume"
    heartbeat: HeartbeatSpec = HeartbeatSpec()
    backoff: BackoffSpec = BackoffSpec()
    connect_timeout: Duration = Field(default=10.0, gt=0)
    spawn_rate: float | None = Field(default=1000.0, gt=0)
    echo_rate: float = Field(default=1.0, gt=0)
    deflate: bool = False
    # Worker processes the probes are spread over; None: enough that none runs more
    # than ~200 probes, at most one per core (wsctl.probe.workers.default_processes).
    processes: int | None = Field(default=None, ge=1, le=256)

    protocol: Dialect | None = None  # the service's own protocol (docs/own-service.md)

    @model_validator(mode="after")
    def _protocol_fits_mode(self) -> ProbesSpec:
        if self.protocol is not None:
            problem = self.protocol.mode_problem(self.mode)
            if problem is not None:
                raise _At(("protocol", problem[0]), problem[1])
            try:  # every ${VAR} set, before anything runs
                self.protocol.check_env(os.environ)
            except InvalidInput as exc:
                raise _At(("protocol",), str(exc).removeprefix("protocol.")) from None
        return self

    @field_validator("stream")
    @classmethod
    def _stream(cls, value: str) -> str:
        if not _NAME.fullmatch(value.replace("{n}", "0")):
            raise ValueError("a stream name is 1-128 of A-Z a-z 0-9 . _ - (and {n} for the "
                             "probe's number)")
        return value

    def url(self, base_url: str) -> str:
        """The probes' URL template: ``{stream}`` in ``base_url`` is replaced; a URL with
        no path gets ``/ws/<stream>`` (the reference server's route)."""
        if "{stream}" in base_url:
            return base_url.replace("{stream}", self.stream)
        if re.fullmatch(r"wss?://[^/]+/?", base_url):
            return base_url.rstrip("/") + "/ws/" + self.stream
        return base_url

    def probe_config(self, base_url: str, duration: float) -> ProbeConfig:
        return ProbeConfig(
            url=self.url(base_url),
            mode=self.mode,
            backoff=self.backoff.policy(),
            heartbeat=self.heartbeat.kind,
            heartbeat_interval=self.heartbeat.interval,
            heartbeat_timeout=self.heartbeat.timeout,
            connect_timeout=self.connect_timeout,
            echo_rate=self.echo_rate,
            duration=duration,
            dialect=self.protocol,
            stream=self.stream,
        )


class _Step(_Model):
    """What every timeline step has: at ``at`` (or right after the previous step), ``do``;
    ``for`` undoes it after that long (the undo is the action table's,
    ``wsctl.scenario.actions``) or, for ``wait``, is how long to wait."""

    do: str  # each step model narrows it to its actions' names
    at: Duration | None = None
    for_: Duration | None = Field(default=None, alias="for", gt=0)
    _line: int = PrivateAttr(default=0)

    @model_validator(mode="after")
    def _for_needs_an_undo(self) -> _Step:
        if self.for_ is not None and self.undo is None and self.do != "wait":
            raise ValueError(f"{self.do} cannot take for (only {', '.join(UNDOABLE)} and "
                             "wait)")
        return self

    @property
    def line(self) -> int:
        return self._line

    @property
    def is_fault(self) -> bool:
        return ACTIONS[self.do].fault

    @property
    def undo(self) -> str | None:
        """The action that undoes this one after ``for`` (None: it takes no ``for``)."""
        return ACTIONS[self.do].undo


class ProcessStep(_Step):
    """A signal to, or a start of, the server's process (embedded or a command); with
    ``server.instances`` > 1, of instance ``instance`` (0, the first, by default)."""

    do: Literal["server.kill", "server.term", "server.pause", "server.resume",
                "server.start", "server.restart"]
    instance: int = Field(default=0, ge=0)


class ProxyStep(_Step):
    """The chaos proxy down or up, or every connection through it reset."""

    do: Literal["proxy.down", "proxy.up", "cut"]


class ToxicStep(_Step):
    """A chaos fault added to the proxy (removed after ``for``)."""

    do: Literal["toxic"]
    toxic: dict[str, Any] = Field(description="a toxic: {type: latency, attributes: {...}}")

    @field_validator("toxic")
    @classmethod
    def _toxic(cls, value: dict[str, Any]) -> dict[str, Any]:
        parse_toxic(value)  # checked against wsctl chaos's own table now, not mid-run
        return value


class ProbesAdd(_Step):
    """``count`` more probes, started at the fleet's ``spawn_rate``."""

    do: Literal["probes.add"]
    count: int = Field(ge=1, le=20_000,
                       description="a count: how many probes to add")


class Wait(_Step):
    """Nothing, for ``for``: the next step is held back."""

    do: Literal["wait"]
    for_: Duration = Field(alias="for", gt=0, description="a for: how long to wait")


Step = Annotated[ProcessStep | ProxyStep | ToxicStep | ProbesAdd | Wait,
                 Field(discriminator="do")]
# Each ``do`` a file may write -> the model of its step.
STEP_MODELS: dict[str, type[_Step]] = {
    tag: model for model in (ProcessStep, ProxyStep, ToxicStep, ProbesAdd, Wait)
    for tag in get_args(model.model_fields["do"].annotation)
}


class Scenario(_Model):
    """One scenario: a server, probes, a timeline of faults and the criteria that judge it."""

    name: str
    description: str = ""
    server: ServerSpec = ServerSpec()
    proxy: bool = False
    probes: ProbesSpec = ProbesSpec()
    duration: Duration = Field(gt=0)
    timeline: list[Step] = []
    criteria: list[Criterion] = []
    baseline: str | None = None
    # Relative criteria on an interval: this scenario and its baseline run in ``rounds``
    # interleaved pairs, more while a verdict is inconclusive, up to ``rounds_max``.
    rounds: int | None = Field(default=None, ge=2)
    rounds_max: int | None = Field(default=None, ge=2)
    seed: int | None = None
    _line: int = PrivateAttr(default=0)

    model_config = ConfigDict(extra="forbid", populate_by_name=True,
                              arbitrary_types_allowed=True)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.fullmatch(value):
            raise ValueError("a name is 1-128 of A-Z a-z 0-9 . _ -")
        return value

    @field_validator("criteria", mode="before")
    @classmethod
    def _criteria(cls, value: Any) -> list[Criterion]:
        if value is None:
            return []
        if not isinstance(value, dict):
            raise ValueError('criteria is a mapping: {metric.stat: "OP value", …}')
        out = []
        for key, spec in value.items():
            try:
                if isinstance(spec, dict):
                    unknown = set(spec) - {"expect", "ep"}
                    if unknown:
                        raise CriterionError(f"unknown field {sorted(unknown)[0]!r}; a "
                                             "criterion takes expect and ep")
                    if "expect" not in spec:
                        raise CriterionError('give expect: "OP value"')
                    ep = spec.get("ep")
                    out.append(parse(str(key), spec["expect"], str(ep) if ep else None))
                elif isinstance(spec, str | int | float) and not isinstance(spec, bool):
                    out.append(parse(str(key), spec))
                else:
                    raise CriterionError('write "OP value", e.g. "< 5s" or "== 0"')
            except CriterionError as exc:
                raise _At((str(key),), str(exc)) from None
        return out

    @property
    def line(self) -> int:
        return self._line

    @model_validator(mode="after")
    def _rounds(self) -> Scenario:
        if self.rounds is not None and self.baseline is None:
            raise _At(("rounds",), "rounds run this scenario and its baseline in "
                      "interleaved pairs: name the earlier scenario with baseline:")
        if self.rounds_max is not None:
            if self.rounds is None:
                raise _At(("rounds_max",), "rounds_max is a budget for more rounds: "
                          "give rounds: N as well")
            if self.rounds_max < self.rounds:
                raise _At(("rounds_max",), f"{self.rounds_max} is fewer than rounds "
                          f"({self.rounds})")
        return self

    @model_validator(mode="after")
    def _instances_behind_the_proxy(self) -> Scenario:
        """Several instances are reached through the chaos proxy, which balances over
        them: ``proxy: true`` is implied (and ``proxy: false`` refused)."""
        if self.server.instances > 1:
            if "proxy" in self.model_fields_set and not self.proxy:
                raise _At(("proxy",), f"server.instances is {self.server.instances}: "
                          "the probes reach them through the chaos proxy, which balances "
                          "over them; leave proxy out or set it true")
            self.proxy = True
        return self

    @model_validator(mode="after")
    def _timeline_fits(self) -> Scenario:
        last_at = 0.0
        instances = self.server.instances
        for index, step in enumerate(self.timeline):
            where = ("timeline", index)
            needs = ACTIONS[step.do].needs
            if needs == "server" and not self.server.owned:
                raise _At((*where, "do"), server_action_refused(step.do))
            if isinstance(step, ProcessStep) and step.instance >= instances:
                have = ("the server runs one instance, 0" if instances == 1 else
                        f"server.instances is {instances}: 0 to {instances - 1}")
                raise _At((*where, "instance"), f"no instance {step.instance}: {have}")
            if needs == "proxy" and not self.proxy:
                raise _At((*where, "do"), f"{step.do} acts on the chaos proxy: set "
                          "proxy: true")
            if step.at is not None:
                if step.at > self.duration:
                    raise _At((*where, "at"), f"{step.at:g}s is after the scenario's end "
                              f"(duration {self.duration:g}s)")
                if step.at < last_at:
                    raise _At((*where, "at"), "steps must be in time order")
                last_at = step.at
        return self


def server_action_refused(do: str) -> str:
    """Why ``do`` (a ``server.*`` action) cannot act on a ``url`` server."""
    return (f"{do} needs a server wsctl runs: with server.url alone wsctl does not own "
            "the server process (give server.command to have wsctl start it, or use "
            "proxy: true and proxy.down, cut or a toxic instead)")


class Suite(_Model):
    """The scenarios of one file, in the order they run."""

    name: str
    description: str = ""
    file: str = ""
    scenarios: list[Scenario]

    @model_validator(mode="after")
    def _names(self) -> Suite:
        seen: set[str] = set()
        paired: set[str] = set()  # scenarios with rounds
        for index, scenario in enumerate(self.scenarios):
            if scenario.name in seen:
                raise _At(("scenarios", index, "name"), f"a second scenario named "
                          f"{scenario.name!r}; names must be unique")
            if scenario.baseline is not None and scenario.baseline not in seen:
                raise _At(("scenarios", index, "baseline"), f"{scenario.baseline!r} is not "
                          "an earlier scenario of this file")
            if scenario.rounds is not None and scenario.baseline in paired:
                raise _At(("scenarios", index, "rounds"), f"its baseline "
                          f"{scenario.baseline!r} runs in rounds itself; rounds pair a "
                          "scenario with a baseline that has none")
            if scenario.rounds is not None:
                paired.add(scenario.name)
            seen.add(scenario.name)
        return self


_At = FieldError  # a validation error that knows its place below the model that raised it


# Loading -----------------------------------------------------------------------------

Path_ = tuple[str | int, ...]


def load_suite(path: Path | str) -> Suite:
    """Read and validate a scenario or suite file; ``InvalidInput`` names file, line, field."""
    return loads(yamlfile.read(path, "scenario file"), str(path))


def loads(text: str, source: str = "<scenario>") -> Suite:
    """Validate scenario YAML ``text``; ``source`` names it in errors."""
    data, lines = yamlfile.parse(text, source)
    if not isinstance(data, dict):
        raise InvalidInput(f"{source}:1: (top level): expected a mapping with name, "
                           "duration, timeline … (or scenarios: [...] for a suite)")
    prefix: Path_ = ()
    if "scenarios" in data:
        suite_data = dict(data)
        defaults = suite_data.pop("defaults", None)
        if defaults is not None and not isinstance(defaults, dict):
            line = yamlfile.line_of(lines, ("defaults",))
            raise InvalidInput(f"{source}:{line}: defaults: expected a mapping of scenario "
                               "fields")
        scenarios = suite_data.get("scenarios")
        if isinstance(scenarios, list) and defaults:
            suite_data["scenarios"] = [_merged(defaults, s) if isinstance(s, dict) else s
                                       for s in scenarios]
    else:
        suite_data = {"name": data.get("name", Path(source).stem), "scenarios": [data]}
        if "description" in data:
            suite_data["description"] = data["description"]
        prefix = ("scenarios", 0)
    suite_data["file"] = source
    try:
        suite = Suite.model_validate(suite_data)
    except ValidationError as exc:
        raise InvalidInput(_report(exc, source, lines, prefix)) from None
    except _At as exc:  # raised outside pydantic's wrapping (should not happen)
        raise InvalidInput(f"{source}: {exc.message}") from None
    for index, scenario in enumerate(suite.scenarios):
        base: Path_ = ("scenarios", index) if not prefix else ()
        scenario._line = yamlfile.line_of(lines, base)
        if source != "<scenario>":
            scenario.server.in_folder(Path(source).parent)
        cwd = scenario.server.cwd
        if cwd is not None and not Path(cwd).is_dir():
            where = yamlfile.line_of(lines, (*base, "server", "cwd"))
            raise InvalidInput(f"{source}:{where}: {yamlfile.dotted((*base, 'server', 'cwd'))}: "
                               f"no such directory: {cwd}")
        for number, step in enumerate(scenario.timeline):
            step._line = yamlfile.line_of(lines, (*base, "timeline", number))
    return suite


def _merged(defaults: dict[str, Any], scenario: dict[str, Any]) -> dict[str, Any]:
    """``defaults`` under ``scenario``, mappings merged key by key (scenario wins)."""
    out = dict(defaults)
    for key, value in scenario.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


def _errors(exc: ValidationError) -> Iterator[tuple[Path_, str]]:
    for error in exc.errors():
        loc: Path_ = tuple(p for p in error["loc"] if p not in ("function-after",
                                                                  "function-before"))
        loc, do = _untagged(loc)
        ctx = error.get("ctx") or {}
        cause = ctx.get("error")
        if isinstance(cause, _At | FieldError):
            yield (*loc, *cause.loc), cause.message
            continue
        kind = error["type"]
        if kind == "union_tag_invalid":  # a step whose do names no action
            yield (*loc, "do"), (f"unknown action {ctx.get('tag')!r}; use one of "
                                 f"{', '.join(IN_FILES)}")
        elif kind == "union_tag_not_found":
            yield (*loc, "do"), f"required field is missing: one of {', '.join(IN_FILES)}"
        elif kind == "extra_forbidden":
            field = loc[-1] if loc else ""
            known = any(field in m.model_fields for m in STEP_MODELS.values())
            yield loc, f"{do} takes no {field}" if do and known else "unknown field"
        elif kind == "missing":
            yield loc, _missing(do, loc[-1] if loc else "")
        elif kind == "value_error":
            yield loc, str(cause) if cause is not None else error["msg"]
        else:
            yield loc, error["msg"]


def _missing(do: str | None, field: str | int) -> str:
    """What a step lacks, in its model's words for the field (``needs a count: …``)."""
    if do is not None:
        for name, info in STEP_MODELS[do].model_fields.items():
            if field in (name, info.alias) and info.description:
                return f"{do} needs {info.description}"
    return "required field is missing"


def _untagged(loc: Path_) -> tuple[Path_, str | None]:
    """``loc`` without the ``do`` that pydantic puts after a step's index (as in
    ``timeline[0].probes.add.count``), and that ``do``."""
    for index in range(2, len(loc)):
        if (loc[index - 2] == "timeline" and isinstance(loc[index - 1], int)
                and loc[index] in STEP_MODELS):
            return (*loc[:index], *loc[index + 1:]), str(loc[index])
    return loc, None


def _report(exc: ValidationError, source: str, lines: dict[Path_, int], prefix: Path_) -> str:
    """One ``FILE:LINE: field: problem`` line per error, paths as the file writes them."""
    out = []
    for loc, message in _errors(exc):
        if prefix and loc[: len(prefix)] == prefix:
            loc = loc[len(prefix):]
        where = yamlfile.line_of(lines, loc if not prefix else loc)
        if loc and loc[-1] == "for_":
            loc = (*loc[:-1], "for")
        if loc and loc[-1] == "file":
            continue
        out.append(f"{source}:{where}: {yamlfile.dotted(loc)}: {message}")
    return "\n".join(dict.fromkeys(out)) or f"{source}: invalid scenario"
