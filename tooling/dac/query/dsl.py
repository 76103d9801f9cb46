"""Evaluate Elasticsearch query DSL against one ``_source``, as an index with a given mapping would.

:func:`compile_query` turns the DSL into nested closures once; each closure answers "would
Elasticsearch return this document?" for one clause. What a field holds is decided by the
mapping, exactly as at index time:

* fields the mapping lacks match nothing and do not exist (the index is ``dynamic: false``);
  under an object that is ``dynamic: true`` a field is only known when a dynamic template
  maps it, otherwise the construct is refused (its type would depend on the data);
* ``keyword`` values longer than ``ignore_above`` UTF-16 code units are not indexed, so they
  neither match nor exist (ES docs: mapping-params/ignore-above); numbers and booleans in
  ``_source`` are indexed as their text;
* ``text``/``match_only_text`` values go through the standard analyzer (see :func:`analyze`);
* ``long``/``date``/``ip``/``boolean`` values are parsed; values ES would reject are treated
  as absent (with ``ignore_malformed`` that is exactly what ES does; without it ES rejects
  the whole document, which the caller's indexing step must reproduce);
* fields inside a ``nested`` mapping are only visible to a ``nested`` query on their path.

Anything else raises :class:`~dac.errors.UnsupportedQueryError` naming the construct.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dac.errors import QueryError, UnsupportedQueryError
from dac.mapping import IndexMapping, java_length
from dac.query import codegen

Matcher = Callable[[Mapping[str, Any]], bool]
Getter = Callable[[Mapping[str, Any]], list[Any]]

KEYWORD_TYPES = frozenset({"keyword", "constant_keyword", "wildcard"})
TEXT_TYPES = frozenset({"text", "match_only_text"})
INTEGER_TYPES = frozenset({"long", "integer", "short", "byte", "unsigned_long"})
FLOAT_TYPES = frozenset({"double", "float"})
DATE_TYPES = frozenset({"date", "date_nanos"})


def compile_query(dsl: Mapping[str, Any], mapping: IndexMapping, now: datetime | None = None,
                  sample: Sequence[Mapping[str, Any]] = ()) -> Matcher:
    """A predicate over ``_source`` documents that matches exactly what ES would return.

    ``now`` anchors date math (``now-5m``); ES uses the time the search starts. With a ``sample``
    of the documents it will run on, the operands of each and/or are ordered by how often they
    match there (:func:`dac.query.codegen.reorder`): the same answers, sooner.
    """
    now = now or datetime.now(UTC)
    compiler = _Compiler(mapping, now)
    general = compiler.query(dsl, None)
    rates = codegen.leaf_rates(general, sample) if sample else None
    if rates is not None:
        general = codegen.reorder(general, rates)
    prefix = _shared_prefix(compiler.paths)
    if not prefix:
        return codegen.lower(general)
    # The same query again, its fields read relative to the object they all sit under; the
    # generated function walks to it once per document, and gives odd documents to ``general``.
    hoisted = _Compiler(mapping, now, base=prefix).query(dsl, None)
    if rates is not None:
        hoisted = codegen.reorder(hoisted, rates)  # the same tree, so the same rates and order
    return codegen.lower(hoisted, prefix, compiler.paths, general)


def _shared_prefix(paths: list[tuple[str, ...]]) -> tuple[str, ...]:
    """The object path every one of ``paths`` runs through (``("kubernetes", "audit")``), if any."""
    if not paths:
        return ()
    first = paths[0]
    length = min(len(p) for p in paths) - 1
    shared = 0
    while shared < length and all(p[shared] == first[shared] for p in paths):
        shared += 1
    return first[:shared]


# --------------------------------------------------------------------------- field access


@lru_cache(maxsize=4096)  # a pure function of the path, generated: queries share their fields' getters
def getter(path: str) -> Getter:
    """A precompiled :func:`dac.documents.values_at` for one dotted path.

    Same answers (every split of the path into keys, arrays flattened, nulls dropped). The
    common shape, plain nested dicts with no dotted key on the way, takes a fast loop; any
    dotted key, array or other mapping on the way falls back to the general walk.
    """
    parts = path.split(".")
    n = len(parts)
    splits = tuple(tuple((".".join(parts[s:e]), e) for e in range(s + 1, n + 1)) for s in range(n))

    def walk(node: Mapping[str, Any], start: int, out: list[Any]) -> None:
        for key, end in splits[start]:
            if key in node:
                value = node[key]
                if end == n:
                    leaf(value, out)
                else:
                    descend(value, end, out)

    def descend(value: Any, start: int, out: list[Any]) -> None:
        if value.__class__ is dict or isinstance(value, Mapping):
            walk(value, start, out)
        elif isinstance(value, list):
            for item in value:
                descend(item, start, out)

    def leaf(value: Any, out: list[Any]) -> None:
        if value.__class__ is list:
            for item in value:
                leaf(item, out)
        elif value is not None:
            out.append(value)

    def general(source: Mapping[str, Any]) -> list[Any]:
        out: list[Any] = []
        walk(source, 0, out)
        return out

    get = codegen.path_getter(parts, general, leaf)
    get.parts = tuple(parts)  # type: ignore[attr-defined]  # read by the tests that fuse with it
    return get


@dataclass(frozen=True)
class _Field:
    """A queryable field: its mapped type and how to read its indexed values from a document."""

    name: str
    type: str
    read: Getter  # indexed values, already converted
    constant: str | None = None  # a constant_keyword's mapped value
    raw: Getter | None = None  # keyword fields: the _source values, for fast equality


# --------------------------------------------------------------------------- compiler


class _Compiler:
    """Compiles a DSL body into matchers. Fields are read from the document root, or, with
    ``base``, from the object at that path (every field the query reads must lie under it)."""

    def __init__(self, mapping: IndexMapping, now: datetime, base: tuple[str, ...] = ()) -> None:
        self.mapping = mapping
        self.now = now
        self.base = base
        self.paths: list[tuple[str, ...]] = []  # every path read from the document root

    def read(self, path: str, scope: str | None) -> Getter:
        """The getter of ``path``: from the document (recorded, relative to ``base``) or, inside a
        nested query (``scope``), from each nested object."""
        if scope is not None:
            return getter(path)
        parts = tuple(path.split("."))
        self.paths.append(parts)
        if self.base:
            if parts[:len(self.base)] != self.base or len(parts) == len(self.base):
                raise AssertionError(f"{path} is not under {'.'.join(self.base)}")
            return getter(".".join(parts[len(self.base):]))
        return getter(path)

    # ----- dispatch

    def query(self, q: Any, scope: str | None) -> Matcher:
        if not isinstance(q, Mapping) or len(q) != 1:
            raise QueryError(f"query DSL: a query must be an object with one key, got {_short(q)}")
        kind, body = next(iter(q.items()))
        method = getattr(self, f"q_{kind}", None)
        if method is None:
            raise UnsupportedQueryError(f"query DSL: the local engine does not implement the {kind!r} query")
        return method(body, scope)

    def clauses(self, value: Any, scope: str | None) -> list[Matcher]:
        items = value if isinstance(value, list) else [value]
        return [self.query(item, scope) for item in items]

    # ----- compound queries

    def q_match_all(self, body: Any, scope: str | None) -> Matcher:
        self.options(body, "match_all", set())
        return _always

    def q_match_none(self, body: Any, scope: str | None) -> Matcher:
        self.options(body, "match_none", set())
        return _rewritten_none

    def q_bool(self, body: Any, scope: str | None) -> Matcher:
        """Lucene's BooleanQuery, after ES's rewrite of the builder (BoolQueryBuilder#doRewrite).

        The rewrite runs before any clause becomes a Lucene query: a must/filter clause that
        rewrote to match_none (a term-level query on an unmapped field, see :func:`_rewritten_none`)
        makes the whole bool match_none, as do should clauses that all did when there is no
        must/filter. Then a sibling clause that would fail (``host.containerized:""``) never
        runs, so the search does not fail either.
        """
        self.options(body, "bool", {"must", "filter", "should", "must_not", "minimum_should_match"})
        required = [*self.guarded(body.get("must", []), scope), *self.guarded(body.get("filter", []), scope)]
        if any(c is _rewritten_none for c in required):
            return _rewritten_none
        should_dsl = body.get("should", [])
        combined = self.one_field_disjunction(should_dsl, scope) if not required else None
        should = [combined] if combined is not None else self.guarded(should_dsl, scope)
        if not required and should and all(c is _rewritten_none for c in should):
            return _rewritten_none
        excluded = self.guarded(body.get("must_not", []), scope)
        for clause in (*required, *should, *excluded):
            if isinstance(clause, QueryError):
                raise clause
        if not (required or should or excluded):
            return _always  # an empty bool is match_all (BoolQueryBuilder.doToQuery)
        # Only-should is a pure disjunction (Lucene); with must/filter the should clauses are
        # optional unless minimum_should_match says otherwise (Queries.calculateMinShouldMatch).
        minimum = _minimum_should_match(body.get("minimum_should_match"), len(should),
                                        default=1 if should and not required else 0)
        if minimum > len(should):
            return _never
        checks: list[Matcher] = list(required)
        if excluded:
            checks.append(_none_of(excluded))
        if minimum > 0:
            checks.append(_any_of(should) if minimum == 1 else _at_least(should, minimum))
        return _all_of(checks)

    def guarded(self, value: Any, scope: str | None) -> list[Any]:
        """Each clause compiled, or the QueryError it raised (the rewrite may make it moot)."""
        compiled: list[Any] = []
        for item in value if isinstance(value, list) else [value]:
            try:
                compiled.append(self.query(item, scope))
            except QueryError as exc:
                compiled.append(exc)
        return compiled

    def unmapped(self, name: str) -> Matcher:
        """What a term-level query on a field ``self.field`` did not resolve becomes.

        Unmapped: ES rewrites term, terms, range, wildcard and exists queries on it to match_none
        before building them (their doRewrite/doIndexMetadataRewrite), so not even the value is
        checked. Mapped but out of the nested scope: it simply matches nothing.
        """
        return _rewritten_none if self.mapping.field(name) is None else _never

    def one_field_disjunction(self, should: Any, scope: str | None) -> Matcher | None:
        """``field:(a or b or c*)`` as Kibana writes it, read once instead of once per value.

        Only for should lists whose every clause is (a one-clause should wrapping) a plain
        ``term``/``wildcard`` on the same keyword field; the answer is the same as OR-ing them.
        """
        if not isinstance(should, list) or len(should) < 2:
            return None
        name = None
        exact: list[Any] = []
        patterns: list[str] = []
        for clause in should:
            while _single_should(clause):
                clause = clause["bool"]["should"][0]
            if not isinstance(clause, Mapping) or len(clause) != 1:
                return None
            kind, body = next(iter(clause.items()))
            if kind not in ("term", "wildcard") or not isinstance(body, Mapping) or len(body) != 1:
                return None
            field_name, spec = next(iter(body.items()))
            opts = spec if isinstance(spec, Mapping) else {"value": spec}
            if opts.keys() != {"value"} or (name is not None and field_name != name):
                return None
            name = field_name
            (exact if kind == "term" else patterns).append(opts["value"])
        assert name is not None
        field = self.field(name, scope)
        if field is None or field.raw is None or field.constant is not None:
            return None
        if not all(isinstance(p, str) for p in patterns):
            return None
        wanted = {t for t in (self.search_value(field, v) for v in exact) if t is not None}
        ignore_above = self.ignore_above(field)
        prefixes, others = [], []
        for pattern in patterns:  # "abc*" patterns collapse into one str.startswith call
            pieces = _wildcard_pieces(pattern)
            if len(pieces) == 2 and isinstance(pieces[0], str) and pieces[1] is None:
                prefixes.append(pieces[0])
            else:
                others.append(wildcard_matcher(pattern, False))
        starts = tuple(prefixes)
        raw = field.raw

        def one_text(text: str) -> bool:
            if text in wanted:
                return True
            if _over(text, ignore_above):
                return False
            if starts and text.startswith(starts):
                return True
            for test in others:  # noqa: SIM110 - a loop is faster than any() over a generator
                if test(text):
                    return True
            return False

        def any_value(source: Mapping[str, Any]) -> bool:
            for value in raw(source):
                if isinstance(value, Mapping):
                    continue
                if one_text(value if value.__class__ is str else _keyword_text(value)):
                    return True
            return False

        if patterns:
            return _on_one_string(raw, any_value, test=one_text)
        return _on_one_string(raw, any_value, wanted=frozenset(wanted))

    def q_constant_score(self, body: Any, scope: str | None) -> Matcher:
        self.options(body, "constant_score", {"filter"})
        return self.query(body["filter"], scope)

    def q_nested(self, body: Any, scope: str | None) -> Matcher:
        self.options(body, "nested", {"path", "query", "score_mode", "ignore_unmapped"})
        path = body.get("path")
        if path not in self.mapping.nested:
            if body.get("ignore_unmapped") is True:
                return _never
            raise QueryError(f"query DSL: [nested] failed to find nested object under path [{path}]")
        if scope is not None and not path.startswith(scope + "."):
            return _never
        inner = self.query(body.get("query"), path)
        objects = self.read(path if scope is None else path[len(scope) + 1:], scope)

        def nested(source: Mapping[str, Any]) -> bool:
            return any(inner(obj) for obj in objects(source) if isinstance(obj, Mapping))

        return nested

    # ----- term-level queries

    def q_term(self, body: Any, scope: str | None) -> Matcher:
        name, spec = self.single_field(body, "term")
        opts = spec if isinstance(spec, Mapping) else {"value": spec}
        self.options(opts, "term", {"value", "case_insensitive"})
        field = self.field(name, scope)
        if field is None:
            return self.unmapped(name)
        return self.equals(field, [opts.get("value")], bool(opts.get("case_insensitive", False)))

    def q_terms(self, body: Any, scope: str | None) -> Matcher:
        names = [k for k in body if k != "boost"]
        if len(names) != 1 or not isinstance(body[names[0]], list):
            raise UnsupportedQueryError("query DSL: only the [terms] form {field: [values]} is supported")
        field = self.field(names[0], scope)
        if field is None:
            return self.unmapped(names[0])
        return self.equals(field, body[names[0]], False)

    def q_exists(self, body: Any, scope: str | None) -> Matcher:
        self.options(body, "exists", {"field"})
        name = body.get("field")
        if not isinstance(name, str):
            raise QueryError("query DSL: [exists] needs a field name")
        names = [s.name for s in self.mapping.matching_fields(name)] if "*" in name else [name]
        fields = [f for f in (self.field(n, scope, exists=True) for n in names) if f is not None]
        if not fields:
            return _rewritten_none if not names else self.unmapped(names[0]) if len(names) == 1 else _never
        if any(f.constant is not None for f in fields):
            return _always
        if len(fields) == 1:
            read = fields[0].read
            return lambda source: bool(read(source))
        reads = [f.read for f in fields]
        return lambda source: any(read(source) for read in reads)

    def q_wildcard(self, body: Any, scope: str | None) -> Matcher:
        name, spec = self.single_field(body, "wildcard")
        opts = spec if isinstance(spec, Mapping) else {"value": spec}
        self.options(opts, "wildcard", {"value", "wildcard", "case_insensitive", "rewrite"})
        pattern = opts.get("value", opts.get("wildcard"))
        if not isinstance(pattern, str):
            raise QueryError(f"query DSL: [wildcard] on {name} needs a string pattern")
        field = self.field(name, scope)
        if field is None:
            return self.unmapped(name)
        return self.wildcard(field, pattern, bool(opts.get("case_insensitive", False)))

    def q_range(self, body: Any, scope: str | None) -> Matcher:
        name, spec = self.single_field(body, "range")
        if not isinstance(spec, Mapping):
            raise QueryError(f"query DSL: [range] on {name} needs an object of bounds")
        self.options(spec, "range", {"gt", "gte", "lt", "lte", "format", "time_zone", "relation"})
        field = self.field(name, scope)
        if field is None:
            return self.unmapped(name)
        bounds = {op: spec[op] for op in ("gt", "gte", "lt", "lte") if spec.get(op) is not None}
        if field.type in DATE_TYPES:
            lower, upper = self.date_bounds(field, bounds, spec.get("format"), spec.get("time_zone"))
        elif field.type in KEYWORD_TYPES or field.type == "flattened":
            lower, upper = _string_bounds(bounds)
        elif field.type in INTEGER_TYPES or field.type in FLOAT_TYPES:
            lower, upper = _number_bounds(field, bounds)
        elif field.type == "ip":
            lower, upper = _ip_bounds(field, bounds)
        else:
            raise UnsupportedQueryError(f"query DSL: [range] on {field.type} field {name} is not implemented")
        if field.constant is not None:
            return _always if _in_range(field.constant, lower, upper) else _never
        read = field.read

        def in_range(source: Mapping[str, Any]) -> bool:
            for value in read(source):  # noqa: SIM110 - faster than any() over a generator
                if _in_range(value, lower, upper):
                    return True
            return False

        return in_range

    # ----- full-text queries

    def q_match(self, body: Any, scope: str | None) -> Matcher:
        name, spec = self.single_field(body, "match")
        opts = spec if isinstance(spec, Mapping) else {"query": spec}
        self.options(opts, "match", {"query", "operator", "lenient"})
        operator = str(opts.get("operator", "or")).lower()
        field = self.field(name, scope)
        if field is None:
            return _never
        if field.type in TEXT_TYPES:
            tokens = analyze(_text_of(opts.get("query")))
            if not tokens:
                return _never
            wanted = frozenset(tokens)
            read = field.read
            if operator == "and":
                return lambda source: wanted <= {t for value in read(source) for t in value}
            return lambda source: any(not wanted.isdisjoint(value) for value in read(source))
        return self.equals(field, [opts.get("query")], False, lenient=bool(opts.get("lenient", False)))

    def q_match_phrase(self, body: Any, scope: str | None) -> Matcher:
        name, spec = self.single_field(body, "match_phrase")
        opts = spec if isinstance(spec, Mapping) else {"query": spec}
        self.options(opts, "match_phrase", {"query", "slop"})
        if opts.get("slop", 0) != 0:
            raise UnsupportedQueryError("query DSL: [match_phrase] with a slop is not implemented")
        field = self.field(name, scope)
        if field is None:
            return _never
        if field.type not in TEXT_TYPES:
            return self.equals(field, [opts.get("query")], False)
        phrase = analyze(_text_of(opts.get("query")))
        if not phrase:
            return _never
        read = field.read
        return lambda source: any(_contains_run(value, phrase) for value in read(source))

    def q_query_string(self, body: Any, scope: str | None) -> Matcher:
        """The narrow form Kibana sends for a KQL wildcard on a non-keyword field.

        Whitespace separates terms (Kibana does not escape it), the terms are OR-ed
        (``default_operator`` OR); a term with an unescaped ``*``/``?`` is a wildcard query
        on the field, normalised by its analyzer; other terms are analysed like ``match``.
        """
        self.options(body, "query_string", {"query", "fields", "default_field", "analyze_wildcard",
                                            "allow_leading_wildcard", "default_operator"})
        names = body.get("fields") or ([body["default_field"]] if "default_field" in body else None)
        if not names or any("*" in n for n in names):
            raise UnsupportedQueryError("query DSL: [query_string] without concrete fields searches "
                                        "index.query.default_field, which the local engine does not model")
        if body.get("analyze_wildcard") or str(body.get("default_operator", "or")).lower() != "or":
            raise UnsupportedQueryError("query DSL: [query_string] with analyze_wildcard or default_operator "
                                        "AND is not implemented")
        terms = _query_string_terms(str(body.get("query", "")))
        matchers = []
        for name in names:
            field = self.field(name, scope)
            if field is None:
                continue
            for term in terms:
                if term == "*":
                    matchers.append(self.q_exists({"field": name}, scope))
                elif _has_wildcard(term):
                    if field.type in TEXT_TYPES:
                        matchers.append(self.wildcard_on_tokens(field, _lower(term)))
                    elif field.type == "flattened" and self.mapping.field(name) is None and \
                            not _is_prefix_pattern(term):
                        matchers.append(self.keyed_wildcard(name, term, scope))
                    else:
                        matchers.append(self.wildcard(field, term, False))
                else:
                    matchers.append(self.q_match({name: _unescape(term)}, scope))
        return _any_of(matchers) if matchers else _never

    def q_multi_match(self, body: Any, scope: str | None) -> Matcher:
        self.options(body, "multi_match", {"query", "fields", "type", "lenient", "operator"})
        fields = body.get("fields")
        if not fields:
            raise UnsupportedQueryError("query DSL: [multi_match] without fields (KQL free text) searches "
                                        "index.query.default_field, which the local engine does not model")
        kind = body.get("type", "best_fields")
        if kind not in ("best_fields", "phrase"):
            raise UnsupportedQueryError(f"query DSL: [multi_match] of type {kind!r} is not implemented")
        query = "match_phrase" if kind == "phrase" else "match"
        opts: dict[str, Any] = {"query": body.get("query")}
        if kind != "phrase":
            opts["lenient"] = body.get("lenient", False)
        return _any_of([self.query({query: {name: opts}}, scope) for name in fields])

    # ----- helpers shared by the queries

    def equals(self, field: _Field, values: Iterable[Any], case_insensitive: bool,
               lenient: bool = False) -> Matcher:
        """ES ``termQuery`` semantics for the field type: any indexed value equals any target."""
        try:
            targets = [self.search_value(field, v) for v in values]
        except QueryError:
            if lenient:
                return _never
            raise
        if field.type in DATE_TYPES:
            ranges = [t for t in targets if t is not None]
            read = field.read
            return lambda source: any(lo <= v <= hi for v in read(source) for lo, hi in ranges)
        if field.type == "ip":
            networks = [t for t in targets if t is not None]
            read = field.read
            return lambda source: any(lo <= v <= hi for v in read(source) for lo, hi in networks)
        wanted = {t for t in targets if t is not None}
        if field.type in TEXT_TYPES:  # a term query is not analysed: it must equal one token
            read = field.read
            return lambda source: any(not wanted.isdisjoint(tokens) for tokens in read(source))
        if case_insensitive:
            wanted = {_lower(t) for t in wanted}
        if field.constant is not None:
            value = _lower(field.constant) if case_insensitive else field.constant
            return _always if value in wanted else _never
        read = field.read
        if case_insensitive:
            return lambda source: any(_lower(v) in wanted for v in read(source))
        if field.raw is not None:
            return _keyword_equals(field.raw, wanted)
        return lambda source: not wanted.isdisjoint(read(source))

    def search_value(self, field: _Field, value: Any) -> Any:
        """The query value as the field indexes it (None: can never match); bad values fail like ES."""
        if value is None or isinstance(value, Mapping | list):
            raise QueryError(f"query DSL: a value for {field.name} cannot be {_short(value)}")
        kind = field.type
        if kind in KEYWORD_TYPES or kind == "flattened":
            text = _keyword_text(value)
            return None if _over(text, self.ignore_above(field)) else text
        if kind in TEXT_TYPES:
            return _text_of(value)
        if kind in INTEGER_TYPES:
            number = _number(value, field)
            return int(number) if number == math.floor(number) and not math.isinf(number) else None
        if kind in FLOAT_TYPES:
            return _number(value, field)
        if kind == "boolean":
            # BooleanFieldMapper.BooleanFieldType#indexedValueForSearch: only true/false; the
            # empty string, which a document may hold for false, is an error in a query.
            if value is True or value is False or value in ("true", "false"):
                return value is True or value == "true"
            raise QueryError(f"query DSL: {_short(value)} is not a boolean for {field.name}")
        if kind in DATE_TYPES:
            parse = _DateParser(self.now, None, None, field.type)
            return (parse.bound(value, round_up=False), parse.bound(value, round_up=True))
        if kind == "ip":
            return _ip_range(value, field)
        raise UnsupportedQueryError(f"query DSL: queries on {kind} field {field.name} are not implemented")

    def ignore_above(self, field: _Field) -> int | None:
        spec = self.mapping.field(field.name)
        return spec.ignore_above if spec is not None else None

    def wildcard(self, field: _Field, pattern: str, case_insensitive: bool) -> Matcher:
        if field.type in TEXT_TYPES:
            return self.wildcard_on_tokens(field, pattern if case_insensitive else _lower(pattern))
        if field.type not in KEYWORD_TYPES and field.type != "flattened":
            raise QueryError(f"query DSL: can only use wildcard queries on keyword and text fields, "
                             f"not on {field.type} field {field.name}")
        test = wildcard_matcher(pattern, case_insensitive)
        if field.constant is not None:
            return _always if test(field.constant) else _never
        read = field.read
        return lambda source: any(test(v) for v in read(source))

    def keyed_wildcard(self, name: str, pattern: str, scope: str | None) -> Matcher:
        """query_string's wildcard (not a plain prefix) on a key of a flattened field.

        Elasticsearch 9.5 runs it on the root field's indexed ``key\\0value`` terms of every key,
        without the key: ``paths.path:*run`` matches ``{"paths": {"other": "/run"}}`` and
        ``paths.path:/r*n`` matches nothing (a ``wildcard`` query on the key is refused instead,
        KeyedFlattenedFieldType#wildcardQuery). Measured by tests/integration/test_kql_differential.py.
        """
        root = self.flattened_root(name)
        assert root is not None
        root_spec = self.mapping.field(root)
        assert root_spec is not None
        base = self.read(root if scope is None else root[len(scope) + 1:], scope)
        test = wildcard_matcher(pattern, False)
        ignore_above = root_spec.ignore_above

        def keyed(source: Mapping[str, Any]) -> bool:
            return any(test(term) for obj in base(source) if isinstance(obj, Mapping)
                       for term in _keyed_terms(obj, ignore_above, ""))

        return keyed

    def wildcard_on_tokens(self, field: _Field, pattern: str) -> Matcher:
        test = wildcard_matcher(pattern, False)
        read = field.read
        return lambda source: any(test(token) for value in read(source) for token in value)

    def date_bounds(self, field: _Field, bounds: dict[str, Any], fmt: Any, zone: Any) -> tuple[Any, Any]:
        parse = _DateParser(self.now, fmt, zone, field.type)
        lower = upper = None
        # ES DateFieldType.rangeQuery: gt and lte round up, gte and lt round down.
        if "gte" in bounds:
            lower = parse.bound(bounds["gte"], round_up=False)
        if "gt" in bounds:
            lower = parse.bound(bounds["gt"], round_up=True) + 1
        if "lte" in bounds:
            upper = parse.bound(bounds["lte"], round_up=True)
        if "lt" in bounds:
            upper = parse.bound(bounds["lt"], round_up=False) - 1
        return lower, upper

    def single_field(self, body: Any, kind: str) -> tuple[str, Any]:
        if not isinstance(body, Mapping):
            raise QueryError(f"query DSL: [{kind}] needs an object")
        names = [k for k in body if k != "boost"]
        if len(names) != 1:
            raise QueryError(f"query DSL: [{kind}] needs exactly one field, got {names}")
        return names[0], body[names[0]]

    @staticmethod
    def options(body: Any, kind: str, known: set[str]) -> None:
        if not isinstance(body, Mapping):
            raise QueryError(f"query DSL: [{kind}] needs an object, got {_short(body)}")
        unknown = set(body) - known - {"boost", "_name"}
        if unknown:
            raise UnsupportedQueryError(f"query DSL: [{kind}] option(s) {sorted(unknown)} not implemented")

    # ----- fields

    def field(self, name: str, scope: str | None, exists: bool = False) -> _Field | None:
        """Resolve ``name`` as ES does for a query running inside nested ``scope``; None: unmapped.

        A field neither indexed nor with doc values (``event.original``) fails every query but
        ``exists``, which it never matches: ES's field types throw "Cannot search on field [f] since
        it is not indexed nor has doc values." (e.g. KeywordFieldTypeTests, BooleanFieldTypeTests).
        """
        if scope is not None and not name.startswith(scope + "."):
            return None
        relative = name if scope is None else name[len(scope) + 1:]
        spec = self.mapping.field(name)
        if spec is not None:
            if spec.nested_path != scope:
                return None
            if not spec.index and not (spec.doc_values and spec.type not in TEXT_TYPES):
                if exists:
                    return None
                raise QueryError(f"query DSL: Cannot search on field [{name}] since it is not indexed "
                                 "nor has doc values")
            parent = relative.rpartition(".")[0]
            if parent and self.mapping.field(name.rpartition(".")[0]) is not None:
                relative = parent  # a multi-field such as x.text indexes the values of x
            return self.typed(name, spec.type, spec.ignore_above, self.read(relative, scope))
        root = self.flattened_root(name)
        if root is not None:
            root_spec = self.mapping.field(root)
            if root_spec is None or root_spec.nested_path != scope:
                return None
            key = name[len(root) + 1:]
            base = self.read(root if scope is None else root[len(scope) + 1:], scope)
            ignore_above = root_spec.ignore_above
            inner = getter(key)

            def read_key(source: Mapping[str, Any]) -> list[Any]:
                out = []
                for obj in base(source):
                    if isinstance(obj, Mapping):
                        out.extend(_keyword_leaves(inner(obj), ignore_above))
                return out

            return _Field(name, "flattened", read_key)
        dynamic_type = self.dynamic_type(name)
        if dynamic_type is None:
            return None
        return self.typed(name, dynamic_type, None, self.read(relative, scope))

    def typed(self, name: str, kind: str, ignore_above: int | None, get: Getter) -> _Field:
        if kind == "constant_keyword":
            constant = self.raw_spec(name).get("value")
            if constant is not None:
                return _Field(name, kind, lambda source: [constant], constant=str(constant))
            kind = "keyword"  # no value yet: ES takes it from the first document, so source decides
        return _Field(name, kind, _reader(kind, name, ignore_above, get),
                      raw=get if kind in KEYWORD_TYPES else None)

    def flattened_root(self, name: str) -> str | None:
        parts = name.split(".")
        for i in range(len(parts) - 1, 0, -1):
            spec = self.mapping.field(".".join(parts[:i]))
            if spec is not None:
                return spec.name if spec.type == "flattened" else None
        return None

    def raw_spec(self, name: str) -> dict[str, Any]:
        path = _mapping_path(self.mapping.body, name)
        return path[-1] if path else {}

    def dynamic_type(self, name: str) -> str | None:
        """The type a dynamic template gives ``name`` under a ``dynamic: true`` object, else None."""
        dynamic = self.mapping.body.get("dynamic", True)
        for node in _mapping_path(self.mapping.body, name, partial=True):
            dynamic = node.get("dynamic", dynamic)
        if str(dynamic).lower() != "true":
            return None
        for template in self.mapping.body.get("dynamic_templates", []):
            for spec in template.values():
                if re.fullmatch(_glob(spec.get("path_match", "")), name) and \
                        spec.get("match_mapping_type") in ("string", "*"):
                    return spec.get("mapping", {}).get("type", "keyword")
        raise UnsupportedQueryError(f"query DSL: {name} falls under a dynamic: true object and no dynamic "
                                    "template maps it; its type would depend on the data")


def _single_should(clause: Any) -> bool:
    """``{"bool": {"should": [x], "minimum_should_match": 1}}``: the same as ``x``."""
    if not isinstance(clause, Mapping) or clause.keys() != {"bool"}:
        return False
    if not isinstance(clause["bool"], Mapping):
        return False
    body = clause["bool"]
    return (body.keys() <= {"should", "minimum_should_match"} and isinstance(body.get("should"), list)
            and len(body["should"]) == 1 and body.get("minimum_should_match", 1) in (1, "1"))


def _mapping_path(body: Mapping[str, Any], name: str, partial: bool = False) -> list[dict[str, Any]]:
    """Mapping nodes from the root down to ``name`` (keys may contain dots, multi-fields count).

    [] when ``name`` is not mapped, unless ``partial``: then the object nodes found on the way.
    """
    parts = name.split(".")
    node: Mapping[str, Any] = body
    path: list[dict[str, Any]] = []
    i = 0
    while i < len(parts):
        props = node.get("properties", {})
        for j in range(len(parts), i, -1):
            key = ".".join(parts[i:j])
            if key in props:
                node = props[key]
                path.append(node)
                i = j
                break
        else:
            rest = ".".join(parts[i:])
            if rest in node.get("fields", {}):
                return [*path, node["fields"][rest]]
            return path if partial else []
    return path


def _glob(pattern: str) -> str:
    return ".*".join(re.escape(p) for p in pattern.split("*"))


# --------------------------------------------------------------------------- per-type values


def _reader(kind: str, name: str, ignore_above: int | None, get: Getter) -> Getter:
    """Read the values ES indexes for a field of type ``kind``."""
    if kind in KEYWORD_TYPES:
        if ignore_above is None:
            def read_keyword(source: Mapping[str, Any]) -> list[Any]:
                values = get(source)
                if all(v.__class__ is str for v in values):
                    return values
                return [_keyword_text(v) for v in values if not isinstance(v, Mapping)]
            return read_keyword
        half = ignore_above // 2  # strings this short are within ignore_above in any encoding

        def read_limited(source: Mapping[str, Any]) -> list[Any]:
            out = []
            for value in get(source):
                if value.__class__ is str:
                    if len(value) <= half or not _over(value, ignore_above):
                        out.append(value)
                elif not isinstance(value, Mapping) and not _over(text := _keyword_text(value), ignore_above):
                    out.append(text)
            return out

        return read_limited
    if kind == "flattened":
        return lambda source: _keyword_leaves(get(source), ignore_above)
    if kind in TEXT_TYPES:
        return lambda source: [analyze(_text_of(v)) for v in get(source) if not isinstance(v, Mapping)]
    if kind in INTEGER_TYPES:
        return lambda source: [n for v in get(source) if (n := _source_integer(v)) is not None]
    if kind in FLOAT_TYPES:
        return lambda source: [n for v in get(source) if (n := _source_float(v)) is not None]
    if kind == "boolean":
        return lambda source: [b for v in get(source) if (b := _boolean(v)) is not None]
    if kind in DATE_TYPES:
        parse = _DateParser(datetime.now(UTC), None, None, kind)
        return lambda source: [d for v in get(source) if (d := parse.source(v)) is not None]
    if kind == "ip":
        return lambda source: [a for v in get(source) if (a := _ip_int(v)) is not None]
    raise UnsupportedQueryError(f"query DSL: queries on {kind} field {name} are not implemented")


def _keyword_equals(raw: Getter, wanted: set[str]) -> Matcher:
    """Term equality on a keyword field, straight on _source values.

    ``wanted`` holds only targets within ignore_above, so a source string equal to one is
    within it too; numbers and booleans compare by their indexed text.
    """
    if len(wanted) == 1:
        (target,) = wanted

        def equals_one(source: Mapping[str, Any]) -> bool:
            for value in raw(source):
                if value.__class__ is str:
                    if value == target:
                        return True
                elif not isinstance(value, Mapping) and _keyword_text(value) == target:
                    return True
            return False

        return _on_one_string(raw, equals_one, wanted=frozenset(wanted))

    def equals_any(source: Mapping[str, Any]) -> bool:
        for value in raw(source):
            if value.__class__ is str:
                if value in wanted:
                    return True
            elif not isinstance(value, Mapping) and _keyword_text(value) in wanted:
                return True
        return False

    return _on_one_string(raw, equals_any, wanted=frozenset(wanted))


def _on_one_string(raw: Getter, general: Matcher, wanted: frozenset[str] | None = None,
                   test: Callable[[str], bool] | None = None) -> Matcher:
    """``general`` (a test on every value ``raw`` reads), with the usual case read in place: one
    string at a plain path, tested by ``wanted`` membership or ``test`` (which must agree with
    ``general`` on a document holding just that string)."""
    parts = getattr(raw, "parts", None)
    if parts is None:
        return general
    return codegen.string_leaf(parts, general, wanted, test)


def _keyword_text(value: Any) -> str:
    """How a keyword field indexes a JSON scalar."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _keyword_leaves(values: list[Any], ignore_above: int | None) -> list[str]:
    """Every leaf value of flattened objects, as keyword text (ignore_above applies per leaf)."""
    out: list[str] = []
    stack = list(values)
    while stack:
        value = stack.pop()
        if isinstance(value, Mapping):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        elif value is not None:
            text = _keyword_text(value)
            if not _over(text, ignore_above):
                out.append(text)
    return out


def _keyed_terms(obj: Mapping[str, Any], ignore_above: int | None, prefix: str) -> Iterable[str]:
    """The ``key\\0value`` terms a flattened field indexes for an object (keys as dotted paths)."""
    for key, value in obj.items():
        path = prefix + key
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, Mapping):
                yield from _keyed_terms(item, ignore_above, path + ".")
            elif item is not None and not isinstance(item, list):
                text = _keyword_text(item)
                if not _over(text, ignore_above):
                    yield f"{path}\0{text}"


def _over(text: str, ignore_above: int | None) -> bool:
    """Longer than ignore_above in Java chars (UTF-16 code units)."""
    return ignore_above is not None and len(text) > ignore_above // 2 and java_length(text) > ignore_above


def _text_of(value: Any) -> str:
    if value is None or isinstance(value, Mapping | list):
        raise QueryError(f"query DSL: {_short(value)} is not a text value")
    return _keyword_text(value)


def _number(value: Any, field: _Field) -> float:
    try:
        if isinstance(value, bool):
            raise ValueError
        return float(value)
    except (TypeError, ValueError):
        raise QueryError(f"query DSL: {_short(value)} is not a number for {field.type} field {field.name}") \
            from None


def _source_integer(value: Any) -> int | None:
    """ES coerces "5" and 5.7 to 5 in a long field; anything else is malformed."""
    if value.__class__ is int:
        return value
    if isinstance(value, bool | Mapping):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if math.isnan(number) or math.isinf(number):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value.strip()):
        return int(value)
    return int(number)


def _source_float(value: Any) -> float | None:
    if isinstance(value, bool | Mapping):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _boolean(value: Any) -> bool | None:
    """ES booleans: true/false, "true"/"false", and "" as false; anything else is malformed."""
    if isinstance(value, bool):
        return value
    if value in ("true", "false", ""):
        return value == "true"
    return None


def _ip_int(value: Any) -> int | None:
    """An address as ES stores it: IPv4 as its IPv4-mapped IPv6 form."""
    if not isinstance(value, str):
        return None
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv4Address):
        return 0xFFFF_0000_0000 | int(address)
    return int(address)


def _ip_range(value: Any, field: _Field) -> tuple[int, int]:
    """A term on an ip field: one address, or a CIDR block (ES IpFieldMapper.termQuery)."""
    text = _keyword_text(value)
    if "/" in text:
        try:
            network = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise QueryError(f"query DSL: {text!r} is not an IP or CIDR for {field.name}") from None
        if isinstance(network, ipaddress.IPv6Network) and network.network_address.ipv4_mapped is not None:
            # InetAddresses.parseCidr refuses it: is the prefix length IPv4's or IPv6's?
            raise QueryError(f"query DSL: CIDR notation is not allowed with IPv6-mapped IPv4 address "
                             f"{text!r} for {field.name}")
        lo, hi = _ip_int(str(network.network_address)), _ip_int(str(network.broadcast_address))
        assert lo is not None and hi is not None
        return lo, hi
    address = _ip_int(text)
    if address is None:
        raise QueryError(f"query DSL: {text!r} is not an IP address for {field.name}")
    return address, address


def _string_bounds(bounds: dict[str, Any]) -> tuple[Any, Any]:
    return _bounds({op: _keyword_text(v) for op, v in bounds.items()})


def _number_bounds(field: _Field, bounds: dict[str, Any]) -> tuple[Any, Any]:
    return _bounds({op: _number(v, field) for op, v in bounds.items()})


def _ip_bounds(field: _Field, bounds: dict[str, Any]) -> tuple[Any, Any]:
    parsed = {}
    for op, value in bounds.items():
        address = _ip_int(_keyword_text(value))
        if address is None:
            raise QueryError(f"query DSL: {value!r} is not an IP address for {field.name}")
        parsed[op] = address
    return _bounds(parsed)


def _bounds(values: dict[str, Any]) -> tuple[Any, Any]:
    """(lower, upper) as (value, inclusive) pairs; None when open."""
    lower = (values["gte"], True) if "gte" in values else (values["gt"], False) if "gt" in values else None
    upper = (values["lte"], True) if "lte" in values else (values["lt"], False) if "lt" in values else None
    return lower, upper


def _in_range(value: Any, lower: Any, upper: Any) -> bool:
    if isinstance(lower, tuple):
        bound, inclusive = lower
        if value < bound or (value == bound and not inclusive):
            return False
    elif lower is not None and value < lower:
        return False
    if isinstance(upper, tuple):
        bound, inclusive = upper
        if value > bound or (value == bound and not inclusive):
            return False
    elif upper is not None and value > upper:
        return False
    return True


# --------------------------------------------------------------------------- text analysis

# The standard tokenizer (Unicode UAX #29 word boundaries) for letters and digits: letters
# and digits join, "_" joins anything (ExtendNumLet), ":" "." "'" "·" join letters
# (MidLetter/MidNumLet), "." "," ";" "'" join digits (MidNum/MidNumLet); everything else
# separates. Limits: Han/Hiragana/Thai and other scripts that UAX #29 segments per
# character or by dictionary, and Katakana runs are not modelled.
_LETTER = r"[^\W\d_]"
_WORD = (
    rf"(?:_*(?:{_LETTER}|\d))(?:[_\u0300-\u036f]|{_LETTER}|\d"
    rf"|(?<={_LETTER})[:.'\u00b7\u2019\u2018\u2027\ufe13\ufe55\uff1a\u2024\ufe52\uff07\uff0e](?={_LETTER})"
    rf"|(?<=\d)[.,;'\u2019\u2018\u037e\u0589\u060c\u060d\u066c\u07f8\u2044\ufe10\ufe14\ufe50\ufe54\uff0c\uff1b"
    rf"\u2024\ufe52\uff07\uff0e](?=\d))*"
)
# Emoji are tokens of their own (<EMOJI>, Lucene's StandardTokenizer since 7.x): one
# Extended_Pictographic character (emoji-data.txt; the common ranges) with its variation
# selector, skin tone and ZWJ-joined sequence, or a pair of regional indicators (a flag).
_PICTOGRAPHIC = (
    "[\u00a9\u00ae\u203c\u2049\u2122\u2139\u2194-\u2199\u21a9\u21aa\u231a\u231b\u2328\u23cf\u23e9-\u23f3"
    "\u23f8-\u23fa\u24c2\u25aa\u25ab\u25b6\u25c0\u25fb-\u25fe\u2600-\u2605\u2607-\u2612\u2614-\u2685"
    "\u2690-\u2705\u2708-\u2712\u2714\u2716\u271d\u2721\u2728\u2733\u2734\u2744\u2747\u274c\u274e"
    "\u2753-\u2755\u2757\u2763-\u2767\u2795-\u2797\u27a1\u27b0\u27bf\u2934\u2935\u2b05-\u2b07\u2b1b"
    "\u2b1c\u2b50\u2b55\u3030\u303d\u3297\u3299\U0001f000-\U0001f0ff\U0001f10d-\U0001f10f\U0001f12f"
    "\U0001f16c-\U0001f171\U0001f17e\U0001f17f\U0001f18e\U0001f191-\U0001f19a\U0001f1ad-\U0001f1e5"
    "\U0001f201-\U0001f20f\U0001f21a\U0001f22f\U0001f232-\U0001f23a\U0001f23c-\U0001f23f"
    "\U0001f249-\U0001f3fa\U0001f400-\U0001f53d\U0001f546-\U0001f64f\U0001f680-\U0001f6ff"
    "\U0001f774-\U0001f77f\U0001f7d5-\U0001f7ff\U0001f80c-\U0001f80f\U0001f848-\U0001f84f"
    "\U0001f85a-\U0001f85f\U0001f888-\U0001f88f\U0001f8ae-\U0001f8ff\U0001f90c-\U0001f93a"
    "\U0001f93c-\U0001f945\U0001f947-\U0001faff\U0001fc00-\U0001fffd]"
)
_EMOJI_TAIL = "[\ufe0f\U0001f3fb-\U0001f3ff]*"
_TOKEN = re.compile(
    f"{_WORD}|[\U0001f1e6-\U0001f1ff]{{1,2}}"
    f"|{_PICTOGRAPHIC}{_EMOJI_TAIL}(?:\u200d{_PICTOGRAPHIC}{_EMOJI_TAIL})*"
)
_ASCII_TOKEN = re.compile(_WORD)  # no emoji in ASCII text: the shorter pattern is faster
MAX_TOKEN_LENGTH = 255  # standard tokenizer default; longer tokens are split


def analyze(text: str) -> list[str]:
    """The ``standard`` analyzer: UAX #29 word tokens, lowercased per code point, no stop words."""
    tokens = []
    for match in (_ASCII_TOKEN if text.isascii() else _TOKEN).finditer(text):
        token = _lower(match.group())
        for start in range(0, len(token), MAX_TOKEN_LENGTH):
            tokens.append(token[start:start + MAX_TOKEN_LENGTH])
    return tokens


def _lower(text: str) -> str:
    """Java's Character.toLowerCase per code point (Python's str.lower may grow a string)."""
    lowered = text.lower()
    if len(lowered) == len(text):
        return lowered
    return "".join(c.lower()[0] for c in text)


def _contains_run(tokens: list[str], phrase: list[str]) -> bool:
    size = len(phrase)
    first = phrase[0]
    return any(tokens[i:i + size] == phrase for i, token in enumerate(tokens) if token == first)


# --------------------------------------------------------------------------- wildcards


def _wildcard_pieces(pattern: str) -> list[str | _Single | None]:
    """A Lucene wildcard pattern as literal runs, None for ``*`` and SINGLE for ``?``."""
    pieces: list[str | _Single | None] = []
    literal: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            literal.append(pattern[i + 1])
            i += 2
            continue
        if char in "*?":
            if literal:
                pieces.append("".join(literal))
                literal = []
            pieces.append(None if char == "*" else SINGLE)
        else:
            literal.append(char)
        i += 1
    if literal:
        pieces.append("".join(literal))
    return pieces


class _Single:
    """The ``?`` wildcard."""


SINGLE = _Single()


def wildcard_matcher(pattern: str, case_insensitive: bool) -> Callable[[str], bool]:
    """Lucene WildcardQuery on a whole value: ``*`` any run, ``?`` one character, ``\\`` escapes."""
    pieces = _wildcard_pieces(pattern)
    single = any(p is SINGLE for p in pieces)
    fold = _lower if case_insensitive else _identity
    if not single:
        texts = [fold(p) for p in pieces if isinstance(p, str)]
        shape = tuple(p is None for p in pieces)
        if shape == (False,):
            (whole,) = texts
            return lambda value: fold(value) == whole
        if shape == (False, True):
            (prefix,) = texts
            return lambda value: fold(value).startswith(prefix)
        if shape == (True, False):
            (suffix,) = texts
            return lambda value: fold(value).endswith(suffix)
        if shape == (True, False, True):
            (middle,) = texts
            return lambda value: middle in fold(value)
        if all(shape):
            return lambda value: True
    regex = "".join(".*" if p is None else "." if p is SINGLE else re.escape(fold(p)) for p in pieces)
    compiled = re.compile(regex, re.DOTALL)
    return lambda value: compiled.fullmatch(fold(value)) is not None


def _identity(text: str) -> str:
    return text


def _has_wildcard(term: str) -> bool:
    return re.search(r"(?<!\\)(?:\\\\)*[*?]", term) is not None


def _is_prefix_pattern(term: str) -> bool:
    """``abc*``: literal text, then one trailing ``*`` (query_string makes it a prefix query)."""
    pieces = _wildcard_pieces(term)
    return len(pieces) == 2 and isinstance(pieces[0], str) and pieces[1] is None


def _unescape(term: str) -> str:
    return re.sub(r"\\(.)", r"\1", term, flags=re.DOTALL)


def _query_string_terms(query: str) -> list[str]:
    terms = [t for t in re.split(r"(?<!\\)\s+", query.strip()) if t]
    for term in terms:
        operator = term in ("AND", "OR", "NOT", "&&", "||") or term[0] in "+-!(\""
        if operator or re.search(r"(?<!\\)[:~^]", term):
            raise UnsupportedQueryError(f"query DSL: [query_string] syntax {term!r} is not implemented "
                                        "(only escaped terms and wildcards, as Kibana sends them)")
    return terms


# --------------------------------------------------------------------------- dates

_ISO = re.compile(
    r"(?P<y>[0-9]{4})(?:-(?P<mo>[0-9]{2})(?:-(?P<d>[0-9]{2})"
    r"(?:T(?P<h>[0-9]{2})(?::(?P<mi>[0-9]{2})(?::(?P<s>[0-9]{2})(?:[.,](?P<f>[0-9]{1,9}))?)?)?"
    r"(?P<z>Z|[+-][0-9]{2}(?::?[0-9]{2})?)?)?)?)?"
)
_EPOCH = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_MATH = re.compile(r"([+-])([0-9]*)([yMwdhHms])|/([yMwdhHms])")
_NANOS = {"date": 1_000_000, "date_nanos": 1}


class _DateParser:
    """ES date parsing for ``strict_date_optional_time||epoch_millis`` (the date field default).

    Values are epoch nanoseconds truncated to the field's resolution (milliseconds for
    ``date``). ``round_up`` fills missing fields with their maximum (month 1, day 1, 23:59:59.
    999999999), as ES's JavaDateMathParser does for ``gt``/``lte`` bounds.
    """

    def __init__(self, now: datetime, fmt: Any, zone: Any, kind: str) -> None:
        if fmt not in (None, "strict_date_optional_time", "strict_date_optional_time||epoch_millis",
                       "epoch_millis", "strict_date_optional_time_nanos"):
            raise UnsupportedQueryError(f"query DSL: date format {fmt!r} is not implemented")
        self.now = now
        self.fmt = fmt
        self.zone = _zone(zone) if zone is not None else UTC
        self.unit = _NANOS[kind]

    def source(self, value: Any) -> int | None:
        """A document value; malformed values are absent."""
        try:
            return self.parse(value, round_up=False, zone=UTC)
        except QueryError:
            return None

    def bound(self, value: Any, round_up: bool) -> int:
        text = _keyword_text(value)
        if text.startswith("now"):
            return self.math(self.now, text[3:], round_up)
        if "||" in text:
            anchor, math_part = text.split("||", 1)
            start = self.parse(anchor, round_up=False, zone=self.zone) * self.unit  # in nanoseconds
            when = datetime.fromtimestamp(start // 1_000_000_000, UTC) + timedelta(
                microseconds=(start % 1_000_000_000) // 1000)
            return self.math(when, math_part, round_up)
        return self.parse(value, round_up, self.zone)

    def parse(self, value: Any, round_up: bool, zone: Any) -> int:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return self.truncate(int(value * 1_000_000))
        text = _keyword_text(value)
        if self.fmt != "epoch_millis":
            match = _ISO.fullmatch(text)
            if match:
                return self.truncate(self.iso(match, round_up, zone))
        epoch_allowed = self.fmt in (None, "epoch_millis", "strict_date_optional_time||epoch_millis")
        if epoch_allowed and _EPOCH.fullmatch(text):
            whole, _, fraction = text.partition(".")
            nanos = int(whole) * 1_000_000 + (int(fraction.ljust(6, "0")[:6]) if fraction else 0) * (
                -1 if whole.startswith("-") else 1)
            return self.truncate(nanos)
        raise QueryError(f"query DSL: failed to parse date {text!r}")

    def iso(self, m: re.Match[str], round_up: bool, zone: Any) -> int:
        def part(name: str, low: int, high: int) -> int:
            value = m.group(name)
            return int(value) if value is not None else (high if round_up else low)

        fraction = m.group("f")
        nanos = int(fraction.ljust(9, "0")) if fraction else (999_999_999 if round_up else 0)
        try:
            moment = datetime(int(m.group("y")), part("mo", 1, 1), part("d", 1, 1), part("h", 0, 23),
                              part("mi", 0, 59), part("s", 0, 59))
        except ValueError:
            raise QueryError(f"query DSL: failed to parse date {m.group()!r}") from None
        offset = m.group("z")
        moment = moment.replace(tzinfo=_zone(offset) if offset else zone)
        return _epoch_seconds(moment) * 1_000_000_000 + nanos

    def math(self, when: datetime, expression: str, round_up: bool) -> int:
        """ES date math: ``+1d``, ``-5m``, ``/d`` (rounding up goes to the unit's last millisecond)."""
        moment = when.astimezone(self.zone)
        pos = 0
        for m in _MATH.finditer(expression):
            if m.start() != pos:
                break
            pos = m.end()
            if m.group(4):
                start = _truncate(moment, m.group(4))
                if round_up:
                    start = _add(start, m.group(4), 1) - timedelta(milliseconds=1)
                moment = start
            else:
                amount = int(m.group(2) or 1) * (1 if m.group(1) == "+" else -1)
                moment = _add(moment, m.group(3), amount)
        if pos != len(expression):
            raise QueryError(f"query DSL: bad date math {expression!r}")
        micro = moment.microsecond
        return self.truncate(_epoch_seconds(moment) * 1_000_000_000 + micro * 1000)

    def truncate(self, nanos: int) -> int:
        return nanos // self.unit


def _epoch_seconds(moment: datetime) -> int:
    return int((moment.replace(microsecond=0) - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds())


def _zone(name: Any) -> Any:
    text = str(name)
    if re.fullmatch(r"[+-][0-9]{2}(?::?[0-9]{2})?|Z", text):
        if text == "Z":
            return UTC
        sign = 1 if text[0] == "+" else -1
        digits = text[1:].replace(":", "")
        return _fixed(sign * (int(digits[:2]) * 60 + int(digits[2:4] or 0)))
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise QueryError(f"query DSL: unknown time zone {text!r}") from None


def _fixed(minutes: int) -> Any:
    from datetime import timezone

    return timezone(timedelta(minutes=minutes))


def _truncate(moment: datetime, unit: str) -> datetime:
    if unit == "y":
        return moment.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
    if unit == "M":
        return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if unit == "w":
        day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        return day - timedelta(days=day.weekday())
    if unit == "d":
        return moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if unit in "hH":
        return moment.replace(minute=0, second=0, microsecond=0)
    if unit == "m":
        return moment.replace(second=0, microsecond=0)
    return moment.replace(microsecond=0)


def _add(moment: datetime, unit: str, amount: int) -> datetime:
    if unit in "yM":
        months = moment.month - 1 + amount * (12 if unit == "y" else 1)
        year, month = moment.year + months // 12, months % 12 + 1
        last = [31, 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28, 31, 30, 31, 30,
                31, 31, 30, 31, 30, 31][month - 1]
        return moment.replace(year=year, month=month, day=min(moment.day, last))
    seconds = {"w": 604800, "d": 86400, "h": 3600, "H": 3600, "m": 60, "s": 1}[unit]
    return moment + timedelta(seconds=seconds * amount)


# --------------------------------------------------------------------------- combinators


def _always(source: Mapping[str, Any]) -> bool:
    return True


def _never(source: Mapping[str, Any]) -> bool:
    return False


def _rewritten_none(source: Mapping[str, Any]) -> bool:
    """Matches nothing, like _never, but marks a query ES rewrote to match_none (see q_bool)."""
    return False


def _all_of(checks: list[Matcher]) -> Matcher:
    if not checks:
        return _always
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        first, second = checks
        return codegen.combination(lambda source: first(source) and second(source), "and", checks)

    def all_of(source: Mapping[str, Any]) -> bool:
        for check in checks:  # noqa: SIM110 - a loop is faster than all() over a generator
            if not check(source):
                return False
        return True

    return codegen.combination(all_of, "and", checks)


def _any_of(checks: list[Matcher]) -> Matcher:
    if not checks:
        return _never
    if len(checks) == 1:
        return checks[0]

    def any_of(source: Mapping[str, Any]) -> bool:
        for check in checks:  # noqa: SIM110 - a loop is faster than any() over a generator
            if check(source):
                return True
        return False

    return codegen.combination(any_of, "or", checks)


def _none_of(checks: list[Matcher]) -> Matcher:
    if len(checks) == 1:
        (only,) = checks
        return codegen.combination(lambda source: not only(source), "nor", checks)
    matches = _any_of(checks)
    return codegen.combination(lambda source: not matches(source), "nor", checks)


def _at_least(checks: list[Matcher], count: int) -> Matcher:
    return lambda source: sum(1 for check in checks if check(source)) >= count


def _minimum_should_match(value: Any, should: int, default: int) -> int:
    """ES minimum_should_match: an integer, a negative integer, or a percentage of the should clauses."""
    if value is None:
        return default
    text = str(value).strip()
    try:
        if text.endswith("%"):
            percent = int(text[:-1])
            count = should * abs(percent) // 100
            return count if percent >= 0 else should - count
        number = int(text)
    except ValueError:
        raise UnsupportedQueryError(f"query DSL: minimum_should_match {value!r} is not implemented") from None
    return number if number >= 0 else max(should + number, 0)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
