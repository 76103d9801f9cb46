"""The LALR parser of ``kql.lark``, loaded from tables written once instead of built at every start.

Lark analyses the grammar and builds its LALR tables in every process that parses KQL: 40-60 ms,
a tenth of starting ``dac run``. ``make`` writes those tables, as Lark serializes them, into
``_generated/kql_parser.json`` beside this file (git-ignored): JSON, data only (Lark's own
``save`` would pickle them). They are stamped with the SHA-256 of the grammar, the Lark version and
the parser options, and :func:`kql_parser` uses them only when the stamp matches; otherwise (an
edited grammar, another Lark, no ``make``) it builds the parser from the grammar as before, so
KQL is never parsed with tables of another grammar.

Regenerate: ``python -m dac.query.kql_parser`` (the Makefile does it when the grammar changes).
"""

from __future__ import annotations

import hashlib
import json
import sys
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import lark
from lark import Lark
from lark.grammar import Rule
from lark.lexer import TerminalDef

OPTIONS: dict[str, Any] = {"parser": "lalr", "lexer": "contextual", "maybe_placeholders": True}
TABLES = Path(__file__).with_name("_generated") / "kql_parser.json"


@cache
def kql_parser() -> Lark:
    """The parser of kql.lark: from the generated tables when they are this grammar's, else built."""
    grammar = _grammar()
    tables = _saved_tables(grammar)
    if tables is not None:
        return Lark.load(tables)  # Lark reads a dict as its serialized data, unpickled
    return Lark(grammar, **OPTIONS)


def _grammar() -> str:
    return resources.files("dac.query").joinpath("kql.lark").read_text("utf-8")


def _stamp(grammar: str) -> str:
    digest = hashlib.sha256(grammar.encode("utf-8")).hexdigest()
    return f"{digest} lark {lark.__version__} {json.dumps(OPTIONS, sort_keys=True)}"


def _saved_tables(grammar: str, path: Path = TABLES) -> dict[str, Any] | None:
    """The serialized parser in ``path`` when its stamp is this grammar's, else None."""
    try:
        saved = json.loads(path.read_bytes(), object_hook=_integer_keys)
    except (OSError, ValueError):
        return None
    if not isinstance(saved, dict) or saved.get("stamp") != _stamp(grammar):
        return None
    return {"data": saved["data"], "memo": saved["memo"]}


def _integer_keys(mapping: dict[str, Any]) -> dict[Any, Any]:
    """JSON keeps only string keys; Lark's tables number their states and memo entries. No other
    key is all digits: the rest are grammar symbols, which are names."""
    return {int(key) if key.isdigit() else key: value for key, value in mapping.items()}


def tables_json(grammar: str | None = None) -> str:
    """The generated file's text: the tables of a parser built from ``grammar`` (default: kql.lark)."""
    grammar = _grammar() if grammar is None else grammar
    data, memo = Lark(grammar, **OPTIONS).memo_serialize([TerminalDef, Rule])
    return json.dumps({"stamp": _stamp(grammar), "data": data, "memo": memo}, sort_keys=True)


def generate(path: Path = TABLES) -> Path:
    """Write the tables to ``path``, replaced whole (never half-written)."""
    path.parent.mkdir(exist_ok=True)
    partial = path.with_name(f"{path.name}.partial")
    partial.write_text(tables_json(), "utf-8")
    partial.replace(path)
    return path


if __name__ == "__main__":
    print(f"wrote {generate()}", file=sys.stderr)
