"""The ``dac`` command line: commands, rule selection, output formats and exit codes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dac.cli import main
from tests.fixtures.project import MASTERS, NON_SYSTEM, FixtureProject, position
from tests.repository import PROJECT, shipped_rule

COMMANDS = [
    *("validate", "build", "show", "test", "docs", "efficacy", "generate", "run"),
    *("plan", "deploy", "status", "pull", "diff"),
]
MASTERS_ID = shipped_rule(MASTERS)["rule_id"]
MASTERS_NAME = shipped_rule(MASTERS)["name"]
DAC = Path(sys.executable).with_name("dac")


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    # argparse prints each command indented by four spaces; wrapped help text is indented further.
    assert re.findall(r"^    (\w+)", capsys.readouterr().out, re.MULTILINE) == COMMANDS


def test_an_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["bogus"])
    assert exit_.value.code == 2
    assert "invalid choice: 'bogus'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "selector",
    [MASTERS_ID, MASTERS_NAME, "detections/masters.yml"],
    ids=["rule_id", "name", "file"],
)
def test_show_selects_a_rule_by_id_name_or_file(project: FixtureProject, selector: str) -> None:
    project.copy_rule(NON_SYSTEM)
    project.copy_rule(MASTERS, to="masters.yml")
    run = project.dac("show", selector)
    assert run.code == 0, run.err
    lines = run.out.splitlines()
    rule = shipped_rule(MASTERS)
    assert lines[0] == (
        f"# {MASTERS_NAME}  ({MASTERS_ID}, esql/esql, {rule['severity']} {rule['risk_score']}, version 1)"
    )
    assert lines[1] == "# detections/masters.yml"
    assert lines[3].startswith("FROM logs-kubernetes.audit_logs-* METADATA")
    rest = json.loads(run.out[run.out.index("\n{") :])
    assert rest["rule_id"] == MASTERS_ID
    assert "query" not in rest  # printed above, as text


def test_show_json_is_the_built_rule(project: FixtureProject) -> None:
    project.copy_rule(MASTERS)
    shown = project.dac("show", MASTERS_ID, "--format", "json")
    assert shown.code == 0, shown.err
    assert project.dac("build", "--out", "out").code == 0
    built = json.loads((project.root / "out" / "rules" / f"{MASTERS_ID}.json").read_text("utf-8"))
    assert json.loads(shown.out) == built


def test_show_an_unknown_rule(project: FixtureProject) -> None:
    project.copy_rule(MASTERS)
    run = project.dac("show", "no such rule")
    assert (run.code, run.out, run.err) == (1, "", "dac: no valid rule matches 'no such rule'\n")


def test_validate_json_lists_every_problem_with_its_place(project: FixtureProject) -> None:
    text = project.copy_rule(NON_SYSTEM, {"risk_score: 73": "risk_score: 21"})
    project.write("detections/empty.yml", "")
    run = project.dac("validate", "--format", "json")
    assert run.code == 1
    assert run.err == ""
    line, column = position(text, "21")
    assert json.loads(run.out) == [
        {
            "path": "detections/empty.yml",
            "line": 1,
            "column": 1,
            "message": "file is empty: expected a rule (a YAML mapping)",
        },
        {
            "path": "detections/rule.yml",
            "line": line,
            "column": column,
            "message": "risk_score 21 does not fit severity 'high' (48-73)",
        },
    ]


def test_validate_json_of_a_valid_tree_is_an_empty_list(project: FixtureProject) -> None:
    project.copy_rule(NON_SYSTEM)
    run = project.dac("validate", "--format", "json")
    assert (run.code, json.loads(run.out), run.err) == (0, [], "")


def test_validate_json_keeps_the_place_inside_the_query(project: FixtureProject) -> None:
    project.copy_rule(NON_SYSTEM, {'"allow"\n': '"allow")\n'})
    [problem] = json.loads(project.dac("validate", "--format", "json").out)
    assert problem["message"] == 'KQL: expected the end of the query but found ")" (query line 1, column 67)'


@pytest.mark.parametrize("command", ["validate", "build", "show x", "test", "docs"])
def test_a_missing_detections_folder_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main([*command.split(), "--path", "nowhere"]) == 1
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", "dac: detections folder not found: nowhere\n")


def test_a_missing_templates_folder_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "detections").mkdir()
    assert main(["validate", "--path", str(tmp_path / "detections")]) == 1
    assert capsys.readouterr().err == f"dac: templates folder not found: {tmp_path / 'templates'}\n"


def test_the_installed_command_on_the_repository(tmp_path: Path) -> None:
    done = subprocess.run(
        [DAC, "validate", "--path", str(PROJECT.detections)], capture_output=True, text=True, check=False
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "3 rules compiled, 0 problems\n")


def test_a_reader_that_stops_early_is_not_an_internal_error(tmp_path: Path) -> None:
    # `dac show … | head -1`: stdout's reader goes away before dac writes.
    process = subprocess.Popen(
        [DAC, "show", MASTERS_ID, "--path", str(PROJECT.detections)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    process.stdout.close()
    _, err = process.communicate(timeout=60)
    assert err == ""
    assert process.returncode == 1


def test_generate_help_names_every_scenario(capsys) -> None:
    from dac.events.generate import SCENARIOS

    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert all(name in help_text for name in SCENARIOS)


def test_rule_files_in_any_case_are_built_and_other_files_are_reported(project: FixtureProject) -> None:
    project.copy_rule(NON_SYSTEM, to="upper.YML")
    project.write("detections/rule.yml.txt", "not a rule\n")
    project.write("detections/README.md", "# rules\n")
    run = project.dac("validate")
    assert run.code == 1
    assert run.problems == [
        "detections/rule.yml.txt: not a rule file: rules end in .yml or .yaml; move or rename this file "
        "(only READMEs and the version lock may sit beside rules)"
    ]
    assert run.err.endswith("1 rules compiled, 1 problems\n")  # the .YML rule is compiled


@pytest.mark.parametrize("rules", ["missing/", "empty/"])
def test_run_with_rules_that_match_nothing_is_an_error(project: FixtureProject, rules: str) -> None:
    project.copy_rule(NON_SYSTEM)
    (project.root / "empty").mkdir()
    events = project.write("events.ndjson", "")
    run = project.dac("run", "--events", str(events), "--rules", rules)
    assert run.code == 1
    assert "rules executed" not in run.err
    assert run.err.splitlines()[0].startswith(f"{rules.rstrip('/')}: no ")


def test_test_naming_no_rule_is_an_error(project: FixtureProject) -> None:
    project.copy_rule(NON_SYSTEM)
    run = project.dac("test", "no-such-rule")
    assert (run.code, run.err) == (1, "dac: no valid rule matches 'no-such-rule'\n")


def test_test_reports_a_rule_that_cannot_execute_in_its_table_once(project: FixtureProject) -> None:
    """An ES|QL rule without METADATA _id cannot tie rows to documents: every scenario is an error row."""
    text = project.rule_text(NON_SYSTEM)
    start, end = text.index("type: query\n"), text.index("severity:")
    query = 'FROM logs-kubernetes.audit_logs-* | WHERE kubernetes.audit.verb == "create" | KEEP @timestamp'
    text = text[:start] + f"type: esql\nlanguage: esql\nquery: '{query}'\n" + text[end:]
    project.write("detections/rule.yml", text)
    run = project.dac("test")
    assert run.code == 1
    assert run.err == ""  # nothing on stderr, nothing repeated
    rows = [line for line in run.out.splitlines() if line.startswith("rule ") and line.endswith("ERROR")]
    scenarios = text.count("  - name: ")
    assert len(rows) == scenarios, run.out
    assert all("  error  " in row for row in rows)
    [error] = [line for line in run.out.splitlines() if line.startswith("ERROR ")]
    line, column = position(text, f"'{query}'")
    assert error.startswith(
        f"ERROR detections/rule.yml:{line}:{column}: ES|QL rules need METADATA _id, _index to tie rows "
        "to documents (scenarios: "
    )
    assert run.out.splitlines()[-1] == f"0 passed, {scenarios} failed"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["build", "--out", "/dev/null"], "--out /dev/null: is not a folder"),
        (["build", "--out", "{tmp}/missing/build"],
         "--out {tmp}/missing/build: folder {tmp}/missing does not exist"),
        (["plan", "--out", "{tmp}/file"], "--out {tmp}/file: is not a folder"),
        (["deploy", "--out", "{tmp}/file/build"], "--out {tmp}/file/build: {tmp}/file is not a folder"),
        (["docs", "--out", "/dev/null/x"], "--out /dev/null/x: /dev/null is not a folder"),
        (["diff", "--no-behaviour", "--summary-file", "{tmp}/missing/summary.md"],
         "--summary-file {tmp}/missing/summary.md: folder {tmp}/missing does not exist"),
    ],
)
def test_an_output_path_that_cannot_be_written_is_a_usage_error_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, argv: list[str],
    message: str,
) -> None:
    """Review 2.2: these were `internal error` tracebacks (diff's after the whole review); an --out
    whose parent folder is missing is refused, as `dac run --out` does, not created."""
    (tmp_path / "file").write_text("x", "utf-8")
    monkeypatch.delenv("KIBANA_URL", raising=False)  # nothing may be contacted: the check comes first
    code = main([a.format(tmp=tmp_path) for a in argv])
    err = capsys.readouterr().err.splitlines()
    assert (code, err) == (2, [f"dac {argv[0]}: error: {message.format(tmp=tmp_path)}"])
    assert not (tmp_path / "missing").exists()
