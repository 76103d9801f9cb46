"""``JSON_EXTRACT(string_or__source, path)``, as ES|QL 9.4+ implements it.

Sources: x-pack/plugin/esql/.../scalar/string/JsonExtract.java, JsonPath.java and
JsonPathValueExtractor.java. The path is a JSONPath subset: ``a.b``, ``a[0]``,
``['a.b']`` / ``["a.b"]`` (with ``\\'``, ``\\"``, ``\\\\`` escapes), optional
``$`` root; dots always separate keys. Strings come back unquoted, numbers as
their JSON text, booleans as ``true``/``false``, objects and arrays as JSON
text, JSON ``null`` as null. A missing path, an out-of-range index or invalid
JSON give null (ES adds a warning). The input is read like a streaming parser:
the first matching key wins and nothing after the extracted value is checked.
"""

from __future__ import annotations

import json
from json.decoder import scanstring
from typing import Any

from dac.errors import QueryError

Segment = str | int  # a key, or an array index


class JsonPathError(ValueError):
    pass


def parse_path(path: str) -> list[Segment]:
    """JsonPath.parse: the segments of ``path``; an empty list selects the root."""
    if path in ("", "$", "$."):
        return []
    if path.startswith("$"):
        if path[1] == ".":
            path = path[2:]
        elif path[1] == "[":
            path = path[1:]
        else:
            raise JsonPathError("expected [.] or [[] after [$]")
    segments: list[Segment] = []
    pos = 0
    while pos < len(path):
        ch = path[pos]
        if ch == ".":
            if not segments:
                raise JsonPathError("path cannot start with a dot")
            pos += 1
            if pos >= len(path):
                raise JsonPathError("path cannot end with a dot")
            if path[pos] == ".":
                raise JsonPathError("consecutive dots")
            pos = _read_key(path, pos, segments)
        elif ch == "[":
            pos = _read_bracket(path, pos + 1, segments)
        else:
            if segments:
                raise JsonPathError(f"expected [.] or [[] before [{ch}]")
            pos = _read_key(path, pos, segments)
    return segments


def _read_key(path: str, start: int, segments: list[Segment]) -> int:
    end = start
    while end < len(path) and path[end] not in ".[]":
        end += 1
    if end == start:
        raise JsonPathError("empty key name")
    segments.append(path[start:end])
    return end


def _skip_blank(path: str, pos: int) -> int:
    while pos < len(path) and path[pos] in " \t\n\r":
        pos += 1
    return pos


def _read_bracket(path: str, pos: int, segments: list[Segment]) -> int:
    pos = _skip_blank(path, pos)
    if pos >= len(path):
        raise JsonPathError("unclosed bracket")
    quote = path[pos]
    if quote in "'\"":
        out: list[str] = []
        pos += 1
        while True:
            if pos >= len(path):
                raise JsonPathError("unterminated quoted key")
            ch = path[pos]
            if ch == "\\":
                if pos + 1 >= len(path) or path[pos + 1] not in "'\"\\":
                    raise JsonPathError("invalid escape in quoted key")
                out.append(path[pos + 1])
                pos += 2
            elif ch == quote:
                pos += 1
                break
            else:
                out.append(ch)
                pos += 1
        segments.append("".join(out))
    else:
        start = pos
        while pos < len(path) and path[pos].isascii() and path[pos].isdigit():
            pos += 1
        digits = path[start:pos]
        if not digits:
            raise JsonPathError("expected an array index or a quoted key")
        if len(digits) > 1 and digits[0] == "0":
            raise JsonPathError("leading zeros are not allowed in array indices")
        if int(digits) > 2**31 - 1:
            raise JsonPathError("array index too large")
        segments.append(int(digits))
    pos = _skip_blank(path, pos)
    if pos >= len(path) or path[pos] != "]":
        raise JsonPathError("expected []]")
    return pos + 1


def compile_path(path: str, line: int, column: int) -> list[Segment]:
    """A constant path is parsed once when the query is planned; a bad one fails the query."""
    try:
        return parse_path(path)
    except JsonPathError as exc:
        raise QueryError(f"ES|QL: invalid JSON_EXTRACT path [{path}]: {exc}", line, column) from None


# ---- extraction -------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
_WS = " \t\n\r"


def extract_from_text(text: str, segments: list[Segment]) -> str | None:
    """Navigate JSON ``text`` like a streaming parser; null when invalid or missing."""
    try:
        return _extract_text(text, segments)
    except (ValueError, IndexError):
        return None


def _ws(text: str, i: int) -> int:
    while i < len(text) and text[i] in _WS:
        i += 1
    return i


def _extract_text(text: str, segments: list[Segment]) -> str | None:
    i = _ws(text, 0)
    for segment in segments:
        opener = text[i]
        if opener == "{" and isinstance(segment, str):
            i = _find_key(text, i, segment)
        elif opener == "[" and isinstance(segment, int):
            i = _find_index(text, i, segment)
        else:
            return None
    value, end = _DECODER.raw_decode(text, i)
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return text[i:end]


def _find_key(text: str, i: int, key: str) -> int:
    i = _ws(text, i + 1)
    if text[i] == "}":
        raise ValueError("missing")
    while True:
        if text[i] != '"':
            raise ValueError("invalid")
        name, i = scanstring(text, i + 1)
        i = _ws(text, i)
        if text[i] != ":":
            raise ValueError("invalid")
        i = _ws(text, i + 1)
        if name == key:
            return i
        _, i = _DECODER.raw_decode(text, i)
        i = _ws(text, i)
        if text[i] == ",":
            i = _ws(text, i + 1)
        elif text[i] == "}":
            raise ValueError("missing")
        else:
            raise ValueError("invalid")


def _find_index(text: str, i: int, index: int) -> int:
    i = _ws(text, i + 1)
    if text[i] == "]":
        raise ValueError("missing")
    position = 0
    while True:
        if position == index:
            return i
        _, i = _DECODER.raw_decode(text, i)
        i = _ws(text, i)
        if text[i] == ",":
            i = _ws(text, i + 1)
            position += 1
        elif text[i] == "]":
            raise ValueError("missing")
        else:
            raise ValueError("invalid")


def extract_from_source(source: Any, segments: list[Segment]) -> str | None:
    """The same over an already parsed ``_source``.

    ES slices objects, arrays and numbers out of the stored source bytes; the
    parsed source has no bytes, so they are written back as compact JSON.
    """
    node = source
    for segment in segments:
        if (isinstance(segment, str) and isinstance(node, dict) and segment in node) or (
            isinstance(segment, int) and isinstance(node, list) and segment < len(node)
        ):
            node = node[segment]
        else:
            return None
    if node is None:
        return None
    if isinstance(node, str):
        return node
    if isinstance(node, bool):
        return "true" if node else "false"
    return json.dumps(node, separators=(",", ":"), ensure_ascii=False)
