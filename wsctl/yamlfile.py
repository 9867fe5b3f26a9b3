"""YAML (or JSON) documents with the line of every key, and pydantic errors reported as
``FILE:LINE: field: problem`` lines a person can act on.

``parse`` returns the document and a map from each key's path to its 1-based line;
``report`` turns a ``ValidationError`` into one line per problem, naming the field as the
file writes it. A validator that knows the problem's place below its model raises
``FieldError(loc, message)``; ``read`` reads a file with one-line errors. Scenario files
(wsctl/scenario/model.py) and protocol blocks (wsctl/probe/dialect.py) both load here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from wsctl.errors import InvalidInput

Loc = tuple[str | int, ...]


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
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInput(f"{path}: no such {what}") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise InvalidInput(f"{path}: cannot read: {reason}") from None


def parse(text: str, source: str) -> tuple[Any, dict[Loc, int]]:
    """The document in ``text`` and the line of every key and item, by path; a YAML error
    or a duplicate key is ``InvalidInput`` naming ``source`` and the line."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise InvalidInput(f"{source}:1: (top level): the file is empty")
        lines: dict[Loc, int] = {}
        _walk(node, (), lines, source)
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


def _walk(node: yaml.Node, path: Loc, lines: dict[Loc, int], source: str) -> None:
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
            _walk(value, (*path, name), lines, source)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*path, index), lines, source)


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
