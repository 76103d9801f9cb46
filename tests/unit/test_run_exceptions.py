"""Exception items in ``dac run``: the streaming replay applies each rule's items in force at each
execution, as Kibana's search filter does (``must_not``; ``removeExpiredExceptions`` at the
execution's start), so suppressed documents never count against ``max_signals``; the outcome and
the per-rule line say what was suppressed. The item here reads a field the rule does not
(``user.username`` vs ``verb``), so the lazy conversion never holds it: the filter is evaluated on
the hit's whole document."""

from __future__ import annotations

import io
import json
import re
from datetime import timedelta
from pathlib import Path

import pytest

from dac.engine import parallel
from dac.engine.local import LocalEngine, timestamp
from dac.engine.replay import replay, schedule
from dac.events.reader import to_source_document
from dac.events.specs import BASE_TIME, expand_events
from dac.run import RunOptions, run_rules

LIST_ID = "tuning"
REFERENCE = {"id": LIST_ID, "list_id": LIST_ID, "namespace_type": "single", "type": "detection"}
RULE = {
    "rule_id": "r1", "name": "any create", "type": "query", "language": "kuery",
    "index": ["logs-kubernetes.audit_logs-*"], "query": "kubernetes.audit.verb:create",
    "interval": "5m", "from": "now-6m", "max_signals": 100, "severity": "low", "risk_score": 21,
    "version": 1, "exceptions_list": [REFERENCE],
}
USERS = ("alice", "bob", "carol")


def _item(user: str, **extra: str) -> dict:
    return {
        "list_id": LIST_ID, "item_id": f"{user}-is-a-bot", "name": f"{user} is a bot", "type": "simple",
        "namespace_type": "single", "os_types": [], "tags": [], "description": "test item",
        "entries": [{"field": "kubernetes.audit.user.username", "operator": "included", "type": "match",
                     "value": user}],
        **extra,
    }


BOB = {LIST_ID: [_item("bob")]}


def _events(count: int, delay: float, users=USERS) -> list[dict]:
    specs = [
        {"other_request": {"user": users[n % len(users)], "verb": "create", "resource": "pods",
                           "namespace": "default", "name": f"pod-{n}", "delay": delay}}
        for n in range(count)
    ]
    return expand_events(specs, seed=4)


def _documents(events: list[dict]):
    return [to_source_document(e, "native") for e in events]


def _user(alert: dict) -> str:
    return alert["kubernetes"]["audit"]["user"]["username"]


def test_an_item_suppresses_exactly_one_identitys_alerts_in_every_execution() -> None:
    documents = _documents(_events(90, 20))  # 30 minutes, six overlapping executions
    (plain,) = replay([RULE], documents)
    (tuned,) = replay([RULE], documents, exceptions=BOB)
    assert plain.executions == tuned.executions == 6
    bobs = {a["kibana.alert.uuid"] for a in plain.alerts if _user(a) == "bob"}
    assert len(bobs) == 30 and plain.suppressed == []
    assert tuned.alerts == [a for a in plain.alerts if _user(a) != "bob"]
    bob_ids = sorted(d.id for d in documents if d.source["kubernetes"]["audit"]["user"]["username"] == "bob")
    assert sorted(s.document_id for s in tuned.suppressed) == bob_ids  # each once, across overlaps
    assert {(s.list_id, s.item_id, s.item_name) for s in tuned.suppressed} == {
        (LIST_ID, "bob-is-a-bot", "bob is a bot")
    }
    assert tuned.matched == plain.matched - 30


EQL_HEAD = {**RULE, "rule_id": "r2", "name": "first creates", "type": "eql", "language": "eql",
            "query": 'any where kubernetes.audit.verb == "create" | head 7'}


@pytest.mark.parametrize("rule", [RULE, EQL_HEAD], ids=["per-document", "eql-head"])
def test_the_replay_agrees_with_the_engine_run_at_each_execution_with_exceptions(rule) -> None:
    """dac.engine.local.LocalEngine.run (the in-memory path) at each execution time, deduplicated.
    The EQL rule's hits depend on the window as a whole (``head``): the items must take bob's
    documents out before it runs, as the request filter does (build_eql_search_request.ts)."""
    documents = _documents(_events(60, 20))
    (outcome,) = replay([rule], documents, exceptions=BOB)
    assert outcome.alerts and outcome.suppressed
    times = [timestamp(d) for d in documents]
    alerts: dict[str, None] = {}
    suppressed: dict[str, None] = {}
    for at in schedule(rule, min(times), max(times)):
        (run,) = LocalEngine().run([rule], documents, at, exceptions=BOB)
        alerts.update(dict.fromkeys(a["kibana.alert.uuid"] for a in run.alerts))  # keeps first places
        suppressed.update(dict.fromkeys(s.document_id for s in run.suppressed))
    assert [a["kibana.alert.uuid"] for a in outcome.alerts] == list(alerts)
    assert [s.document_id for s in outcome.suppressed] == list(suppressed)


def test_suppressed_documents_do_not_count_against_max_signals() -> None:
    # one window: bob's 10 requests come first, then 20 of alice's; max_signals 10
    events = _events(10, 0.5, ("bob",)) + _events(20, 0.5, ("alice",))
    for n, event in enumerate(events):  # strictly increasing times, bob's first
        moment = (BASE_TIME + timedelta(seconds=n)).isoformat().replace("+00:00", ".000000Z")
        event["requestReceivedTimestamp"] = event["stageTimestamp"] = moment
    documents = _documents(events)
    rule = {**RULE, "max_signals": 10}
    (plain,) = replay([rule], documents)
    assert {_user(a) for a in plain.alerts} == {"bob"}  # without the item bob fills the cap
    (tuned,) = replay([rule], documents, exceptions=BOB)
    assert [_user(a) for a in tuned.alerts] == ["alice"] * 10  # Kibana's filter is in the search
    assert (len(tuned.suppressed), tuned.matched, tuned.capped_executions) == (10, 20, 1)
    alices = [d.id for d in documents[10:20]]
    assert [a["kibana.alert.ancestors"][0]["id"] for a in tuned.alerts] == alices


def test_an_item_expiring_mid_replay_applies_only_to_the_executions_before() -> None:
    """removeExpiredExceptions: an item whose expire_time is before an execution's start is left out."""
    documents = _documents(_events(90, 20))  # executions at +5 … +30 minutes after the first event
    first = min(timestamp(d) for d in documents)
    expiry = (first + timedelta(minutes=13)).isoformat().replace("+00:00", "Z")
    expiring = {LIST_ID: [_item("bob", expire_time=expiry)]}
    (outcome,) = replay([RULE], documents, exceptions=expiring)
    executions = schedule(RULE, first, max(timestamp(d) for d in documents))
    cut = next(at for at in executions if at > first + timedelta(minutes=13))
    bob_alerts = [a for a in outcome.alerts if _user(a) == "bob"]
    assert bob_alerts and outcome.suppressed
    assert all(a["kibana.alert.rule.execution.timestamp"] >= cut.isoformat()[:19] for a in bob_alerts)
    alerted = {a["kibana.alert.ancestors"][0]["id"] for a in outcome.alerts}
    assert not alerted & {s.document_id for s in outcome.suppressed}  # alerted later: not suppressed
    assert len(bob_alerts) + len(outcome.suppressed) == 30


def test_a_list_the_rule_names_but_nobody_provided_is_an_error() -> None:
    from dac.errors import DacError

    with pytest.raises(DacError, match="exception list 'tuning' was not provided"):
        replay([RULE], _documents(_events(3, 1)), exceptions={})


# --- through dac run: the lazy conversion, the workers, the summary line ---------------------------


def _run(path: Path, exceptions, processes: int = 1) -> tuple[int, str, list[str]]:
    out, err = io.StringIO(), io.StringIO()
    code = run_rules([RULE], RunOptions([path], processes=processes), stdout=out, stderr=err,
                     exceptions=exceptions)
    times = re.compile(r" in \d+ ms$|\d[\d,.]* s\b.*\)$")  # durations and rates differ run to run
    return code, out.getvalue(), [times.sub("", line) for line in err.getvalue().splitlines()]


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "audit.log"
    path.write_text("".join(json.dumps(e) + "\n" for e in _events(300, 6)), "utf-8")
    return path


def test_dac_run_streams_with_lazy_documents_and_applies_the_item(log) -> None:
    code, plain, err = _run(log, {LIST_ID: []})
    assert code == 0 and err[0] == "any create: 300 alerts in 6 executions"
    code, tuned, err = _run(log, BOB)
    assert code == 0 and err[0] == "any create: 200 alerts in 6 executions, 100 suppressed by exceptions"
    assert err[1].startswith("300 events read, 0 malformed lines, 200 alerts; 1 rules executed")
    expected = [line for line in plain.splitlines() if json.loads(line)["kubernetes"]["audit"]["user"]
                ["username"] != "bob"]
    assert tuned.splitlines() == expected


def test_the_worker_processes_give_the_same_alerts_and_suppressions(log, monkeypatch) -> None:
    monkeypatch.setattr(parallel, "RANGE_BYTES", 32 << 10)  # several pieces from a small file
    monkeypatch.setattr("dac.run.PARALLEL_BYTES", 0)
    assert len(list(parallel.pieces([log]))) > 4
    single = _run(log, BOB, processes=1)
    assert single == _run(log, BOB, processes=2)
    assert single[2][0].endswith(", 100 suppressed by exceptions")
