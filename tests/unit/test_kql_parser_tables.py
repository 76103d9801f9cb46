"""The KQL parser loaded from generated tables (dac.query.kql_parser) is the parser built from the
grammar: same trees and same syntax errors on every query of the KQL parsing tests, and the
tables are used only when they were made from this grammar by this Lark."""

from __future__ import annotations

from pathlib import Path

import pytest
from lark import Lark, UnexpectedInput

from dac.query import kql_parser
from dac.query.kql import _syntax_error
from tests.unit.test_kql_parse import ERRORS, GRAMMAR_CASES, KIBANA_CASES, REAL_WORLD

QUERIES = [case[0] for case in (*KIBANA_CASES, *GRAMMAR_CASES, *REAL_WORLD, *ERRORS)]


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("kql") / "kql_parser.json"
    path.write_text(kql_parser.tables_json(), "utf-8")
    return path


def _outcome(parser: Lark, query: str) -> object:
    """The tree, or the syntax error as dac reports it (Lark's own text lists a set, in hash order)."""
    try:
        return parser.parse(query)
    except UnexpectedInput as exc:
        error = _syntax_error(query, exc)
        return error.message, error.query_line, error.query_column


def test_tables_parse_every_query_as_the_grammar_does(tables: Path) -> None:
    grammar = kql_parser._grammar()
    saved = kql_parser._saved_tables(grammar, tables)
    assert saved is not None
    loaded = Lark.load(saved)
    built = Lark(grammar, **kql_parser.OPTIONS)
    assert len(QUERIES) > 50
    for query in QUERIES:
        assert _outcome(loaded, query) == _outcome(built, query), query


def test_tables_of_another_grammar_are_not_used(tables: Path) -> None:
    edited = kql_parser._grammar() + "\n// an edit\n"
    assert kql_parser._saved_tables(edited, tables) is None


def test_tables_of_another_lark_are_not_used(tables: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kql_parser.lark, "__version__", "0.0.1")
    assert kql_parser._saved_tables(kql_parser._grammar(), tables) is None


@pytest.mark.parametrize("content", [None, "", "{not json", "[]", '{"stamp": "x"}'])
def test_missing_or_broken_tables_mean_building_the_parser(tmp_path: Path, content: str | None) -> None:
    path = tmp_path / "kql_parser.json"
    if content is not None:
        path.write_text(content, "utf-8")
    assert kql_parser._saved_tables(kql_parser._grammar(), path) is None


def test_generate_replaces_the_file_whole(tmp_path: Path) -> None:
    path = kql_parser.generate(tmp_path / "_generated" / "kql_parser.json")
    assert kql_parser._saved_tables(kql_parser._grammar(), path) is not None
    assert sorted(p.name for p in path.parent.iterdir()) == ["kql_parser.json"]
