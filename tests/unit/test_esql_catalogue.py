"""The ES|QL catalogue: one data file (tooling/dac/data/esql_catalogue.json) that validation,
the parser and the evaluator read; unknown functions, wrong arities and functions newer than a
rule's min_stack_version fail `dac validate` at their place."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from dac.query.esql import catalogue, functions
from dac.query.esql import syntax as s
from dac.query.esql.parser import _PROCESSING
from tests.fixtures.project import MASTERS, NON_SYSTEM, FixtureProject, position
from tests.repository import PROJECT, REPO

RULE = "detections/rule.yml"


def test_the_catalogue_is_what_its_script_writes() -> None:
    done = subprocess.run([sys.executable, REPO / "scripts" / "esql-catalogue", "--check"], check=False)
    assert done.returncode == 0, "run scripts/esql-catalogue and commit tooling/dac/data/esql_catalogue.json"


def test_every_function_the_evaluator_implements_is_catalogued_with_its_arity() -> None:
    for name in [*functions._BUILDERS, *functions.AGGREGATES]:
        entry = catalogue.function(name)
        assert entry is not None, name
        assert entry["min_args"] is not None, name


FUNCTIONS = sorted(catalogue.catalogue()["functions"])
VERSION = re.compile(r"\d+\.\d+\.\d+")


def test_every_function_has_an_arity_and_a_first_version_with_their_sources() -> None:
    for name in FUNCTIONS:
        entry = catalogue.function(name)
        low, high = entry["min_args"], entry["max_args"]
        assert isinstance(low, int) and low >= 0, name
        assert entry["variadic"] == (high is None), name
        assert high is None or high >= low, name
        assert entry["since"] == catalogue.SNAPSHOT_ONLY or VERSION.fullmatch(entry["since"]), name
        assert entry["source"] and entry["arity_source"], name


def call(name: str, count: int) -> s.Call:
    argument = s.Literal(1, 1, "1", 1, "integer")
    return s.Call(1, 1, f"{name}(…)", name, (argument,) * count)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_every_function_takes_its_catalogued_argument_counts_and_no_other(name: str) -> None:
    entry = catalogue.function(name)
    low, high = entry["min_args"], entry["max_args"]
    accepted = [low, high] if high is not None else [low, low + 1, low + 10]
    assert [catalogue.arity_problem(call(name, n)) for n in accepted] == [None] * len(accepted)
    refused = ([low - 1] if low > 0 else []) + ([high + 1] if high is not None else [])
    for n in refused:
        problem = catalogue.arity_problem(call(name, n))
        assert problem is not None and problem.message.endswith(f"arguments, found {n}"), (name, n)


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
        # arities the catalogue took from the reference for issue 10
        ("SQRT(LENGTH(kubernetes.audit.verb), 2) > 1", "SQRT",
         "ES|QL: error building [sqrt]: expects 1 arguments, found 2"),
        ("POW(LENGTH(kubernetes.audit.verb)) > 1", "POW",
         "ES|QL: error building [pow]: expects 2 arguments, found 1"),
        ("TO_INTEGER(kubernetes.audit.verb, 16, 2) > 1", "TO_INTEGER",
         "ES|QL: error building [to_integer]: expects 1 to 2 arguments, found 3"),
        ("MULTI_MATCH(\"create\")", "MULTI_MATCH",
         "ES|QL: error building [multi_match]: expects at least 2 arguments, found 1"),
        ("MULTI_MATCH(\"create\", kubernetes.audit.verb, kubernetes.audit.verb, kubernetes.audit.verb)",
         None, None),  # variadic: any number of fields
        ("MV_CONTAINS_ALL(kubernetes.audit.verb, \"create\")", "MV_CONTAINS_ALL",
         "ES|QL: MV_CONTAINS_ALL is in no Elasticsearch release (only snapshot builds define it), "
         "so no stack version can run it"),
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


@pytest.mark.parametrize("name", ["URL_ENCODE", "ABSENT", "TO_GEOHASH"])
def test_a_function_the_first_pass_left_undated_is_checked_against_min_stack_version(
    project: FixtureProject, name: str
) -> None:
    since = catalogue.function(name)["since"]
    expression = f"{name}(kubernetes.audit.verb)"
    query = (
        BASE + f"{expression} IS NOT NULL"
        if name != "ABSENT"
        else ("FROM logs-kubernetes.audit_logs-* | STATS a = ABSENT(kubernetes.audit.verb)")
    )
    text = esql_rule(project, query, min_stack_version="9.0.0")
    line, column = position(text, f"{name}(")
    run = project.dac("validate")
    assert run.code == 1
    assert run.problems == [
        f"{RULE}:{line}:{column}: ES|QL: {name} needs Elasticsearch {since} or later, but min_stack_version "
        f"is 9.0.0: raise min_stack_version (query line 1, column {column - 2})"
    ]
    esql_rule(project, query, min_stack_version=since)
    assert project.dac("validate").code == 0


def test_the_shipped_rules_validate(project: FixtureProject) -> None:
    # every function their ES|QL queries call now has a checked arity and first version
    stems = sorted(path.stem for path in (PROJECT.detections / "kubernetes").glob("*.yml"))
    for stem in stems:
        project.copy_rule(stem, to=f"{stem}.yml")
    run = project.dac("validate")
    assert (run.code, run.err) == (0, f"{len(stems)} rules compiled, 0 problems\n")


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
