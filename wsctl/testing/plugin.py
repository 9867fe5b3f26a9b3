"""The pytest plugin (entry point ``pytest11: wsctl``): fixtures and scenario items.

Off unless used: importing it imports nothing of wsctl; each fixture imports what it
needs when a test asks for it, and a YAML file is collected only when the project opts
it in — named on the command line (``pytest scenarios/ep-0001.yaml``) or matched by the
``wsctl_scenarios`` ini option — so no other YAML in a tree is touched. Two ini options,
no command-line flags:

- ``wsctl_scenarios``: glob patterns (one a line, ``fnmatch`` on the path relative to
  the rootdir, ``*`` crossing folders) of scenario files to collect; default none;
- ``wsctl_inconclusive``: ``skip`` (default) or ``fail`` — what an INCONCLUSIVE
  scenario is.

The fixtures are function-scoped factories sharing one ``Harness`` per test (an event
loop in a background thread, ``wsctl.testing.harness``): their methods are plain calls,
usable from sync and async tests alike, and everything they started is stopped at
teardown — also when the test failed, raised or was interrupted; the processes are
SIGKILLed by process group, and ``pytest_unconfigure`` kills any still left.
docs/pytest.md is the guide.
"""

from __future__ import annotations

import fnmatch
import functools
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from wsctl.testing.harness import ChaosProxy, Harness, Probes, Service

INCONCLUSIVE_CHOICES = ("skip", "fail")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("wsctl_scenarios", "glob patterns of wsctl scenario files to collect as "
                  "tests (relative to the rootdir; default: none)", type="linelist",
                  default=[])
    parser.addini("wsctl_inconclusive", "an INCONCLUSIVE wsctl scenario is a skip "
                  "(default) or a failure: skip | fail", default="skip")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "wsctl: a wsctl scenario collected from a YAML file")


def wants(config: pytest.Config, session: pytest.Session, path: Path) -> bool:
    """Whether ``path`` is a scenario file this run collects."""
    if path.suffix not in (".yaml", ".yml"):
        return False
    if session.isinitpath(path):
        return True
    try:
        relative = path.resolve().relative_to(config.rootpath.resolve()).as_posix()
    except ValueError:
        return False
    patterns: list[str] = config.getini("wsctl_scenarios")
    return any(fnmatch.fnmatch(relative, pattern.strip().removeprefix("./"))
               for pattern in patterns if pattern.strip())


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if not wants(parent.config, parent.session, file_path):
        return None
    from wsctl.testing.scenarios import ScenarioFile

    collector: pytest.Collector = ScenarioFile.from_parent(parent, path=file_path)
    return collector


def pytest_unconfigure(config: pytest.Config) -> None:
    """The last resort: no process a fixture or scenario started outlives the session."""
    service = sys.modules.get("wsctl.scenario.service")
    if service is not None:
        service.kill_all()


# -- fixtures ----------------------------------------------------------------------------


@pytest.fixture
def wsctl_harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    """The test's wsctl loop and everything started on it; closed at teardown. The other
    fixtures use it; a test rarely needs it itself."""
    from wsctl.testing.harness import Harness

    harness = Harness(tmp_path_factory.mktemp("wsctl"))
    try:
        yield harness
    finally:
        harness.close()


@pytest.fixture
def wsctl_service(wsctl_harness: Harness) -> Callable[..., Service]:
    """Start your service: ``wsctl_service(command=[..."{port}"...], url=
    "ws://127.0.0.1:{port}/ws/{stream}", ready="http://127.0.0.1:{port}/health" | "tcp" |
    REGEX, cwd=, env=, stop_signal=, stop_timeout=, ready_timeout=)`` -> a ``Service``
    (``url``, ``rss``, ``kill()``, ``terminate()``, ``with pause():``, ``restart()``, …)."""
    from wsctl.testing.harness import start_service

    return functools.partial(start_service, wsctl_harness)


@pytest.fixture
def wsctl_server(wsctl_harness: Harness) -> Callable[..., Service]:
    """Start wsctl's reference server: ``wsctl_server(ping_interval=0.5, job_rate=20, …)``
    (the options of a scenario's embedded ``server:``) -> a ``Service``."""
    from wsctl.testing.harness import start_server

    return functools.partial(start_server, wsctl_harness)


@pytest.fixture
def wsctl_chaos(wsctl_harness: Harness) -> Callable[..., ChaosProxy]:
    """A chaos proxy in front of a URL or a Service: ``proxy = wsctl_chaos(service)``;
    ``proxy.url``; ``with proxy.toxic("latency", latency=300):``, ``with proxy.down():``,
    ``proxy.cut()``, ``proxy.toxic("drop_pongs")``."""
    from wsctl.testing.harness import start_proxy

    return functools.partial(start_proxy, wsctl_harness)


@pytest.fixture
def wsctl_probes(wsctl_harness: Harness) -> Callable[..., Probes]:
    """Probes against a URL, Service or ChaosProxy: ``wsctl_probes(target, count=5,
    mode="listen", protocol={"sequence": "seq"}, heartbeat={...})`` -> ``Probes``
    (``fault()``, ``wait_recovered()``, ``result()``)."""
    from wsctl.testing.harness import start_probes

    factory: Callable[..., Any] = functools.partial(start_probes, wsctl_harness)
    return factory
