"""Query languages: one entry point to parse any rule query and list the fields it reads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dac.query.fields import FieldRef


@dataclass(frozen=True)
class ParsedQuery:
    language: str  # kuery | eql | esql
    text: str
    tree: Any
    fields: list[FieldRef]
    indices: list[str] | None = None  # ES|QL names its indices in FROM


def parse_query(language: str, text: str) -> ParsedQuery:
    """Parse ``text`` in ``language``; syntax errors raise QueryError with query positions."""
    if language == "kuery":
        from dac.query import kql

        tree = kql.parse_kql(text)
        return ParsedQuery(language, text, tree, _refs(kql.referenced_fields(tree)))
    if language == "eql":
        from dac.query import eql_query

        tree = eql_query.parse_eql(text)
        return ParsedQuery(language, text, tree, eql_query.referenced_fields(tree))
    if language == "esql":
        from dac.query import esql

        tree = esql.parse_esql(text)
        return ParsedQuery(language, text, tree, _refs(esql.referenced_fields(tree)), list(tree.indices))
    from dac.errors import UnsupportedQueryError

    raise UnsupportedQueryError(f"the {language!r} query language is not supported by this tooling")


def _refs(found: list[Any]) -> list[FieldRef]:
    return [FieldRef(f.name, f.line, f.column) for f in found]
