"""``dac run``: the rules over an audit log, alerts as NDJSON, malformed lines located and skipped."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from dac.cli import main
from dac.events.k8s_audit import to_document
from dac.events.specs import BASE_TIME, expand_events
from tests.fixtures.project import MASTERS, NON_SYSTEM
from tests.repository import REPO, shipped_rule

MASTERS_RULE = shipped_rule(MASTERS)["name"]
NON_SYSTEM_RULE = shipped_rule(NON_SYSTEM)["name"]


def _events() -> list[dict]:
    return expand_events(
        [
            {"csr_create": {"user": "mallory", "subject": {"CN": "m", "O": ["system:masters"]}}},
            {"csr_create": {"user": "alice", "subject": {"CN": "alice"}}},
        ],
        seed=3,
    )


def _run(capsys, monkeypatch, *argv: str) -> tuple[int, list[dict], list[str]]:
    monkeypatch.chdir(REPO)
    code = main(["run", *argv])
    captured = capsys.readouterr()
    alerts = [json.loads(line) for line in captured.out.splitlines()]
    return code, alerts, captured.err.splitlines()


@pytest.fixture
def log(tmp_path: Path) -> Path:
    masters, alice = (json.dumps(e) for e in _events())
    path = tmp_path / "audit.log"
    path.write_bytes(
        b"\n".join(
            [
                masters.encode(),
                b'{"kind": "Event", "apiVersion": "audit.k8s.io/v1"',  # cut short
                b'{"kind": "Pod"}',
                b"\xff\xfe",
                alice.encode(),
            ]
        )
        + b"\n"
    )
    return path


def test_malformed_lines_are_located_and_the_rest_still_alerts(log, capsys, monkeypatch) -> None:
    code, alerts, err = _run(capsys, monkeypatch, "--events", str(log))
    assert code == 1
    assert err[0].startswith(f"{log}:2: invalid JSON: ")
    assert err[1] == f"{log}:3: not a Kubernetes audit Event: kind is 'Pod', expected 'Event'"
    assert err[2].startswith(f"{log}:4: invalid JSON: ")
    assert err[-1] == "2 events read, 3 malformed lines, 2 alerts; 3 rules executed, 0 skipped (local engine)"
    by_rule = sorted(
        (a["kibana.alert.rule.name"], a["kubernetes"]["audit"]["user"]["username"]) for a in alerts
    )
    # mallory's system:masters CSR is refused by admission (403): only the subject rule sees it
    assert by_rule == [(MASTERS_RULE, "mallory"), (NON_SYSTEM_RULE, "alice")]


def test_alerts_have_kibanas_shape_and_stable_ids(log, capsys, monkeypatch) -> None:
    _, first, _ = _run(capsys, monkeypatch, "--events", str(log))
    _, second, _ = _run(capsys, monkeypatch, "--events", str(log))
    assert [a["kibana.alert.uuid"] for a in first] == [a["kibana.alert.uuid"] for a in second]
    alert = next(a for a in first if a["kibana.alert.rule.name"] == MASTERS_RULE)
    assert alert["kibana.alert.workflow_status"] == "open"
    rule = shipped_rule(MASTERS)
    assert alert["kibana.alert.rule.rule_id"] == rule["rule_id"]
    assert alert["kibana.alert.rule.type"] == "esql"
    assert (alert["kibana.alert.severity"], alert["kibana.alert.risk_score"]) == (
        rule["severity"],
        rule["risk_score"],
    )
    assert alert["kibana.alert.ancestors"][0]["type"] == "event"
    assert alert["kibana.alert.original_time"] == alert["kubernetes"]["audit"]["stageTimestamp"][:23] + "Z"
    assert alert["event.kind"] == "signal" and "event" not in alert
    assert alert["kibana.alert.original_event.action"] == "create"
    assert alert["kibana.alert.reason"].endswith(f"created {rule['severity']} alert {MASTERS_RULE}.")


def test_now_limits_each_rule_to_its_window(log, capsys, monkeypatch) -> None:
    later = (BASE_TIME + timedelta(hours=1)).isoformat()
    code, alerts, _ = _run(capsys, monkeypatch, "--events", str(log), "--now", later)
    assert (code, alerts) == (1, [])
    just_after = (BASE_TIME + timedelta(minutes=1)).isoformat()
    _, alerts, _ = _run(capsys, monkeypatch, "--events", str(log), "--now", just_after)
    assert len(alerts) == 2


def test_indexed_documents_and_a_chosen_rule_and_an_output_file(tmp_path, capsys, monkeypatch) -> None:
    documents = tmp_path / "ecs.ndjson"
    documents.write_text("".join(json.dumps(to_document(e)) + "\n" for e in _events()), "utf-8")
    out = tmp_path / "alerts.ndjson"
    rule = REPO / "detections" / "kubernetes" / "csr_request_for_system_masters_group.yml"
    code, printed, err = _run(
        capsys,
        monkeypatch,
        "--events",
        str(documents),
        "--input",
        "ecs",
        "--rules",
        str(rule),
        "--out",
        str(out),
    )
    assert (code, printed) == (0, [])
    alerts = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    assert [a["kibana.alert.rule.name"] for a in alerts] == [MASTERS_RULE]
    assert err[-1] == "2 events read, 0 malformed lines, 1 alerts; 1 rules executed, 0 skipped (local engine)"


def test_a_missing_event_file_is_one_line(capsys, monkeypatch) -> None:
    code, alerts, err = _run(capsys, monkeypatch, "--events", "no/such/file.ndjson")
    assert (code, alerts) == (1, [])
    assert err == ["dac: no such file or folder: no/such/file.ndjson"]
