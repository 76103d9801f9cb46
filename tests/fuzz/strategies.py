"""Hypothesis strategies that reach deep: real texts mutated, and KQL drawn from its grammar."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hypothesis import strategies as st

from dac.mapping import load_mapping

MAPPING = load_mapping("kubernetes.audit_logs")
FIELD_NAMES = sorted(MAPPING.fields)

# Characters that mean something to one of the query languages or to YAML.
SYNTAX_CHARS = [*"\"'\\()[]{}:;,.*?<>=!|&~+-/#@%$^`\t\n\r \u00a0", "\x00", "\u2028", "\ufeff", "é",
                "\U0001d518"]
KEYWORDS = ["and", "or", "not", "AND", "OR", "NOT", "null", "true", "false", "where", "WHERE", "in", "IN",
            "like", "RLIKE", "LIKE", "by", "BY", "|", "FROM", "EVAL", "KEEP", "STATS", "SORT", "LIMIT", "::",
            '"""', "METADATA", "IS NULL", "sequence", "any", "event", "\\u0041", "\\*",
            "9999999999999999999999", "-1", "1.5e308", "now-5m", "/*", "*/", "//"]


@st.composite
def spliced(draw: st.DrawFn, lines: Sequence[bytes], fragments: Sequence[bytes],
            edits: tuple[int, int]) -> bytes:
    """One of ``lines`` with a number of ``fragments`` in the range ``edits`` written over or into
    its bytes."""
    line = bytearray(draw(st.sampled_from(lines)))
    for _ in range(draw(st.integers(*edits))):
        fragment = draw(st.sampled_from(fragments))
        at = draw(st.integers(0, len(line)))
        if draw(st.booleans()):
            line[at:at + len(fragment)] = fragment
        else:
            line[at:at] = fragment
    return bytes(line)


@st.composite
def mutated(draw: st.DrawFn, seeds: list[str], max_edits: int = 6) -> str:
    """One of ``seeds`` with a few random edits: insert, delete, duplicate, replace a span."""
    text = draw(st.sampled_from(seeds))
    for _ in range(draw(st.integers(0, max_edits))):
        if not text:
            text = draw(st.sampled_from(KEYWORDS))
            continue
        start = draw(st.integers(0, len(text)))
        end = min(len(text), start + draw(st.integers(0, 12)))
        kind = draw(st.sampled_from(["insert", "delete", "duplicate", "replace"]))
        piece = draw(st.one_of(st.sampled_from(SYNTAX_CHARS), st.sampled_from(KEYWORDS),
                               st.text(max_size=4)))
        if kind == "insert":
            text = text[:start] + piece + text[start:]
        elif kind == "delete":
            text = text[:start] + text[end:]
        elif kind == "duplicate":
            text = text[:end] + text[start:end] + text[end:]
        else:
            text = text[:start] + piece + text[end:]
    return text


def syntax_text(max_size: int = 200) -> st.SearchStrategy[str]:
    """Raw text biased towards the characters and words query languages care about."""
    atoms = st.one_of(st.sampled_from(SYNTAX_CHARS), st.sampled_from(KEYWORDS), st.text(max_size=3),
                      st.sampled_from(FIELD_NAMES))
    return st.lists(atoms, max_size=max_size // 4).map("".join)


# --------------------------------------------------------------------------- KQL from its grammar

_SPACE = st.sampled_from([" ", "  ", "\t", "\n", "\u00a0"])
_OPT_SPACE = st.sampled_from(["", " ", "\n"])


def _unquoted_char() -> st.SearchStrategy[str]:
    return st.one_of(
        st.characters(blacklist_characters='\\():<>"*{} \t\r\n\u00a0', blacklist_categories=("Cs",)),
        st.sampled_from(["\\t", "\\n", "\\r", "\\\\", "\\(", "\\)", "\\:", "\\<", "\\>", '\\"', "\\*", "\\{",
                         "\\}", "\\u0041", "\\u00e9", "\\or", "\\AND", "\\not", "*"]),
    )


_UNQUOTED = st.lists(_unquoted_char(), min_size=1, max_size=8).map("".join).filter(
    lambda s: s.lower() not in ("or", "and", "not"))
_QUOTED = st.lists(
    st.one_of(st.characters(blacklist_characters='"\\', blacklist_categories=("Cs",)),
              st.sampled_from(["\\t", "\\n", "\\r", "\\\\", '\\"', "\\u0041", "*", " "])),
    max_size=8,
).map(lambda chars: '"' + "".join(chars) + '"')
KQL_VALUE = st.one_of(_UNQUOTED, _QUOTED, st.sampled_from(["*", "null", "true", "false", "200", "10.0.0.1",
                                                           "2026-03-01", "now-5m", "10.0.0.0/8"]))
KQL_FIELD = st.one_of(st.sampled_from(FIELD_NAMES), st.sampled_from(["kubernetes.audit.user.*", "*", "user.*",
                                                                     "null", "unmapped.field"]), _UNQUOTED)


def _leaf() -> st.SearchStrategy[str]:
    op = st.sampled_from([":", " : ", "<", "<=", ">", ">= "])
    value_list = st.recursive(
        KQL_VALUE,
        lambda inner: st.one_of(
            st.tuples(inner, st.sampled_from([" or ", " and ", " OR "]), inner).map("".join),
            inner.map(lambda v: f"not {v}"),
            inner.map(lambda v: f"({v})"),
        ),
        max_leaves=4,
    )
    return st.one_of(
        st.tuples(KQL_FIELD, op, KQL_VALUE).map("".join),
        st.tuples(KQL_FIELD, value_list.map(lambda v: f":({v})")).map("".join),
        KQL_FIELD.map(lambda f: f"{f}:*"),
        KQL_VALUE,  # free text
    )


def kql_queries() -> st.SearchStrategy[str]:
    """KQL text built from the grammar's productions (and, or, not, groups, nested, ranges, lists)."""
    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            st.tuples(inner, st.sampled_from([" and ", " or ", " AND ", "\nor\n"]), inner).map("".join),
            st.tuples(st.sampled_from(["not ", "NOT "]), inner).map("".join),
            st.tuples(_OPT_SPACE, inner, _OPT_SPACE).map(lambda p: f"({p[0]}{p[1]}{p[2]})"),
            st.tuples(KQL_FIELD, inner).map(lambda p: f"{p[0]}:{{ {p[1]} }}"),
        )

    return st.tuples(_OPT_SPACE, st.recursive(_leaf(), extend, max_leaves=8), _OPT_SPACE).map("".join)


def json_values(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """JSON values as orjson would hand them over (ints within 64 bits, finite floats)."""
    scalars = st.one_of(
        st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=20), st.sampled_from(["", "Event", "audit.k8s.io/v1", "2026-03-01T12:00:00Z",
                                               "10.0.0.1", "system:masters", "allow", "create"]),
    )
    return st.recursive(
        scalars,
        lambda inner: st.one_of(st.lists(inner, max_size=4),
                                st.dictionaries(st.text(max_size=10), inner, max_size=4)),
        max_leaves=max_leaves,
    )
