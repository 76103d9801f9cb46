"""The ES|QL catalogue: one data file (tooling/dac/data/esql_catalogue.json) that validation,
the parser and the evaluator read; unknown functions, wrong arities and functions newer than a
rule's min_stack_version fail `dac validate` at their place."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dac.query.esql import catalogue, functions
from dac.query.esql.parser import _PROCESSING
from tests.fixtures.project import MASTERS, NON_SYSTEM, FixtureProject, position
from tests.repository import REPO

RULE = "detections/rule.yml"


def test_the_catalogue_is_what_its_script_writes() -> None:
    done = subprocess.run([sys.executable, REPO / "scripts" / "esql-catalogue", "--check"], check=False)
    assert done.returncode == 0, "run scripts/esql-catalogue and commit tooling/dac/data/esql_catalogue.json"


def test_every_function_the_evaluator_implements_is_catalogued_with_its_arity() -> None:
    for name in [*functions._BUILDERS, *functions.AGGREGATES]:
        entry = catalogue.function(name)
        assert entry is not None, name
        assert entry["min_args"] is not None, name


def test_every_command_the_parser_implements_is_catalogued_as_supported() -> None:
    assert {*_PROCESSING, "from"} == catalogue.commands(supported=True)


def test_json_extract_first_appears_in_9_4() -> None:
    # docs/reference/query-languages/esql/_snippets/functions/layout/json_extract.md: stack: preview 9.4.0
    assert catalogue.function("JSON_EXTRACT")["since"] == "9.4.0"


def esql_rule(project: FixtureProject, query: str, min_stack_version: str = "9.4.0") -> str:
    text = project.rule_text(NON_SYSTEM)
    start, end = text.index("type: query\n"), text.index("severity:")
    text = text[:start] + f"type: esql\nlanguage: esql\nquery: |\n  {query}\n" + text[end:]
    text = text.replace('min_stack_version: "9.0.0"', f'min_stack_version: "{min_stack_version}"')
    project.write(RULE, text)
    return text


BASE = "FROM logs-kubernetes.audit_logs-* METADATA _id, _index | WHERE "


@pytest.mark.parametrize(
    ("condition", "token", "message"),
    [
        ("NO_SUCH_FN(kubernetes.audit.verb) == 1", "NO_SUCH_FN", "ES|QL: unknown function [no_such_fn]"),
        ("LENGTH(kubernetes.audit.verb, 2) > 1", "LENGTH",
         "ES|QL: error building [length]: expects 1 arguments, found 2"),
        ("LEFT(kubernetes.audit.verb) == \"c\"", "LEFT",
         "ES|QL: error building [left]: expects 2 arguments, found 1"),  # known, not run locally
        ("ABS(LENGTH(kubernetes.audit.verb)) > 1", None, None),  # known, not run locally: valid
    ],
)  # fmt: skip
def test_unknown_functions_and_wrong_arities_fail_validation_at_their_place(
    project: FixtureProject, condition: str, token: str | None, message: str | None
) -> None:
    text = esql_rule(project, BASE + condition)
    run = project.dac("validate")
    if token is None:
        assert run.code == 0, run.err
        return
    line, column = position(text, token)
    assert run.code == 1
    assert [p for p in run.problems if "ES|QL" in p] == [
        f"{RULE}:{line}:{column}: {message} (query line 1, column {column - 2})"
    ]


def test_a_function_newer_than_min_stack_version_is_an_error(project: FixtureProject) -> None:
    text = project.copy_rule(MASTERS, {'min_stack_version: "9.4.0"': 'min_stack_version: "9.0.0"'})
    run = project.dac("validate")
    assert run.code == 1
    template = (project.root / "templates/queries/csr_subject_identity.esql.j2").read_text("utf-8")
    rule = position(text, "queries/csr_subject_identity.esql.j2")
    # one problem per JSON_EXTRACT the template writes, each at its place in the template
    places = [position(template, "JSON_EXTRACT", n + 1) for n in range(template.count("JSON_EXTRACT("))]
    assert places and len(run.problems) == len(places)
    for (line, column), problem in zip(places, run.problems, strict=True):
        assert problem.startswith(
            f"templates/queries/csr_subject_identity.esql.j2:{line}:{column}: ES|QL: JSON_EXTRACT needs "
            "Elasticsearch 9.4.0 or later, but min_stack_version is 9.0.0: raise min_stack_version "
            f"(rendered for {RULE}:{rule[0]}:{rule[1]}) (query line "
        )


def test_an_unknown_eql_function_fails_validation(project: FixtureProject) -> None:
    text = project.rule_text(NON_SYSTEM)
    start, end = text.index("type: query\n"), text.index("severity:")
    query = 'any where notAFunction(kubernetes.audit.verb, "c")'
    head = f"type: eql\nlanguage: eql\nindex: [logs-kubernetes.audit_logs-*]\nquery: '{query}'\n"
    text = text[:start] + head + text[end:]
    project.write(RULE, text)
    run = project.dac("validate")
    assert run.code == 1
    assert len(run.problems) == 1
    assert "EQL: unknown function [notAFunction]" in run.problems[0]
