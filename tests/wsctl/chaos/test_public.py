"""The public surface of ``wsctl.chaos``."""

from __future__ import annotations

import ast
from pathlib import Path

import wsctl.chaos


def test_all_lists_what_the_package_exports() -> None:
    """Everything in ``__all__`` exists, and the fault table has the documented types."""
    for name in wsctl.chaos.__all__:
        assert hasattr(wsctl.chaos, name), name
    assert set(wsctl.chaos.FAULTS) == {
        "latency",
        "bandwidth",
        "slow_close",
        "timeout",
        "reset_peer",
        "slicer",
        "limit_data",
        "drop_pongs",
        "drop_frames",
        "frame_delay",
        "close",
        "cut",
    }


def _chaos_imports() -> dict[str, set[str]]:
    """Module -> the wsctl.chaos modules it imports, anywhere (TYPE_CHECKING and lazy too)."""
    root = Path(wsctl.chaos.__file__).parent
    modules = {
        ".".join(("wsctl", *path.relative_to(root.parent).with_suffix("").parts)).removesuffix(
            ".__init__"
        ): path
        for path in root.rglob("*.py")
    }
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    child = f"{node.module}.{alias.name}"
                    targets.add(child if child in modules else node.module)
        graph[module] = {t for t in targets if t in modules and t != module}
    return graph


def test_chaos_modules_import_without_cycles() -> None:
    """No wsctl.chaos module reaches itself through its imports, not even for type checking."""
    graph = _chaos_imports()
    assert "wsctl.chaos.proxy" in graph["wsctl.chaos.api"]  # the walk sees imports at all

    def cycle_from(module: str, path: list[str]) -> list[str] | None:
        for target in sorted(graph[module]):
            if target in path:
                return [*path[path.index(target) :], target]
            found = cycle_from(target, [*path, target])
            if found:
                return found
        return None

    for module in graph:
        assert cycle_from(module, [module]) is None, module
