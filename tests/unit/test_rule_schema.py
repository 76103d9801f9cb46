"""The rule JSON Schema and the located, readable messages its violations become."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest

from dac.loader import rule_files
from dac.rules import load_rule, rule_schema
from tests.fixtures.project import MASTERS, NON_SYSTEM, edit, position
from tests.repository import PROJECT

REAL = {
    stem: (PROJECT.detections / "kubernetes" / f"{stem}.yml").read_text("utf-8")
    for stem in (NON_SYSTEM, MASTERS)
}


def problems(tmp_path: Path, stem: str, replacements: dict[str, str]) -> tuple[str, list[str]]:
    """Load a real rule with ``replacements`` applied; its text and the problems, without the path."""
    text = edit(REAL[stem], replacements)
    path = tmp_path / "rule.yml"
    path.write_text(text, "utf-8")
    rule, found = load_rule(path)
    assert (rule is None) == bool(found)
    return text, [str(p).removeprefix(f"{path}:") for p in found]


def at(text: str, needle: str) -> str:
    line, column = position(text, needle)
    return f"{line}:{column}"


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(rule_schema())


def test_every_repository_rule_matches_the_schema() -> None:
    files = list(rule_files(PROJECT.detections))
    assert len(files) >= 3
    for path in files:
        rule, found = load_rule(path)
        assert found == [], [str(p) for p in found]
        assert rule is not None and rule.path == path


def test_schema_defaults_are_filled_in(tmp_path: Path) -> None:
    path = tmp_path / "rule.yml"
    path.write_text(edit(REAL[NON_SYSTEM], {"max_signals: 100\n": ""}), "utf-8")
    rule, _ = load_rule(path)
    assert rule is not None and rule.data["max_signals"] == 100


def test_enum(tmp_path: Path) -> None:
    text, found = problems(tmp_path, NON_SYSTEM, {"severity: high": "severity: urgent"})
    where = at(text, "urgent")
    assert found == [f'{where}: severity: "urgent" is not one of "low", "medium", "high", "critical"']


def test_query_rules_speak_kql(tmp_path: Path) -> None:
    text, found = problems(tmp_path, NON_SYSTEM, {"language: kuery": "language: esql"})
    assert found == [f'{at(text, "esql")}: language: must be "kuery"']


def test_esql_rules_take_no_index(tmp_path: Path) -> None:
    text, found = problems(tmp_path, MASTERS, {"language: esql\n": "language: esql\nindex: [logs-*]\n"})
    assert found == [f"{at(text, 'rule_id')}: rule: a field here does not go with type 'esql'"]


def test_query_rules_need_an_index(tmp_path: Path) -> None:
    text, found = problems(tmp_path, NON_SYSTEM, {"index:\n  - logs-kubernetes.audit_logs-*\n": ""})
    assert found == [f"{at(text, 'rule_id')}: missing required field 'index'"]


def test_threshold_settings_only_on_threshold_rules(tmp_path: Path) -> None:
    text, found = problems(
        tmp_path, NON_SYSTEM, {"max_signals: 100": "max_signals: 100\nthreshold: {field: [a], value: 2}"}
    )
    assert found == [f"{at(text, 'rule_id')}: rule: a field here does not go with type 'query'"]


def test_a_query_template_lives_under_queries(tmp_path: Path) -> None:
    text, found = problems(tmp_path, MASTERS, {"template: queries/": "template: "})
    assert found == [
        f"{at(text, 'template:')}: query: expected query text or {{template: queries/NAME.j2, vars: {{...}}}}"
    ]


def test_rule_id_is_a_lower_case_uuid(tmp_path: Path) -> None:
    text, found = problems(tmp_path, NON_SYSTEM, {"rule_id: 2e7c9c78": "rule_id: 2E7C9C78"})
    assert found == [
        f"{at(text, '2E7C9C78')}: rule_id: '2E7C9C78-3a0d-4c84-b5e2-1066ffa3acca' does not match "
        "'^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'"
    ]


def test_interval_is_a_kibana_duration(tmp_path: Path) -> None:
    text, found = problems(tmp_path, NON_SYSTEM, {"interval: 5m": "interval: 5 minutes"})
    assert found == [f"{at(text, '5 minutes')}: interval: '5 minutes' does not match '^[1-9][0-9]*[smhd]$'"]


def test_a_scenario_without_expect(tmp_path: Path) -> None:
    expect = "    expect:\n      alerts: 1\n      fields: {kubernetes.audit.user.username: alice, "
    text, found = problems(tmp_path, NON_SYSTEM, {expect + "kubernetes.audit.verb: create}\n": ""})
    assert found == [f"{at(text, 'name: a user creates')}: missing required field 'expect' in tests.0"]


def test_too_few_scenarios_is_a_short_message(tmp_path: Path) -> None:
    text = REAL[NON_SYSTEM]
    one = text[: text.index("  - name: a human approves")]
    _, found = problems(tmp_path, NON_SYSTEM, {text: one})
    assert found == [f"{at(one, '- name: a user creates')}: tests: expected at least 2 items, got 1"]


@pytest.mark.parametrize(
    ("line", "message"),
    [("license: Apache-2.0", "license: expected a string, got null"),
     ("max_signals: 100", "max_signals: expected an integer, got null")],
)  # fmt: skip
def test_an_empty_value(tmp_path: Path, line: str, message: str) -> None:
    key = line.split(":")[0]
    text, found = problems(tmp_path, NON_SYSTEM, {line: f"{key}:"})
    line_number, _ = position(text, f"{key}:\n")
    assert found == [f"{line_number}:{len(key) + 2}: {message}"]  # an empty value stands after its key
