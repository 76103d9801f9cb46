"""Replay: every scheduled execution, as Kibana's rule preview runs them (dac.engine.replay)."""

from __future__ import annotations

from datetime import datetime, timedelta

from dac.engine.replay import EXECUTION_TIME_FIELD, replay, schedule
from dac.events.reader import to_source_document
from dac.events.specs import BASE_TIME, expand_events

KQL_RULE = {
    "rule_id": "r1", "name": "any create", "type": "query", "language": "kuery",
    "index": ["logs-kubernetes.audit_logs-*"], "query": "kubernetes.audit.verb:create",
    "interval": "5m", "from": "now-6m", "max_signals": 100, "severity": "low", "risk_score": 21,
    "version": 1,
}


def _documents(delays: list[float]):
    specs = [{"other_request": {"verb": "create", "resource": "pods", "delay": d}} for d in delays]
    return [to_source_document(e, "native") for e in expand_events(specs, seed=1)]


def test_schedule_ends_at_the_last_moment_one_interval_apart() -> None:
    """route.ts: startedAt = end - interval * (count - 1); count = max(ceil(span / interval), 1)."""
    rule = KQL_RULE
    assert schedule(rule, BASE_TIME, BASE_TIME) == [BASE_TIME]
    end = BASE_TIME + timedelta(minutes=12)
    assert schedule(rule, BASE_TIME, end) == [end - timedelta(minutes=m) for m in (10, 5, 0)]


def test_overlapping_windows_alert_once_at_the_first_execution_that_sees_the_event() -> None:
    # one event every 30 s for 20 minutes: windows of 6 minutes every 5 overlap by one minute
    documents = _documents([30] * 40)
    (outcome,) = replay([KQL_RULE], documents)
    assert outcome.executions == 4
    assert len(outcome.alerts) == outcome.matched == 40
    assert len({a["kibana.alert.uuid"] for a in outcome.alerts}) == 40
    executions = sorted({a[EXECUTION_TIME_FIELD] for a in outcome.alerts})
    assert len(executions) == 4
    for alert in outcome.alerts:  # each alert belongs to the first window holding its event
        original = datetime.fromisoformat(alert["kibana.alert.original_time"])
        execution = datetime.fromisoformat(alert[EXECUTION_TIME_FIELD])
        assert execution - timedelta(minutes=6) <= original <= execution
        if execution != min(datetime.fromisoformat(e) for e in executions):
            assert original > execution - timedelta(minutes=5)  # else the previous window had it


def test_max_signals_caps_each_execution_and_the_next_one_picks_up_the_overlap() -> None:
    documents = _documents([0.5] * 30)  # 30 events in 15 s: one window holds them all
    rule = {**KQL_RULE, "max_signals": 10}
    (outcome,) = replay([rule], documents)
    assert (outcome.executions, len(outcome.alerts), outcome.matched) == (1, 10, 30)
    assert outcome.capped_executions == 1
    first_ten = sorted(documents, key=lambda d: d.source["@timestamp"])[:10]
    assert [a["kibana.alert.ancestors"][0]["id"] for a in outcome.alerts] == [d.id for d in first_ten]


def test_now_is_one_execution_and_from_to_bound_the_replay() -> None:
    documents = _documents([60] * 20)  # 20 minutes
    late = BASE_TIME + timedelta(hours=2)
    (outcome,) = replay([KQL_RULE], documents, now=late)
    assert (outcome.executions, outcome.alerts) == (1, [])
    start, end = BASE_TIME + timedelta(minutes=5), BASE_TIME + timedelta(minutes=10)
    (bounded,) = replay([KQL_RULE], documents, start=start, end=end)
    assert bounded.executions == 1  # one execution at `end`, looking back 6 minutes
    times = {a["kibana.alert.original_time"] for a in bounded.alerts}
    assert all((end - timedelta(minutes=6)).isoformat()[:16] <= t[:16] <= end.isoformat()[:16] for t in times)


def test_replay_agrees_with_one_execution_per_window_of_the_engine() -> None:
    """The streaming replay equals the in-memory engine run at each execution time, deduplicated."""
    from dac.engine.local import LocalEngine, timestamp

    documents = _documents([20] * 60)
    (outcome,) = replay([KQL_RULE], documents)
    seen: set[str] = set()
    expected = []
    times = [timestamp(d) for d in documents]
    for at in schedule(KQL_RULE, min(times), max(times)):
        for alert in LocalEngine().run([KQL_RULE], documents, at)[0].alerts:
            if alert["kibana.alert.uuid"] not in seen:
                seen.add(alert["kibana.alert.uuid"])
                expected.append(alert["kibana.alert.uuid"])
    assert [a["kibana.alert.uuid"] for a in outcome.alerts] == expected
