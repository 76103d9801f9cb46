"""Recursive-descent ES|QL parser for the commands the project supports.

Precedence and shapes follow x-pack/plugin/esql/src/main/antlr/parser/Expression.g4:
``OR`` < ``AND`` < prefix ``NOT`` < predicates (``IN``, ``IS NULL``, ``LIKE``,
``RLIKE``, one non-associative comparison) < ``+ -`` < ``* / %`` < unary sign <
primary (literal, name, call, parentheses, ``::`` cast). Column naming and the
default null ordering of SORT mirror parser/ExpressionBuilder.java.
"""

from __future__ import annotations

import re
from functools import lru_cache

from dac.errors import QueryError, UnsupportedQueryError
from dac.query.esql import catalogue
from dac.query.esql import syntax as s
from dac.query.esql.lexer import Lexer, Token, shown
from dac.query.fields import FieldRef

SUPPORTED_METADATA = ("_id", "_index", "_version", "_source")
# Metadata fields ES accepts but this engine does not model (MetadataAttribute.java).
_OTHER_METADATA = frozenset({"_ignored", "_score", "_index_mode", "_tsid", "_size", "_timeseries"})
_CAST_TYPES = frozenset(("string", "keyword", "text"))  # the casts to TO_STRING
_INT_MAX, _LONG_MAX = 2**31 - 1, 2**63 - 1


@lru_cache(maxsize=128)  # bounded: the tree of a long query holds tens of KB
def parse_esql(text: str) -> s.EsqlQuery:
    """Parse ES|QL ``text``; errors carry 1-based positions inside the query.

    Memoized: the tree is immutable (frozen dataclasses, tuples), and validation, the engine's
    compiled query and its needles parse the same rule's query in one run.
    """
    lexer = Lexer(text)
    source: s.From | None = None
    commands: list[s.Command] = []
    while True:
        word = lexer.command_word()
        if source is None:
            if word.value != "from":
                raise _unknown_command(lexer, word, source_command=True)
            source = _parse_from(lexer, word)
        else:
            commands.append(_parse_processing(lexer, word))
        if lexer.ended_by == "eof":
            return s.EsqlQuery(text, source, tuple(commands))


def _unknown_command(lexer: Lexer, word: Token, source_command: bool = False) -> QueryError:
    name = word.value.upper()
    line, column = lexer.position(word.start)
    if source_command and word.value in _PROCESSING:
        return QueryError(f"ES|QL: a query must start with FROM, found {name}", line, column)
    if word.value in catalogue.commands(supported=False):
        return UnsupportedQueryError(catalogue.unsupported_command(name), line, column)
    return QueryError(f"ES|QL: syntax error: unknown command [{word.value}]", line, column)


# ---- FROM ---------------------------------------------------------------------


def _parse_from(lexer: Lexer, word: Token) -> s.From:
    toks = lexer.from_tokens()
    i = 0
    indices: list[str] = []
    metadata: list[str] = []

    def fail(tok: Token, what: str) -> QueryError:
        found = shown(lexer.text[tok.start : tok.end]) or "<EOF>"
        return lexer.error(f"syntax error: unexpected '{found}', expecting {what}", tok.start)

    while True:
        tok = toks[i]
        if tok.kind not in ("source", "string"):
            raise fail(tok, "an index pattern")
        nxt = toks[i + 1]
        if nxt.kind == "op" and nxt.value in (":", "::"):
            what = "remote cluster index patterns" if nxt.value == ":" else "index selectors (::)"
            raise UnsupportedQueryError(f"ES|QL: unsupported {what}", *lexer.position(nxt.start))
        indices.append(tok.value)
        i += 1
        if toks[i].kind == "op" and toks[i].value == ",":
            i += 1
            continue
        break
    if toks[i].kind == "keyword":
        i += 1
        while True:
            tok = toks[i]
            if tok.kind != "source":
                raise fail(tok, "a metadata field")
            if tok.value not in SUPPORTED_METADATA:
                position = lexer.position(tok.start)
                if tok.value in _OTHER_METADATA:
                    raise UnsupportedQueryError(f"ES|QL: unsupported metadata field [{tok.value}]", *position)
                raise QueryError(f"ES|QL: unsupported metadata field [{tok.value}]", *position)
            metadata.append(tok.value)
            i += 1
            if toks[i].kind == "op" and toks[i].value == ",":
                i += 1
                continue
            break
    if toks[i].kind not in ("pipe", "eof"):
        raise fail(toks[i], "',', METADATA or '|'")
    return s.From(*_where(lexer, word.start, toks[i - 1].end), tuple(indices), tuple(metadata))


def _where(lexer: Lexer, start: int, end: int) -> tuple[int, int, str]:
    line, column = lexer.position(start)
    return line, column, lexer.text[start:end]


# ---- processing commands ---------------------------------------------------


def _parse_processing(lexer: Lexer, word: Token) -> s.Command:
    parse = _PROCESSING.get(word.value)
    if parse is None:
        raise _unknown_command(lexer, word)
    return parse(lexer, word)


def _parse_where(lexer: Lexer, word: Token) -> s.Command:
    p = _ExprParser(lexer, lexer.expression_tokens())
    cond = p.boolean()
    p.finish()
    return s.Where(*_where(lexer, word.start, p.last_end), cond)


def _parse_eval(lexer: Lexer, word: Token) -> s.Command:
    p = _ExprParser(lexer, lexer.expression_tokens())
    fields = p.fields()
    p.finish()
    return s.Eval(*_where(lexer, word.start, p.last_end), tuple(fields))


def _parse_sort(lexer: Lexer, word: Token) -> s.Command:
    p = _ExprParser(lexer, lexer.expression_tokens())
    orders: list[s.Order] = []
    while True:
        start = p.peek().start
        expr = p.boolean()
        descending = False
        if p.at_keyword("asc", "desc"):
            descending = p.next().value == "desc"
        nulls_first = descending  # ExpressionBuilder.visitOrderExpression: ASC → nulls last, DESC → first
        if p.at_keyword("nulls"):
            p.next()
            tok = p.expect_keyword("first", "last")
            nulls_first = tok.value == "first"
        orders.append(s.Order(*_where(lexer, start, p.last_end), expr, descending, nulls_first))
        if not p.accept_op(","):
            break
    p.finish()
    return s.Sort(*_where(lexer, word.start, p.last_end), tuple(orders))


def _parse_limit(lexer: Lexer, word: Token) -> s.Command:
    p = _ExprParser(lexer, lexer.expression_tokens())
    tok = p.next()
    if tok.kind != "integer":
        raise p.unexpected(tok, "an integer")
    if p.at_keyword("by"):
        # LIMIT n BY ...: a per-group limit (Elasticsearch 9.4, changelog-bundles/9.4.0.yml #145225)
        where = lexer.position(p.peek().start)
        raise UnsupportedQueryError(
            "ES|QL: unsupported LIMIT ... BY (a per-group limit the local engine does not run)", *where
        )
    p.finish()
    return s.Limit(*_where(lexer, word.start, p.last_end), int(tok.value))


def _parse_stats(lexer: Lexer, word: Token) -> s.Command:
    p = _ExprParser(lexer, lexer.expression_tokens())
    aggregates: list[s.Field] = []
    groups: list[s.Field] = []
    if not p.at_keyword("by") and p.peek().kind not in ("pipe", "eof"):
        aggregates = p.fields()
    if p.at_keyword("by"):
        p.next()
        groups = p.fields()
    p.finish()
    return s.Stats(*_where(lexer, word.start, p.last_end), tuple(aggregates), tuple(groups))


def _parse_keep(lexer: Lexer, word: Token) -> s.Command:
    p = _PatternParser(lexer, lexer.pattern_tokens())
    patterns = p.pattern_list()
    p.finish()
    cls = s.Keep if word.value == "keep" else s.Drop
    return cls(*_where(lexer, word.start, p.last_end), tuple(patterns))


def _parse_rename(lexer: Lexer, word: Token) -> s.Command:
    p = _PatternParser(lexer, lexer.pattern_tokens())
    pairs: list[tuple[s.NamePattern, s.NamePattern]] = []
    while True:
        first = p.pattern()
        if p.accept("keyword", "as"):
            old, new = first, p.pattern()
        elif p.accept("op", "="):  # RENAME new = old (Rename.g4, 8.18+)
            new, old = first, p.pattern()
        else:
            raise p.unexpected(p.peek(), "AS or '='")
        for name in (old, new):
            if name.regex is not None:
                raise QueryError(
                    f"ES|QL: using wildcards [*] in RENAME is not allowed [{name.text}]",
                    name.line,
                    name.column,
                )
        pairs.append((old, new))
        if not p.accept("op", ","):
            break
    p.finish()
    return s.Rename(*_where(lexer, word.start, p.last_end), tuple(pairs))


def _parse_mv_expand(lexer: Lexer, word: Token) -> s.Command:
    p = _PatternParser(lexer, lexer.pattern_tokens())
    name = p.pattern()
    p.finish()
    if name.regex is not None:
        raise QueryError(f"ES|QL: MV_EXPAND takes a column name, found [{name.text}]", name.line, name.column)
    target = s.Attribute(name.line, name.column, name.text, name.name)
    return s.MvExpand(*_where(lexer, word.start, p.last_end), target)


_PROCESSING = {
    "where": _parse_where,
    "eval": _parse_eval,
    "sort": _parse_sort,
    "limit": _parse_limit,
    "stats": _parse_stats,
    "keep": _parse_keep,
    "drop": _parse_keep,
    "rename": _parse_rename,
    "mv_expand": _parse_mv_expand,
}


# ---- token streams ---------------------------------------------------------


class _Tokens:
    def __init__(self, lexer: Lexer, tokens: list[Token]) -> None:
        self.lexer = lexer
        self.tokens = tokens
        self.i = 0
        self.last_end = tokens[0].start
        self._last = len(tokens) - 1

    def peek(self, k: int = 0) -> Token:
        if not k:
            return self.tokens[self.i]  # next() never moves past the closing pipe or end
        at = self.i + k
        return self.tokens[at if at < self._last else self._last]

    def next(self) -> Token:
        tok = self.peek()
        if tok.kind not in ("pipe", "eof"):
            self.i += 1
            self.last_end = tok.end
        return tok

    def accept(self, kind: str, value: str) -> bool:
        tok = self.peek()
        if tok.kind == kind and tok.value == value:
            self.next()
            return True
        return False

    def accept_op(self, value: str) -> bool:
        return self.accept("op", value)

    def expect_op(self, value: str) -> Token:
        tok = self.peek()
        if tok.kind == "op" and tok.value == value:
            return self.next()
        raise self.unexpected(tok, f"'{value}'")

    def at_keyword(self, *values: str) -> bool:
        tok = self.peek()
        return tok.kind == "keyword" and tok.value in values

    def expect_keyword(self, *values: str) -> Token:
        if self.at_keyword(*values):
            return self.next()
        raise self.unexpected(self.peek(), " or ".join(v.upper() for v in values))

    def unexpected(self, tok: Token, expected: str) -> QueryError:
        found = shown(self.lexer.text[tok.start : tok.end]) if tok.kind != "eof" else "<EOF>"
        return self.lexer.error(f"syntax error: unexpected '{found}', expecting {expected}", tok.start)

    def finish(self) -> None:
        tok = self.peek()
        if tok.kind not in ("pipe", "eof"):
            raise self.unexpected(tok, "'|' or the end of the query")

    def node(self, start: int) -> tuple[int, int, str]:
        return _where(self.lexer, start, self.last_end)


class _PatternParser(_Tokens):
    """``qualifiedNamePattern``: ID_PATTERN (DOT ID_PATTERN)*, backquoted parts taken literally."""

    def pattern_list(self) -> list[s.NamePattern]:
        patterns = [self.pattern()]
        while self.accept_op(","):
            patterns.append(self.pattern())
        return patterns

    def pattern(self) -> s.NamePattern:
        start = self.peek().start
        name_parts: list[str] = []
        regex_parts: list[str] = []
        wildcard = False
        while True:
            tok = self.next()
            if tok.kind not in ("pattern", "keyword"):
                raise self.unexpected(tok, "a column name")
            for literal, star in _split_pattern(tok.value):
                name_parts.append(literal)
                regex_parts.append(re.escape(literal))
                if star:
                    wildcard = True
                    name_parts.append("*")
                    regex_parts.append(".*")
            if not self.accept_op("."):
                break
            name_parts.append(".")
            regex_parts.append(r"\.")
        name = "".join(name_parts)
        regex = re.compile("".join(regex_parts), re.DOTALL) if wildcard else None
        return s.NamePattern(*self.node(start), name, regex)


def _split_pattern(raw: str) -> list[tuple[str, bool]]:
    """Split an ID_PATTERN into (literal text, followed-by-``*``) pieces; backquotes quote literally."""
    out: list[tuple[str, bool]] = []
    buf: list[str] = []
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch == "`":
            j = i + 1
            while True:
                k = raw.index("`", j)
                buf.append(raw[j:k])
                if raw.startswith("``", k):
                    buf.append("`")
                    j = k + 2
                    continue
                i = k + 1
                break
        elif ch == "*":
            out.append(("".join(buf), True))
            buf = []
            i += 1
        else:
            buf.append(ch)
            i += 1
    out.append(("".join(buf), False))
    return out


class _ExprParser(_Tokens):
    def fields(self) -> list[s.Field]:
        out = [self.field()]
        while self.accept_op(","):
            out.append(self.field())
        return out

    def field(self) -> s.Field:
        start_tok = self.peek()
        if self._assignment_ahead():
            name = self.qualified_name()
            self.expect_op("=")
            expr = self.boolean()
            field = s.Field(*self.node(start_tok.start), name.name, expr, True)
        else:
            expr = self.boolean()
            field = s.Field(*self.node(start_tok.start), expr.text, expr, False)
        if self.at_keyword("where"):
            tok = self.peek()
            raise UnsupportedQueryError(
                "ES|QL: unsupported per-aggregation WHERE filter", *self.lexer.position(tok.start)
            )
        return field

    def _assignment_ahead(self) -> bool:
        k = 0
        while True:
            if self.peek(k).kind != "ident":
                return False
            k += 1
            tok = self.peek(k)
            if tok.kind == "op" and tok.value == ".":
                k += 1
                continue
            return tok.kind == "op" and tok.value == "="

    def qualified_name(self) -> s.Attribute:
        start = self.peek().start
        parts = [self._identifier()]
        while self.peek().kind == "op" and self.peek().value == ".":
            self.next()
            parts.append(self._identifier())
        return s.Attribute(*self.node(start), ".".join(parts))

    def _identifier(self) -> str:
        tok = self.next()
        if tok.kind != "ident":
            raise self.unexpected(tok, "an identifier")
        return tok.value

    # booleanExpression
    def boolean(self) -> s.Expr:
        start = self.peek().start
        left = self._and()
        while self.at_keyword("or"):
            self.next()
            right = self._and()
            left = s.Binary(*self.node(start), "or", left, right)
        return left

    def _and(self) -> s.Expr:
        start = self.peek().start
        left = self._not()
        while self.at_keyword("and"):
            self.next()
            right = self._not()
            left = s.Binary(*self.node(start), "and", left, right)
        return left

    def _not(self) -> s.Expr:
        start = self.peek().start
        if self.at_keyword("not"):
            self.next()
            operand = self._not()
            return s.Unary(*self.node(start), "not", operand)
        return self._predicate()

    def _predicate(self) -> s.Expr:
        start = self.peek().start
        value = self._comparison()
        negated = False
        if (
            self.at_keyword("not")
            and self.peek(1).kind == "keyword"
            and self.peek(1).value in ("in", "like", "rlike")
        ):
            self.next()
            negated = True
        if self.at_keyword("in"):
            self.next()
            self.expect_op("(")
            items = [self._comparison()]
            while self.accept_op(","):
                items.append(self._comparison())
            self.expect_op(")")
            return s.In(*self.node(start), value, tuple(items), negated)
        if self.at_keyword("like", "rlike"):
            kind = self.next().value
            patterns: list[str] = []
            if kind == "like" and self.accept_op("("):
                patterns.append(self._string())
                while self.accept_op(","):
                    patterns.append(self._string())
                self.expect_op(")")
            else:
                patterns.append(self._string())
            return s.Match(*self.node(start), value, kind, tuple(patterns), negated)
        if negated:
            raise self.unexpected(self.peek(), "IN, LIKE or RLIKE")
        if self.at_keyword("is"):
            self.next()
            is_not = False
            if self.at_keyword("not"):
                self.next()
                is_not = True
            self.expect_keyword("null")
            return s.IsNull(*self.node(start), value, is_not)
        if self.peek().kind == "op" and self.peek().value == ":":
            tok = self.peek()
            raise UnsupportedQueryError(
                "ES|QL: unsupported match operator ':'", *self.lexer.position(tok.start)
            )
        return value

    def _string(self) -> str:
        tok = self.next()
        if tok.kind != "string":
            raise self.unexpected(tok, "a string")
        return tok.value

    def _comparison(self) -> s.Expr:
        start = self.peek().start
        left = self._additive()
        tok = self.peek()
        if tok.kind == "op" and tok.value in ("==", "!=", "<", "<=", ">", ">=", "=~"):
            if tok.value == "=~":
                raise UnsupportedQueryError("ES|QL: unsupported operator =~", *self.lexer.position(tok.start))
            self.next()
            right = self._additive()
            return s.Binary(*self.node(start), tok.value, left, right)
        return left

    def _additive(self) -> s.Expr:
        start = self.peek().start
        left = self._multiplicative()
        while self.peek().kind == "op" and self.peek().value in ("+", "-"):
            op = self.next().value
            right = self._multiplicative()
            left = s.Binary(*self.node(start), op, left, right)
        return left

    def _multiplicative(self) -> s.Expr:
        start = self.peek().start
        left = self._unary()
        while self.peek().kind == "op" and self.peek().value in ("*", "/", "%"):
            op = self.next().value
            right = self._unary()
            left = s.Binary(*self.node(start), op, left, right)
        return left

    def _unary(self) -> s.Expr:
        start = self.peek().start
        tok = self.peek()
        if tok.kind == "op" and tok.value in ("+", "-"):
            self.next()
            operand = self._unary()
            if tok.value == "+":
                return operand
            if isinstance(operand, s.Literal) and operand.type in ("integer", "long", "double"):
                return _number_literal(self.node(start), -operand.value, operand.type == "double")
            return s.Unary(*self.node(start), "-", operand)
        return self._primary()

    def _primary(self) -> s.Expr:
        start = self.peek().start
        expr = self._atom()
        while self.peek().kind == "op" and self.peek().value == "::":
            self.next()
            tok = self.next()
            if tok.kind != "ident":
                raise self.unexpected(tok, "a data type")
            type_name = tok.value.lower()
            if type_name not in _CAST_TYPES:
                raise UnsupportedQueryError(
                    f"ES|QL: unsupported cast to [{tok.value}]", *self.lexer.position(tok.start)
                )
            expr = s.Cast(*self.node(start), expr, type_name)
        return expr

    def _atom(self) -> s.Expr:
        tok = self.peek()
        start = tok.start
        if tok.kind == "op" and tok.value == "(":
            self.next()
            inner = self.boolean()
            self.expect_op(")")
            return inner
        if tok.kind == "op" and tok.value == "[":
            return self._array()
        if tok.kind == "op" and tok.value in ("?", "??"):
            raise UnsupportedQueryError("ES|QL: unsupported query parameters", *self.lexer.position(start))
        if tok.kind in ("string", "integer", "decimal") or (
            tok.kind == "keyword" and tok.value in ("true", "false", "null")
        ):
            return self._constant()
        if tok.kind == "ident":
            if self.peek(1).kind == "op" and self.peek(1).value == "(":
                return self._call()
            return self.qualified_name()
        raise self.unexpected(tok, "an expression")

    def _constant(self) -> s.Literal:
        tok = self.next()
        where = self.node(tok.start)
        if tok.kind == "string":
            return s.Literal(*where, tok.value, "keyword")
        if tok.kind == "keyword":
            if tok.value == "null":
                return s.Literal(*where, None, "null")
            return s.Literal(*where, tok.value == "true", "boolean")
        if tok.kind == "integer" and self.peek().kind == "ident" and not self.peek().quoted:
            raise UnsupportedQueryError(
                "ES|QL: unsupported time span literals", *self.lexer.position(tok.start)
            )
        if tok.kind == "decimal":
            return _number_literal(where, float(tok.value), True)
        return _number_literal(where, int(tok.value), False)

    def _array(self) -> s.Literal:
        start = self.next().start
        items: list[s.Literal] = []
        while True:
            item_start = self.peek().start
            negative = self.accept_op("-")
            if not negative:
                self.accept_op("+")
            item = self._constant()
            if negative:
                if item.type not in ("integer", "long", "double"):
                    raise self.unexpected(self.peek(), "a number")
                item = _number_literal(self.node(item_start), -item.value, item.type == "double")
            items.append(item)
            if not self.accept_op(","):
                break
        self.expect_op("]")
        types = {i.type for i in items}
        if "double" in types:
            types = {"double"} if types <= {"integer", "long", "double"} else types
        elif types == {"integer", "long"}:
            types = {"long"}
        if len(types) != 1 or "null" in types:
            raise QueryError("ES|QL: array literals must hold constants of one type", *self.node(start)[:2])
        (kind,) = types
        values = [float(i.value) if kind == "double" else i.value for i in items]
        return s.Literal(*self.node(start), values, kind)

    def _call(self) -> s.Call:
        start = self.peek().start
        name = self.next().value.upper()
        self.expect_op("(")
        args: list[s.Expr] = []
        if self.peek().kind == "op" and self.peek().value == "*" and self.peek(1).value == ")":
            star = self.next()
            args.append(s.Star(*self.node(star.start)))
        elif not (self.peek().kind == "op" and self.peek().value == ")"):
            args.append(self.boolean())
            while self.accept_op(","):
                if self.peek().kind == "op" and self.peek().value == "{":
                    tok = self.peek()
                    raise UnsupportedQueryError(
                        "ES|QL: unsupported function options map", *self.lexer.position(tok.start)
                    )
                args.append(self.boolean())
        self.expect_op(")")
        return s.Call(*self.node(start), name, tuple(args))


def _number_literal(where: tuple[int, int, str], value: int | float, decimal: bool) -> s.Literal:
    """ExpressionBuilder.visitIntegerValue: int when it fits, else long, else double."""
    if decimal:
        return s.Literal(*where, float(value), "double")
    if -_INT_MAX - 1 <= value <= _INT_MAX:
        return s.Literal(*where, value, "integer")
    if -_LONG_MAX - 1 <= value <= _LONG_MAX:
        return s.Literal(*where, value, "long")
    if value <= 2**64 - 1:
        raise UnsupportedQueryError("ES|QL: unsupported unsigned_long literal", where[0], where[1])
    return s.Literal(*where, float(value), "double")


# ---- fields read -----------------------------------------------------------


def referenced_fields(query: s.EsqlQuery) -> list[FieldRef]:
    """Index fields the query reads, in query order; not EVAL/RENAME/STATS columns nor metadata."""
    created: set[str] = set()
    metadata = set(query.metadata)
    refs: list[FieldRef] = []

    def read(name: str, line: int, column: int) -> None:
        if name not in created and name not in metadata:
            refs.append(FieldRef(name, line, column))

    def visit(expr: s.Expr) -> None:
        for node in s.walk(expr):
            if isinstance(node, s.Attribute):
                read(node.name, node.line, node.column)

    for cmd in query.commands:
        if isinstance(cmd, s.Where):
            visit(cmd.condition)
        elif isinstance(cmd, s.Eval):
            for f in cmd.fields:
                visit(f.expr)
                created.add(f.name)
        elif isinstance(cmd, s.Keep | s.Drop):
            for p in cmd.patterns:
                if p.regex is None:
                    read(p.name, p.line, p.column)
        elif isinstance(cmd, s.Rename):
            for old, new in cmd.pairs:
                read(old.name, old.line, old.column)
                created.add(new.name)
        elif isinstance(cmd, s.Sort):
            for order in cmd.orders:
                visit(order.expr)
        elif isinstance(cmd, s.Stats):
            for f in (*cmd.aggregates, *cmd.groups):
                visit(f.expr)
            created = {f.name for f in (*cmd.aggregates, *cmd.groups)}
            metadata = set()
        elif isinstance(cmd, s.MvExpand):
            visit(cmd.target)
    return refs
