"""Needles: strings one of which must appear in an event's raw line for a rule to match it.

A KQL term on a keyword field, an ES|QL ``==`` or ``LIKE`` against a source field: a document
matches only if that field holds the literal, so the JSON line it came from holds the literal's
characters. That is a sound test on the bytes as long as the literal can only be written one way
in JSON: its characters are neither quote, backslash, slash nor control characters (which have
short escapes), and the line has no ``\\u`` escape that could hide one of its characters (then the
reader converts it fully): the API server's own escapes of <, > and & hide nothing from a needle
without them.
Conjunctions need one conjunct's needles, disjunctions every disjunct's; negations and ranges
give none. Lines that hold no needle of any rule skip conversion (dac.events.reader).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

Needles = frozenset[str] | None  # None: no necessary literal is known


# The \u escapes Go's encoding/json writes for characters other than control characters: <, >
# and & (its HTML-safe output, on by default) and U+2028, U+2029. The API server's audit log holds
# them, e.g. "requestURI":"/apis/storage.k8s.io/v1beta1/csidrivers?limit=500\u0026resourceVersion=0".
_GO_ESCAPES = {"<": b"\\u003c", ">": b"\\u003e", "&": b"\\u0026", "\u2028": b"\\u2028", "\u2029": b"\\u2029"}


@lru_cache(maxsize=64)
def harmless_escapes(needles: tuple[bytes, ...]) -> tuple[bytes, ...]:
    """The escapes of _GO_ESCAPES that cannot hide a needle: their character is in none."""
    held = set(b"".join(needles).decode("utf-8"))
    return tuple(escape for char, escape in _GO_ESCAPES.items() if char not in held)


def _escapes_hide_nothing(line: bytes, harmless: tuple[bytes, ...]) -> bool:
    """Whether every ``\\u`` in ``line`` starts a harmless escape (each holds one ``\\u``)."""
    return line.count(b"\\u") == sum(line.count(escape) for escape in harmless)


@lru_cache(maxsize=64)
def line_cannot_match(needles: tuple[bytes, ...] | None) -> Callable[[bytes], bool] | None:
    """A test of whether a raw line can match no rule: it holds none of ``needles`` and no ``\\u``
    escape behind which a needle could hide. None when no needles are known: any line may match.
    It runs on every line read, so a backslash (found by memchr) is looked for before the
    two-byte escape."""
    if needles is None:
        return None
    harmless = harmless_escapes(needles)

    def unescaped(line: bytes) -> bool:
        return b"\\" not in line or b"\\u" not in line or _escapes_hide_nothing(line, harmless)

    if len(needles) == 1:
        (needle,) = needles
        return lambda line: needle not in line and unescaped(line)
    return lambda line: not any(n in line for n in needles) and unescaped(line)


def usable(text: str) -> bool:
    return bool(text) and not any(c in '"\\/' or ord(c) < 0x20 for c in text)


def _all_of(parts: list[Needles]) -> Needles:
    """AND: any one conjunct's needles are necessary; keep the most selective (longest shortest)."""
    known = [p for p in parts if p]
    if not known:
        return None
    return max(known, key=lambda needles: (min(len(n) for n in needles), -len(needles)))


def _any_of(parts: list[Needles]) -> Needles:
    """OR: every disjunct must bring needles; the union is necessary."""
    if not parts or any(not p for p in parts):
        return None
    return frozenset().union(*parts)  # type: ignore[arg-type]


def dsl_needles(node: Any, keyword_fields: set[str]) -> Needles:
    """Needles of a query DSL body (Kibana's KQL translation) over ``keyword_fields``."""
    if isinstance(node, list):
        return _all_of([dsl_needles(n, keyword_fields) for n in node])
    if not isinstance(node, dict) or len(node) != 1:
        return None
    (kind, body), = node.items()
    if kind == "bool" and isinstance(body, dict):
        conjuncts = [dsl_needles(body.get(part, []), keyword_fields) for part in ("must", "filter")]
        should = body.get("should") or []
        default = 0 if body.get("must") or body.get("filter") else 1  # Elasticsearch's bool default
        if should and int(body.get("minimum_should_match", default)) >= 1:
            conjuncts.append(_any_of([dsl_needles(n, keyword_fields) for n in should]))
        return _all_of(conjuncts)
    if kind == "term" and isinstance(body, dict) and len(body) == 1:
        (field, spec), = body.items()
        value = spec.get("value") if isinstance(spec, dict) else spec
        if isinstance(spec, dict) and spec.get("case_insensitive"):
            return None
        if field in keyword_fields and isinstance(value, str) and usable(value):
            return frozenset({value})
    return None


def esql_needles(query: Any, keyword_fields: set[str]) -> Needles:
    """Needles of a per-document ES|QL query: from WHERE conditions on source keyword fields
    that no EVAL or RENAME before them has replaced."""
    from dac.query.esql import syntax as s

    replaced: set[str] = set()
    conjuncts: list[Needles] = []

    def of(expr: Any) -> Needles:
        if isinstance(expr, s.Binary) and expr.op == "and":
            return _all_of([of(expr.left), of(expr.right)])
        if isinstance(expr, s.Binary) and expr.op == "or":
            return _any_of([of(expr.left), of(expr.right)])
        if isinstance(expr, s.Binary) and expr.op == "==":
            for field, literal in ((expr.left, expr.right), (expr.right, expr.left)):
                value = literal.value if isinstance(literal, s.Literal) else None
                if _source_field(field) and isinstance(value, str):
                    return frozenset({value}) if usable(value) else None  # e.g. a "/" in it
        if isinstance(expr, s.Match) and expr.kind == "like" and not expr.negated and _source_field(
            expr.value
        ):
            return _any_of([_like_needles(p) for p in expr.patterns])
        return None

    def _source_field(expr: Any) -> bool:
        return isinstance(expr, s.Attribute) and expr.name in keyword_fields and expr.name not in replaced

    for command in query.commands:
        if isinstance(command, s.Where):
            conjuncts.append(of(command.condition))
        elif isinstance(command, s.Eval):
            replaced.update(field.name for field in command.fields)
        elif isinstance(command, s.Rename):
            replaced.update(new.name for _, new in command.pairs)
    return _all_of(conjuncts)


def _like_needles(pattern: str) -> Needles:
    """The longest literal run of a LIKE pattern (``*`` any string, ``?`` one character)."""
    if "\\" in pattern:
        return None
    runs = [run for part in pattern.split("*") for run in part.split("?")]
    best = max(runs, key=len, default="")
    return frozenset({best}) if usable(best) else None
