"""The behavioural diff: BASE's and HEAD's version of each changed rule over the same events.

The events are built once and shared by both sides: every scenario of the changed rules (both
sides'), a generated corpus of mixed traffic (``dac generate mixed``, fixed seed), the CSR
efficacy corpus when a changed rule reads CSR requests, and the user's own event files. Both
sides run on the local engine through ``Engine.run``; an alert is the same on both sides when
it comes from the same source document. ``max_signals`` caps one Kibana execution, not a
corpus, so it is lifted on both sides to see every match.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dac.compile import CompiledRule
from dac.documents import SourceDocument, no_cycle_collection, values_at
from dac.engine.base import Engine, RuleOutcome
from dac.errors import DacError
from dac.events.generate import efficacy_corpus, generate
from dac.events.reader import read_events, to_source_document
from dac.review.model import AlertRef, Behaviour, EventSource
from dac.scenarios import scenarios

CORPUS_SCENARIO = "mixed"
EFFICACY_REQUESTS = 175  # per half: any 175 consecutive items cover every PEM family, string and key type
CSR_RESOURCE = "certificatesigningrequests"

Pair = tuple[CompiledRule | None, CompiledRule | None]  # (BASE, HEAD) versions of one rule


@dataclass
class Events:
    documents: list[SourceDocument] = field(default_factory=list)
    origins: dict[tuple[str, str], str] = field(default_factory=dict)  # (index, id) → where it came from
    sources: list[EventSource] = field(default_factory=list)
    problems: list[DacError] = field(default_factory=list)

    def add(self, document: SourceDocument, origin: str) -> bool:
        key = (document.index, document.id)
        if key in self.origins:
            return False  # the same event from two inputs is one document, as in Elasticsearch
        self.origins[key] = origin
        self.documents.append(document)
        return True


def collect_events(
    pairs: Sequence[Pair],
    corpus_size: int,
    seed: int,
    event_paths: Sequence[Path] = (),
    input_format: str = "k8s-audit",
) -> Events:
    """Every input of the behavioural diff, converted once."""
    events = Events()
    with no_cycle_collection():
        count = 0
        rules = {id(r): r for pair in pairs for r in pair if r is not None}
        for scenario in scenarios(list(rules.values())):
            try:
                documents = scenario.documents()
            except DacError as exc:
                events.problems.append(exc)
                continue
            count += sum(events.add(d, f"scenario {scenario.test_id}") for d in documents)
        events.sources.append(EventSource("scenarios", count, "the test scenarios of both sides"))
        if corpus_size > 0:
            count = sum(
                events.add(to_source_document(e, "k8s-audit"), "generated")
                for e in generate(CORPUS_SCENARIO, corpus_size, seed)
            )
            events.sources.append(
                EventSource(
                    "generated",
                    count,
                    f"`dac generate {CORPUS_SCENARIO} --count {corpus_size} --seed {seed}`",
                )
            )
        if any(_reads_csrs(r) for r in rules.values()):
            count = 0
            for request in efficacy_corpus(seed, EFFICACY_REQUESTS, EFFICACY_REQUESTS):
                origin = "efficacy attack" if request.malicious else "efficacy benign"
                count += sum(
                    events.add(to_source_document(e, "k8s-audit"), f"{origin} ({request.shape})")
                    for e in request.events
                )
            events.sources.append(
                EventSource(
                    "efficacy",
                    count,
                    f"the CSR efficacy corpus, seed {seed}: {EFFICACY_REQUESTS} attacks and as many benign",
                )
            )
        if event_paths:
            read = read_events(list(event_paths), input_format)
            events.problems.extend(read.errors)
            count = sum(events.add(d, "events file") for d in read.documents)
            names = ", ".join(str(p) for p in event_paths)
            events.sources.append(EventSource("events", count, f"{names} ({input_format})"))
    return events


def _reads_csrs(rule: CompiledRule) -> bool:
    return CSR_RESOURCE in rule.kibana.get("query", "")


def compare_behaviour(pairs: Sequence[Pair], events: Events, engine: Engine) -> dict[str, Behaviour]:
    """Per rule_id: alerts in both, only at BASE, only at HEAD."""
    limit = max(len(events.documents), 1)
    base_rules = [_executable(old, limit) for old, _ in pairs if old is not None]
    head_rules = [_executable(new, limit) for _, new in pairs if new is not None]
    with no_cycle_collection():
        base = {o.rule_id: o for o in engine.run(base_rules, events.documents)} if base_rules else {}
        head = {o.rule_id: o for o in engine.run(head_rules, events.documents)} if head_rules else {}
    lookup = {(d.index, d.id): d for d in events.documents}
    results = {}
    for old, new in pairs:
        rule = new or old
        assert rule is not None
        rule_id = rule.rule.rule_id
        before, after = base.get(rule_id), head.get(rule_id)
        base_keys = _alert_keys(before)
        head_keys = _alert_keys(after)
        skipped = (after.skipped if after else None) or (before.skipped if before else None)
        results[rule_id] = Behaviour(
            events=len(events.documents),
            base_alerts=len(base_keys) if before is not None else None,
            head_alerts=len(head_keys),
            both=len(base_keys.keys() & head_keys.keys()),
            only_base=[_ref(k, lookup, events) for k in base_keys if k not in head_keys],
            only_head=[_ref(k, lookup, events) for k in head_keys if k not in base_keys],
            skipped=skipped,
        )
    return results


def _executable(rule: CompiledRule, limit: int) -> dict[str, Any]:
    return {**rule.with_version(1), "max_signals": limit}


def _alert_keys(outcome: RuleOutcome | None) -> dict[tuple[str, str], None]:
    """The source documents an outcome alerted on, in alert order (a dict keeps it)."""
    if outcome is None or outcome.skipped:
        return {}
    keys: dict[tuple[str, str], None] = {}
    for alert in outcome.alerts:
        ancestor = alert["kibana.alert.ancestors"][0]
        keys[(ancestor["index"], ancestor["id"])] = None
    return keys


def _ref(key: tuple[str, str], lookup: dict[tuple[str, str], SourceDocument], events: Events) -> AlertRef:
    source = lookup[key].source
    return AlertRef(
        document_id=key[1],
        index=key[0],
        origin=events.origins[key],
        timestamp=_first(source, "@timestamp"),
        user=_first(source, "kubernetes.audit.user.username") or _first(source, "user.name"),
        verb=_first(source, "kubernetes.audit.verb") or _first(source, "event.action"),
        object=_object(source),
    )


def _first(source: dict[str, Any], path: str) -> str | None:
    found = values_at(source, path)
    return str(found[0]) if found else None


def _object(source: dict[str, Any]) -> str | None:
    parts = [_first(source, f"kubernetes.audit.objectRef.{k}") for k in ("resource", "name", "subresource")]
    return "/".join(p for p in parts if p) or None
