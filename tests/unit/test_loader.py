"""Reading YAML with the place of every value, so later stages can point into the file."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from dac.errors import Location, RuleError
from dac.limits import MAX_FILE_BYTES, MAX_NESTING_DEPTH
from dac.loader import find_rule_files, load_yaml, read_text, rule_files

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


def test_rule_files_are_yaml_files_in_any_case_in_a_stable_order(tmp_path: Path) -> None:
    for name in ["b/z.yml", "a.yaml", "b/a.yml", "C.YML", "d.Yaml", "README.md", "b/readme.txt", ".gitkeep"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x: 1\n")
    (tmp_path / "version.lock.json").write_text("{}")
    found = find_rule_files(tmp_path)
    assert found.problems == []
    assert [p.relative_to(tmp_path).as_posix() for p in found.files] == [
        "C.YML", "a.yaml", "b/a.yml", "b/z.yml", "d.Yaml"
    ]
    assert list(rule_files(tmp_path / "b" / "z.yml")) == [tmp_path / "b" / "z.yml"]


def test_every_other_file_in_the_detections_folder_is_reported(tmp_path: Path) -> None:
    for name in ["rule.yml", "c.json", "notes.md", "b/rule.yml.bak"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x: 1\n")
    found = find_rule_files(tmp_path)
    assert [p.name for p in found.files] == ["rule.yml"]
    assert [str(p.location) for p in found.problems] == [
        str(tmp_path / "b" / "rule.yml.bak"), str(tmp_path / "c.json"), str(tmp_path / "notes.md")
    ]
    assert all(p.message.startswith("not a rule file: rules end in .yml or .yaml") for p in found.problems)


def test_a_rules_folder_reached_through_a_symlink_is_read(tmp_path: Path) -> None:
    root = tmp_path / "detections"
    (root / "k8s").mkdir(parents=True)
    (root / "k8s" / "rule.yml").write_text("x: 1\n")
    (tmp_path / "shared" / "aws").mkdir(parents=True)
    (tmp_path / "shared" / "aws" / "other.yml").write_text("x: 1\n")
    (root / "aws").symlink_to(tmp_path / "shared" / "aws", target_is_directory=True)
    found = find_rule_files(root)
    assert found.problems == []
    assert [p.relative_to(root).as_posix() for p in found.files] == ["aws/other.yml", "k8s/rule.yml"]


def test_symlink_loops_duplicates_and_links_out_of_the_repository_are_errors(tmp_path: Path) -> None:
    repository = tmp_path / "repo"
    root = repository / "detections"
    (root / "k8s").mkdir(parents=True)
    (root / "k8s" / "rule.yml").write_text("x: 1\n")
    (root / "k8s" / "again").symlink_to(root / "k8s", target_is_directory=True)
    (repository / "shared").mkdir()
    (repository / "shared" / "back").symlink_to(repository / "shared", target_is_directory=True)
    (root / "shared").symlink_to(repository / "shared", target_is_directory=True)
    (tmp_path / "outside").mkdir()
    (root / "out").symlink_to(tmp_path / "outside", target_is_directory=True)
    (root / "dangling.yml").symlink_to(tmp_path / "missing.yml")
    (root / "link.yml").symlink_to(root / "k8s" / "rule.yml")
    found = find_rule_files(root)
    assert [p.name for p in found.files] == ["rule.yml"]
    assert [f"{p.location}: {p.message}" for p in found.problems] == [
        f"{root}/dangling.yml: symbolic link leads nowhere: refused",
        f"{root}/k8s/again: symbolic link leads inside the detections folder, which is read directly "
        "(a duplicate): refused",
        f"{root}/link.yml: symbolic link leads inside the detections folder, which is read directly "
        "(a duplicate): refused",
        f"{root}/out: symbolic link leads outside the repository ({repository}): refused",
        f"{root}/shared/back: symbolic link leads to {root}/shared, which is already read (a loop): refused",
    ]


def test_a_path_that_does_not_exist_or_holds_no_rules_is_an_error(tmp_path: Path) -> None:
    missing = find_rule_files(tmp_path / "nope")
    assert [str(p) for p in missing.problems] == [f"{tmp_path}/nope: no such rule file or folder"]
    (tmp_path / "empty").mkdir()
    empty = find_rule_files(tmp_path / "empty")
    assert [str(p) for p in empty.problems] == [
        f"{tmp_path}/empty: no rule files (*.yml, *.yaml) in this folder"
    ]


BILLION_LAUGHS = "\n".join(
    ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    + ["rule_id: *a9", ""]
)


def test_a_yaml_alias_bomb_is_refused_at_the_first_alias_without_expanding(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yml"
    path.write_text(BILLION_LAUGHS, "utf-8")
    tracemalloc.start()
    try:
        with pytest.raises(RuleError) as error:
            load_yaml(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(error.value) == (
        f"{path}:2:10: YAML alias *a0 is not allowed: write the value out "
        "(aliases can expand a small file into billions of values)"
    )
    assert peak < 2_000_000  # bytes: the 387 million values are never built


def test_a_merge_key_alias_is_refused_too(tmp_path: Path) -> None:
    path = tmp_path / "merge.yml"
    path.write_text("base: &b {x: 1}\nrule: {<<: *b, y: 2}\n", "utf-8")
    with pytest.raises(RuleError, match=r"merge.yml:2:12: YAML alias \*b is not allowed"):
        load_yaml(path)


def test_an_ampersand_in_text_is_not_an_anchor(tmp_path: Path) -> None:
    path = tmp_path / "amp.yml"
    path.write_text('name: "AT&T"\nnote: a & b\n', "utf-8")
    assert load_yaml(path).data == {"name": "AT&T", "note": "a & b"}


def test_nesting_deeper_than_the_limit_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "deep.yml"
    path.write_text("a: " + "[" * MAX_NESTING_DEPTH + "]" * MAX_NESTING_DEPTH + "\n", "utf-8")
    with pytest.raises(RuleError) as error:
        load_yaml(path)
    assert str(error.value) == (
        f"{path}:1:{3 + MAX_NESTING_DEPTH}: nesting depth exceeds the limit of {MAX_NESTING_DEPTH} levels "
        "(dac.limits.MAX_NESTING_DEPTH)"
    )
    path.write_text("a: " + "[" * 5000 + "]" * 5000 + "\n", "utf-8")  # libyaml's own limit
    with pytest.raises(RuleError, match="exceeds the limit of 1,000 levels"):
        load_yaml(path)


def test_a_file_over_the_size_limit_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "big.yml"
    path.write_text("a: " + "x" * MAX_FILE_BYTES + "\n", "utf-8")
    with pytest.raises(RuleError) as error:
        load_yaml(path)
    assert str(error.value) == (
        f"{path}:1:1: file size {MAX_FILE_BYTES + 4:,} bytes exceeds the limit of {MAX_FILE_BYTES:,} bytes "
        "(dac.limits.MAX_FILE_BYTES)"
    )
