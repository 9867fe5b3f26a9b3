"""YAML (or JSON) documents with the line of every key, and pydantic errors reported as
``FILE:LINE: field: problem`` lines a person can act on.

``parse`` returns the document and a map from each key's path to its 1-based line;
``report`` turns a ``ValidationError`` into one line per problem, naming the field as the
file writes it. A validator that knows the problem's place below its model raises
``FieldError(loc, message)``; ``read`` reads a file with one-line errors. Scenario files
(wsctl/scenario/model.py) and protocol blocks (wsctl/probe/dialect.py) both load here.

Input bounds (docs/security.md): a file or text over ``MAX_BYTES`` (1 MiB), nesting deeper
than ``MAX_DEPTH`` (64) and a document of more than ``MAX_NODES`` (100,000) nodes, counting
every use of an alias (so a "billion laughs" file stops at the bound), are each refused
as ``FILE:LINE: (YAML): problem``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from wsctl.errors import InvalidInput

Loc = tuple[str | int, ...]

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 64
MAX_NODES = 100_000


class FieldError(ValueError):
    """A validation problem at ``loc`` below the model whose validator raised it."""

    def __init__(self, loc: Loc, message: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message


def read(path: Path | str, what: str) -> str:
    """The text of ``path``; a missing or unreadable file is ``InvalidInput`` saying
    ``what`` it should have been (e.g. "protocol file")."""
    path = Path(path)
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_BYTES + 1)  # never more: /dev/zero and FIFOs have no size
        if len(raw) > MAX_BYTES:
            raise InvalidInput(f"{path}: too large: a {what} may hold at most "
                               f"{MAX_BYTES // 1024} KiB")
        return raw.decode("utf-8")
    except FileNotFoundError:
        raise InvalidInput(f"{path}: no such {what}") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise InvalidInput(f"{path}: cannot read: {reason}") from None


def parse(text: str, source: str) -> tuple[Any, dict[Loc, int]]:
    """The document in ``text`` and the line of every key and item, by path; a YAML error
    or a duplicate key is ``InvalidInput`` naming ``source`` and the line, as is a document
    past ``MAX_BYTES``, ``MAX_DEPTH`` or ``MAX_NODES``."""
    if len(text) > MAX_BYTES:
        raise InvalidInput(f"{source}:1: (YAML): too large: at most {MAX_BYTES // 1024} KiB")
    try:
        loader = _BoundedLoader(text, source)
    except yaml.reader.ReaderError as exc:  # a control character, refused before parsing
        line = text.count("\n", 0, exc.position) + 1
        raise InvalidInput(f"{source}:{line}: (YAML): {str(exc).splitlines()[0]}") from None
    try:
        node = loader.get_single_node()
        if node is None:
            raise InvalidInput(f"{source}:1: (top level): the file is empty")
        lines: dict[Loc, int] = {}
        _walk(node, (), lines, source, [0])
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = exc.problem or exc.context or "invalid YAML"
        raise InvalidInput(f"{source}:{line}: (YAML): {problem}") from None
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{source}:1: (YAML): {exc}") from None
    finally:
        loader.dispose()
    return data, lines


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that refuses nesting past ``MAX_DEPTH`` while composing (PyYAML's
    composer recurses once per level, so an unbounded depth is a RecursionError)."""

    def __init__(self, text: str, source: str) -> None:
        super().__init__(text)
        self._source = source
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                line = self.peek_event().start_mark.line + 1
                raise InvalidInput(f"{self._source}:{line}: (YAML): nested deeper than "
                                   f"{MAX_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _walk(node: yaml.Node, path: Loc, lines: dict[Loc, int], source: str,
          count: list[int]) -> None:
    # Aliases are walked where they are used, so count every visit: that bounds the
    # expanded document (and the recursion of a self-referencing anchor) for the
    # validation that follows, not only this walk.
    count[0] += 1
    if count[0] > MAX_NODES or len(path) > MAX_DEPTH:
        problem = (f"more than {MAX_NODES} values once aliases are expanded"
                   if count[0] > MAX_NODES else f"nested deeper than {MAX_DEPTH} levels")
        raise InvalidInput(f"{source}:{node.start_mark.line + 1}: (YAML): {problem}")
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            name = str(key.value)
            if name in seen:
                raise InvalidInput(f"{source}:{key.start_mark.line + 1}: "
                                   f"{dotted((*path, name))}: duplicate key")
            seen.add(name)
            lines[(*path, name)] = key.start_mark.line + 1
            _walk(value, (*path, name), lines, source, count)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*path, index), lines, source, count)


def line_of(lines: dict[Loc, int], path: Loc) -> int:
    """The line of ``path``, or of its nearest ancestor that has one."""
    while path not in lines and path:
        path = path[:-1]
    return lines.get(path, 1)


def dotted(path: Loc) -> str:
    """``("on_open", 0, "token")`` -> ``on_open[0].token``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def problems(exc: ValidationError) -> Iterator[tuple[Loc, str]]:
    """Each error of ``exc`` as (path as the file writes it, one-line problem)."""
    for error in exc.errors():
        loc: Loc = tuple(p for p in error["loc"]
                         if p not in ("function-after", "function-before", "[key]"))
        ctx = error.get("ctx") or {}
        cause = ctx.get("error")
        if isinstance(cause, FieldError):
            yield (*loc, *cause.loc), cause.message
            continue
        kind = error["type"]
        if kind == "extra_forbidden":
            yield loc, "unknown field"
        elif kind == "missing":
            yield loc, "required field is missing"
        elif kind == "value_error":
            yield loc, str(cause) if cause is not None else error["msg"]
        else:
            yield loc, error["msg"]


def report(exc: ValidationError, source: str, lines: dict[Loc, int], prefix: Loc = ()) -> str:
    """One ``FILE:LINE: field: problem`` line per error; ``prefix`` is where the model sits
    in the file (errors are located and named below it)."""
    out = []
    for loc, message in problems(exc):
        where = (*prefix, *loc)
        out.append(f"{source}:{line_of(lines, where)}: {dotted(where)}: {message}")
    return "\n".join(dict.fromkeys(out)) or f"{source}: invalid"
