"""Translate the three pattern languages ES|QL uses into Python ``re`` patterns.

* ``LIKE``: Lucene wildcards (``*``, ``?``, ``\\`` escape), validated like
  esql-core ``StringUtils.wildcardToJavaPattern`` and matched like
  ``WildcardQuery.toAutomaton``: against the whole string.
* ``RLIKE``: Lucene ``RegExp`` with ``RegExp.ALL`` (esql-core
  ``RLikePattern.java``), matched against the whole string. The parser below is
  a port of Lucene 10's ``RegExp`` recursive descent, so reserved characters,
  escapes, classes and the places where an operator character is read as a
  literal agree with it. Under ``ALL`` in Lucene 10, ``~`` is an ordinary
  character (complement needs ``DEPRECATED_COMPLEMENT``).
* ``REPLACE``: ``java.util.regex.Pattern`` plus ``Matcher.replaceAll``
  replacement syntax (``$1``, ``${name}``, ``\\`` escapes).

Constructs Python cannot express the same way raise UnsupportedQueryError;
invalid patterns raise QueryError, as ES refuses them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from dac.errors import QueryError, UnsupportedQueryError

_MAX_CODE_POINT = 0x10FFFF


def _char(cp: int) -> str:
    """A code point as a Python pattern atom (safe inside and outside classes)."""
    ch = chr(cp)
    if 0x20 <= cp < 0x7F:
        return re.escape(ch)
    return f"\\U{cp:08x}"


def _class(ranges: list[tuple[int, int]], negate: bool = False) -> str:
    body = "".join(_char(lo) if lo == hi else f"{_char(lo)}-{_char(hi)}" for lo, hi in ranges)
    return f"[{'^' if negate else ''}{body}]"


# ---- LIKE ----------------------------------------------------------------------


def like_to_python(pattern: str) -> re.Pattern[str]:
    r"""``*`` any string, ``?`` one character, ``\`` escapes ``*``, ``?`` or ``\`` only."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            nxt = pattern[i + 1] if i + 1 < len(pattern) else ""
            if nxt not in ("*", "?", "\\"):
                raise QueryError(
                    f"ES|QL: Invalid pattern for LIKE [{pattern}]: [Invalid sequence - escape "
                    "character is not followed by special wildcard char]"
                )
            out.append(re.escape(nxt))
            i += 2
            continue
        out.append(".*" if ch == "*" else "." if ch == "?" else re.escape(ch))
        i += 1
    return re.compile("".join(out), re.DOTALL)


# ---- Lucene RegExp (RLIKE) -------------------------------------------------------

_DIGIT = [(0x30, 0x39)]
_SPACE = [(0x09, 0x0A), (0x0D, 0x0D), (0x20, 0x20)]
_WORD = [(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)]


def _complement(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    low = 0
    for lo, hi in sorted(ranges):
        if lo > low:
            out.append((low, lo - 1))
        low = max(low, hi + 1)
    if low <= _MAX_CODE_POINT:
        out.append((low, _MAX_CODE_POINT))
    return out


_PREDEFINED = {
    "d": _DIGIT,
    "D": _complement(_DIGIT),
    "s": _SPACE,
    "S": _complement(_SPACE),
    "w": _WORD,
    "W": _complement(_WORD),
}
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


@lru_cache(maxsize=256)
def lucene_to_python(pattern: str) -> re.Pattern[str]:
    """Compile a Lucene RegExp (RLIKE pattern) for ``fullmatch``.

    Cached: validation and the local engine compile the same rule's patterns, and a rule's
    pattern may run to thousands of characters (the CSR subject rules' DER encodings).
    """
    try:
        python = _LuceneParser(pattern).parse()
    except _RegexSyntaxError as exc:
        raise QueryError(f"ES|QL: invalid RLIKE pattern [{pattern}]: {exc}") from None
    return re.compile(python, re.DOTALL)


class _RegexSyntaxError(Exception):
    pass


class _LuceneParser:
    """Port of org.apache.lucene.util.automaton.RegExp's parser (Lucene 10), emitting Python syntax."""

    def __init__(self, pattern: str) -> None:
        self.s = pattern
        self.pos = 0

    def parse(self) -> str:
        if not self.s:
            return ""
        e = self.union()
        if self.pos < len(self.s):
            raise _RegexSyntaxError(f"end-of-string expected at position {self.pos}")
        return e

    def more(self) -> bool:
        return self.pos < len(self.s)

    def peek(self, chars: str) -> bool:
        return self.more() and self.s[self.pos] in chars

    def match(self, ch: str) -> bool:
        if self.more() and self.s[self.pos] == ch:
            self.pos += 1
            return True
        return False

    def next(self) -> str:
        if not self.more():
            raise _RegexSyntaxError("unexpected end-of-string")
        ch = self.s[self.pos]
        self.pos += 1
        return ch

    def union(self) -> str:
        alternatives = [self.inter()]
        while self.match("|"):
            alternatives.append(self.inter())
        return alternatives[0] if len(alternatives) == 1 else "(?:" + "|".join(alternatives) + ")"

    def inter(self) -> str:
        e = self.concat()
        if self.peek("&"):
            raise UnsupportedQueryError("ES|QL: unsupported RLIKE operator '&' (intersection)")
        return e

    def concat(self) -> str:
        parts = [self.repeat()]
        while self.more() and not self.peek(")|&"):
            parts.append(self.repeat())
        return "".join(parts)

    def repeat(self) -> str:
        e = self.char_class_exp()
        while self.peek("?*+{"):
            if self.match("?"):
                e = f"(?:{e})?"
            elif self.match("*"):
                e = f"(?:{e})*"
            elif self.match("+"):
                e = f"(?:{e})+"
            elif self.match("{"):
                n = self._integer()
                m: int | None = n
                if self.match(","):
                    m = self._integer(optional=True)
                if not self.match("}"):
                    raise _RegexSyntaxError(f"expected '}}' at position {self.pos}")
                if m is not None and n > m:
                    raise _RegexSyntaxError(f"invalid repetition range(out of order): {n}..{m}")
                e = f"(?:{e}){{{n},{'' if m is None else m}}}"
        return e

    def _integer(self, optional: bool = False) -> int | None:
        start = self.pos
        while self.peek("0123456789"):
            self.pos += 1
        if start == self.pos:
            if optional:
                return None
            raise _RegexSyntaxError(f"integer expected at position {self.pos}")
        return int(self.s[start : self.pos])

    def char_class_exp(self) -> str:
        if self.match("["):
            negate = self.match("^")
            ranges = self.char_classes()
            if not self.match("]"):
                raise _RegexSyntaxError(f"expected ']' at position {self.pos}")
            return _class(ranges, negate)
        return self.simple()

    def char_classes(self) -> list[tuple[int, int]]:
        ranges: list[tuple[int, int]] = []
        while True:
            if self.match("\\"):
                if self.peek("\\" + _LETTERS):
                    ranges.extend(self._predefined())
                else:
                    c = ord(self.next())
                    ranges.append((c, c))
            else:
                c = self.char_exp()
                if self.match("-"):
                    end = self.char_exp()
                    if c > end:
                        raise _RegexSyntaxError(f"invalid range: from ({c}) cannot be > to ({end})")
                    ranges.append((c, end))
                else:
                    ranges.append((c, c))
            if not (self.more() and not self.peek("]")):
                return ranges

    def _predefined(self) -> list[tuple[int, int]]:
        ch = self.next()
        if ch == "\\":
            return [(0x5C, 0x5C)]
        if ch in _PREDEFINED:
            return _PREDEFINED[ch]
        raise _RegexSyntaxError(f"invalid character class \\{ch}")

    def simple(self) -> str:
        if self.match("."):
            return "."
        if self.match("#"):
            return "(?!)"  # the empty language
        if self.match("@"):
            return ".*"  # any string
        if self.match('"'):
            start = self.pos
            while self.more() and not self.peek('"'):
                self.pos += 1
            if not self.match('"'):
                raise _RegexSyntaxError(f"expected '\"' at position {self.pos}")
            return "(?:" + "".join(_char(ord(c)) for c in self.s[start : self.pos - 1]) + ")"
        if self.match("("):
            if self.match(")"):
                return "(?:)"
            e = self.union()
            if not self.match(")"):
                raise _RegexSyntaxError(f"expected ')' at position {self.pos}")
            return f"(?:{e})"
        if self.peek("<"):
            raise UnsupportedQueryError(
                "ES|QL: unsupported RLIKE operator '<…>' (numeric interval or named automaton)"
            )
        if self.match("\\"):
            if self.peek("\\" + _LETTERS):
                return _class(self._predefined())
            return _char(ord(self.next()))
        return _char(ord(self.next()))

    def char_exp(self) -> int:
        self.match("\\")
        return ord(self.next())


# ---- Java regex (REPLACE) -------------------------------------------------------

_JAVA_SPACE = [(0x20, 0x20), (0x09, 0x0D)]  # [ \t\n\x0B\f\r]
_JAVA_PREDEFINED = {
    "d": _DIGIT,
    "D": _complement(_DIGIT),
    "s": _JAVA_SPACE,
    "S": _complement(_JAVA_SPACE),
    "w": _WORD,
    "W": _complement(_WORD),
}
_JAVA_CHAR_ESCAPES = {"t": 0x09, "n": 0x0A, "r": 0x0D, "f": 0x0C, "a": 0x07, "e": 0x1B}
# java.util.regex line terminators: '.' stops at them and '$' may sit before a final one.
_NOT_TERMINATOR = "[^\\n\\r\\u0085\\u2028\\u2029]"
_DOLLAR = "(?:(?=(?:\\r\\n|[\\n\\r\\u0085\\u2028\\u2029])?\\Z)(?!(?<=\\r)\\n))"


@dataclass(frozen=True)
class JavaRegex:
    """A translated java.util.regex pattern and what ``Matcher.replaceAll`` needs to know of it."""

    source: str
    compiled: re.Pattern[str]
    group_count: int
    group_names: frozenset[str]


class _JavaGroup:
    def __init__(self, dotall: bool, ignore_case: bool) -> None:
        self.dotall = dotall
        self.ignore_case = ignore_case
        self.wrappers: list[str] = []  # inline flag scopes opened in this group: "(?i:" …


def java_regex(pattern: str) -> JavaRegex:
    """Translate and compile a Java regular expression; errors say what ES would refuse."""
    translator = _JavaTranslator(pattern)
    try:
        python = translator.translate()
        flags = 0 if translator.unicode_case else re.ASCII
        compiled = re.compile(python, flags)
    except _RegexSyntaxError as exc:
        raise QueryError(f"ES|QL: invalid regular expression [{pattern}]: {exc}") from None
    except re.error as exc:
        raise UnsupportedQueryError(f"ES|QL: unsupported regular expression [{pattern}]: {exc}") from None
    return JavaRegex(pattern, compiled, translator.groups, frozenset(translator.names))


class _JavaTranslator:
    def __init__(self, pattern: str) -> None:
        self.s = pattern
        self.pos = 0
        self.groups = 0
        self.names: list[str] = []
        self.unicode_case = False
        self.stack = [_JavaGroup(dotall=False, ignore_case=False)]
        self.out: list[str] = []
        self.ready = False  # whether a quantifier has something to repeat

    def unsupported(self, what: str) -> UnsupportedQueryError:
        return UnsupportedQueryError(f"ES|QL: unsupported regular expression construct {what} in [{self.s}]")

    def translate(self) -> str:
        s = self.s
        while self.pos < len(s):
            ch = s[self.pos]
            self.pos += 1
            ready = True
            if ch == "\\":
                self.out.append(self._escape())
            elif ch == ".":
                self.out.append("(?s:.)" if self.stack[-1].dotall else _NOT_TERMINATOR)
            elif ch == "$":
                self.out.append(_DOLLAR)
            elif ch == "^":
                self.out.append("^")
            elif ch == "[":
                self.out.append(_class(*self._class()))
            elif ch == "(":
                self._open_group()
                ready = False
            elif ch == ")":
                if len(self.stack) == 1:
                    raise _RegexSyntaxError(f"Unmatched closing ')' near index {self.pos - 1}")
                group = self.stack.pop()
                self.out.append(")" * len(group.wrappers) + ")")
            elif ch == "|":
                group = self.stack[-1]
                self.out.append(")" * len(group.wrappers) + "|" + "".join(group.wrappers))
                ready = False
            elif ch in "*+?{":
                if not self.ready:
                    raise _RegexSyntaxError(f"Dangling meta character '{ch}' near index {self.pos - 1}")
                if ch == "{":
                    m = re.compile(r"(\d+)(,(\d*))?\}").match(s, self.pos)
                    if m is None:
                        raise _RegexSyntaxError(f"Illegal repetition near index {self.pos - 1}")
                    self.out.append("{" + m.group(0))
                    self.pos = m.end()
                else:
                    self.out.append(ch)
                if self.pos < len(s) and s[self.pos] in "?+":  # lazy or possessive
                    self.out.append(s[self.pos])
                    self.pos += 1
            else:
                self.out.append(_char(ord(ch)))
            self.ready = ready
        if len(self.stack) != 1:
            raise _RegexSyntaxError("Unclosed group")
        return "".join(self.out) + ")" * len(self.stack[0].wrappers)

    def _open_group(self) -> None:
        s, outer = self.s, self.stack[-1]
        if not s.startswith("?", self.pos):
            self.groups += 1
            self.stack.append(_JavaGroup(outer.dotall, outer.ignore_case))
            self.out.append("(")
            return
        self.pos += 1
        for prefix, python in (
            ("<=", "(?<="),
            ("<!", "(?<!"),
            (":", "(?:"),
            ("=", "(?="),
            ("!", "(?!"),
            (">", "(?>"),
        ):
            if s.startswith(prefix, self.pos):
                self.pos += len(prefix)
                self.stack.append(_JavaGroup(outer.dotall, outer.ignore_case))
                self.out.append(python)
                return
        named = re.compile(r"<([A-Za-z][A-Za-z0-9]*)>").match(s, self.pos)
        if named:
            self.pos = named.end()
            self.groups += 1
            self.names.append(named.group(1))
            self.stack.append(_JavaGroup(outer.dotall, outer.ignore_case))
            self.out.append(f"(?P<{named.group(1)}>")
            return
        flags = re.compile(r"([a-zA-Z]*)(?:-([a-zA-Z]*))?([:)])").match(s, self.pos)
        if flags is None:
            raise _RegexSyntaxError(f"Unknown inline modifier near index {self.pos}")
        self.pos = flags.end()
        on, off = flags.group(1), flags.group(2) or ""
        if set(on + off) - set("isu"):
            raise self.unsupported(f"(?{on}{'-' + off if off else ''})")
        self.unicode_case = self.unicode_case or "u" in on
        scoped = flags.group(3) == ":"
        group = _JavaGroup(outer.dotall, outer.ignore_case) if scoped else outer
        if "s" in on or "s" in off:
            group.dotall = "s" in on
        wrapper = ""
        if "i" in on or "i" in off:
            group.ignore_case = "i" in on
            wrapper = "(?i:" if group.ignore_case else "(?-i:"
        if scoped:  # the group's own ')' closes the flag scope
            self.stack.append(group)
            self.out.append(wrapper or "(?:")
        elif wrapper:
            group.wrappers.append(wrapper)
            self.out.append(wrapper)

    def _escape(self) -> str:
        s = self.s
        if self.pos >= len(s):
            raise _RegexSyntaxError("Unexpected internal error (trailing backslash)")
        ch = s[self.pos]
        self.pos += 1
        if ch in _JAVA_PREDEFINED:
            return _class(_JAVA_PREDEFINED[ch])
        if ch == "Q":
            end = s.find("\\E", self.pos)
            end = len(s) if end < 0 else end
            text = s[self.pos : end]
            self.pos = min(len(s), end + 2)
            return "(?:" + "".join(_char(ord(c)) for c in text) + ")" if text else "(?:)"
        if ch == "A":
            return "\\A"
        if ch == "z":
            return "\\Z"
        if ch.isdigit() and ch != "0":
            ref = int(ch)
            while self.pos < len(s) and s[self.pos].isdigit() and ref * 10 + int(s[self.pos]) <= self.groups:
                ref = ref * 10 + int(s[self.pos])
                self.pos += 1
            return f"(?:\\{ref})" if ref <= self.groups else "(?!)"
        if ch == "k":
            m = re.compile(r"<([A-Za-z][A-Za-z0-9]*)>").match(s, self.pos)
            if m is None:
                raise _RegexSyntaxError("\\k is not followed by '<' for named capturing group")
            self.pos = m.end()
            return f"(?P={m.group(1)})"
        cp = self._char_escape(ch)
        if cp is not None:
            return _char(cp)
        if (ch.isalpha() and ch.isascii()) or ch.isdigit():
            if ch in "bBGZpPhHvVRXN":
                raise self.unsupported(f"\\{ch}")
            raise _RegexSyntaxError(f"Illegal/unsupported escape sequence near index {self.pos - 1}")
        return _char(ord(ch))

    def _char_escape(self, ch: str) -> int | None:
        """Escapes that stand for one character: \\t \\n … \\0oo \\xhh \\x{h…} \\uhhhh \\cX."""
        s = self.s
        if ch in _JAVA_CHAR_ESCAPES:
            return _JAVA_CHAR_ESCAPES[ch]
        if ch == "0":
            m = re.compile(r"[0-3][0-7]{2}|[0-7]{1,2}").match(s, self.pos)
            if m is None:
                raise _RegexSyntaxError("Illegal octal escape sequence")
            self.pos = m.end()
            return int(m.group(0), 8)
        if ch == "x":
            m = re.compile(r"\{([0-9a-fA-F]+)\}|([0-9a-fA-F]{2})").match(s, self.pos)
            if m is None:
                raise _RegexSyntaxError("Illegal hexadecimal escape sequence")
            self.pos = m.end()
            value = int(m.group(1) or m.group(2), 16)
            if value > _MAX_CODE_POINT:
                raise _RegexSyntaxError("Hexadecimal codepoint is too big")
            return value
        if ch == "u":
            m = re.compile(r"[0-9a-fA-F]{4}").match(s, self.pos)
            if m is None:
                raise _RegexSyntaxError("Illegal Unicode escape sequence")
            self.pos = m.end()
            value = int(m.group(0), 16)
            if 0xD800 <= value <= 0xDFFF:
                raise self.unsupported("\\u escape of a surrogate")
            return value
        if ch == "c":
            if self.pos >= len(s):
                raise _RegexSyntaxError("Illegal control escape sequence")
            self.pos += 1
            return ord(s[self.pos - 1]) ^ 64
        return None

    def _class(self) -> tuple[list[tuple[int, int]], bool]:
        s = self.s
        negate = False
        if s.startswith("^", self.pos):
            negate = True
            self.pos += 1
        ranges: list[tuple[int, int]] = []
        first = True
        while True:
            if self.pos >= len(s):
                raise _RegexSyntaxError("Unclosed character class")
            ch = s[self.pos]
            if ch == "]" and not first:
                self.pos += 1
                return ranges, negate
            if ch == "[" or ch == "]" or s.startswith("&&", self.pos):
                raise self.unsupported("nested or intersected character classes")
            first = False
            self.pos += 1
            lo = self._class_atom(ch, ranges)
            if lo is None:
                continue
            if s.startswith("-", self.pos) and self.pos + 1 < len(s) and s[self.pos + 1] != "]":
                self.pos += 1
                nxt = s[self.pos]
                self.pos += 1
                hi = self._class_atom(nxt, None)
                if hi is None:
                    raise _RegexSyntaxError("Illegal character range")
                if hi < lo:
                    raise _RegexSyntaxError("Illegal character range")
                ranges.append((lo, hi))
            else:
                ranges.append((lo, lo))

    def _class_atom(self, ch: str, ranges: list[tuple[int, int]] | None) -> int | None:
        """One class member: a code point, or None when it added a predefined class to ``ranges``."""
        if ch != "\\":
            return ord(ch)
        if self.pos >= len(self.s):
            raise _RegexSyntaxError("Unclosed character class")
        esc = self.s[self.pos]
        self.pos += 1
        if esc in _JAVA_PREDEFINED and ranges is not None:
            ranges.extend(_JAVA_PREDEFINED[esc])
            return None
        cp = self._char_escape(esc)
        if cp is not None:
            return cp
        if esc.isascii() and esc.isalnum():
            if esc in "pPhHvVQ":
                raise self.unsupported(f"\\{esc} in a character class")
            raise _RegexSyntaxError(f"Illegal/unsupported escape sequence near index {self.pos - 1}")
        return ord(esc)


def java_replacement(regex: JavaRegex, replacement: str) -> Callable[[re.Match[str]], str] | str:
    """What ``re.sub`` takes to do what ``Matcher.appendReplacement`` does with ``replacement``:
    a callback, or for a replacement without group references its text as a ``re`` template
    (``re.sub`` inserts a template without calling back into Python for every match).

    Java fails the call (and ES the query) on a malformed replacement only when
    a match happens; the callback raises QueryError at that point.
    """
    parts: list[str | int] = []
    error: str | None = None
    i = 0
    while i < len(replacement) and error is None:
        ch = replacement[i]
        if ch == "\\":
            if i + 1 >= len(replacement):
                error = "character to be escaped is missing"
                break
            parts.append(replacement[i + 1])
            i += 2
        elif ch == "$":
            i += 1
            if i >= len(replacement):
                error = "Illegal group reference: group index is missing"
            elif replacement[i] == "{":
                m = re.compile(r"\{([A-Za-z0-9]*)").match(replacement, i)
                assert m is not None
                name, i = m.group(1), m.end()
                if not name:
                    error = "named capturing group has 0 length name"
                elif not replacement.startswith("}", i):
                    error = "named capturing group is missing trailing '}'"
                elif name[0].isdigit():
                    error = f"capturing group name {{{name}}} starts with digit character"
                elif name not in regex.group_names:
                    error = f"No group with name {{{name}}}"
                else:
                    parts.append(regex.compiled.groupindex[name])
                    i += 1
            elif "0" <= replacement[i] <= "9":
                ref = int(replacement[i])
                i += 1
                while i < len(replacement) and "0" <= replacement[i] <= "9":
                    if ref * 10 + int(replacement[i]) > regex.group_count:
                        break
                    ref = ref * 10 + int(replacement[i])
                    i += 1
                if ref > regex.group_count:
                    error = f"No group {ref}"
                parts.append(ref)
            else:
                error = "Illegal group reference"
        else:
            parts.append(ch)
            i += 1

    if error is None and all(isinstance(part, str) for part in parts):
        return "".join(parts).replace("\\", "\\\\")  # type: ignore[arg-type]  # re's template escape

    def expand(match: re.Match[str]) -> str:
        if error is not None:
            raise QueryError(f"ES|QL: REPLACE failed: {error} in replacement [{replacement}]")
        return "".join(p if isinstance(p, str) else (match.group(p) or "") for p in parts)

    return expand
