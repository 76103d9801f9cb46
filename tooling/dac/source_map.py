"""From a place in a rendered query back to the file the user edits.

Parsers report positions inside the query text after Jinja. A user needs the line and
column in the rule file (an inline query) or in the query template (``templates/queries``).

- **Exact** for an inline query without Jinja written as a literal block (``|``), a plain
  scalar on one line, or a quoted scalar on one line without escapes: the rendered query is
  the scalar's text stripped, so an offset maps back character for character.
- **Best effort** otherwise (Jinja in the query, folded ``>`` blocks, multi-line plain or
  quoted scalars, query templates): the rendered line around the offending token is looked
  up in the source text; a unique match gives the place, anything else gives None and the
  caller keeps the query's own position (the message always keeps ``(query line L, column C)``).
"""

from __future__ import annotations

import re

from dac.errors import Location
from dac.rules import Rule

_JINJA_SYNTAX = re.compile(r"\{[{%#]")


def in_rule(rule: Rule, rendered: str, line: int, column: int) -> Location | None:
    """Where query ``line``/``column`` (1-based, in ``rendered``) stands in the rule file."""
    value = rule.data["query"]
    start = rule.location("query")
    if start.line is None or start.column is None:
        return None
    style = rule.positions.style(("query",))
    source_lines = rule.positions.text.splitlines()
    if not _JINJA_SYNTAX.search(value):
        offset = _offset(rendered, line, column)
        if offset is not None:
            offset += len(value) - len(value.lstrip())
            value_line = value.count("\n", 0, offset)
            value_column = offset - (value.rfind("\n", 0, offset) + 1)
            if style == "|":
                return Location(start.path, start.line + value_line, start.column + value_column)
            row = source_lines[start.line - 1] if start.line <= len(source_lines) else ""
            written = row[start.column - 1 :]
            if "\n" not in value.strip() and value_line == 0:
                if style == "" and written.startswith(value):
                    return Location(start.path, start.line, start.column + value_column)
                if style in ('"', "'") and written.startswith(style + value + style):
                    return Location(start.path, start.line, start.column + 1 + value_column)
    span = value.count("\n") + 2
    return _by_text(source_lines, start.line - 1, start.line - 1 + span, rendered, line, column, start.path)


def in_template(text: str, display: str, rendered: str, line: int, column: int) -> Location | None:
    """Where query ``line``/``column`` stands in a template file's ``text`` (best effort)."""
    lines = text.splitlines()
    return _by_text(lines, 0, len(lines), rendered, line, column, display)


def _offset(text: str, line: int, column: int) -> int | None:
    lines = text.split("\n")
    if not 1 <= line <= len(lines) or column < 1:
        return None
    return sum(len(x) + 1 for x in lines[: line - 1]) + column - 1


def _by_text(
    source: list[str], first: int, last: int, rendered: str, line: int, column: int, path: str
) -> Location | None:
    """Find the rendered line's text around ``column`` in ``source[first:last]``: only a unique match."""
    rendered_lines = rendered.split("\n")
    if not 1 <= line <= len(rendered_lines):
        return None
    text = rendered_lines[line - 1]
    index = column - 1
    # The whole rendered line first (keeps the column exact), then shrinking pieces from the token on.
    candidates = [(text.strip(), index - (len(text) - len(text.lstrip())))]
    for width in (40, 20, 10):  # the token and what follows it, then what leads up to it
        piece = text[index : index + width]
        if len(piece.strip()) >= 4:
            candidates.append((piece, 0))
        begin = max(0, index - width)
        if len(text[begin:index].strip()) >= 4:
            candidates.append((text[begin : index + 1], index - begin))
    for needle, shift in candidates:
        if not needle or shift < 0:
            continue
        hits = [
            (n, found)
            for n in range(max(first, 0), min(last, len(source)))
            if (found := source[n].find(needle)) >= 0 and source[n].find(needle, found + 1) < 0
        ]
        if len(hits) == 1:
            n, found = hits[0]
            return Location(path, n + 1, found + shift + 1)
    return None
