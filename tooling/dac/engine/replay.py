"""Replay: what Kibana would have raised, every scheduled execution of each rule over a time span.

Kibana's rule preview (``POST /api/detection_engine/rules/preview``, security_solution
``server/lib/detection_engine/rule_preview/api/preview_rules/route.ts``) runs the rule
``invocationCount`` times, the last execution at ``timeframeEnd`` and each earlier one an
``interval`` before: ``startedAt = timeframeEnd - interval * (invocationCount - 1)``, then
``startedAt += interval``. The UI asks for ``ceil(timeframe / interval)`` executions, at least one
(``use_preview_invocation_count.ts``). Each execution searches ``[startedAt - from, startedAt]``
(``build_events_query.ts``), in ``@timestamp`` order, and creates at most ``max_signals`` alerts;
a document that already has an alert from an earlier execution gets none (the alert ``_id`` is
``generateId(index, id, version, rule)``, and bulk creation skips existing ids), and
``search_after_bulk_create.ts`` keeps paging until ``max_signals`` *new* alerts are made.

Exception items are part of each execution's search (``must_not``), so the documents they match
never reach the ``max_signals`` cap; each execution leaves out the items expired at its start
(``removeExpiredExceptions``). The alerts they kept back are reported as suppressed.

Documents stream through once. A rule whose hits each come from one document on its own (KQL,
EQL event queries without pipes, ES|QL of WHERE/EVAL/KEEP/DROP/RENAME) keeps only its hits, so
memory grows with the matches, not the input; any other rule keeps the documents it reads.
"""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from dac.compile import duration_seconds
from dac.documents import LazyDocument, SeenEvents, SourceDocument, no_cycle_collection
from dac.engine.alerts import build_alert
from dac.engine.base import ExceptionLists, KibanaRule, RuleOutcome, Suppression
from dac.engine.local import Hit, StreamingRule, compile_rule, document_time, reads_index, rule_mapping
from dac.errors import UnsupportedQueryError
from dac.query.exception_filter import ExceptionItem, expire_moment, item_filter, rule_all_items

BATCH = 512
EXECUTION_TIME_FIELD = "kibana.alert.rule.execution.timestamp"
Window = tuple[Sequence[Hit], Sequence[Suppression]]
WindowHits = Callable[[datetime, datetime], Window]
"""One execution's window ``[start, end]``: its hits with the exception items in force applied, in
``@timestamp`` order, and the alerts those items suppressed."""
Kept = tuple[datetime, int, SourceDocument, dict[str, Any] | None, tuple[int, ...]]
"""What a rule keeps of a document: time, input position, document, ES|QL row, matching items."""


def schedule(rule: KibanaRule, first: datetime, last: datetime) -> list[datetime]:
    """The execution times covering ``[first, last]``: the preview's invocations ending at ``last``."""
    interval = timedelta(seconds=duration_seconds(rule["interval"]))
    count = max(math.ceil((last - first) / interval), 1)
    return [last - interval * (count - 1 - k) for k in range(count)]


def look_back(rule: KibanaRule) -> timedelta:
    return timedelta(seconds=duration_seconds(rule["from"]))


def simulate(rule: KibanaRule, executions: Sequence[datetime], window_hits: WindowHits,
             cap: int | None = None) -> RuleOutcome:
    """Alerts of each execution, deduplicated across overlapping windows and capped per execution.

    Suppressed documents were never among the window's hits, so they count against no cap; one
    an item suppressed in one execution but that a later one alerted on (the item had expired)
    is reported as an alert only.
    """
    outcome = RuleOutcome(rule["rule_id"], rule["name"], executions=0)
    max_signals = rule.get("max_signals", 100) if cap is None else min(cap, rule.get("max_signals", 100))
    alerted: set[tuple[str, str]] = set()
    matched: set[tuple[str, str]] = set()
    suppressed: dict[tuple[str, str], Suppression] = {}
    back = look_back(rule)
    for at in executions:
        outcome.executions += 1
        created = 0
        capped = False
        hits, kept_back = window_hits(at - back, at)
        for suppression in kept_back:
            suppressed.setdefault((suppression.index, suppression.document_id), suppression)
        for document, row in hits:
            key = (document.index, document.id)
            matched.add(key)
            if key in alerted:
                continue
            if created == max_signals:
                capped = True  # left for a later, overlapping execution, or never alerted
                continue
            alerted.add(key)
            created += 1
            alert = build_alert(rule, document, at, row)
            alert[EXECUTION_TIME_FIELD] = alert["@timestamp"]
            outcome.alerts.append(alert)
        outcome.capped_executions += capped
    outcome.matched = len(matched)
    outcome.suppressed = [s for key, s in suppressed.items() if key not in alerted]
    return outcome


@dataclass(frozen=True)
class RuleExceptions:
    """A rule's exception items during a replay, each with its filter compiled by the DSL evaluator.

    All of them, expired or not: each execution leaves out those expired at its own start. They
    are evaluated on the whole document of a hit only (hits are rare), so the conversion need not
    include the fields the items read.
    """

    items: list[ExceptionItem]
    matchers: list[Callable[[dict[str, Any]], bool]]
    expires: list[datetime | None]

    @classmethod
    def of(cls, rule: KibanaRule, lists: ExceptionLists | None, patterns: list[str]) -> RuleExceptions | None:
        from dac.query.dsl import compile_query

        items = rule_all_items(rule, lists)
        if not items:
            return None
        mapping = rule_mapping(patterns)
        return cls(items, [compile_query(item_filter(item), mapping) for item in items],
                   [expire_moment(item) for item in items])

    def matching(self, document: SourceDocument) -> tuple[int, ...]:
        """The positions of the items whose filter matches ``document``, expired or not."""
        source = document.source
        return tuple(n for n, matches in enumerate(self.matchers) if matches(source))

    def suppression(
        self, document: SourceDocument, matching: tuple[int, ...], at: datetime
    ) -> Suppression | None:
        """The first item (in list order) of ``matching`` in force at ``at``, as a Suppression."""
        for n in matching:
            expires = self.expires[n]
            if expires is None or not expires < at:  # removeExpiredExceptions: expire_time < startedAt
                item = self.items[n]
                return Suppression(
                    document.index, document.id, item["list_id"], item["item_id"], item["name"]
                )
        return None


@dataclass
class _Rule:
    """One rule during a replay: its compiled form and what it kept from the stream."""

    rule: KibanaRule
    compiled: StreamingRule | None
    skipped: str | None = None
    exceptions: RuleExceptions | None = None
    kept: list[Kept] = field(default_factory=list)
    seconds: float = 0.0
    readable: dict[str, bool] = field(default_factory=dict)

    def reads(self, index: str) -> bool:
        known = self.readable.get(index)
        if known is None:
            assert self.compiled is not None
            known = self.readable[index] = reads_index(self.compiled.patterns, index)
        return known


class Replay:
    """Feed documents in batches (:meth:`feed`), then :meth:`finish` for each rule's outcome.

    Documents may be :class:`~dac.documents.LazyDocument` s converted only in the raw members
    :attr:`members` names: each rule selects on ``fields``, then its hits are confirmed, and their
    alerts built, on the whole document. ``exceptions`` (list_id → items, as ``Engine.run``
    takes them) are applied to each execution; None applies none.
    """

    def __init__(
        self, rules: Sequence[KibanaRule], compiled: Sequence[StreamingRule | None] | None = None,
        exceptions: ExceptionLists | None = None,
    ) -> None:
        """``compiled``: the rules already compiled by another Replay (its ``rules[i].compiled``)."""
        self.rules: list[_Rule] = []
        self.exceptions = exceptions
        for n, rule in enumerate(rules):
            try:
                done = compiled[n] if compiled is not None else compile_rule(rule, streaming=True)
                if done is None:
                    raise UnsupportedQueryError(self._reason(rule))
                excepting = RuleExceptions.of(rule, exceptions, done.patterns)
                self.rules.append(_Rule(rule, done, exceptions=excepting))
            except UnsupportedQueryError as exc:
                self.rules.append(_Rule(rule, None, skipped=f"local engine: {exc.message}"))
        self.first: datetime | None = None
        self.last: datetime | None = None
        self.sequence = 0
        self.alerts_so_far = 0

    @property
    def fields(self) -> set[str] | None:
        """Every document field some rule selects on (None: any field)."""
        out: set[str] = {"@timestamp"}
        for state in self.rules:
            if state.compiled is None:
                continue
            if not state.compiled.per_document or state.compiled.fields is None:
                return None
            out |= state.compiled.fields
        return out

    @staticmethod
    def _reason(rule: KibanaRule) -> str:
        try:
            compile_rule(rule, streaming=True)
        except UnsupportedQueryError as exc:
            return exc.message
        return "not compiled"

    @property
    def needles(self) -> tuple[bytes, ...] | None:
        """Byte strings one of which a line must hold for some rule to match it (None: unknown)."""
        found: set[str] = set()
        for state in self.rules:
            if state.compiled is None:
                continue
            if state.compiled.needles is None:
                return None
            found |= state.compiled.needles
        # a needle holding another is implied by it
        minimal = {n for n in found if not any(o != n and o in n for o in found)}
        return tuple(sorted(n.encode("utf-8") for n in minimal))

    def feed(self, documents: Sequence[Any]) -> None:
        # SeenEvents hold no rule's needle: no rule can match them; they count for the span and
        # the sequence. live: (position, time, document) of the others.
        live: list[tuple[int, datetime, Any]] = []
        times: list[datetime] = []
        position = self.sequence
        for document in documents:
            if type(document) is SeenEvents:
                times += (document.first, document.last)
                position += len(document)
            else:
                moment = document_time(document)
                times.append(moment)
                live.append((position, moment, document))
                position += 1
        if times:
            low, high = min(times), max(times)
            self.first = low if self.first is None or low < self.first else self.first
            self.last = high if self.last is None or high > self.last else self.last
        for state in self.rules:
            compiled = state.compiled
            if compiled is None:
                continue
            started = time.perf_counter()
            exceptions = state.exceptions
            batch = [item for item in live if state.reads(item[2].index)]
            if compiled.per_document:
                candidates = compiled.execute([d for _, _, d in batch]) if batch else []
                if candidates:
                    where = {id(d): (n, moment) for n, moment, d in batch}
                    for document, _ in candidates:
                        n, moment = where[id(document)]
                        whole = document.whole() if isinstance(document, LazyDocument) else document
                        for hit, row in compiled.confirm([whole]):
                            matching = exceptions.matching(hit) if exceptions else ()
                            state.kept.append((moment, n, hit, row, matching))
                            self.alerts_so_far += 1
            else:  # kept whole; executed per window at the end
                for n, moment, document in batch:
                    whole = document.whole() if isinstance(document, LazyDocument) else document
                    matching = exceptions.matching(whole) if exceptions else ()
                    state.kept.append((moment, n, whole, None, matching))
            state.seconds += time.perf_counter() - started
        self.sequence = position

    def finish(self, executions: Callable[[KibanaRule], list[datetime]]) -> list[RuleOutcome]:
        outcomes = []
        for state in self.rules:
            compiled = state.compiled
            if compiled is None:
                outcomes.append(RuleOutcome(state.rule["rule_id"], state.rule["name"], skipped=state.skipped))
                continue
            started = time.perf_counter()
            state.kept.sort(key=lambda item: (item[0], item[1]))
            times = [item[0] for item in state.kept]

            def window_hits(start: datetime, end: datetime, state: _Rule = state,
                            times: list[datetime] = times, compiled: StreamingRule = compiled) -> Window:
                low, high = bisect.bisect_left(times, start), bisect.bisect_right(times, end)
                inside = state.kept[low:high]
                if state.exceptions is not None:
                    return _excepting(compiled, state.exceptions, inside, end)
                if compiled.per_document:
                    return [(document, row) for _, _, document, row, _ in inside], ()
                return compiled.execute([document for _, _, document, _, _ in inside]), ()

            with no_cycle_collection():
                outcome = simulate(state.rule, executions(state.rule), window_hits, compiled.cap)
            outcome.seconds = state.seconds + time.perf_counter() - started
            outcomes.append(outcome)
        return outcomes


def _excepting(
    compiled: StreamingRule, exceptions: RuleExceptions, inside: Sequence[Kept], at: datetime
) -> Window:
    """One window with the items in force at ``at`` taken out first, as the search's filter does."""
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    kept: list[Kept] = []
    removed: dict[int, Suppression] = {}  # id(document) → the item that suppresses it
    for entry in inside:
        matching = entry[4]
        suppression = exceptions.suppression(entry[2], matching, at) if matching else None
        if suppression is None:
            kept.append(entry)
        else:
            removed[id(entry[2])] = suppression
    if compiled.per_document:  # every entry is a hit
        return [(document, row) for _, _, document, row, _ in kept], list(removed.values())
    hits = compiled.execute([document for _, _, document, _, _ in kept])
    if not removed:
        return hits, ()
    # the alerts they would have raised: the query over the removed documents on their own
    gone = [entry[2] for entry in inside if id(entry[2]) in removed]
    return hits, [removed[id(document)] for document, _ in compiled.execute(gone)]


def replay(
    rules: Sequence[KibanaRule],
    documents: Iterable[SourceDocument],
    now: datetime | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    exceptions: ExceptionLists | None = None,
) -> list[RuleOutcome]:
    """Every rule over ``documents``: one execution at ``now``, else every execution from start to end."""
    state = Replay(rules, exceptions=exceptions)
    batch: list[SourceDocument] = []
    with no_cycle_collection():
        for document in documents:
            batch.append(document)
            if len(batch) == BATCH:
                state.feed(batch)
                batch = []
        state.feed(batch)
    return state.finish(executions_for(state, now, start, end))


def outside_every_window(rules: Sequence[KibanaRule], executions: Callable[[KibanaRule], list[datetime]],
                         first: datetime | None, last: datetime | None) -> bool:
    """Whether events spanning ``[first, last]`` lie wholly outside every rule's execution windows
    (``[t - from, t]`` for each execution ``t``), so no event could be evaluated."""
    if first is None or last is None:
        return False
    for rule in rules:
        times = executions(rule)
        if times and min(times) - look_back(rule) <= last and max(times) >= first:
            return False
    return True


def executions_for(
    state: Replay, now: datetime | None, start: datetime | None, end: datetime | None
) -> Callable[[KibanaRule], list[datetime]]:
    """``[now]``, or the schedule over ``[start, end]`` (each defaulting to the input's span)."""
    if now is not None:
        return lambda rule: [now]
    first, last = start or state.first, end or state.last
    if first is None or last is None:
        return lambda rule: []
    return lambda rule: schedule(rule, first, last)
