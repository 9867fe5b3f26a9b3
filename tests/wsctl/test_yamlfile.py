"""wsctl.yamlfile: line maps, dotted field names, readable file errors."""

import pytest

from wsctl import yamlfile
from wsctl.errors import InvalidInput


def test_parse_maps_every_key_and_item_to_its_line():
    """Keys and list items get their own 1-based line; dotted() writes paths as files do."""
    data, lines = yamlfile.parse("a:\n  b:\n    - x\n    - {c: 1}\n", "f.yaml")
    assert data == {"a": {"b": ["x", {"c": 1}]}}
    assert lines[("a", "b", 1, "c")] == 4 and lines[("a", "b", 0)] == 3
    assert yamlfile.line_of(lines, ("a", "b", 1, "nope")) == 4
    assert yamlfile.dotted(("a", "b", 1, "c")) == "a.b[1].c"
    assert yamlfile.dotted(()) == "(top level)"


def test_empty_file_is_an_error():
    """An empty document is InvalidInput naming the file and line 1."""
    with pytest.raises(InvalidInput, match=r"^f.yaml:1: \(top level\): the file is empty"):
        yamlfile.parse("", "f.yaml")


def test_read_errors_say_what_the_file_was(tmp_path):
    """A missing file names what was expected; a file that is not UTF-8 says so."""
    with pytest.raises(InvalidInput, match="no such protocol file"):
        yamlfile.read(tmp_path / "x.yaml", "protocol file")
    binary = tmp_path / "b.yaml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(InvalidInput, match="cannot read: not UTF-8 text"):
        yamlfile.read(binary, "protocol file")
