"""EQL event queries run in-process, with the answers Elasticsearch's ``_eql/search`` gives.

Elasticsearch does not evaluate an EQL condition row by row: it translates the condition into
query DSL and lets Lucene filter (``x-pack/plugin/eql/.../planner/QueryTranslator.java`` over
``ql/planner/ExpressionTranslators.java``). The semantics therefore follow the DSL, which
:func:`dac.query.dsl.compile_query` already evaluates against the index mapping; this module
translates the EQL tree the same way ES does and hands each leaf to it:

* ``event where`` adds ``event.category == "event"`` (case-sensitive ``Equals``, parser/
  ``LogicalPlanBuilder.visitEventFilter``); ``any`` adds nothing;
* ``==`` is a ``term`` query, ``!=`` and ``not`` are ``must_not`` (so a document without the
  field matches ``f != "x"`` and ``not f < 2``: ES never rewrites ``not`` into the opposite
  comparison, ``optimizer/Optimizer.EqlBooleanSimplification``); ``< <= > >=`` are ``range``;
  ``f == null`` / ``f != null`` are ``must_not exists`` / ``exists`` (``Optimizer.ReplaceNullChecks``);
* ``:`` is a case-insensitive ``term``, or a case-insensitive ``wildcard`` when the pattern holds
  ``*``/``?`` (``Optimizer.ReplaceWildcards``); ``like``/``like~`` are wildcards. In EQL patterns a
  backslash is an ordinary character (``eql/util/StringUtils.toLikePattern``);
* ``regex``/``regex~`` are Lucene ``regexp`` queries (``~``: ASCII case-insensitive);
* ``in`` is a ``terms`` query, ``in~`` case-insensitive terms;
* ``startsWith`` is a ``prefix`` query; ``endsWith``/``stringContains`` are the wildcard queries
  ``*s``/``*s*`` built from the raw argument, so ``*``, ``?`` and ``\\`` in it act as wildcard
  syntax, exactly as ES builds them (``QueryTranslator.CaseInsensitiveScalarFunctions``);
  ``cidrMatch`` is a ``terms`` query on an ``ip`` field. ``~`` makes a function case-insensitive.
  Other functions run as Painless scripts over doc values in ES and are not implemented here.

Fields resolve like ES's analyzer (``eql/analysis/AnalysisUtils.resolveAgainstList``): a field
the mapping lacks is the error ``Unknown column [f]`` unless written ``?f`` (then it is
``null``); string operations on ``text`` use its single ``keyword`` multi-field
(``ql/type/TextEsField.findExact``) and fail without one; object and nested fields are errors.
Sequences, samples and joins are not executed. Of the pipes ES implements only ``head`` and
``tail`` (``parser/LogicalPlanBuilder.pipe``); both are applied to the ordered hits.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping
from typing import Any

import eql
from eql import ast
from eql.parser import (
    LarkToEQL,
    elasticsearch_syntax,
    ignore_missing_functions,
    lark_parser,
    skip_optimizations,
)
from lark.exceptions import LarkError

from dac.documents import SourceDocument
from dac.errors import QueryError, UnsupportedQueryError
from dac.mapping import FieldSpec, IndexMapping
from dac.query.dsl import _keyword_text, _over, compile_query, getter
from dac.query.esql.regex import lucene_to_python

Matcher = Callable[[Mapping[str, Any]], bool]
# A compiled condition: a per-document test, or a value ES folds at planning time (None is null).
Condition = Matcher | bool | None
Executor = Callable[[list[SourceDocument]], list[SourceDocument]]

EVENT_CATEGORY = "event.category"
STRING_TYPES = frozenset({"keyword", "constant_keyword", "wildcard"})
# Types ES EQL resolves (ql/type/DataTypes); anything else is not modelled here.
SCALAR_TYPES = STRING_TYPES | {
    "text", "long", "integer", "short", "byte", "unsigned_long", "double", "float", "half_float",
    "scaled_float", "date", "date_nanos", "ip", "boolean",
}
FLIPPED = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
RANGE_BOUNDS = {"<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}
QUERY_FUNCTIONS = frozenset({"startsWith", "endsWith", "stringContains", "cidrMatch"})


def compile_eql(text: str, mapping: IndexMapping) -> Executor:
    """The query as a function from candidate documents (in ``@timestamp`` order) to its hits, in order.

    Takes the query text, not a parsed tree: the ``eql`` package's tree drops the ``~`` that
    makes ``like~``, ``in~`` and ``startsWith~`` case-insensitive.
    """
    query = parse_case_aware(text)
    base = query.first
    if not isinstance(base, ast.EventQuery):
        kind = type(base).__name__.lower()
        raise UnsupportedQueryError(f"EQL {kind} queries are not executed in-process (only event queries)")
    matches = _Compiler(mapping).event_query(base)
    limits = [_limit(pipe) for pipe in query.pipes]

    def run(documents: list[SourceDocument]) -> list[SourceDocument]:
        if matches is None or matches is False:
            hits: list[SourceDocument] = []
        elif matches is True:
            hits = list(documents)
        else:
            hits = [d for d in documents if matches(d.source)]
        for size in limits:
            hits = hits[:size] if size >= 0 else hits[size:]
        return hits

    return run


def _limit(pipe: ast.PipeCommand) -> int:
    """``| head n`` keeps the first n hits, ``| tail n`` the last n (signed like ES's LimitWithOffset)."""
    name = type(pipe).__name__
    if name not in ("HeadPipe", "TailPipe"):
        raise QueryError(f"EQL: Pipe [{pipe.name}] is not supported (Elasticsearch runs only head and tail)")
    (count,) = pipe.arguments
    if not isinstance(count, ast.Number) or not isinstance(count.value, int) or count.value < 0:
        raise QueryError(f"EQL: Pipe [{pipe.name}] expects a positive integer but found [{count}]")
    return count.value if name == "HeadPipe" else -count.value


# --------------------------------------------------------------------------- parsing


class OptionalField(ast.Field):
    """A field written ``?name``: null, rather than an error, when the index does not map it."""

    __slots__ = ()

    def iter_slots(self) -> Any:
        return ((key, getattr(self, key, None)) for key in ast.Field.__slots__)


class _CaseAwareWalker(LarkToEQL):
    """The ``eql`` package's tree builder, keeping what it drops: ``~`` and the ``?`` of fields.

    String predicates and ``in~`` become calls named after their operator (``like~``, ``:``,
    ``regex``, ``in~``); a function written ``name~(...)`` becomes a call named ``name~``.
    """

    def string_predicate(self, node: Any) -> Any:
        info = super().string_predicate(node)
        info.node = ast.FunctionCall(str(node["STRING_PREDICATE"]), info.node.arguments)
        return info

    def in_set(self, node: Any) -> Any:
        info = super().in_set(node)
        if node.get("IN") == "in~":
            info.node = ast.FunctionCall("in~", [info.node.expression, *info.node.container])
        return info

    def function_call(self, node: Any, prev_node: Any = None, prev_arg: Any = None) -> Any:
        info = super().function_call(node, prev_node, prev_arg)
        name = node["method_name"] if node.data == "method" else node.children[0]
        if str(name).rstrip("(").endswith("~") and isinstance(info.node, ast.FunctionCall):
            info.node = ast.FunctionCall(info.node.name + "~", info.node.arguments, info.node.as_method)
        return info

    def field(self, node: Any) -> Any:
        info = super().field(node)
        if str(node.children[0]).startswith("?"):
            info.node = OptionalField(info.node.base, info.node.path)
        return info


def parse_case_aware(text: str) -> ast.PipedQuery:
    """Parse in the Elasticsearch dialect without the package's rewrites (ES keeps ``not`` as is)."""
    source = text if text.endswith("\n") else text + "\n"
    try:
        with elasticsearch_syntax, ignore_missing_functions, skip_optimizations:
            tree = lark_parser.parse(source, start="piped_query")
            node = _CaseAwareWalker(source).visit(tree)
    except LarkError:
        from dac.query.eql_query import parse_eql

        parse_eql(text)  # raises the located syntax error
        raise QueryError("EQL: Invalid syntax") from None
    except eql.EqlError as exc:
        line, column = getattr(exc, "line", None), getattr(exc, "column", None)
        message = getattr(exc, "error_msg", None) or str(exc).splitlines()[0]
        raise QueryError(f"EQL: {message}", None if line is None else line + 1,
                         None if column is None else column + 1) from None
    return getattr(node, "node", node)


# --------------------------------------------------------------------------- compiler


class _Compiler:
    def __init__(self, mapping: IndexMapping) -> None:
        self.mapping = mapping

    def event_query(self, query: ast.EventQuery) -> Condition:
        condition = self.condition(query.query)
        if query.event_type == "any":
            return condition
        category = self.column(EVENT_CATEGORY, optional=False)
        return _and([self.dsl({"term": {self.exact(category, "=="): query.event_type}}), condition])

    def condition(self, node: Any) -> Condition:
        if isinstance(node, ast.Boolean):
            return node.value
        if isinstance(node, ast.Null):
            return None
        if isinstance(node, ast.And):
            return _and([self.condition(t) for t in node.terms])
        if isinstance(node, ast.Or):
            return _or([self.condition(t) for t in node.terms])
        if isinstance(node, ast.Not):
            return _not(self.condition(node.term))
        if isinstance(node, ast.IsNull | ast.IsNotNull):
            return self.null_check(node)
        if isinstance(node, ast.Comparison):
            return self.comparison(node)
        if isinstance(node, ast.InSet):
            return self.in_set(node.expression, node.container, case_insensitive=False)
        if isinstance(node, ast.FunctionCall):
            return self.function(node)
        raise UnsupportedQueryError(f"EQL: {node} is not implemented by the local engine")

    # ----- leaves

    def null_check(self, node: ast.IsNull | ast.IsNotNull) -> Condition:
        spec = self.column_of(node.expr)
        is_null = isinstance(node, ast.IsNull)
        if spec is None:
            return is_null
        exists = self.dsl({"exists": {"field": spec.name}})
        return _not(exists) if is_null else exists

    def comparison(self, node: ast.Comparison) -> Condition:
        left, op, right = _fold(node.left), node.comparator, _fold(node.right)
        if isinstance(left, ast.Literal) and not isinstance(right, ast.Literal):
            left, op, right = right, FLIPPED[op], left
        if not isinstance(right, ast.Literal):
            raise _script(f"comparing {left} with {right}")
        if isinstance(left, ast.Literal):
            raise UnsupportedQueryError(f"EQL: constant comparison {node} is not implemented")
        spec = self.column_of(left)
        if spec is None or right.value is None:
            return None  # a comparison with null is null (ConstantFolding)
        name = self.exact(spec, op)
        value = right.value
        if op == "==":
            return self.dsl({"term": {name: value}})
        if op == "!=":
            return _not(self.dsl({"term": {name: value}}))
        return self.dsl({"range": {name: {RANGE_BOUNDS[op]: value}}})

    def in_set(self, expression: Any, container: list[Any], case_insensitive: bool) -> Condition:
        spec = self.column_of(expression)
        values = [self.literal(v) for v in container]
        if spec is None:
            return None
        name = self.exact(spec, "in~" if case_insensitive else "in")
        wanted = [v for v in values if v is not None]
        if not case_insensitive:
            return self.dsl({"terms": {name: wanted}})
        if spec.type not in STRING_TYPES:
            raise QueryError(f"EQL: in~ needs a string field; [{spec.name}] is [{spec.type}]")
        return _or([self.dsl({"term": {name: {"value": v, "case_insensitive": True}}}) for v in wanted])

    def function(self, node: ast.FunctionCall) -> Condition:
        name = node.name
        insensitive = name.endswith("~")
        base = name.rstrip("~")
        if base in (":", "like"):
            return self.patterns(node, case_insensitive=name != "like")
        if base == "regex":
            return self.regexes(node, insensitive)
        if base == "in":
            return self.in_set(node.arguments[0], node.arguments[1:], case_insensitive=True)
        if base not in QUERY_FUNCTIONS:
            raise _script(f"function {name}()")
        subject, *rest = node.arguments
        if not isinstance(subject, ast.Field) or not all(isinstance(a, ast.String) for a in rest):
            raise _script(f"{node} (not a field and constants)")
        spec = self.column_of(subject)
        if spec is None:
            return None
        values = [a.value for a in rest]
        if base == "cidrMatch":
            if spec.type != "ip":
                raise QueryError(f"EQL: cidrMatch needs an ip field; [{spec.name}] is [{spec.type}]")
            return self.dsl({"terms": {spec.name: values}})
        field = self.string_exact(spec, base)
        (value,) = values
        if base == "startsWith":
            pattern = _escape_wildcard(value) + "*"
        else:
            pattern = ("*" + value) if base == "endsWith" else ("*" + value + "*")
        return self.dsl({"wildcard": {field: {"value": pattern, "case_insensitive": insensitive}}})

    def patterns(self, node: ast.FunctionCall, case_insensitive: bool) -> Condition:
        subject, *patterns = node.arguments
        spec = self.column_of(subject)
        if spec is None:
            return None
        field = self.string_exact(spec, node.name)
        clauses = []
        for pattern in patterns:
            value = self.literal(pattern)
            if "*" in value or "?" in value:
                lucene = value.replace("\\", "\\\\")
                clauses.append(self.dsl({"wildcard": {field: {"value": lucene,
                                                              "case_insensitive": case_insensitive}}}))
            else:
                clauses.append(self.dsl({"term": {field: {"value": value,
                                                          "case_insensitive": case_insensitive}}}))
        return _or(clauses)

    def regexes(self, node: ast.FunctionCall, insensitive: bool) -> Condition:
        subject, *patterns = node.arguments
        spec = self.column_of(subject)
        if spec is None:
            return None
        field = self.string_exact(spec, node.name)
        flags = re.DOTALL | (re.IGNORECASE | re.ASCII if insensitive else 0)  # ASCII_CASE_INSENSITIVE
        compiled = []
        for pattern in patterns:
            try:
                compiled.append(re.compile(lucene_to_python(self.literal(pattern)).pattern, flags))
            except QueryError as exc:
                raise QueryError(exc.message.replace("ES|QL: invalid RLIKE", "EQL: invalid regex")) from None
        values = self.keyword_values(field)
        return lambda source: any(r.fullmatch(v) for v in values(source) for r in compiled)

    # ----- fields

    def column_of(self, node: Any) -> FieldSpec | None:
        if isinstance(node, ast.FunctionCall):
            raise _script(f"function {node.name}()")
        if not isinstance(node, ast.Field):
            raise _script(str(node))
        if any(isinstance(p, int) for p in node.path):
            raise UnsupportedQueryError(f"EQL: array index in {node} is not implemented by the local engine")
        name = ".".join([node.base, *node.path])
        return self.column(name, optional=isinstance(node, OptionalField))

    def column(self, name: str, optional: bool) -> FieldSpec | None:
        """The mapped field ``name`` (None: an optional field the index lacks), resolved like ES."""
        spec = self.mapping.field(name)
        if spec is None:
            if name in self.mapping.objects:
                raise QueryError(f"EQL: Cannot use field [{name}] type [object] only its subfields")
            for template in self.mapping.body.get("dynamic_templates", []):
                for body in template.values():
                    if fnmatch.fnmatchcase(name, body.get("path_match", "")):
                        raise UnsupportedQueryError(f"EQL: {name} would be mapped by a dynamic template once "
                                                    "data holds it; whether ES knows it depends on the data")
            if optional:
                return None
            raise QueryError(f"EQL: Unknown column [{name}]")
        if spec.nested_path is not None:
            raise QueryError(f"EQL: Cannot use field [{name}] type [{spec.type}] with unsupported nested "
                             f"type in hierarchy (field [{spec.nested_path}])")
        if spec.type not in SCALAR_TYPES:
            raise UnsupportedQueryError(f"EQL: field [{name}] of type [{spec.type}] is not implemented "
                                        "by the local engine")
        return spec

    def exact(self, spec: FieldSpec, operator: str) -> str:
        """The field a comparison queries; for text, its keyword multi-field (exactAttribute)."""
        if spec.type != "text":
            return spec.name
        prefix = spec.name + "."
        keywords = [f.name for f in self.mapping.fields.values()
                    if f.name.startswith(prefix) and "." not in f.name[len(prefix):] and f.type == "keyword"]
        if len(keywords) == 1:
            return keywords[0]
        reason = (f"Multiple exact keyword candidates available for [{spec.name}]; specify which one to use"
                  if keywords else
                  f"No keyword/multi-field defined exact matches for [{spec.name}]; define one or use "
                  "MATCH/QUERY instead")
        raise QueryError(f"EQL: [{operator}] cannot operate on field of data type [text]: {reason}")

    def string_exact(self, spec: FieldSpec, operator: str) -> str:
        name = self.exact(spec, operator)
        kind = self.mapping.fields[name].type
        if kind not in STRING_TYPES:
            raise QueryError(f"EQL: [{operator}] can only be used on strings; [{spec.name}] is [{kind}]")
        return name

    def keyword_values(self, name: str) -> Callable[[Mapping[str, Any]], list[str]]:
        """The values a keyword field indexes: _source values as text, none beyond ignore_above."""
        spec = self.mapping.fields[name]
        if spec.type == "constant_keyword":
            raise UnsupportedQueryError(f"EQL: regex on constant_keyword field {name} is not implemented")
        parent = name.rpartition(".")[0]
        path = parent if parent and parent in self.mapping.fields else name  # a multi-field reads its parent
        read = getter(path)
        limit = spec.ignore_above

        def values(source: Mapping[str, Any]) -> list[str]:
            texts = (_keyword_text(v) for v in read(source) if not isinstance(v, Mapping))
            return [t for t in texts if not _over(t, limit)]

        return values

    @staticmethod
    def literal(node: Any) -> Any:
        node = _fold(node)
        if not isinstance(node, ast.Literal):
            raise _script(f"{node} in a list")
        return node.value

    def dsl(self, query: dict[str, Any]) -> Matcher:
        return compile_query(query, self.mapping)


def _fold(node: Any) -> Any:
    """Constant arithmetic such as ``-1`` folded to a literal (parsing keeps it as an operation)."""
    return node if isinstance(node, ast.Literal | ast.Field) else node.optimize(recursive=True)


def _script(what: str) -> UnsupportedQueryError:
    return UnsupportedQueryError(f"EQL: {what} runs as a script in Elasticsearch; "
                                 "not implemented by the local engine")


def _escape_wildcard(text: str) -> str:
    return re.sub(r"([\\*?])", r"\\\1", text)


# --------------------------------------------------------------------------- three-valued folding


def _and(parts: list[Condition]) -> Condition:
    if any(p is False for p in parts):
        return False
    tests = [p for p in parts if callable(p)]
    if any(p is None for p in parts):
        if tests:
            raise _null_mixed()
        return None
    if not tests:
        return True
    if len(tests) == 1:
        return tests[0]
    return lambda source: all(t(source) for t in tests)


def _or(parts: list[Condition]) -> Condition:
    if any(p is True for p in parts):
        return True
    tests = [p for p in parts if callable(p)]
    if any(p is None for p in parts):
        if tests:
            raise _null_mixed()
        return None
    if not tests:
        return False
    if len(tests) == 1:
        return tests[0]
    return lambda source: any(t(source) for t in tests)


def _not(part: Condition) -> Condition:
    if part is None or isinstance(part, bool):
        return None if part is None else not part
    return lambda source: not part(source)


def _null_mixed() -> UnsupportedQueryError:
    return UnsupportedQueryError("EQL: a condition on a missing optional field, combined with other "
                                 "conditions, folds to null; how ES plans that is not modelled")
