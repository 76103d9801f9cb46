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
from datetime import datetime, timedelta
from typing import Any

from dac.compile import duration_seconds
from dac.documents import SourceDocument, no_cycle_collection, values_at
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
        for document, row in executor(candidates):
            if (document.index, document.id) in seen:
                continue
            seen.add((document.index, document.id))
            outcome.alerts.append(build_alert(rule, document, alert_time, row))
            if len(outcome.alerts) >= rule.get("max_signals", 100):
                break
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


def compile_rule(rule: KibanaRule) -> tuple[Executor, list[str]]:
    """The rule's query compiled once into a function over candidate documents."""
    language = rule["language"]
    if rule["type"] not in ("query", "eql", "esql"):
        raise UnsupportedQueryError(f"{rule['type']} rules are not executed in-process")
    if language == "kuery":
        from dac.query.dsl import compile_query
        from dac.query.kql import parse_kql, to_dsl

        patterns = list(rule["index"])
        mapping = _mapping(patterns)
        matches = compile_query(to_dsl(parse_kql(rule["query"]), mapping), mapping)
        return (lambda docs: [(d, None) for d in docs if matches(d.source)]), patterns
    if language == "eql":
        from dac.query.eql_engine import compile_eql

        patterns = list(rule["index"])
        matching = compile_eql(rule["query"], _mapping(patterns))
        return (lambda docs: [(d, None) for d in matching(docs)]), patterns
    if language == "esql":
        from dac.query.esql import compile_esql, parse_esql

        query = parse_esql(rule["query"])
        patterns = list(query.indices)
        program = compile_esql(query, _mapping(patterns))

        def execute(docs: list[SourceDocument]) -> list[Hit]:
            by_id = {(d.index, d.id): d for d in docs}
            hits = []
            for row in program.run(docs):
                key = (row.get("_index"), row.get("_id"))
                if key not in by_id:
                    raise UnsupportedQueryError(
                        "ES|QL rules need METADATA _id, _index to tie rows to documents"
                    )
                hits.append((by_id[key], row))
            return hits

        return execute, patterns
    raise UnsupportedQueryError(f"{language} queries are not executed in-process")


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


def _mapping(patterns: list[str]) -> IndexMapping:
    for pattern in patterns:
        mapping = mapping_for_index(pattern)
        if mapping is not None:
            return mapping
    raise DacError(f"no field mapping is known for {', '.join(patterns)}")


def _reads(patterns: list[str], index: str) -> bool:
    return any(fnmatch.fnmatchcase(index, p) for p in patterns)


def timestamp(document: SourceDocument) -> datetime:
    """The document's ``@timestamp`` (Kibana sorts and windows on it)."""
    value = next(iter(values_at(document.source, "@timestamp")), None)
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise EventError(f"document {document.id} has no valid @timestamp ({value!r})") from None
