"""Reading YAML with the place of every value, so later stages can point into the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from dac.errors import Location, RuleError
from dac.loader import load_yaml, read_text, rule_files

DOCUMENT = """\
# a comment
name: first
query: |
  line one
    line two
tests:
  - name: a
    events:
      - {csr_create: {user: alice}}
  - name: b
nested: {inner: [1, 2]}
folded: >-
  folded text
"""


@pytest.fixture
def loaded(tmp_path: Path):
    path = tmp_path / "doc.yml"
    path.write_text(DOCUMENT, "utf-8")
    return load_yaml(path)


def test_data_is_plain_python(loaded) -> None:
    assert loaded.data == {
        "name": "first",
        "query": "line one\n  line two\n",
        "tests": [{"name": "a", "events": [{"csr_create": {"user": "alice"}}]}, {"name": "b"}],
        "nested": {"inner": [1, 2]},
        "folded": "folded text",
    }
    assert loaded.positions.text == DOCUMENT


@pytest.mark.parametrize(
    ("data_path", "line", "column"),
    [
        ((), 2, 1),  # the top-level mapping starts after the comment
        (("name",), 2, 7),
        (("query",), 4, 3),  # a block scalar's value starts on its first content line
        (("tests",), 7, 3),
        (("tests", 0, "name"), 7, 11),
        (("tests", 0, "events", 0, "csr_create", "user"), 9, 29),
        (("tests", 1), 10, 5),
        (("nested", "inner", 1), 11, 21),
        (("folded",), 13, 3),
    ],
)
def test_value_positions(loaded, data_path: tuple, line: int, column: int) -> None:
    assert loaded.positions.of(data_path) == Location(loaded.positions.path, line, column)


def test_key_positions(loaded) -> None:
    where = loaded.positions.path
    assert loaded.positions.of(("tests",), key=True) == Location(where, 6, 1)
    assert loaded.positions.of(("tests", 1, "name"), key=True) == Location(where, 10, 5)


def test_a_missing_path_falls_back_to_its_nearest_ancestor(loaded) -> None:
    where = loaded.positions.path
    assert loaded.positions.of(("tests", 0, "expect", "alerts")) == Location(where, 7, 5)
    assert loaded.positions.of(("nowhere",)) == Location(where, 2, 1)


def test_duplicate_key_in_a_nested_mapping(tmp_path: Path) -> None:
    path = tmp_path / "dup.yml"
    path.write_text("a:\n  b: 1\n  c: 2\n  b: 3\n", "utf-8")
    with pytest.raises(RuleError) as error:
        load_yaml(path)
    assert str(error.value) == f"{path}:4:3: duplicate key 'b'"


def test_a_mapping_as_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "key.yml"
    path.write_text("a: 1\n? {b: 1}\n: 2\n", "utf-8")
    with pytest.raises(RuleError) as error:
        load_yaml(path)
    assert str(error.value) == f"{path}:2:3: a mapping key must be a plain value"


def test_bad_utf8_on_a_later_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yml"
    path.write_bytes("name: x\ndescription: caf\u00e9\n".encode("latin-1"))
    with pytest.raises(RuleError) as error:
        read_text(path)
    assert str(error.value) == f"{path}:2:17: file is not UTF-8 (byte 0xe9)"


def test_a_second_document_is_a_syntax_error(tmp_path: Path) -> None:
    path = tmp_path / "two.yml"
    path.write_text("a: 1\n---\nb: 2\n", "utf-8")
    with pytest.raises(RuleError) as error:
        load_yaml(path)
    assert str(error.value).startswith(f"{path}:2:1: YAML syntax error: ")


def test_rule_files_are_yaml_files_in_a_stable_order(tmp_path: Path) -> None:
    for name in ["b/z.yml", "a.yaml", "b/a.yml", "c.json", "notes.md", "b/.hidden.yml.bak"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x: 1\n")
    (tmp_path / "folder.yml").mkdir()
    found = [p.relative_to(tmp_path).as_posix() for p in rule_files(tmp_path)]
    assert found == ["a.yaml", "b/a.yml", "b/z.yml"]
    assert list(rule_files(tmp_path / "b" / "z.yml")) == [tmp_path / "b" / "z.yml"]
