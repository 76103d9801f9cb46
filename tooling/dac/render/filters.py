"""Jinja filters that write query syntax, so templates never hand-escape a value."""

from __future__ import annotations

import json
import re

from dac.render.der_base64 import subject_attribute_pattern

# Kibana's KQL grammar (kbn-es-query kuery/grammar): characters with a meaning in an unquoted value.
_KQL_SPECIAL = re.compile(r'([\\():<>"*{}])')


def kql_value(value: str) -> str:
    """A KQL value: quoted (exact) unless it holds ``*``, then an unquoted wildcard pattern."""
    if "*" not in value:
        return json.dumps(value, ensure_ascii=False)  # a KQL quoted string escapes \ and " like JSON
    if any(ch.isspace() for ch in value):
        raise ValueError(f"a KQL wildcard value cannot contain white space: {value!r}")
    return "*".join(_KQL_SPECIAL.sub(r"\\\1", part) for part in value.split("*"))


def kql_any(values: list[str]) -> str:
    """``(a or b or c)`` for a KQL value list."""
    return "(" + " or ".join(kql_value(v) for v in values) + ")"


_ESQL_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def esql_string(value: str) -> str:
    """An ES|QL quoted string (its lexer knows the escapes \\t \\n \\r \\" \\\\ and no others)."""
    if any(ord(ch) < 0x20 and ch not in "\n\r\t" for ch in value):
        raise ValueError(f"an ES|QL string cannot hold control characters: {value!r}")
    return '"' + "".join(_ESQL_ESCAPES.get(ch, ch) for ch in value) + '"'


FILTERS = {
    "kql_value": kql_value,
    "kql_any": kql_any,
    "esql_string": esql_string,
    "subject_attribute_pattern": subject_attribute_pattern,
}
