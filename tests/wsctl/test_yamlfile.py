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


BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def test_alias_expansion_is_bounded():
    """A billion-laughs document is refused with FILE:LINE once expansion passes MAX_NODES."""
    with pytest.raises(InvalidInput, match=r"^f\.yaml:\d+: \(YAML\): more than 100000 values"):
        yamlfile.parse(BILLION_LAUGHS, "f.yaml")


def test_self_referencing_anchor_is_refused():
    """An anchor used inside itself is a FILE:LINE error, not a RecursionError."""
    with pytest.raises(InvalidInput, match=r"^f\.yaml:1: \(YAML\): nested deeper than 64"):
        yamlfile.parse("a: &a [1, *a]\n", "f.yaml")


@pytest.mark.parametrize("text", ["[" * 5000 + "]" * 5000, "a:\n" + "".join(
    " " * n + f"k{n}:\n" for n in range(1, 200)) + " " * 200 + "x\n"])
def test_deep_nesting_is_a_file_line_error(text):
    """Nesting past MAX_DEPTH is InvalidInput with FILE:LINE, not an internal RecursionError."""
    with pytest.raises(InvalidInput, match=r"^f\.yaml:\d+: \(YAML\): nested deeper than 64"):
        yamlfile.parse(text, "f.yaml")


def test_size_is_bounded(tmp_path):
    """A file or text over MAX_BYTES is refused before it is parsed, naming the bound."""
    big = tmp_path / "big.yaml"
    big.write_text("- x\n" * (yamlfile.MAX_BYTES // 4 + 1))
    with pytest.raises(InvalidInput, match=r"big\.yaml: too large: .* at most 1024 KiB"):
        yamlfile.read(big, "scenario file")
    with pytest.raises(InvalidInput, match=r"^f\.yaml:1: \(YAML\): too large"):
        yamlfile.parse(big.read_text(), "f.yaml")
