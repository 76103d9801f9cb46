"""EQL through Elastic's ``eql`` package, in its Elasticsearch dialect."""

from __future__ import annotations

import eql
from eql import ast
from eql.parser import elasticsearch_syntax, ignore_missing_functions

from dac.errors import QueryError
from dac.query.fields import FieldRef


def parse_eql(text: str) -> ast.PipedQuery:
    """Parse with Elasticsearch's EQL syntax (``:`` and ``like~`` case-insensitive, ``==`` sensitive)."""
    try:
        with elasticsearch_syntax, ignore_missing_functions:
            return eql.parse_query(text)
    except eql.EqlError as exc:
        line = getattr(exc, "line", None)
        column = getattr(exc, "column", None)
        message = getattr(exc, "error_msg", None) or str(exc).splitlines()[0]
        raise QueryError(
            f"EQL: {message}",
            None if line is None else line + 1,
            None if column is None else column + 1,
        ) from None
    except AttributeError:
        # eql 1.0 fails while building some type errors, e.g. for a sign before a function call
        # (``where + startsWith(...)``, LarkToEQL._type_error reads a missing ``source``); the query
        # is invalid either way, and the package no longer knows where.
        raise QueryError("EQL: the query does not type-check (a sign or operator on a value of the "
                         "wrong type)", 1, 1) from None


def referenced_fields(query: ast.PipedQuery) -> list[FieldRef]:
    """Fields the query reads (the ``eql`` AST keeps no positions for them)."""
    names = sorted(
        {".".join(str(p) for p in node.full_path) for node in query if isinstance(node, ast.Field)}
    )
    return [FieldRef(name) for name in names]


def unknown_functions(query: ast.PipedQuery) -> list[QueryError]:
    """Calls to functions Elasticsearch's EQL does not have (the ``eql`` package knows more)."""
    from dac.query.esql.catalogue import eql_functions

    known = {name.lower(): name for name in eql_functions()}
    found = sorted({node.name for node in query if isinstance(node, ast.FunctionCall)})
    listed = ", ".join(sorted(known.values()))
    return [
        QueryError(f"EQL: unknown function [{name}] (Elasticsearch's EQL has: {listed})")
        for name in found
        if name.lower() not in known
    ]
