"""ES|QL tokens, following the lexer modes of Elasticsearch's grammar.

The grammar (x-pack/plugin/esql/src/main/antlr/lexer/*.g4) switches mode per
command: FROM reads index patterns (lexer/From.g4), KEEP/DROP/RENAME read name
patterns with ``*`` (lexer/Project.g4, lexer/Rename.g4), everything else reads
expressions (lexer/Expression.g4). Keywords are case-insensitive.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from dac.errors import QueryError

# Expression-mode keywords (lexer/Expression.g4); they cannot be unquoted identifiers.
# fmt: off
KEYWORDS = frozenset((
    "and", "as", "asc", "by", "desc", "false", "first", "in", "is", "last", "like", "not", "null",
    "nulls", "on", "or", "rlike", "true", "where", "with"
))
# fmt: on
_OPERATORS = (
    "==",
    "=~",
    "!=",
    "<=",
    ">=",
    "::",
    "??",
    "<",
    ">",
    "=",
    ":",
    ",",
    ".",
    "+",
    "-",
    "*",
    "/",
    "%",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    "?",
)
_STRING_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", '"': '"', "\\": "\\"}
_SOURCE_STOP = set(':"=|,[]/ \t\r\n')

_NEWLINE = re.compile("\n")
_WHITESPACE = re.compile("[ \t\r\n]+")
_TRIVIA_STARTS = frozenset(" \t\r\n/")  # white space, or a comment's first character
_ID_BODY = re.compile("[A-Za-z0-9_]*")  # the rest of a word: ASCII letters, digits and _
_PATTERN_RUN = re.compile("[A-Za-z0-9*_]+")
_TWO_CHAR_OPERATORS = frozenset(op for op in _OPERATORS if len(op) == 2)
_ONE_CHAR_OPERATORS = frozenset(op for op in _OPERATORS if len(op) == 1)
_TRIPLE_QUOTE_END = re.compile(r'"""|[\r\n]')
_PLAIN_STRING_RUN = re.compile(r'[^"\\\r\n]+')


def _is_letter(ch: str) -> bool:
    return ("a" <= ch <= "z") or ("A" <= ch <= "Z")


@dataclass(slots=True)  # not frozen: a frozen dataclass sets each field through object.__setattr__,
class Token:  # 4x the cost of making one, and a query has hundreds (nothing changes a token)
    kind: str  # ident | keyword | string | integer | decimal | op | source | pattern | pipe | eof
    value: str  # identifier name, keyword (lower case), unquoted string, operator, …
    start: int
    end: int
    quoted: bool = False


_VISIBLE = str.maketrans({"\n": "\\n", "\r": "\\r", "\t": "\\t", "\u2028": "\\u2028", "\u2029": "\\u2029"})
SHOWN_MAX = 40  # query text quoted in an error is cut here (a string can run for kilobytes)


def shown(text: str) -> str:
    """Query text to quote in an error message: at most SHOWN_MAX characters."""
    return text if len(text) <= SHOWN_MAX else text[: SHOWN_MAX - 1] + "…"


class Lexer:
    """Reads the query text one command at a time, in the mode the command needs."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.ended_by = ""  # "pipe" or "eof": how the last command's tokens ended
        self._line_starts = [0] + [m.end() for m in _NEWLINE.finditer(text)]

    # ---- positions and errors -------------------------------------------

    def position(self, offset: int) -> tuple[int, int]:
        line = bisect.bisect_right(self._line_starts, offset)
        return line, offset - self._line_starts[line - 1] + 1

    def error(self, message: str, offset: int) -> QueryError:
        """A located error; its message stays on one line whatever query text it quotes."""
        one_line = message.translate(_VISIBLE)
        return QueryError(f"ES|QL: {one_line}", *self.position(offset))

    # ---- shared pieces ----------------------------------------------------

    def skip_trivia(self) -> None:
        """Skip whitespace and ``//`` / nested ``/* */`` comments."""
        text, n = self.text, len(self.text)
        while self.pos < n:
            ch = text[self.pos]
            if ch in " \t\r\n":
                self.pos = _WHITESPACE.match(text, self.pos).end()  # type: ignore[union-attr]
            elif ch != "/":
                return
            elif text.startswith("//", self.pos):
                end = text.find("\n", self.pos)
                self.pos = n if end < 0 else end + 1
            elif text.startswith("/*", self.pos):
                self._skip_block_comment()
            else:
                return

    def _skip_block_comment(self) -> None:
        start, depth, i = self.pos, 0, self.pos
        while i < len(self.text):
            if self.text.startswith("/*", i):
                depth += 1
                i += 2
            elif self.text.startswith("*/", i):
                depth -= 1
                i += 2
                if depth == 0:
                    self.pos = i
                    return
            else:
                i += 1
        raise self.error("unterminated comment", start)

    def command_word(self) -> Token:
        """The word that starts a command (letters, digits, ``_``)."""
        self.skip_trivia()
        start = self.pos
        self.pos = _ID_BODY.match(self.text, start).end()  # type: ignore[union-attr]
        if self.pos == start:
            found = self.text[start] if start < len(self.text) else "<EOF>"
            raise self.error(f"syntax error: expected a command, found '{found}'", start)
        return Token("ident", self.text[start : self.pos].lower(), start, self.pos)

    def _end_token(self) -> Token | None:
        if self.pos >= len(self.text):
            self.ended_by = "eof"
            return Token("eof", "", self.pos, self.pos)
        if self.text[self.pos] == "|":
            self.pos += 1
            self.ended_by = "pipe"
            return Token("pipe", "|", self.pos - 1, self.pos)
        return None

    def _string(self) -> Token:
        text, start = self.text, self.pos
        if text.startswith('"""', start):
            close = _TRIPLE_QUOTE_END.search(text, start + 3)
            if close is None or close.group() != '"""':
                raise self.error("unterminated triple-quoted string (it cannot span lines)", start)
            end = close.end()
            extra = 0
            while extra < 2 and end < len(text) and text[end] == '"':  # '"""' '"'? '"'?
                end += 1
                extra += 1
            self.pos = end
            return Token("string", text[start + 3 : end - 3], start, end)
        out: list[str] = []
        i = start + 1
        while True:
            if i >= len(text) or text[i] in "\r\n":
                raise self.error("unterminated string", start)
            run = _PLAIN_STRING_RUN.match(text, i)
            if run:  # characters that need no attention, in one step
                out.append(run.group())
                i = run.end()
                continue
            ch = text[i]
            if ch == '"':
                break
            if ch == "\\":
                nxt = text[i + 1] if i + 1 < len(text) else ""
                if nxt not in _STRING_ESCAPES:
                    raise self.error(f"invalid escape sequence '\\{nxt}' in string", i)
                out.append(_STRING_ESCAPES[nxt])
                i += 2
                continue
            out.append(ch)
            i += 1
        self.pos = i + 1
        return Token("string", "".join(out), start, self.pos)

    def _quoted_id(self) -> tuple[str, int]:
        """A backquoted identifier at ``pos``: (name, end); ```` `` ```` stands for one backquote."""
        text, start = self.text, self.pos
        out: list[str] = []
        i = start + 1
        while True:
            j = text.find("`", i)
            if j < 0:
                raise self.error("unterminated quoted identifier", start)
            out.append(text[i:j])
            if text.startswith("``", j):
                out.append("`")
                i = j + 2
                continue
            name = "".join(out)
            if not name:
                raise self.error("empty quoted identifier", start)
            return name, j + 1

    # ---- expression mode --------------------------------------------------

    def expression_tokens(self) -> list[Token]:
        """Tokens up to and including the ``|`` or end that closes the command."""
        tokens: list[Token] = []
        text, n = self.text, len(self.text)
        while True:
            if self.pos < n and text[self.pos] in _TRIVIA_STARTS:
                self.skip_trivia()
            if self.pos >= n or text[self.pos] == "|":
                tokens.append(self._end_token())  # type: ignore[arg-type]
                return tokens
            start, ch = self.pos, text[self.pos]
            if ch == '"':
                tokens.append(self._string())
            elif ch == "`":
                name, self.pos = self._quoted_id()
                tokens.append(Token("ident", name, start, self.pos, quoted=True))
            elif (ch.isdigit() and ch.isascii()) or (ch == "." and self._digit_at(start + 1)):
                tokens.append(self._number())
            elif _is_letter(ch) or ch in "_@":
                tokens.append(self._word())
            else:
                op = text[start : start + 2]  # the longest operator first, as _OPERATORS lists them
                if op not in _TWO_CHAR_OPERATORS:
                    op = ch
                    if op not in _ONE_CHAR_OPERATORS:
                        raise self.error(f"syntax error: unexpected character '{ch}'", start)
                self.pos += len(op)
                tokens.append(Token("op", op, start, self.pos))

    def _digit_at(self, i: int) -> bool:
        return i < len(self.text) and self.text[i].isascii() and self.text[i].isdigit()

    def _number(self) -> Token:
        text, start, i = self.text, self.pos, self.pos
        while self._digit_at(i):
            i += 1
        decimal = False
        if i < len(text) and text[i] == ".":
            decimal = True
            i += 1
            while self._digit_at(i):
                i += 1
        if i < len(text) and text[i] in "eE":
            j = i + 1
            if j < len(text) and text[j] in "+-":
                j += 1
            if self._digit_at(j):
                decimal = True
                i = j
                while self._digit_at(i):
                    i += 1
        self.pos = i
        return Token("decimal" if decimal else "integer", text[start:i], start, i)

    def _word(self) -> Token:
        text, start = self.text, self.pos
        i = _ID_BODY.match(text, start + 1).end()  # type: ignore[union-attr]
        word = text[start:i]
        if word[0] in "_@" and len(word) == 1:
            raise self.error(f"syntax error: unexpected character '{word}'", start)
        self.pos = i
        if word.lower() in KEYWORDS:
            return Token("keyword", word.lower(), start, i)
        return Token("ident", word, start, i)

    # ---- FROM mode --------------------------------------------------------

    def from_tokens(self) -> list[Token]:
        tokens: list[Token] = []
        text, n = self.text, len(self.text)
        while True:
            if self.pos < n and text[self.pos] in _TRIVIA_STARTS:
                self.skip_trivia()
            if self.pos >= n or text[self.pos] == "|":
                tokens.append(self._end_token())  # type: ignore[arg-type]
                return tokens
            start, ch = self.pos, text[self.pos]
            if ch == '"':
                tokens.append(self._string())
            elif text.startswith("::", start):
                self.pos += 2
                tokens.append(Token("op", "::", start, self.pos))
            elif ch in ":,=[]":
                self.pos += 1
                tokens.append(Token("op", ch, start, self.pos))
            else:
                i = start
                while i < len(text):
                    c = text[i]
                    if c == "/" and i + 1 < len(text) and text[i + 1] not in "*/":
                        i += 2
                    elif c in _SOURCE_STOP:
                        break
                    else:
                        i += 1
                if i == start:
                    raise self.error(f"syntax error: unexpected character '{ch}'", start)
                self.pos = i
                word = text[start:i]
                kind = "keyword" if word.lower() == "metadata" else "source"
                tokens.append(Token(kind, word.lower() if kind == "keyword" else word, start, i))

    # ---- KEEP / DROP / RENAME / MV_EXPAND mode -------------------------------

    def pattern_tokens(self) -> list[Token]:
        """Name patterns: a token's value keeps backquoted parts as ```…``` for the parser to split."""
        tokens: list[Token] = []
        text = self.text
        while True:
            self.skip_trivia()
            end = self._end_token()
            if end is not None:
                tokens.append(end)
                return tokens
            start, ch = self.pos, text[self.pos]
            if ch in ",.=":
                self.pos += 1
                tokens.append(Token("op", ch, start, self.pos))
                continue
            i = start
            while i < len(text):
                c = text[i]
                if c == "`":
                    self.pos = i
                    _, i = self._quoted_id()
                elif i == start and c == "@":
                    i += 1
                elif i == start and self._digit_at(i):
                    break  # a digit may not start a name
                elif run := _PATTERN_RUN.match(text, i):  # letters, digits, ``*`` and ``_``
                    i = run.end()
                else:
                    break
            if i == start:
                raise self.error(f"syntax error: unexpected character '{ch}'", start)
            self.pos = i
            word = text[start:i]
            kind = "keyword" if word.lower() == "as" else "pattern"
            tokens.append(Token(kind, word.lower() if kind == "keyword" else word, start, i))
