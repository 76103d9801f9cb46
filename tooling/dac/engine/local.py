"""The in-process engine: Kibana's rule execution over documents held in memory.

For each rule: keep the documents of the indices the rule reads, inside its
window ``[now - from, now]`` (every document when ``now`` is None), in
ascending ``@timestamp`` order; run the query with the index mapping's
semantics; keep at most ``max_signals`` hits, one alert per source document.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from dac.compile import duration_seconds
from dac.documents import SourceDocument, no_cycle_collection, values_at
from dac.engine.alerts import build_alert
from dac.engine.base import KibanaRule, RuleOutcome
from dac.errors import DacError, EventError, UnsupportedQueryError
from dac.mapping import IndexMapping, mapping_for_index

Hit = tuple[SourceDocument, dict[str, Any] | None]  # a document, and the ES|QL row it produced
Executor = Callable[[list[SourceDocument]], list[Hit]]


class LocalEngine:
    name = "local"

    def run(
        self,
        rules: Sequence[KibanaRule],
        documents: Sequence[SourceDocument],
        now: datetime | None = None,
    ) -> list[RuleOutcome]:
        with no_cycle_collection():
            ordered = sorted(documents, key=timestamp)
            return [self.run_rule(rule, ordered, now) for rule in rules]

    def run_rule(self, rule: KibanaRule, ordered: list[SourceDocument], now: datetime | None) -> RuleOutcome:
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


def compile_rule(rule: KibanaRule, streaming: bool = False) -> Any:
    """The rule's query compiled once into a function over candidate documents: (executor, patterns).

    With ``streaming``: (executor, patterns, per_document, cap), where ``per_document`` says the
    executor's hits on any batch of documents are exactly its hits on each document alone (so
    documents can stream through it), and ``cap`` is a per-execution row limit of the query itself.
    """
    executor, patterns, per_document, cap = _compile(rule, streaming)
    return (executor, patterns, per_document, cap) if streaming else (executor, patterns)


def _compile(rule: KibanaRule, streaming: bool) -> tuple[Executor, list[str], bool, int | None]:
    language = rule["language"]
    if rule["type"] not in ("query", "eql", "esql"):
        raise UnsupportedQueryError(f"{rule['type']} rules are not executed in-process")
    if language == "kuery":
        from dac.query.dsl import compile_query
        from dac.query.kql import parse_kql, to_dsl

        patterns = list(rule["index"])
        mapping = _mapping(patterns)
        matches = compile_query(to_dsl(parse_kql(rule["query"]), mapping), mapping)
        return (lambda docs: [(d, None) for d in docs if matches(d.source)]), patterns, True, None
    if language == "eql":
        from dac.query.eql_engine import compile_eql

        patterns = list(rule["index"])
        matching = compile_eql(rule["query"], _mapping(patterns))
        per_document = "|" not in rule["query"]  # no head/tail pipe: each hit stands alone
        return (lambda docs: [(d, None) for d in matching(docs)]), patterns, per_document, None
    if language == "esql":
        from dac.query.esql import compile_esql, parse_esql

        query = parse_esql(rule["query"])
        patterns = list(query.indices)
        program = compile_esql(query, _mapping(patterns))

        streams = streaming and program.row_stages is not None and {"_id", "_index"} <= set(query.metadata)

        def execute(docs: list[SourceDocument]) -> list[Hit]:
            by_id = {(d.index, d.id): d for d in docs}
            hits = []
            for row in (program.document_rows(docs) if streams else program.run(docs)):
                key = (row.get("_index"), row.get("_id"))
                if key not in by_id:
                    raise UnsupportedQueryError(
                        "ES|QL rules need METADATA _id, _index to tie rows to documents"
                    )
                hits.append((by_id[key], row))
            return hits

        return execute, patterns, streams, program.limit if streams else None
    raise UnsupportedQueryError(f"{language} queries are not executed in-process")


def _mapping(patterns: list[str]) -> IndexMapping:
    for pattern in patterns:
        mapping = mapping_for_index(pattern)
        if mapping is not None:
            return mapping
    raise DacError(f"no field mapping is known for {', '.join(patterns)}")


def reads_index(patterns: list[str], index: str) -> bool:
    return any(fnmatch.fnmatchcase(index, p) for p in patterns)


_reads = reads_index


def timestamp(document: SourceDocument) -> datetime:
    """The document's ``@timestamp`` (Kibana sorts and windows on it)."""
    value = document.source.get("@timestamp") if type(document.source) is dict else None
    if type(value) is not str:
        value = next(iter(values_at(document.source, "@timestamp")), None)
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        raise EventError(f"document {document.id} has no valid @timestamp ({value!r})") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


document_time = timestamp
