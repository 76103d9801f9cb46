"""Every kind of bad rule gives one located line ``path:line:column: message`` from ``dac validate``.

Each test copies one real rule into a fixture tree, breaks one thing, and pins the exact
message and the exact place; ``dac validate`` must exit 1 (never 3, an internal error).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dac.attack import load_attack
from dac.compile import prebuilt_rule_ids
from dac.limits import MAX_PROBLEMS_PRINTED
from dac.mapping import load_mapping
from tests.fixtures.project import (
    MASTERS,
    NON_SYSTEM,
    FixtureProject,
    Run,
    position,
)

RULE = "detections/rule.yml"
RULE_ID = "2e7c9c78-3a0d-4c84-b5e2-1066ffa3acca"
NAME = "Kubernetes Client Certificate Signing Request Created or Approved by Non-System Identity"
OTHER_ID = "11111111-2222-4333-8444-555555555555"


def validate(project: FixtureProject) -> Run:
    run = project.dac("validate")
    assert run.code == 1, run.err
    assert "Traceback" not in run.err
    return run


def at(text: str, needle: str, path: str = RULE, offset: int = 0) -> str:
    """``path:line:column`` of ``needle`` in ``text``, ``offset`` columns further right."""
    line, column = position(text, needle)
    return f"{path}:{line}:{column + offset}"


def kql_rule(project: FixtureProject, query: str, to: str = "rule.yml") -> str:
    """The non-system identity rule with its inline KQL replaced by ``query`` (one line)."""
    text = project.rule_text(NON_SYSTEM)
    start, end = text.index("query: |\n"), text.index("severity:")
    text = text[:start] + f"query: |\n  {query}\n" + text[end:]
    project.write(f"detections/{to}", text)
    return text


def test_the_unbroken_fixture_rule_is_valid(project: FixtureProject) -> None:
    project.copy_rule(NON_SYSTEM)
    run = project.dac("validate")
    assert (run.code, run.err) == (0, "1 rules compiled, 0 problems\n")


def test_yaml_syntax_error(project: FixtureProject) -> None:
    text = project.copy_rule(NON_SYSTEM, {"severity: high": "severity: [high"})
    # Blamed on the unclosed bracket, with the place PyYAML gave up at (the next key's colon).
    found = at(text, "risk_score: 73", offset=10).split(":")
    assert validate(project).problems == [
        f"{at(text, '[high')}: YAML syntax error: did not find expected ',' or ']' at line {found[1]}, "
        f"column {found[2]}, while parsing a flow sequence that starts here"
    ]


def test_an_unclosed_quote_is_reported_at_the_opening_quote(project: FixtureProject) -> None:
    text = project.copy_rule(NON_SYSTEM, {"interval: 5m": 'interval: "5m'})
    run = validate(project)
    # The string runs on to the next quote (the tags, lines later) and the parse fails after it.
    closing, column = position(text, '"Domain: Kubernetes"')
    quote = at(text, '"5m')
    assert run.problems == [
        f"{quote}: YAML syntax error: did not find expected key at line {closing}, column {column + 1}; "
        f"the quoted string that starts here runs on to line {closing}: is its closing quote missing?"
    ]


def test_an_unclosed_quote_at_the_end_of_the_file(project: FixtureProject) -> None:
    text = project.rule_text(NON_SYSTEM) + 'extra: "never closed\n'
    project.write(RULE, text)
    end = text.count("\n") + 1
    quote = at(text, '"never')
    assert validate(project).problems == [
        f"{quote}: YAML syntax error: found unexpected end of stream at line {end}, "
        "column 1, while scanning a quoted scalar that starts here"
    ]


def test_a_nul_byte_is_one_line_at_its_column(project: FixtureProject) -> None:
    text = project.copy_rule(NON_SYSTEM, {"interval: 5m": "interval: 5\x00m"})
    nul = at(text, "\x00")
    assert validate(project).problems == [
        f"{nul}: character U+0000 is not allowed in YAML (control characters are refused)"
    ]


def test_wrong_type(project: FixtureProject) -> None:
    text = project.copy_rule(NON_SYSTEM, {"risk_score: 73": 'risk_score: "73"'})
    where = at(text, '"73"')
    assert validate(project).problems == [f"{where}: risk_score: expected an integer, got a string"]


def test_unknown_field_gets_a_did_you_mean_hint(project: FixtureProject) -> None:
    text = project.copy_rule(NON_SYSTEM, {"severity: high": "severty: high"})
    assert validate(project).problems == [
        f"{at(text, 'rule_id:')}: missing required field 'severity'",
        f"{at(text, 'severty:')}: unknown field 'severty' (did you mean 'severity'?)",
    ]


def test_every_unknown_field_of_one_mapping_is_reported(project: FixtureProject) -> None:
    text = project.copy_rule(NON_SYSTEM, {"max_signals: 100": "max_signal: 100\nenable: true"})
    assert validate(project).problems == [
        f"{at(text, 'max_signal:')}: unknown field 'max_signal' (did you mean 'max_signals'?)",
        f"{at(text, 'enable:')}: unknown field 'enable' (did you mean 'enabled'?)",
    ]


def test_unknown_field_in_a_nested_mapping(project: FixtureProject) -> None:
    text = project.copy_rule(NON_SYSTEM, {"techniques: [T1098]": "tecniques: [T1098]"})
    assert validate(project).problems == [
        f"{at(text, 'tecniques:')}: unknown field 'tecniques' in threat.1 (did you mean 'techniques'?)"
    ]


def test_missing_required_field_points_at_the_rule(project: FixtureProject) -> None:
    text = project.copy_rule(NON_SYSTEM, {"license: Apache-2.0\n": ""})
    # The mapping that lacks the key starts at rule_id (line 1 is the schema comment).
    assert validate(project).problems == [f"{at(text, 'rule_id:')}: missing required field 'license'"]


def test_invalid_kql_gives_the_place_inside_the_query(project: FixtureProject) -> None:
    text = project.copy_rule(NON_SYSTEM, {'"allow"\n': '"allow")\n'})
    # The rendered query's line 1 is `kubernetes.audit.annotations.authorization_k8s_io/decision:"allow")`:
    # column 67 is the extra ")"; in the file it is the ")" after "allow", found through the Jinja
    # by the line's text.
    token = at(text, '"allow")', offset=len('"allow"'))
    assert validate(project).problems == [
        f'{token}: KQL: expected the end of the query but found ")" (query line 1, column 67)'
    ]


@pytest.mark.parametrize(
    ("written", "token"),
    [
        ('query: |\n  kubernetes.audit.verb:"create"\n    and kubernetes.audit.verb:"x")\n', '"x")'),
        ('query: kubernetes.audit.verb:"create" and kubernetes.audit.verb:"x")\n', '"x")'),
        ("query: 'kubernetes.audit.verb:\"create\" and kubernetes.audit.verb:\"x\")'\n", '"x")'),
        ('query: >-\n  kubernetes.audit.verb:"create"\n  and kubernetes.audit.verb:"x")\n', '"x")'),
    ],
    ids=["literal block", "plain", "single-quoted", "folded (best effort)"],
)
def test_a_query_syntax_error_is_placed_at_its_token_in_the_rule_file(
    project: FixtureProject, written: str, token: str
) -> None:
    text = project.rule_text(NON_SYSTEM)
    start, end = text.index("query: |\n"), text.index("severity:")
    text = text[:start] + written + text[end:]
    project.write(RULE, text)
    [problem] = validate(project).problems
    assert problem.startswith(f"{at(text, token, offset=len(token) - 1)}: KQL: expected "), problem


def test_invalid_esql_in_a_query_template(project: FixtureProject) -> None:
    text = project.copy_rule(MASTERS, {"queries/csr_subject_identity.esql.j2": "queries/broken.esql.j2"})
    project.write(
        "templates/queries/broken.esql.j2",
        "FROM logs-kubernetes.audit_logs-*\n| WHERE kubernetes.audit.verb == == \"create\"\n",
    )
    # At the token in the template file, naming the rule that rendered it.
    assert validate(project).problems == [
        "templates/queries/broken.esql.j2:2:34: ES|QL: syntax error: unexpected '==', expecting an "
        f"expression (rendered for {at(text, 'queries/broken.esql.j2')}) (query line 2, column 34)"
    ]


def test_eql_rule_in_a_fixture_tree_compiles(project: FixtureProject) -> None:
    eql_rule(project, 'any where kubernetes.audit.verb == "create"')
    run = project.dac("show", RULE_ID, "--format", "json")
    assert run.code == 0, run.err
    body = json.loads(run.out)
    assert (body["type"], body["language"], body["index"]) == ("eql", "eql", ["logs-kubernetes.audit_logs-*"])
    assert body["required_fields"] == [{"name": "kubernetes.audit.verb", "type": "keyword"}]


def test_invalid_eql(project: FixtureProject) -> None:
    text = eql_rule(project, 'any where kubernetes.audit.verb == "create" and')
    # Elastic's eql parser stops at the dangling `and` (column 45).
    query = at(text, "any where", offset=44)
    assert validate(project).problems == [f"{query}: EQL: Invalid syntax (query line 1, column 45)"]


def eql_rule(project: FixtureProject, query: str) -> str:
    text = kql_rule(project, query)
    text = text.replace("type: query\nlanguage: kuery", "type: eql\nlanguage: eql")
    project.write(RULE, text)
    return text


def test_undefined_variable_in_an_inline_query(project: FixtureProject) -> None:
    call = '{{ kql.not_system_identity("kubernetes.audit.user.username") }}'
    text = project.copy_rule(NON_SYSTEM, {call: "{{ not_a_variable }}"})
    # The line of the Jinja expression in the file, at the column where the block's text starts.
    line, _ = position(text, "{{ not_a_variable }}")
    _, column = position(text, "{%- import")
    assert validate(project).problems == [
        f"{RULE}:{line}:{column}: template error: 'not_a_variable' is undefined"
    ]


def test_undefined_variable_in_a_query_template_file(project: FixtureProject) -> None:
    project.copy_rule(MASTERS, {"queries/csr_subject_identity.esql.j2": "queries/undefined.esql.j2"})
    project.write(
        "templates/queries/undefined.esql.j2",
        "{# line 1 #}\nFROM logs-kubernetes.audit_logs-*\n| WHERE kubernetes.audit.verb == {{ verb }}\n",
    )
    rule = at(project.rule_text(MASTERS), "queries/csr_subject_identity.esql.j2")
    assert validate(project).problems == [
        f"templates/queries/undefined.esql.j2:3:1: template error: 'verb' is undefined (rendered for {rule})"
    ]


def test_an_error_inside_an_imported_macro_is_blamed_on_the_rules_line_and_names_the_macro(
    project: FixtureProject,
) -> None:
    call = '{{ kql.not_system_identity("kubernetes.audit.user.username") }}'
    text = project.copy_rule(NON_SYSTEM, {call: "{{ kql.not_system_identity() }}"})
    line, _ = position(text, "{{ kql.not_system_identity() }}")
    _, column = position(text, "{%- import")
    macro = (project.root / "templates/macros/kql.j2").read_text("utf-8")
    macro_line, _ = position(macro, "not {{ field }}")
    assert validate(project).problems == [
        f"{RULE}:{line}:{column}: template error: parameter 'field' was not provided "
        f"(in templates/macros/kql.j2:{macro_line})"
    ]


def test_duplicate_rule_id_names_both_places(project: FixtureProject) -> None:
    first = project.copy_rule(NON_SYSTEM, to="a.yml")
    second = project.copy_rule(NON_SYSTEM, {f"name: {NAME}": "name: Another name"}, to="b.yml")
    assert validate(project).problems == [
        f"{at(second, RULE_ID, 'detections/b.yml')}: duplicate rule_id '{RULE_ID}' "
        f"(also in {at(first, RULE_ID, 'detections/a.yml')})"
    ]


def test_duplicate_name_names_both_places(project: FixtureProject) -> None:
    first = project.copy_rule(NON_SYSTEM, to="a.yml")
    text = project.rule_text(NON_SYSTEM)
    own_exceptions = text[text.index("exceptions:\n") : text.index("setup: |")]  # one item, one list
    second = project.copy_rule(NON_SYSTEM, {RULE_ID: OTHER_ID, own_exceptions: ""}, to="b.yml")
    assert validate(project).problems == [
        f"{at(second, NAME, 'detections/b.yml')}: duplicate name '{NAME}' "
        f"(also in {at(first, NAME, 'detections/a.yml')})"
    ]


def test_non_utf8_file_points_at_the_bad_byte(project: FixtureProject) -> None:
    text = project.rule_text(NON_SYSTEM)
    project.write(RULE, text.replace("license: Apache-2.0", "license: Apache\udcff-2.0").encode(
        "utf-8", "surrogateescape"
    ))
    assert validate(project).problems == [f"{at(text, '-2.0')}: file is not UTF-8 (byte 0xff)"]


@pytest.mark.parametrize("content", ["", "\n\n", "# only a comment\n"])
def test_empty_file(project: FixtureProject, content: str) -> None:
    project.write(RULE, content)
    assert validate(project).problems == [f"{RULE}:1:1: file is empty: expected a rule (a YAML mapping)"]


def test_a_top_level_list_is_not_a_rule(project: FixtureProject) -> None:
    project.write(RULE, "- rule_id: x\n")
    assert validate(project).problems == [f"{RULE}:1:1: expected a rule (a YAML mapping) at the top level"]


def test_duplicate_yaml_key_points_at_the_second_one(project: FixtureProject) -> None:
    text = project.copy_rule(NON_SYSTEM, {"severity: high": "severity: high\nseverity: low"})
    line, column = position(text, "severity: low")
    assert validate(project).problems == [f"{RULE}:{line}:{column}: duplicate key 'severity'"]


@pytest.mark.parametrize("key", ["on", "1", "~"])
def test_a_key_yaml_reads_as_no_string_is_refused(project: FixtureProject, key: str) -> None:
    # YAML 1.1 reads `on` as true, `1` as an int and `~` as null: a key that is not text is a mistake.
    text = project.copy_rule(NON_SYSTEM, {"severity: high": f"severity: high\n{key}: x"})
    line, _ = position(text, "severity: high")
    assert validate(project).problems == [
        f"{RULE}:{line + 1}:1: mapping key {key!r} is not a string: quote it"
    ]


def test_severity_and_risk_score_band_mismatch(project: FixtureProject) -> None:
    text = project.copy_rule(NON_SYSTEM, {"risk_score: 73": "risk_score: 21"})
    assert validate(project).problems == [
        f"{at(text, 'risk_score: 21', offset=12)}: risk_score 21 does not fit severity 'high' (48-73)"
    ]


def test_from_shorter_than_interval(project: FixtureProject) -> None:
    text = project.copy_rule(NON_SYSTEM, {"from: now-6m": "from: now-4m"})
    assert validate(project).problems == [
        f"{at(text, 'now-4m')}: from 'now-4m' looks back less than the interval '5m': "
        "events between runs would never be searched"
    ]


def test_unknown_attack_technique(project: FixtureProject) -> None:
    text = project.copy_rule(NON_SYSTEM, {"techniques: [T1098]": "techniques: [T1098, T9999]"})
    version = load_attack().version
    where = at(text, "T9999")
    assert validate(project).problems == [f"{where}: unknown ATT&CK technique T9999 (ATT&CK v{version})"]


def test_unknown_attack_tactic(project: FixtureProject) -> None:
    text = project.copy_rule(NON_SYSTEM, {"tactic: TA0003": "tactic: TA0099"})
    version = load_attack().version
    where = at(text, "TA0099")
    assert validate(project).problems == [f"{where}: unknown ATT&CK tactic TA0099 (ATT&CK v{version})"]


def test_technique_of_another_tactic(project: FixtureProject) -> None:
    # T1098 Account Manipulation is Persistence and Privilege Escalation, not Credential Access.
    text = project.copy_rule(NON_SYSTEM, {"techniques: [T1649]": "techniques: [T1098]"})
    assert validate(project).problems == [
        f"{at(text, 'T1098]')}: T1098 Account Manipulation is not a technique of TA0006 Credential Access "
        "(it belongs to TA0003 Persistence, TA0004 Privilege Escalation)"
    ]


def test_field_the_mapping_does_not_have(project: FixtureProject) -> None:
    # The integration leaves requestObject unmapped (dynamic: false): a KQL clause on it never matches.
    field = "kubernetes.audit.requestObject.spec.request"
    text = kql_rule(project, f'kubernetes.audit.verb:"create" and {field}:*')
    mapping = load_mapping("kubernetes.audit_logs")
    assert mapping.field(field) is None
    assert validate(project).problems == [
        f"{at(text, field)}: field 'kubernetes.audit.requestObject.spec.request' is not "
        f"searchable in kubernetes.audit_logs (kubernetes integration {mapping.package_version}): the index "
        "does not map it, so a query on it never matches (query line 1, column 36)"
    ]


def test_an_unknown_field_named_three_times_is_reported_once(project: FixtureProject) -> None:
    field = "kubernetes.audit.nosuchfield"
    text = kql_rule(project, f'{field}:"a" or {field}:"b" or not {field}:*')
    [problem] = validate(project).problems
    assert problem.startswith(f"{at(text, field)}: field {field!r} is not searchable")
    assert "(named 3 times, first here) (query line 1, column 1)" in problem


def test_unknown_index_pattern(project: FixtureProject) -> None:
    text = project.copy_rule(NON_SYSTEM, {"  - logs-kubernetes.audit_logs-*": "  - logs-unknown.data-*"})
    assert validate(project).problems == [
        f"{at(text, 'logs-unknown.data-*')}: no field mapping is known for index pattern "
        "'logs-unknown.data-*' (known: logs-kubernetes.audit_logs-*); "
        "add the data stream's mapping under tooling/dac/data/mappings/"
    ]


def test_rule_id_of_an_elastic_prebuilt_rule(project: FixtureProject) -> None:
    # Elastic's own CSR rule (rules/integrations/kubernetes in elastic/detection-rules), listed in
    # tooling/dac/data/elastic_prebuilt_rules.json.
    prebuilt = "0f5941c6-3db9-4d2f-91df-06c7c292ba45"
    name = "Kubernetes Client Certificate Signing Request Created or Approved"
    assert prebuilt_rule_ids()[prebuilt] == name
    text = project.copy_rule(NON_SYSTEM, {RULE_ID: prebuilt})
    assert validate(project).problems == [
        f"{at(text, prebuilt)}: rule_id {prebuilt} belongs to Elastic's prebuilt rule {name!r}: "
        "Kibana would import this as an immutable prebuilt rule; generate a new UUID"
    ]


def test_tests_without_a_silent_scenario(project: FixtureProject) -> None:
    text = project.rule_text(NON_SYSTEM)
    text = text.replace("alerts: 0", "alerts: 1")
    project.write(RULE, text)
    assert validate(project).problems == [
        f"{at(text, '- name:')}: tests need at least one scenario that raises alerts "
        "and one that must stay silent"
    ]


def test_problems_of_two_files_are_reported_together(project: FixtureProject) -> None:
    first = project.copy_rule(NON_SYSTEM, {"severity: high": "severity: [high"}, to="a.yml")
    second = project.copy_rule(
        NON_SYSTEM, {RULE_ID: OTHER_ID, f"name: {NAME}": "name: Other", "risk_score: 73": "risk_score: 21"},
        to="b.yml",
    )
    run = validate(project)
    found = at(first, "risk_score: 73", "detections/a.yml", 10).split(":")
    assert run.problems == [
        f"{at(first, '[high', 'detections/a.yml')}: YAML syntax error: did not find expected ',' or ']' "
        f"at line {found[1]}, column {found[2]}, while parsing a flow sequence that starts here",
        f"{at(second, 'risk_score: 21', 'detections/b.yml', 12)}: risk_score 21 does not fit severity 'high' "
        "(48-73)",
    ]
    assert run.err.endswith("0 rules compiled, 2 problems\n")


def test_the_installed_command_never_prints_a_traceback(project: FixtureProject) -> None:
    project.copy_rule(NON_SYSTEM, {"severity: high": "severity: [high"})
    project.write("detections/empty.yml", "")
    dac = Path(sys.executable).with_name("dac")
    done = subprocess.run(
        [dac, "validate", "--path", "detections"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert lines[-1] == "0 rules compiled, 2 problems"
    assert [line.split(":")[0] for line in lines[:-1]] == ["detections/empty.yml", RULE]
    assert "Traceback" not in done.stderr


def test_a_rendered_query_over_the_length_limit_is_refused(project: FixtureProject) -> None:
    text = kql_rule(project, '{{ "kubernetes.audit.verb:x or " * 5000 }}kubernetes.audit.verb:y')
    assert validate(project).problems == [
        f"{at(text, '{{')}: the rendered query (135,023 characters) exceeds the limit of 100,000 characters "
        "(dac.limits.MAX_QUERY_CHARS)"
    ]


def test_problems_beyond_the_limit_are_counted_not_printed(project: FixtureProject) -> None:
    for n in range(MAX_PROBLEMS_PRINTED + 5):
        project.write(f"detections/broken_{n:03d}.yml", "rule_id: [\n")
    run = validate(project)
    assert len(run.problems) == MAX_PROBLEMS_PRINTED + 1
    assert run.problems[-1] == "… and 5 more problems (dac.limits.MAX_PROBLEMS_PRINTED)"
    assert run.err.endswith(f"0 rules compiled, {MAX_PROBLEMS_PRINTED + 5} problems\n")
