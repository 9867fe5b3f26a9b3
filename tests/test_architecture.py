"""The layers of docs/architecture.md hold: no import against their direction, no cycle.

cli -> scenario/bench -> probe/chaos/server_stub -> report -> results -> metrics ->
kernel. Imports inside ``if TYPE_CHECKING:`` count for both: a cycle through annotations
is still a cycle (the two modules cannot be understood, type-checked or moved apart
alone). A lower module names what it needs from a higher one as a ``typing.Protocol``.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("kernel", ("wsctl", "wsctl.errors", "wsctl.clock", "wsctl.units", "wsctl.protocol",
                "wsctl.workerproc",
                "wsctl.backoff", "wsctl.yamlfile", "wsctl.runtime", "wsctl.fdlimit")),
    ("metrics", ("wsctl.metrics",)),
    ("results", ("wsctl.results",)),
    ("report", ("wsctl.report",)),
    ("components", ("wsctl.probe", "wsctl.chaos", "server_stub", "wsctl.serverwatch")),
    ("drivers", ("wsctl.scenario", "wsctl.bench")),
    ("testing", ("wsctl.testing",)),
    ("cli", ("wsctl.cli", "wsctl.__main__")),
)


def _layer(module: str) -> tuple[int, str] | None:
    best: tuple[int, int, str] | None = None
    for rank, (name, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or (prefix != "wsctl" and module.startswith(prefix + ".")):
                if best is None or len(prefix) > best[1]:
                    best = (rank, len(prefix), name)
    return None if best is None else (best[0], best[2])


def _modules() -> dict[str, Path]:
    out = {}
    for path in [*ROOT.glob("wsctl/**/*.py"), *ROOT.glob("server_stub/**/*.py")]:
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


def _imports(path: Path, module: str, modules: dict[str, Path]) -> list[str]:
    """Every module ``path`` imports, at run time or inside ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([base] if base else [])])
            subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules]
            names = subs if len(subs) == len(node.names) else [base, *subs]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rsplit(".", 1)[0] if "." in name else ""
            if name and name != module:
                out.append(name)
    return out


def test_no_import_goes_up_a_layer() -> None:
    """A module imports only from its own layer and the layers below it."""
    modules = _modules()
    wrong = []
    for module, path in modules.items():
        mine = _layer(module)
        for other in _imports(path, module, modules):
            theirs = _layer(other)
            if mine and theirs and theirs[0] > mine[0]:
                wrong.append(f"{module} ({mine[1]}) imports {other} ({theirs[1]})")
    assert wrong == []


def test_no_import_cycle() -> None:
    """No two modules import each other, directly or through others, annotations included."""
    modules = _modules()
    graph = {m: set(_imports(p, m, modules)) for m, p in modules.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    assert cycles == []
