"""Lazy conversion changes nothing: the fields rules select on, and every hit's document, are the
whole conversion's (dac.documents.LazyDocument, dac.events.k8s_audit.members_read)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dac.documents import LazyDocument, SeenEvents, values_at
from dac.engine.replay import Replay, replay
from dac.events.generate import generate
from dac.events.k8s_audit import members_read, to_document
from dac.events.reader import ReadStats, file_documents, range_blocks, read_events
from tests.repository import REPO


def _rules():
    from dac.compile import compile_rules
    from dac.loader import rule_files
    from dac.render.environment import Templates

    compiled, problems = compile_rules(rule_files(REPO / "detections"), Templates(REPO / "templates"))
    assert problems == []
    return [c.with_version(1) for c in compiled]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Mixed traffic plus every CSR scenario, so the rules have plenty of hits and near misses."""
    path = tmp_path_factory.mktemp("lazy") / "audit.log"
    with path.open("w", encoding="utf-8") as out:
        for scenario, count in (("mixed", 6000), ("csr-attacks", 400), ("csr-benign", 400)):
            for event in generate(scenario, count, seed=3):
                out.write(json.dumps(event) + "\n")
    return path


def _lazy(path: Path, members):
    batches = range_blocks(path, print)
    return list(file_documents(path, batches, "auto", print, ReadStats(), members, lazy=True))


def test_the_fields_rules_select_on_equal_the_whole_conversion(corpus) -> None:
    fields = Replay(_rules()).fields
    assert fields is not None and "kubernetes.audit.verb" in fields
    members = members_read(fields)
    whole = read_events([corpus], "auto").documents
    lazy = _lazy(corpus, members)
    assert len(lazy) == len(whole) == 6800
    for partial, full in zip(lazy, whole, strict=True):
        assert isinstance(partial, LazyDocument)
        for name in fields:
            assert values_at(partial.fields, name) == values_at(full.source, name), name


def test_every_hit_document_equals_the_whole_conversion(corpus) -> None:
    rules = _rules()
    members = members_read(Replay(rules).fields)
    lazy_outcomes = replay(rules, _lazy(corpus, members))
    whole_outcomes = replay(rules, read_events([corpus], "auto").documents)
    hits = 0
    for lazy, whole in zip(lazy_outcomes, whole_outcomes, strict=True):
        assert lazy.alerts == whole.alerts and lazy.matched == whole.matched
        hits += len(lazy.alerts)
    assert hits > 50  # the corpus really exercises the rules
    # and a hit's document is exactly to_document of its event
    by_id = {d.id: d for d in _lazy(corpus, members)}
    for outcome in lazy_outcomes:
        for alert in outcome.alerts[:20]:
            document = by_id[alert["kibana.alert.ancestors"][0]["id"]]
            event = json.loads(document._content)
            assert document.source == to_document(event)


def test_members_read_keeps_whatever_a_derived_field_needs() -> None:
    assert members_read(None) is None
    assert members_read({"event.original"}) is None  # the whole record
    members = members_read({"user.name", "kubernetes.audit.objectRef.resource"})
    assert members is not None and members["user"] is None  # whole: user.name is derived from it
    assert members["objectRef"] is not None and "resource" in members["objectRef"][0]


def test_needles_skip_only_lines_no_rule_can_match(corpus) -> None:
    """With the needle prefilter (lines without any rule's literal are not converted) the replay
    is the whole conversion's, and a literal hidden behind a \\u escape is still found."""
    rules = _rules()
    state = Replay(rules)
    assert state.needles == (b"certificatesigningrequests",)
    members = members_read(state.fields)
    documents = list(file_documents(corpus, range_blocks(corpus, print), "auto", print, ReadStats(), members,
                                    lazy=True, needles=state.needles))
    seen = sum(len(d) for d in documents if isinstance(d, SeenEvents))
    assert seen > 5 * sum(1 for d in documents if not isinstance(d, SeenEvents))
    lazy, whole = replay(rules, documents), replay(rules, read_events([corpus], "auto").documents)
    def key(outcomes):  # everything but the timings
        return [(o.alerts, o.matched, o.executions, o.capped_executions) for o in outcomes]

    assert key(lazy) == key(whole)


def test_an_escaped_literal_is_not_missed(tmp_path) -> None:
    from dac.events.specs import expand_events

    (event,) = expand_events([{"csr_create": {"user": "alice", "subject": {"CN": "alice"}}}], seed=1)
    line = json.dumps(event).replace("certificatesigningrequests", "\\u0063ertificatesigningrequests")
    assert "certificatesigningrequests" not in line
    path = tmp_path / "audit.log"
    path.write_text(line + "\n", "utf-8")
    rules = _rules()
    state = Replay(rules)
    documents = list(file_documents(path, range_blocks(path, print), "auto", print, ReadStats(),
                                    members_read(state.fields), lazy=True, needles=state.needles))
    assert not isinstance(documents[0], SeenEvents)
    (kql, *_) = replay(rules, documents)
    assert len(kql.alerts) == 1


def test_needles_come_only_from_values_copied_from_the_line() -> None:
    """event.outcome:"success" is computed from the decision "allow", event.kind and the data
    stream are constants: a term on them must not make the line's bytes a requirement."""
    from dac.engine.local import rule_needles

    base = {"language": "kuery", "type": "query", "index": ["logs-kubernetes.audit_logs-*"]}
    computed = ('event.outcome:"success"', 'event.kind:"event"', 'orchestrator.type:"kubernetes"',
                'data_stream.dataset:"kubernetes.audit_logs"')
    for query in computed:
        assert rule_needles({**base, "query": query}, base["index"]) is None, query
    assert rule_needles({**base, "query": 'event.outcome:"success" and event.action:"create"'},
                        base["index"]) == frozenset({"create"})
    verb = {**base, "query": 'kubernetes.audit.verb:"create"'}
    assert rule_needles(verb, base["index"]) == frozenset({"create"})
