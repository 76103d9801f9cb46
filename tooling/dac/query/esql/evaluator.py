"""Run a parsed ES|QL query over source documents, in process, with Elasticsearch's semantics.

The query is compiled once: every expression becomes a closure over a row and
every command a generator stage, so rows stream lazily and a column is read
from ``_source`` only when something asks for it. A row is a dict from column
slot to value; slot 0 holds the SourceDocument. Semantics are cited per piece;
the command rules follow the ES|QL command reference (KEEP precedence, EVAL
replacing a column by appending it, SORT defaults, STATS output order, the
implicit ``LIMIT 1000``).
"""

from __future__ import annotations

import functools
import ipaddress
import itertools
import math
import operator
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from dac.documents import SourceDocument
from dac.errors import QueryError, UnsupportedQueryError
from dac.mapping import IndexMapping
from dac.query.esql import catalogue, regex
from dac.query.esql import syntax as s
from dac.query.esql.functions import AGGREGATES, Compiled, Row, build_call, constant, fold
from dac.query.esql.values import (
    NUMERIC_TYPES,
    STRING_TYPES,
    esql_type,
    field_loader,
    output,
    parse_datetime,
)

DEFAULT_LIMIT = 1000  # esql.query.result_truncation_default_size
MAX_LIMIT = 10000  # esql.query.result_truncation_max_size
_DOC = 0
_MISSING = object()
_BOUNDS = {"integer": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}

Stage = Callable[[Iterator[Row]], Iterator[Row]]
_PER_DOCUMENT = (s.Where, s.Eval, s.Keep, s.Drop, s.Rename)


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    get: Callable[[Row], Any]


class EsqlProgram:
    """A compiled query: ``run(documents)`` gives the result rows (column name -> value)."""

    def __init__(
        self,
        stages: list[Stage],
        columns: list[Column],
        row_stages: list[Stage] | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> None:
        self._stages = stages
        self._columns = columns
        # Set when every row comes from one document on its own (WHERE, EVAL, KEEP, DROP, RENAME,
        # then LIMITs): the stages without the LIMITs, so documents can be fed in any batches.
        self.row_stages = row_stages
        self.limit = limit
        self.columns = [c.name for c in columns]
        self.column_types = {c.name: c.type for c in columns}

    def rows(self, documents: Iterable[SourceDocument]) -> Iterator[dict[str, Any]]:
        """The result rows, produced lazily."""
        rows: Iterator[Row] = ({_DOC: doc} for doc in documents)
        for stage in self._stages:
            rows = stage(rows)
        columns = [(c.name, c.get, c.type) for c in self._columns]
        for row in rows:
            yield {name: output(get(row), kind) for name, get, kind in columns}

    def run(self, documents: Iterable[SourceDocument]) -> list[dict[str, Any]]:
        return list(self.rows(documents))

    def document_rows(self, documents: Iterable[SourceDocument]) -> Iterator[dict[str, Any]]:
        """Rows of a per-document query (``row_stages`` set), with no LIMIT applied."""
        if self.row_stages is None:
            raise UnsupportedQueryError("ES|QL: this query's rows do not each come from one document")
        rows: Iterator[Row] = ({_DOC: doc} for doc in documents)
        for stage in self.row_stages:
            rows = stage(rows)
        columns = [(c.name, c.get, c.type) for c in self._columns]
        for row in rows:
            yield {name: output(get(row), kind) for name, get, kind in columns}


def compile_esql(query: s.EsqlQuery, mapping: IndexMapping) -> EsqlProgram:
    """Resolve columns against ``mapping`` and compile every command; unknown columns are errors."""
    return _Compiler(query, mapping).compile()


class _Compiler:
    def __init__(self, query: s.EsqlQuery, mapping: IndexMapping) -> None:
        self.query = query
        self.mapping = mapping
        self.schema: dict[str, Column] = {}
        self.next_slot = 1

    def slot(self) -> int:
        self.next_slot += 1
        return self.next_slot - 1

    def compile(self) -> EsqlProgram:
        self._source_columns()
        stages: list[Stage] = []
        row_stages: list[Stage] | None = []
        limits: list[int] = []
        for command in self.query.commands:
            stage = self._command(command)
            if isinstance(command, s.Limit):
                limits.append(min(command.count, MAX_LIMIT))
            elif limits or not isinstance(command, _PER_DOCUMENT):
                row_stages = None  # a LIMIT before more commands, or rows built from many documents
            if stage is not None:
                stages.append(stage)
                if row_stages is not None and not isinstance(command, s.Limit):
                    row_stages.append(stage)
        if not self.query.commands or not isinstance(self.query.commands[-1], s.Limit):
            stages.append(_limit_stage(DEFAULT_LIMIT))
        return EsqlProgram(stages, list(self.schema.values()), row_stages, min(limits, default=DEFAULT_LIMIT))

    # ---- columns -------------------------------------------------------------

    def _source_columns(self) -> None:
        """Every mapped leaf field (sorted by name), then the METADATA columns in query order."""
        fields = self.mapping.fields
        for name in sorted(fields):
            spec = fields[name]
            parent = name.rpartition(".")[0]
            source_path = parent if parent in fields else name  # a multi-field reads its parent's values
            loader = functools.partial(field_loader, spec, source_path)
            self.schema[name] = Column(name, esql_type(spec.type), _cached(self.slot(), loader))
        for name in self.query.metadata:
            self.schema[name] = _metadata_column(name)

    def _computed(self, name: str, kind: str, slot: int) -> Column:
        return Column(name, kind, operator.itemgetter(slot))

    def _resolve(self, name: str, line: int, column: int) -> Column:
        found = self.schema.get(name)
        if found is None:
            raise QueryError(f"ES|QL: Unknown column [{name}]", line, column)
        return found

    # ---- commands --------------------------------------------------------------

    def _command(self, command: s.Command) -> Stage | None:
        if isinstance(command, s.Where):
            return self._where(command)
        if isinstance(command, s.Eval):
            return self._eval(command)
        if isinstance(command, s.Keep):
            self._keep(command)
            return None
        if isinstance(command, s.Drop):
            self._drop(command)
            return None
        if isinstance(command, s.Rename):
            self._rename(command)
            return None
        if isinstance(command, s.Sort):
            return self._sort(command)
        if isinstance(command, s.Limit):
            return _limit_stage(min(command.count, MAX_LIMIT))
        if isinstance(command, s.Stats):
            return self._stats(command)
        if isinstance(command, s.MvExpand):
            return self._mv_expand(command)
        raise UnsupportedQueryError(
            f"ES|QL: unsupported command {command.text.split()[0].upper()}", command.line, command.column
        )

    def _where(self, command: s.Where) -> Stage:
        condition = self.expr(command.condition)
        _expect_boolean(condition, command.condition)
        test = condition.fn

        def where(rows: Iterator[Row]) -> Iterator[Row]:
            return (row for row in rows if test(row) is True)  # null drops the row

        return where

    def _eval(self, command: s.Eval) -> Stage:
        assignments: list[tuple[int, Callable[[Row], Any]]] = []
        for field in command.fields:
            compiled = self.expr(field.expr)
            _expect_value(compiled, field.expr)
            slot = self.slot()
            assignments.append((slot, compiled.fn))
            self.schema.pop(field.name, None)  # an existing column is dropped and the new one appended
            self.schema[field.name] = self._computed(field.name, compiled.type, slot)

        def evaluate(rows: Iterator[Row]) -> Iterator[Row]:
            for row in rows:
                for slot, fn in assignments:
                    row[slot] = fn(row)
                yield row

        return evaluate

    def _matches(self, pattern: s.NamePattern) -> list[str]:
        if pattern.regex is None:
            self._resolve(pattern.name, pattern.line, pattern.column)
            return [pattern.name]
        found = [name for name in self.schema if pattern.regex.fullmatch(name)]
        if not found:
            raise QueryError(
                f"ES|QL: No matches found for pattern [{pattern.name}]", pattern.line, pattern.column
            )
        return found

    def _keep(self, command: s.Keep) -> None:
        # A column goes where its most specific pattern puts it (exact name > wildcard > "*");
        # on a tie the later pattern wins.
        winner: dict[str, tuple[int, int]] = {}
        for position, pattern in enumerate(command.patterns):
            rank = 2 if pattern.regex is None else 0 if pattern.name == "*" else 1
            for name in self._matches(pattern):
                if name not in winner or rank >= winner[name][0]:
                    winner[name] = (rank, position)
        order = list(self.schema)
        kept = sorted(winner, key=lambda name: (winner[name][1], order.index(name)))
        self.schema = {name: self.schema[name] for name in kept}

    def _drop(self, command: s.Drop) -> None:
        for pattern in command.patterns:
            for name in self._matches(pattern):
                self.schema.pop(name, None)

    def _rename(self, command: s.Rename) -> None:
        for old, new in command.pairs:
            column = self._resolve(old.name, old.line, old.column)
            renamed: dict[str, Column] = {}
            for name, existing in self.schema.items():
                if name == old.name:
                    renamed[new.name] = Column(new.name, column.type, column.get)
                elif name != new.name:
                    renamed[name] = existing
            self.schema = renamed

    def _sort(self, command: s.Sort) -> Stage:
        keys: list[tuple[Callable[[Row], Any], bool, bool]] = []
        for order in command.orders:
            compiled = self.expr(order.expr)
            _expect_value(compiled, order.expr)
            if compiled.type in ("source", "unsupported"):
                raise QueryError(
                    f"ES|QL: cannot sort on [{order.expr.text}] of type [{compiled.type}]",
                    order.line,
                    order.column,
                )
            keys.append((compiled.fn, order.descending, order.nulls_first))

        def sort(rows: Iterator[Row]) -> Iterator[Row]:
            ordered = list(rows)
            for fn, descending, nulls_first in reversed(keys):  # stable sorts, last key first
                values = [(fn(row), row) for row in ordered]
                present = [(v, row) for v, row in values if v is not None]
                absent = [row for v, row in values if v is None]
                # A multi-value sorts by its smallest value ascending, its largest descending.
                present.sort(key=lambda item: _sort_key(item[0], descending), reverse=descending)
                rows_present = [row for _, row in present]
                ordered = absent + rows_present if nulls_first else rows_present + absent
            return iter(ordered)

        return sort

    def _mv_expand(self, command: s.MvExpand) -> Stage:
        column = self._resolve(command.target.name, command.target.line, command.target.column)
        slot = self.slot()
        get = column.get
        self.schema[column.name] = self._computed(column.name, column.type, slot)  # keeps its position

        def expand(rows: Iterator[Row]) -> Iterator[Row]:
            for row in rows:
                value = get(row)
                if type(value) is list:
                    for item in value:
                        copy = dict(row)
                        copy[slot] = item
                        yield copy
                else:
                    row[slot] = value
                    yield row

        return expand

    def _stats(self, command: s.Stats) -> Stage:
        aggregates = [self._aggregate(field) for field in command.aggregates]
        groups: list[tuple[str, Compiled]] = []
        for field in command.groups:
            compiled = self.expr(field.expr)
            _expect_value(compiled, field.expr)
            groups.append((field.name, compiled))
        schema: dict[str, Column] = {}
        agg_slots: list[int] = []
        for name, agg in aggregates:
            agg_slots.append(self.slot())
            schema.pop(name, None)
            schema[name] = self._computed(name, agg.type, agg_slots[-1])
        group_slots: list[int] = []
        for name, compiled in groups:
            group_slots.append(self.slot())
            schema.pop(name, None)
            schema[name] = self._computed(name, compiled.type, group_slots[-1])
        self.schema = schema
        key_fns = [compiled.fn for _, compiled in groups]

        def stats(rows: Iterator[Row]) -> Iterator[Row]:
            buckets: dict[tuple[Any, ...], list[list[Any]]] = {}
            for row in rows:
                keys = [fn(row) for fn in key_fns]
                # A multi-valued key puts the row in the group of each of its values.
                choices = [list(dict.fromkeys(k)) if type(k) is list else [k] for k in keys]
                for combo in itertools.product(*choices):
                    states = buckets.get(combo)
                    if states is None:
                        states = buckets[combo] = [[] for _ in aggregates]
                    for state, (_, agg) in zip(states, aggregates, strict=True):
                        agg.add(state, row)
            if not key_fns and not buckets:
                buckets[()] = [[] for _ in aggregates]
            for combo, states in buckets.items():
                out: Row = {}
                for slot, state, (_, agg) in zip(agg_slots, states, aggregates, strict=True):
                    out[slot] = agg.result(state)
                for slot, key in zip(group_slots, combo, strict=True):
                    out[slot] = key
                yield out

        return stats

    def _aggregate(self, field: s.Field) -> tuple[str, _Aggregate]:
        call = field.expr
        if not isinstance(call, s.Call) or call.name not in AGGREGATES:
            raise UnsupportedQueryError(
                f"ES|QL: unsupported STATS expression [{field.expr.text}] (only a single "
                "aggregate function call is supported)",
                field.line,
                field.column,
            )
        wrong = catalogue.arity_problem(call)
        if wrong is not None:
            raise wrong
        if not call.args or isinstance(call.args[0], s.Star):
            if call.name != "COUNT":
                raise QueryError(f"ES|QL: [{call.text}] does not take '*'", call.line, call.column)
            return field.name, _Aggregate("COUNT*", None, "long")
        arg = self.expr(call.args[0])
        _expect_value(arg, call.args[0])
        kind = arg.type
        if call.name in ("SUM", "AVG") and kind not in NUMERIC_TYPES:
            raise QueryError(
                f"ES|QL: first argument of [{call.text}] must be [numeric], found value "
                f"[{call.args[0].text}] type [{kind}]",
                call.line,
                call.column,
            )
        result = {
            "COUNT": "long",
            "COUNT_DISTINCT": "long",
            "AVG": "double",
            "SUM": "double" if kind == "double" else "long",
        }.get(call.name, kind)
        return field.name, _Aggregate(call.name, arg.fn, result)

    # ---- expressions -----------------------------------------------------------

    def expr(self, node: s.Expr) -> Compiled:
        if isinstance(node, s.Literal):
            return constant(node.value, node.type)
        if isinstance(node, s.Attribute):
            column = self._resolve(node.name, node.line, node.column)
            if column.type == "unsupported":
                spec = self.mapping.fields.get(node.name)
                kind = spec.type if spec else "unsupported"
                raise QueryError(
                    f"ES|QL: Cannot use field [{node.name}] with unsupported type [{kind}]",
                    node.line,
                    node.column,
                )
            return Compiled(column.get, column.type)
        if isinstance(node, s.Call):
            if node.name in AGGREGATES:
                raise QueryError(
                    f"ES|QL: aggregate function [{node.text}] not allowed outside STATS command",
                    node.line,
                    node.column,
                )
            args = [self.expr(a) for a in node.args if not isinstance(a, s.Star)]
            if len(args) != len(node.args):
                raise QueryError(
                    f"ES|QL: '*' is only allowed in COUNT(*) [{node.text}]", node.line, node.column
                )
            return build_call(node, args)
        if isinstance(node, s.Unary):
            return self._unary(node)
        if isinstance(node, s.Binary):
            return self._binary(node)
        if isinstance(node, s.In):
            return self._in(node)
        if isinstance(node, s.IsNull):
            value = self.expr(node.value).fn
            negated = node.negated
            return Compiled(lambda row: (value(row) is None) is not negated, "boolean")
        if isinstance(node, s.Match):
            return self._match(node)
        if isinstance(node, s.Cast):
            call = s.Call(node.line, node.column, node.text, "TO_STRING", (node.value,))
            return build_call(call, [self.expr(node.value)])
        raise QueryError(f"ES|QL: '*' is only allowed in COUNT(*) [{node.text}]", node.line, node.column)

    def _unary(self, node: s.Unary) -> Compiled:
        operand = self.expr(node.operand)
        fn = operand.fn
        if node.op == "not":
            _expect_boolean(operand, node.operand)

            def negate(row: Row) -> Any:
                v = fn(row)
                return None if v is None or type(v) is list else not v

            return fold(Compiled(negate, "boolean"), [operand])
        if operand.type not in NUMERIC_TYPES | {"null"}:
            raise QueryError(
                f"ES|QL: argument of [{node.text}] must be [numeric], found value "
                f"[{node.operand.text}] type [{operand.type}]",
                node.line,
                node.column,
            )
        kind = operand.type

        def minus(row: Row) -> Any:
            v = fn(row)
            if v is None or type(v) is list:
                return None
            return _checked(-v, kind)

        return fold(Compiled(minus, kind), [operand])

    def _binary(self, node: s.Binary) -> Compiled:
        left, right = self.expr(node.left), self.expr(node.right)
        if node.op in ("and", "or"):
            return _logic(node, left, right)
        if node.op in ("+", "-", "*", "/", "%"):
            return _arithmetic(node, left, right)
        return _comparison(node, left, right)

    def _in(self, node: s.In) -> Compiled:
        value = self.expr(node.value)
        items = [self.expr(item) for item in node.items]
        for item in items:
            _comparable(node, value, item, node.value)
        items = [
            _coerce_literal(item, value.type, source) for item, source in zip(items, node.items, strict=True)
        ]
        get = value.fn
        negated = node.negated
        if all(i.constant for i in items):
            found = [i.fn({}) for i in items]
            has_null = any(v is None for v in found)
            choices = {v for v in found if v is not None and type(v) is not list}

            def member(row: Row) -> Any:
                v = get(row)
                if v is None or type(v) is list:
                    return None
                if v in choices:
                    return not negated
                return None if has_null else negated

            return fold(Compiled(member, "boolean"), [value])
        fns = [i.fn for i in items]

        def member_dynamic(row: Row) -> Any:
            v = get(row)
            if v is None or type(v) is list:
                return None
            unknown = False
            for f in fns:
                candidate = f(row)
                if candidate is None or type(candidate) is list:
                    unknown = True
                elif candidate == v:
                    return not negated
            return None if unknown else negated

        return Compiled(member_dynamic, "boolean")

    def _match(self, node: s.Match) -> Compiled:
        value = self.expr(node.value)
        if value.type not in STRING_TYPES | {"null"}:
            raise QueryError(
                f"ES|QL: argument of [{node.text}] must be [string], found value [{node.value.text}] "
                f"type [{value.type}]",
                node.line,
                node.column,
            )
        try:
            if node.kind == "like":
                patterns = [regex.like_to_python(p) for p in node.patterns]
            else:
                patterns = [regex.lucene_to_python(p) for p in node.patterns]
        except QueryError as exc:
            exc.query_line, exc.query_column = node.line, node.column
            raise
        get = value.fn
        negated = node.negated
        matchers = [p.fullmatch for p in patterns]

        def match(row: Row) -> Any:
            v = get(row)
            if v is None or type(v) is list:
                return None
            hit = any(m(v) is not None for m in matchers)
            return hit is not negated

        return fold(Compiled(match, "boolean"), [value])


# ---- columns and stages ---------------------------------------------------------


def _cached(slot: int, make_load: Callable[[], Callable[[dict[str, Any]], Any]]) -> Callable[[Row], Any]:
    """A field column: read from ``_source`` on first use, then kept in the row. The reader is
    made on the column's first read: a query reads a few of the hundreds of mapped fields, and
    making a reader compiles code."""
    load: Callable[[dict[str, Any]], Any] | None = None

    def get(row: Row) -> Any:
        nonlocal load
        value = row.get(slot, _MISSING)
        if value is _MISSING:
            if load is None:
                load = make_load()
            value = row[slot] = load(row[_DOC].fields)
        return value

    return get


def _metadata_column(name: str) -> Column:
    if name == "_id":
        return Column(name, "keyword", lambda row: row[_DOC].id)
    if name == "_index":
        return Column(name, "keyword", lambda row: row[_DOC].index)
    if name == "_version":
        return Column(name, "long", lambda row: 1)  # every document is indexed once
    return Column(name, "source", lambda row: row[_DOC].source)


def _limit_stage(count: int) -> Stage:
    return lambda rows: itertools.islice(rows, count)


def _sort_key(value: Any, descending: bool) -> Any:
    if type(value) is list:
        return max(value) if descending else min(value)
    return value


class _Aggregate:
    """One STATS aggregate: ``add`` collects a row's values into a state list, ``result`` reduces it."""

    def __init__(self, name: str, arg: Callable[[Row], Any] | None, kind: str) -> None:
        self.name = name
        self.arg = arg
        self.type = kind

    def add(self, state: list[Any], row: Row) -> None:
        if self.arg is None:
            state.append(1)
            return
        value = self.arg(row)
        if type(value) is list:
            state.extend(value)
        elif value is not None:
            state.append(value)

    def result(self, state: list[Any]) -> Any:
        name = self.name
        if name in ("COUNT*", "COUNT"):
            return len(state)
        if name == "COUNT_DISTINCT":
            return len(set(state))  # exact; ES is exact below its 3000 precision threshold
        if not state:
            return None
        if name == "MIN":
            return min(state)
        if name == "MAX":
            return max(state)
        if name == "SUM":
            total = math.fsum(state) if self.type == "double" else sum(state)
            return _checked(total, self.type)
        if name == "AVG":
            return _checked(math.fsum(state) / len(state), "double")
        values = sorted(set(state))  # VALUES: distinct values, order unspecified by ES
        return values[0] if len(values) == 1 else values


# ---- operators --------------------------------------------------------------------


def _expect_boolean(compiled: Compiled, node: s.Expr) -> None:
    if compiled.type not in ("boolean", "null"):
        raise QueryError(
            f"ES|QL: condition [{node.text}] must be [boolean], found value [{node.text}] type "
            f"[{compiled.type}]",
            node.line,
            node.column,
        )


def _expect_value(compiled: Compiled, node: s.Expr) -> None:
    if compiled.type == "source" and isinstance(node, s.Attribute):
        return
    if compiled.type == "source":
        raise QueryError(f"ES|QL: [{node.text}] cannot be used here", node.line, node.column)


def _checked(value: Any, kind: str) -> Any:
    """Overflow and non-finite results are null with a warning (Math.*Exact, asFiniteNumber)."""
    if kind == "double":
        return value if math.isfinite(value) else None
    bounds = _BOUNDS.get(kind)
    if bounds is not None and not bounds[0] <= value <= bounds[1]:
        return None
    return value


def _logic(node: s.Binary, left: Compiled, right: Compiled) -> Compiled:
    _expect_boolean(left, node.left)
    _expect_boolean(right, node.right)
    lf, rf = left.fn, right.fn
    # A multi-valued operand counts as null; `is True` / `is False` never match a list.

    if node.op == "and":

        def both(row: Row) -> Any:
            a = lf(row)
            if a is False:
                return False
            b = rf(row)
            if b is False:
                return False
            return True if a is True and b is True else None

        return fold(Compiled(both, "boolean"), [left, right])

    def either(row: Row) -> Any:
        a = lf(row)
        if a is True:
            return True
        b = rf(row)
        if b is True:
            return True
        return False if a is False and b is False else None

    return fold(Compiled(either, "boolean"), [left, right])


def _arithmetic(node: s.Binary, left: Compiled, right: Compiled) -> Compiled:
    for side, source in ((left, node.left), (right, node.right)):
        if side.type not in NUMERIC_TYPES | {"null"}:
            raise QueryError(
                f"ES|QL: argument of [{node.text}] must be [numeric], found value [{source.text}] "
                f"type [{side.type}]",
                node.line,
                node.column,
            )
    kinds = {left.type, right.type} - {"null"}
    kind = "double" if "double" in kinds else "long" if "long" in kinds else "integer" if kinds else "null"
    op = node.op
    lf, rf = left.fn, right.fn

    def compute(row: Row) -> Any:
        a = lf(row)
        if a is None or type(a) is list:
            return None
        b = rf(row)
        if b is None or type(b) is list:
            return None
        if op == "+":
            return _checked(a + b, kind)
        if op == "-":
            return _checked(a - b, kind)
        if op == "*":
            return _checked(a * b, kind)
        if b == 0:
            return None  # "/ by zero": null with a warning, for doubles too
        if kind == "double":
            return _checked(a / b if op == "/" else math.fmod(a, b), kind)
        quotient = abs(a) // abs(b) * (1 if (a >= 0) == (b >= 0) else -1)  # Java truncates toward zero
        if op == "/":
            return _wrap(quotient, kind)
        return a - b * quotient

    return fold(Compiled(compute, kind), [left, right])


def _wrap(value: int, kind: str) -> int:
    """Java integer division overflows silently (MIN_VALUE / -1)."""
    low, high = _BOUNDS[kind]
    span = high - low + 1
    return (value - low) % span + low


_COMPARE = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _family(kind: str) -> str:
    return "string" if kind in STRING_TYPES else "numeric" if kind in NUMERIC_TYPES else kind


def _comparable(node: s.Node, left: Compiled, right: Compiled, left_node: s.Expr) -> None:
    lk, rk = left.type, right.type
    if "null" in (lk, rk) or _family(lk) == _family(rk):
        if lk in ("source", "unsupported"):
            raise QueryError(
                f"ES|QL: [{left_node.text}] of type [{lk}] cannot be compared", node.line, node.column
            )
        return
    if right.constant and rk in STRING_TYPES and lk in ("datetime", "ip"):
        return  # a string literal is implicitly cast to the other side's type
    if left.constant and lk in STRING_TYPES and rk in ("datetime", "ip"):
        return
    raise QueryError(
        f"ES|QL: first argument of [{node.text}] is [{lk}] so second argument must also be [{lk}] "
        f"but was [{rk}]",
        node.line,
        node.column,
    )


def _coerce_literal(side: Compiled, target: str, node: s.Expr) -> Compiled:
    """Implicit casting of a string literal compared with a datetime or ip value."""
    if not side.constant or side.type not in STRING_TYPES or target not in ("datetime", "ip"):
        return side
    text = side.fn({})
    if target == "datetime":
        value = parse_datetime(text)
    else:
        try:
            value = str(ipaddress.ip_address(text))
        except ValueError:
            value = None
    if value is None:
        raise QueryError(f"ES|QL: cannot convert string [{text}] to [{target}]", node.line, node.column)
    return constant(value, target)


def _comparison(node: s.Binary, left: Compiled, right: Compiled) -> Compiled:
    _comparable(node, left, right, node.left)
    left = _coerce_literal(left, right.type, node.left)
    right = _coerce_literal(right, left.type, node.right)
    if left.type == "ip" and node.op not in ("==", "!="):
        raise UnsupportedQueryError(
            "ES|QL: unsupported ordering comparison of ip values", node.line, node.column
        )
    compare = _COMPARE[node.op]
    lf = left.fn
    if right.constant:
        c = right.fn({})
        if c is None or type(c) is list:
            return constant(None, "boolean")

        def against_constant(row: Row) -> Any:
            v = lf(row)
            if v is None or type(v) is list:
                return None  # a multi-value compares to null (ES warns)
            return compare(v, c)

        return fold(Compiled(against_constant, "boolean"), [left])
    rf = right.fn

    def both_sides(row: Row) -> Any:
        a = lf(row)
        if a is None or type(a) is list:
            return None
        b = rf(row)
        if b is None or type(b) is list:
            return None
        return compare(a, b)

    return fold(Compiled(both_sides, "boolean"), [left, right])
