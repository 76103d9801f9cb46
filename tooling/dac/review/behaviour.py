"""The behavioural diff: BASE's and HEAD's version of each changed rule over the same events.

The events are built once and shared by both sides: every scenario of the changed rules (both
sides'), a generated corpus of mixed traffic (``dac generate mixed``, fixed seed), the CSR
efficacy corpus when a changed rule reads CSR requests, and the user's own event files. Both
sides run on the local engine through ``Engine.run``; an alert is the same on both sides when
it comes from the same source document. ``max_signals`` caps one Kibana execution, not a
corpus, so it is lifted on both sides to see every match.

Most generated or read events can match no changed rule: when every rule has needles
(:mod:`dac.engine.needles`, as ``dac run`` uses them), an event whose JSON holds none of them is
checked and counted, but neither converted whole nor run. The rules then see exactly the
documents they can match, in the same order, so the alerts are the same (each such rule's hits
on a set of documents are its hits on each document alone).
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from dac.compile import CompiledRule
from dac.documents import SeenEvents, SourceDocument, no_cycle_collection, values_at
from dac.engine.base import Engine, RuleOutcome
from dac.engine.needles import line_cannot_match
from dac.engine.replay import Replay
from dac.errors import DacError, EventError
from dac.events.generate import efficacy_corpus, generate
from dac.events.k8s_audit import TIME_ONLY, to_document
from dac.events.reader import (
    ReadStats,
    collect_files,
    document_id,
    file_documents,
    index_name,
    range_blocks,
    to_source_document,
)
from dac.objectdiff import normalise
from dac.review.model import AlertRef, Behaviour, EventSource, SuppressedAlert
from dac.scenarios import scenarios

CORPUS_SCENARIO = "mixed"
EFFICACY_REQUESTS = 175  # per half: any 175 consecutive items cover every PEM family, string and key type
CSR_RESOURCE = "certificatesigningrequests"
EVENTS_PER_WORKER = 20_000  # below this, starting a process costs more than it saves
# Fields that cannot change which documents a rule matches when every document is in the window
# (``now`` None): when only these differ, HEAD's matches are BASE's and the rule runs once.
NOT_MATCHING_FIELDS = frozenset(
    {
        "name",
        "description",
        "severity",
        "risk_score",
        "note",
        "setup",
        "tags",
        "references",
        "author",
        "license",
        "false_positives",
        "threat",
        "enabled",
        "version",
        "related_integrations",
        "required_fields",
        "interval",
        "from",
        "max_signals",
        "meta",
        "investigation_fields",
        "severity_mapping",
        "risk_score_mapping",
    }
)

Pair = tuple[CompiledRule | None, CompiledRule | None]  # (BASE, HEAD) versions of one rule
Key = tuple[str, str]  # (index, _id) of a document
Needles = tuple[bytes, ...] | None  # one must be in an event's JSON for a rule to match it (None: unknown)


@dataclass
class Events:
    """The shared events: every one counted once by (index, _id), the matchable ones whole."""

    documents: list[SourceDocument] = field(default_factory=list)  # those a rule may match, in order
    origins: dict[Key, str] = field(default_factory=dict)  # every event's (index, id) → where it came from
    sources: list[EventSource] = field(default_factory=list)
    problems: list[DacError] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # files not read, each with its reason

    @property
    def count(self) -> int:
        """Every event, matchable or not (the same event from two inputs is one)."""
        return len(self.origins)

    def add(self, document: SourceDocument, origin: str) -> bool:
        if not self.count_only((document.index, document.id), origin):
            return False
        self.documents.append(document)
        return True

    def count_only(self, key: Key, origin: str) -> bool:
        """Count an event no rule can match, without keeping it."""
        if key in self.origins:
            return False  # the same event from two inputs is one document, as in Elasticsearch
        self.origins[key] = origin
        return True


def rule_needles(rules: Iterable[CompiledRule]) -> Needles:
    """Byte strings one of which an event's JSON must hold for any of ``rules`` to match it; None
    when some rule has none (an EQL rule, an ES|QL rule that is not per document…): then every
    event is kept. Rules the local engine does not run need none."""
    return Replay([rule.kibana for rule in rules]).needles


def matchable(content: bytes, needles: Needles) -> bool:
    """Whether an event whose JSON is ``content`` may match a rule (the reader's own test)."""
    cannot_match = line_cannot_match(needles)
    return cannot_match is None or not cannot_match(content)


def collect_events(
    pairs: Sequence[Pair],
    corpus_size: int,
    seed: int,
    event_paths: Sequence[Path] = (),
    input_format: str = "auto",
    prefilter: bool = True,
) -> Events:
    """Every input of the behavioural diff, converted once.

    With ``prefilter``, generated and read events that hold none of the rules' needles are only
    checked and counted (scenarios and the efficacy corpus, a few hundred events, are kept
    whole). A large generated corpus is made by a worker process while this one builds the
    scenarios and the efficacy corpus.
    """
    events = Events()
    rules = {id(r): r for pair in pairs for r in pair if r is not None}
    needles = rule_needles(rules.values()) if prefilter else None
    with no_cycle_collection(), ExitStack() as stack:
        generated = _start_generated(corpus_size, seed, needles, stack) if corpus_size > 0 else None
        count = 0
        for scenario in scenarios(list(rules.values())):
            try:
                documents = scenario.documents()
            except DacError as exc:
                events.problems.append(exc)
                continue
            count += sum(events.add(d, f"scenario {scenario.test_id}") for d in documents)
        events.sources.append(EventSource("scenarios", count, "the test scenarios of both sides"))
        efficacy = (
            efficacy_corpus(seed, EFFICACY_REQUESTS, EFFICACY_REQUESTS)
            if any(_reads_csrs(r) for r in rules.values())
            else None
        )
        if generated is not None:
            count = 0
            for index, document_id_, source in generated():
                if source is None:
                    count += events.count_only((index, document_id_), "generated")
                else:
                    count += events.add(SourceDocument(index, document_id_, source), "generated")
            command = f"`dac generate {CORPUS_SCENARIO} --count {corpus_size} --seed {seed}`"
            events.sources.append(EventSource("generated", count, command))
        if efficacy is not None:
            count = 0
            for request in efficacy:
                origin = "efficacy attack" if request.malicious else "efficacy benign"
                count += sum(
                    events.add(to_source_document(e, "k8s-audit"), f"{origin} ({request.shape})")
                    for e in request.events
                )
            detail = f"the CSR efficacy corpus, seed {seed}: {EFFICACY_REQUESTS} attacks and as many benign"
            events.sources.append(EventSource("efficacy", count, detail))
        if event_paths:
            stats = ReadStats()
            errors: list[EventError] = []
            count = 0
            for document in _read(event_paths, input_format, errors.append, stats, needles):
                if isinstance(document, SeenEvents):
                    count += sum(events.count_only((document.index, event_id), "events file")
                                 for event_id in document.ids())
                else:
                    count += events.add(document.whole(), "events file")
            events.problems.extend(errors)
            events.notes.extend(f"{path}: skipped: {reason}" for path, reason in stats.skipped)
            if not stats.files:
                events.notes.append(f"no event file was read from {', '.join(map(str, event_paths))}")
            names = ", ".join(str(p) for p in event_paths)
            events.sources.append(EventSource("events", count, f"{names} ({input_format})"))
    return events


def _read(
    paths: Sequence[Path],
    input_format: str,
    on_error: Callable[[EventError], None],
    stats: ReadStats,
    needles: Needles,
) -> Iterator[Any]:
    """The events of the files: LazyDocuments, or SeenEvents (only checked, no document) for lines
    that hold no needle; the reader's own ``iter_documents``, with needles."""
    for file in collect_files(list(paths), stats):
        chunks = range_blocks(file, on_error, stats)
        yield from file_documents(file, chunks, input_format, on_error, stats, lazy=True, needles=needles)


Generated = tuple[str, str, dict[str, Any] | None]  # index, _id, and the source when a rule may match it
CHUNK = 5_000  # generated events a worker converts at a time


def generated_documents(count: int, seed: int, needles: Needles = None) -> list[Generated]:
    """``dac generate mixed`` as indexed documents, in order (see :func:`generated_document`)."""
    with ExitStack() as stack:
        return _start_generated(count, seed, needles, stack)()


def generated_document(event: dict[str, Any], needles: Needles) -> Generated:
    """One generated event as ``to_source_document`` makes it, its source left out (None) when its
    JSON holds no needle; it is still checked as the conversion checks it."""
    content = orjson.dumps(event, option=orjson.OPT_SORT_KEYS)  # what to_source_document hashes
    if matchable(content, needles):
        document = to_source_document(event, "k8s-audit", content)
        return document.index, document.id, document.source
    return index_name(to_document(event, members=TIME_ONLY)), document_id(content), None


def _start_generated(
    count: int, seed: int, needles: Needles, stack: ExitStack
) -> Callable[[], list[Generated]]:
    """Start generating the corpus; the returned call collects its documents.

    A large corpus is made by forked workers while this process goes on with the other inputs.
    The generator is sequential, so each worker draws every event and converts its share of
    the chunks: one worker when needles leave most events unconverted, else one per core
    (converting an event whole costs about twice drawing it). ``generate`` is called here
    first, so that the workers inherit this process's keys (RSA keys differ between processes)
    and draw exactly the events this process would.
    """
    events = generate(CORPUS_SCENARIO, count, seed)  # makes the keys, here
    cores = os.cpu_count() or 1
    if cores < 2 or count < EVENTS_PER_WORKER:
        documents = [generated_document(e, needles) for e in events]
        return lambda: documents
    shares = 1 if needles is not None else cores
    pool = stack.enter_context(ProcessPoolExecutor(shares, mp_context=multiprocessing.get_context("fork")))
    futures = [pool.submit(_generate_share, count, seed, needles, share, shares) for share in range(shares)]

    def collect() -> list[Generated]:
        parts = [future.result() for future in futures]  # part w holds chunks w, w + shares, …
        chunks = (chunk for round_ in itertools.zip_longest(*parts) for chunk in round_ if chunk is not None)
        return [document for chunk in chunks for document in chunk]

    return collect


def _generate_share(
    count: int, seed: int, needles: Needles, share: int, shares: int
) -> list[list[Generated]]:
    """Chunks ``share``, ``share + shares``, … of the corpus, converted (in a worker)."""
    events = generate(CORPUS_SCENARIO, count, seed)
    chunks = []
    number = 0
    with no_cycle_collection():
        while chunk := list(itertools.islice(events, CHUNK)):
            if number % shares == share:
                chunks.append([generated_document(e, needles) for e in chunk])
            number += 1
    return chunks


def _reads_csrs(rule: CompiledRule) -> bool:
    return CSR_RESOURCE in rule.kibana.get("query", "")


def compare_behaviour(pairs: Sequence[Pair], events: Events, engine: Engine) -> dict[str, Behaviour]:
    """Per rule_id: alerts in both, only at BASE, only at HEAD, and those exceptions suppress.

    Every version runs with its own side's exception items, all in one ``Engine.run`` (the
    documents are ordered once; each side's list_ids are prefixed with ``BASE:``/``HEAD:`` so the
    two versions of a list do not meet); a HEAD version that differs from BASE only in fields that
    select nothing, with the same items, is not run again.
    """
    limit = max(events.count, 1)
    runs: list[dict[str, Any]] = []
    exceptions: dict[str, list[dict[str, Any]]] = {}
    slots: list[tuple[int | None, int | None]] = []  # per pair: positions of its BASE and HEAD runs
    for old, new in pairs:
        base_slot = head_slot = None
        if old is not None:
            base_slot = len(runs)
            runs.append(_executable(old, limit, "BASE", exceptions))
        if new is not None:
            if old is not None and _same_matches(old, new):
                head_slot = base_slot
            else:
                head_slot = len(runs)
                runs.append(_executable(new, limit, "HEAD", exceptions))
        slots.append((base_slot, head_slot))
    results = {}
    with no_cycle_collection():  # documents are trees: a collector pass over them finds nothing
        outcomes = _run(engine, runs, events.documents, exceptions)
        lookup = {(d.index, d.id): d for d in events.documents}
        for (old, new), (base_slot, head_slot) in zip(pairs, slots, strict=True):
            rule = new or old
            assert rule is not None
            before = outcomes[base_slot] if base_slot is not None else None
            after = outcomes[head_slot] if head_slot is not None else None
            base_keys = before.keys if before else {}
            head_keys = after.keys if after else {}
            skipped = (after.skipped if after else None) or (before.skipped if before else None)
            results[rule.rule.rule_id] = Behaviour(
                events=events.count,
                base_alerts=len(base_keys) if before is not None else None,
                head_alerts=len(head_keys),
                both=len(base_keys.keys() & head_keys.keys()),
                only_base=[_ref(k, lookup, events) for k in base_keys if k not in head_keys],
                only_head=[_ref(k, lookup, events) for k in head_keys if k not in base_keys],
                skipped=skipped,
                newly_suppressed=[
                    _suppressed(k, why, lookup, events)
                    for k, why in (after.suppressed if after else {}).items()
                    if k not in (before.suppressed if before else {})
                ],
                reappeared=[
                    _suppressed(k, why, lookup, events)
                    for k, why in (before.suppressed if before else {}).items()
                    if k in head_keys
                ],
            )
    return results


def _same_matches(old: CompiledRule, new: CompiledRule) -> bool:
    return (
        normalise(old.kibana, NOT_MATCHING_FIELDS) == normalise(new.kibana, NOT_MATCHING_FIELDS)
        and old.exception_items() == new.exception_items()
    )


def _executable(
    rule: CompiledRule, limit: int, side: str, exceptions: dict[str, list[dict[str, Any]]]
) -> dict[str, Any]:
    """The rule as run: max_signals lifted, its lists renamed for its side (items added to ``exceptions``)."""
    references = []
    for reference in rule.kibana.get("exceptions_list") or []:
        list_id = f"{side}:{reference['list_id']}"
        references.append({**reference, "list_id": list_id})
        exceptions[list_id] = rule.exception_items()[reference["list_id"]]
    return {**rule.with_version(1), "max_signals": limit, "exceptions_list": references}


@dataclass(frozen=True)
class _Matches:
    """What one rule version alerted on: source documents in alert order (a dict keeps it), and
    the documents exception items kept from alerting, each with (list_id, item_id, item name)."""

    keys: dict[tuple[str, str], None]
    skipped: str | None
    suppressed: dict[tuple[str, str], tuple[str, str, str]] = field(default_factory=dict)


def _matches(outcome: RuleOutcome) -> _Matches:
    if outcome.skipped:
        return _Matches({}, outcome.skipped)
    keys: dict[tuple[str, str], None] = {}
    for alert in outcome.alerts:
        ancestor = alert["kibana.alert.ancestors"][0]
        keys[(ancestor["index"], ancestor["id"])] = None
    suppressed = {(s.index, s.document_id): (s.list_id, s.item_id, s.item_name) for s in outcome.suppressed}
    return _Matches(keys, None, suppressed)


def _run(
    engine: Engine,
    runs: list[dict[str, Any]],
    documents: list[SourceDocument],
    exceptions: dict[str, list[dict[str, Any]]] | None = None,
) -> list[_Matches]:
    """Every rule version over the documents; on the local engine, split over the cores.

    Each worker process (forked: it shares the documents) runs its share of the versions in
    one ``Engine.run`` and sends back only which documents each version alerted on.
    """
    workers = min(os.cpu_count() or 1, len(runs))
    if engine.name != "local" or workers < 2 or len(documents) < EVENTS_PER_WORKER:
        return [_matches(o) for o in engine.run(runs, documents, exceptions=exceptions)] if runs else []
    global _SHARED
    _SHARED = (engine, runs, documents, exceptions)
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            shares = [list(range(w, len(runs), workers)) for w in range(workers)]
            found = dict(
                zip(
                    (i for share in shares for i in share),
                    (m for part in pool.map(_run_share, shares) for m in part),
                    strict=True,
                )
            )
    finally:
        _SHARED = None
    return [found[i] for i in range(len(runs))]


_SHARED: (
    tuple[Engine, list[dict[str, Any]], list[SourceDocument], dict[str, list[dict[str, Any]]] | None] | None
) = None


def _run_share(share: list[int]) -> list[_Matches]:
    assert _SHARED is not None
    engine, runs, documents, exceptions = _SHARED
    with no_cycle_collection():
        return [_matches(o) for o in engine.run([runs[i] for i in share], documents, exceptions=exceptions)]


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


def _suppressed(
    key: tuple[str, str],
    why: tuple[str, str, str],
    lookup: dict[tuple[str, str], SourceDocument],
    events: Events,
) -> SuppressedAlert:
    return SuppressedAlert(_ref(key, lookup, events), *why)


def _first(source: dict[str, Any], path: str) -> str | None:
    found = values_at(source, path)
    return str(found[0]) if found else None


def _object(source: dict[str, Any]) -> str | None:
    parts = [_first(source, f"kubernetes.audit.objectRef.{k}") for k in ("resource", "name", "subresource")]
    return "/".join(p for p in parts if p) or None
