"""The in-process engine: Kibana's rule execution over documents held in memory.

For each rule: keep the documents of the indices the rule reads, inside its
window ``[now - from, now]`` (every document when ``now`` is None), in
ascending ``@timestamp`` order; run the query with the index mapping's
semantics; keep at most ``max_signals`` hits, one alert per source document.

Exception items are Kibana's filter on the search (``must_not`` beside the query, or the
``filter`` of an EQL/ES|QL request): the documents they match are taken out before the rule
runs. Those the rule would have alerted on are reported as suppressed, each with the item
that matched it.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from dac.compile import duration_seconds
from dac.documents import SourceDocument, no_cycle_collection, source_time, values_at
from dac.engine.alerts import build_alert
from dac.engine.base import ExceptionLists, KibanaRule, RuleOutcome, Suppression
from dac.errors import DacError, EventError, UnsupportedQueryError
from dac.mapping import IndexMapping, mapping_for_index
from dac.query.exception_filter import exceptions_filter, item_filter, rule_items

Hit = tuple[SourceDocument, dict[str, Any] | None]  # a document, and the ES|QL row it produced
Executor = Callable[[list[SourceDocument]], list[Hit]]


class LocalEngine:
    name = "local"

    def run(
        self,
        rules: Sequence[KibanaRule],
        documents: Sequence[SourceDocument],
        now: datetime | None = None,
        exceptions: ExceptionLists | None = None,
    ) -> list[RuleOutcome]:
        with no_cycle_collection():
            ordered = sorted(_one_per_id(documents), key=timestamp)
            return [self.run_rule(rule, ordered, now, exceptions) for rule in rules]

    def run_rule(
        self,
        rule: KibanaRule,
        ordered: list[SourceDocument],
        now: datetime | None,
        exceptions: ExceptionLists | None = None,
    ) -> RuleOutcome:
        outcome = RuleOutcome(rule["rule_id"], rule["name"])
        started = time.perf_counter()
        try:
            executor, patterns = compile_rule(rule)
        except UnsupportedQueryError as exc:
            outcome.skipped = f"local engine: {exc.message}"
            return outcome
        readable = {index for index in {d.index for d in ordered} if _reads(patterns, index)}
        candidates = [d for d in ordered if d.index in readable]
        if now is not None:
            start = now - timedelta(seconds=duration_seconds(rule["from"]))
            candidates = [d for d in candidates if start <= timestamp(d) <= now]
        items = rule_items(rule, exceptions, now)
        if items:
            mapping = _mapping(patterns)
            candidates, outcome.suppressed = _apply_exceptions(executor, candidates, items, mapping)
        alert_time = now or datetime.now().astimezone()
        seen: set[tuple[str, str]] = set()
        max_signals = rule.get("max_signals", 100)
        for document, row in executor(candidates):
            if (document.index, document.id) in seen:
                continue
            seen.add((document.index, document.id))
            if len(outcome.alerts) < max_signals:
                outcome.alerts.append(build_alert(rule, document, alert_time, row))
        outcome.matched = len(seen)
        outcome.capped_executions = int(len(seen) > len(outcome.alerts))
        outcome.seconds = time.perf_counter() - started
        return outcome


def _one_per_id(documents: Sequence[SourceDocument]) -> list[SourceDocument]:
    """The documents an index holds after indexing these: one per ``(index, _id)``, the first.

    A data stream refuses a second document with an existing ``_id`` (409, as the Elasticsearch
    engine's bulk ``create`` sees it); ids derive from content, so a repeated event line is one
    document. Keeping the copies would let them fill ES|QL's implicit ``LIMIT 1000`` before the
    per-id alert de-duplication, and lower the alert count (issue 10).
    """
    seen: set[tuple[str, str]] = set()
    unique = []
    for document in documents:
        key = (document.index, document.id)
        if key not in seen:
            seen.add(key)
            unique.append(document)
    return unique


@dataclass
class StreamingRule:
    """A rule compiled for streaming (dac.engine.replay).

    ``per_document``: the executor's hits on any batch are exactly its hits on each document
    alone, so documents can stream through it. ``cap``: a per-execution row limit of the query
    itself. ``fields``: the document fields that decide whether a document is a hit (None: any
    field may), which the executor reads from ``document.fields``; a hit's output (ES|QL row,
    alert) must be computed again on the whole document (:meth:`confirm`).
    """

    execute: Executor
    patterns: list[str]
    per_document: bool
    cap: int | None
    fields: set[str] | None
    confirm: Executor
    needles: frozenset[str] | None = None  # dac.engine.needles: one must be in a matching line


def compile_rule(rule: KibanaRule, streaming: bool = False) -> Any:
    """The rule's query compiled once into a function over candidate documents: (executor, patterns).

    With ``streaming``: a :class:`StreamingRule`.
    """
    execute, patterns, per_document, cap, fields, confirm = _compile(rule, streaming)
    if not streaming:
        return execute, patterns
    return StreamingRule(execute, patterns, per_document, cap, fields, confirm if per_document else execute,
                         rule_needles(rule, patterns) if per_document else None)


def rule_needles(rule: KibanaRule, patterns: list[str]) -> frozenset[str] | None:
    """Literals one of which a document's raw line must hold for ``rule`` to match it."""
    from dac.engine.needles import dsl_needles, esql_needles
    from dac.events.k8s_audit import copied_verbatim

    mapping = _mapping(patterns)
    # only fields whose values the conversion copies from the line (not event.outcome, constants…)
    keyword = {
        name for name, spec in mapping.fields.items() if spec.type == "keyword" and copied_verbatim(name)
    }
    if rule["language"] == "kuery":
        from dac.query.kql import parse_kql, to_dsl

        return dsl_needles(to_dsl(parse_kql(rule["query"]), mapping), keyword)
    if rule["language"] == "esql":
        from dac.query.esql import parse_esql

        return esql_needles(parse_esql(rule["query"]), keyword)
    return None


Compiled = tuple[Executor, list[str], bool, int | None, set[str] | None, Executor]


def _compile(rule: KibanaRule, streaming: bool) -> Compiled:
    """(executor, patterns, per_document, cap, fields, confirm): ``confirm`` is the executor over
    whole documents (the executor itself unless ``streaming``); both share one compiled query."""
    language = rule["language"]
    if rule["type"] not in ("query", "eql", "esql"):
        raise UnsupportedQueryError(f"{rule['type']} rules are not executed in-process")
    if language == "kuery":
        from dac.query.dsl import compile_query
        from dac.query.kql import parse_kql, to_dsl

        patterns = list(rule["index"])
        mapping = _mapping(patterns)
        dsl = to_dsl(parse_kql(rule["query"]), mapping)
        now = datetime.now(UTC)  # date math is anchored once, whenever the query is compiled again
        execute = _KqlExecutor(lambda sample: compile_query(dsl, mapping, now, sample), streaming)
        confirm = _KqlExecutor(execute.compile_with, False, execute.matches) if streaming else execute
        return execute, patterns, True, None, dsl_fields(dsl) if streaming else None, confirm
    if language == "eql":
        from dac.query.eql_engine import compile_eql

        patterns = list(rule["index"])
        matching = compile_eql(rule["query"], _mapping(patterns))
        per_document = "|" not in rule["query"]  # no head/tail pipe: each hit stands alone

        def execute_eql(docs: list[SourceDocument]) -> list[Hit]:
            return [(d, None) for d in matching(docs)]

        return execute_eql, patterns, per_document, None, None, execute_eql
    if language == "esql":
        from dac.query.esql import compile_esql, parse_esql

        query = parse_esql(rule["query"])
        patterns = list(query.indices)
        program = compile_esql(query, _mapping(patterns))

        streams = streaming and program.row_stages is not None and {"_id", "_index"} <= set(query.metadata)
        fields = esql_fields(query, program, _mapping(patterns)) if streams else None
        confirm = _esql_executor(program, False)
        execute = _esql_executor(program, True) if streams else confirm
        return execute, patterns, streams, program.limit if streams else None, fields, confirm
    raise UnsupportedQueryError(f"{language} queries are not executed in-process")


def _esql_executor(program: Any, per_document: bool) -> Executor:
    """Hits of an ES|QL program: each document's own rows (``per_document``), or the rows of the
    whole batch as one query sees them."""

    def execute(docs: list[SourceDocument]) -> list[Hit]:
        by_id: dict[Any, SourceDocument] | None = None  # made at the first row: most batches give none
        hits = []
        for row in (program.document_rows(docs) if per_document else program.run(docs)):
            if by_id is None:
                by_id = {(d.index, d.id): d for d in docs}
            key = (row.get("_index"), row.get("_id"))
            if key not in by_id:
                raise UnsupportedQueryError("ES|QL rules need METADATA _id, _index to tie rows to documents")
            hits.append((by_id[key], row))
        return hits

    return execute


class _KqlExecutor:
    """A KQL rule's executor: its query compiled now (errors surface here), and compiled again once
    with its and/or operands ordered by how often each matches a sample of the documents the rule
    runs on (``compile_query``'s ``sample``): the same hits, sooner. That costs a few ms, so it
    waits for TUNE_AFTER documents and a batch of at least TUNING_SAMPLE to draw from."""

    TUNE_AFTER = 20_000
    TUNING_SAMPLE = 200

    def __init__(self, compile_with: Callable[[list[Any]], Callable[[Any], bool]], streaming: bool,
                 matches: Callable[[Any], bool] | None = None) -> None:
        self.compile_with = compile_with
        self.matches = matches or compile_with([])  # ``matches``: already compiled by another executor
        self.streaming = streaming  # read d.fields (a LazyDocument's ready part), else d.source
        self.seen = 0

    def __call__(self, docs: list[SourceDocument]) -> list[Hit]:
        if self.seen < self.TUNE_AFTER:
            self.seen += len(docs)
            if self.seen >= self.TUNE_AFTER and len(docs) >= self.TUNING_SAMPLE:
                step = len(docs) // self.TUNING_SAMPLE
                sample = docs[::step][:self.TUNING_SAMPLE]
                self.matches = self.compile_with([d.fields if self.streaming else d.source for d in sample])
            elif self.seen >= self.TUNE_AFTER:
                self.seen = self.TUNE_AFTER - 1  # wait for a batch large enough to sample
        matches = self.matches
        if self.streaming:
            return [(d, None) for d in docs if matches(d.fields)]
        return [(d, None) for d in docs if matches(d.source)]


def _apply_exceptions(
    executor: Executor, documents: list[SourceDocument], items: list[dict[str, Any]], mapping: IndexMapping
) -> tuple[list[SourceDocument], list[Suppression]]:
    """The documents no item matches, and the alerts the matched ones would have raised, each
    attributed to the first item (in list order) that matches its document."""
    from dac.query.dsl import compile_query

    excluded = compile_query(exceptions_filter(items), mapping)  # the very filter Elasticsearch gets
    kept, removed = [], []
    for document in documents:
        (removed if excluded(document.source) else kept).append(document)
    if not removed:
        return kept, []
    matchers = [(item, compile_query(item_filter(item), mapping)) for item in items]
    suppressed = []
    for document, _ in executor(removed):
        item = next(item for item, matches in matchers if matches(document.source))
        suppressed.append(
            Suppression(document.index, document.id, item["list_id"], item["item_id"], item["name"])
        )
    return kept, suppressed


_FIELD_QUERIES = ("term", "terms", "match", "match_phrase", "match_phrase_prefix", "range", "prefix",
                  "wildcard", "regexp", "fuzzy")


def dsl_fields(dsl: Any) -> set[str] | None:
    """The fields a query DSL body reads; None when it may read any (query_string, multi_match…)."""
    fields: set[str] = set()
    stack = [dsl]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        for kind, body in node.items():
            if kind == "bool":
                stack.extend(body.get(part, []) for part in ("must", "filter", "should", "must_not"))
            elif kind in ("minimum_should_match", "boost"):
                continue
            elif kind == "exists":
                fields.add(body["field"])
            elif kind == "nested":
                stack.append(body["query"])
            elif kind in _FIELD_QUERIES and isinstance(body, dict):
                fields.update(body)
            elif kind == "match_all":
                continue
            else:
                return None
    return None if any("*" in name for name in fields) else fields


def esql_fields(query: Any, program: Any, mapping: IndexMapping) -> set[str] | None:
    """The document fields an ES|QL query's filtering reads (WHERE, EVAL, RENAME); ``_source``
    is read from the whole document. None when its rows do not each come from one document."""
    from dac.query.esql import syntax as s

    if program.row_stages is None:
        return None
    names: set[str] = set()
    for command in query.commands:
        expressions: list[Any] = []
        if isinstance(command, s.Where):
            expressions = [command.condition]
        elif isinstance(command, s.Eval):
            expressions = [field.expr for field in command.fields]
        elif isinstance(command, s.Rename):
            names.update(old.name for old, _ in command.pairs)
        for expression in expressions:
            names.update(node.name for node in s.walk(expression) if isinstance(node, s.Attribute))
    return {name for name in names if name in mapping.fields}  # not columns EVAL made


def rule_mapping(patterns: list[str]) -> IndexMapping:
    """The shipped field mapping of the first of a rule's index patterns that has one."""
    for pattern in patterns:
        mapping = mapping_for_index(pattern)
        if mapping is not None:
            return mapping
    raise DacError(f"no field mapping is known for {', '.join(patterns)}")


_mapping = rule_mapping


def reads_index(patterns: list[str], index: str) -> bool:
    return any(fnmatch.fnmatchcase(index, p) for p in patterns)


_reads = reads_index


def timestamp(document: SourceDocument) -> datetime:
    """The document's ``@timestamp`` (Kibana sorts and windows on it)."""
    moment = source_time(document.fields)  # the whole source, or the part a LazyDocument has ready
    if moment is None:
        value = next(iter(values_at(document.fields, "@timestamp")), None)
        raise EventError(f"document {document.id} has no valid @timestamp ({value!r})")
    return moment


document_time = timestamp
