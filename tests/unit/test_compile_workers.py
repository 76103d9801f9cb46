"""Compiling in worker processes gives exactly what compiling in one process gives: the same
rendered rules and the same problems at the same places (dac.compile splits large rule sets)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dac import compile as compile_module
from dac.compile import compile_rules
from dac.loader import rule_files
from dac.render.environment import Templates
from tests.fixtures.project import MASTERS, NON_SYSTEM, FixtureProject

KQL_ID = "rule_id: 2e7c9c78-3a0d-4c84-b5e2-1066ffa3acca"
ESQL_ID = "rule_id: d4818217-6ce5-4ae6-8902-c9397d85da6c"
NOT_SYSTEM = '{{ kql.not_system_identity("kubernetes.audit.user.username")'


def _rule_set(project: FixtureProject) -> None:
    """Valid rules of both languages among rules broken in the query, its template, YAML and metadata."""
    for n in range(4):
        project.copy_rule(NON_SYSTEM, {
            KQL_ID: f"{KQL_ID[:-12]}00000000000{n}", "Non-System Identity\n": f"Non-System Identity {n}\n",
        }, to=f"kql_{n}.yml")
        project.copy_rule(MASTERS, {
            ESQL_ID: f"{ESQL_ID[:-12]}00000000000{n}", "Masters Group\n": f"Masters Group {n}\n",
        }, to=f"esql_{n}.yml")
    project.copy_rule(NON_SYSTEM, {'verb:("create"': 'verb:(("create"'}, to="kql_syntax.yml")
    project.copy_rule(NON_SYSTEM, {NOT_SYSTEM: "{{ nope.x() "}, to="kql_undefined.yml")
    project.copy_rule(NON_SYSTEM, {"responseStatus.code < 400": "nope < 400"}, to="kql_field.yml")
    project.copy_rule(MASTERS, {"vars: {attribute: O,": "vars: {attribute: O, value: x,"}, to="yaml_bad.yml")
    project.copy_rule(MASTERS, {  # esql_0's rule_id, and a risk score outside its severity
        ESQL_ID: f"{ESQL_ID[:-12]}000000000000", "risk_score: 47": "risk_score: 90",
    }, to="esql_dupe_and_band.yml")
    project.write("templates/queries/broken.esql.j2", "FROM logs-kubernetes.audit_logs-*\n| WHERE (a ==\n")
    project.copy_rule(MASTERS, {
        ESQL_ID: f"{ESQL_ID[:-12]}999999999999",
        "System Masters Group\n": "System Masters Group (broken template)\n",
        "queries/csr_subject_identity.esql.j2": "queries/broken.esql.j2",
    }, to="esql_template.yml")


def _compile(project: FixtureProject, rules_per_worker: int, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(compile_module, "RULES_PER_WORKER", rules_per_worker)
    compiled, problems = compile_rules(rule_files(Path("detections")), Templates(Path("templates")))
    return [c.with_version(1) for c in compiled], [str(p) for p in problems]


def test_workers_give_the_single_process_rules_and_located_problems(
    project: FixtureProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    _rule_set(project)
    started = []
    real = compile_module._compile_in_workers
    monkeypatch.setattr(compile_module, "_compile_in_workers",
                        lambda *args: started.append(args[-1]) or real(*args))
    monkeypatch.setattr(compile_module.os, "cpu_count", lambda: 2)
    alone = _compile(project, 10**9, monkeypatch)
    assert started == []
    split = _compile(project, 2, monkeypatch)
    assert started == [2]
    assert split == alone
    rules, problems = alone
    assert len(rules) == 8
    assert len(problems) >= 6, problems
    for name in ("kql_syntax", "kql_undefined", "kql_field", "yaml_bad", "esql_dupe_and_band"):
        assert any(p.startswith(f"detections/{name}.yml:") for p in problems), (name, problems)
    assert any(p.startswith("templates/queries/broken.esql.j2:") for p in problems), problems
