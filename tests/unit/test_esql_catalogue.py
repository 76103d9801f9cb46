"""The ES|QL catalogue: one data file (tooling/dac/data/esql_catalogue.json) that validation,
the parser and the evaluator read; unknown functions, wrong arities and functions newer than a
rule's min_stack_version fail `dac validate` at their place."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from dac.errors import QueryError, UnsupportedQueryError
from dac.query.esql import catalogue, functions
from dac.query.esql import syntax as s
from dac.query.esql.parser import _PROCESSING, parse_esql
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
    _assert_too_new(project, text, name, since, "9.0.0")
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


# ---- second pass (issue 10): names the current reference documents -------------------------


def below(version: str) -> str:
    """The last minor before ``version`` (9.3.0 -> 9.2.0)."""
    major, minor, _ = (int(part) for part in version.split("."))
    return f"{major}.{minor - 1}.0"


@pytest.mark.parametrize(
    ("name", "condition"),
    [
        ("MV_INTERSECTS", 'MV_INTERSECTS(kubernetes.audit.verb, ["create", "update"])'),
        ("COPY_SIGN", "COPY_SIGN(LENGTH(kubernetes.audit.verb), -1) < 0"),
        ("ROUND_TO", "ROUND_TO(LENGTH(kubernetes.audit.verb), 1, 5, 10) > 1"),  # variadic points
        ("MV_UNION", 'MV_COUNT(MV_UNION(kubernetes.audit.verb, "create")) > 1'),
        ("V_COSINE", "V_COSINE([1.0, 2.0], [2.0, 1.0]) > 0.5"),
        ("MV_GREATER", 'MV_GREATER(kubernetes.audit.verb, "c")'),
        ("JSON_STRING", 'JSON_STRING("verb", kubernetes.audit.verb, "n", 1) IS NOT NULL'),
    ],
)
def test_a_function_the_second_pass_added_validates_at_its_version_and_fails_below_it(
    project: FixtureProject, name: str, condition: str
) -> None:
    since = catalogue.function(name)["since"]
    text = esql_rule(project, BASE + condition, min_stack_version=since)
    run = project.dac("validate")
    assert run.code == 0, run.err
    esql_rule(project, BASE + condition, min_stack_version=below(since))
    _assert_too_new(project, text, name, since, below(since))


def test_the_documented_spatial_extent_functions_are_in_every_9x_release(project: FixtureProject) -> None:
    # layout/st_xmax.md: "stack: preview" without a version: every release from the docs' base 9.0
    esql_rule(project, BASE + "ST_XMAX(TO_GEOPOINT(kubernetes.audit.verb)) > 1", min_stack_version="9.0.0")
    run = project.dac("validate")
    assert run.code == 0, run.err


def test_a_time_series_aggregation_takes_its_optional_window(project: FixtureProject) -> None:
    # validation checks names, argument counts and versions (argument types are Elasticsearch's to check)
    window = 'TO_TIMEDURATION("5 minutes")'
    query = f"FROM logs-kubernetes.audit_logs-* | STATS r = RATE(kubernetes.audit.verb, {window})"
    esql_rule(project, query, min_stack_version="9.3.0")
    run = project.dac("validate")
    assert run.code == 0, run.err
    text = esql_rule(project, query.replace(window, f"{window}, 1"), min_stack_version="9.3.0")
    line, column = position(text, "RATE(")
    run = project.dac("validate")
    assert run.problems == [
        f"{RULE}:{line}:{column}: ES|QL: error building [rate]: expects 1 to 2 arguments, found 3 "
        f"(query line 1, column {column - 2})"
    ]


def test_a_snapshot_only_function_the_second_pass_added_fails_at_any_version(project: FixtureProject) -> None:
    text = esql_rule(project, BASE + "TO_TEXT(kubernetes.audit.verb) IS NOT NULL", min_stack_version="9.9.0")
    line, column = position(text, "TO_TEXT(")
    run = project.dac("validate")
    assert run.problems == [
        f"{RULE}:{line}:{column}: ES|QL: TO_TEXT is in no Elasticsearch release (only snapshot builds define "
        f"it), so no stack version can run it (query line 1, column {column - 2})"
    ]


def test_every_function_has_a_kind() -> None:
    kinds = {catalogue.function(name)["kind"] for name in FUNCTIONS}
    assert kinds == {"aggregate", "time_series_aggregate", "grouping", "scalar"}


COMMANDS = catalogue.catalogue()["commands"]


def test_every_command_has_a_first_version_or_says_it_has_none_with_its_source() -> None:
    for name, entry in COMMANDS.items():
        since = entry["since"]
        assert since is None or since == catalogue.SNAPSHOT_ONLY or VERSION.fullmatch(since), name
        assert entry["source"], name
        assert entry["kind"] in ("source", "processing"), name
        if entry["supported"]:
            assert since == "9.0.0", name


@pytest.mark.parametrize("name", sorted(catalogue.commands(supported=False)))
def test_every_command_the_local_engine_cannot_run_is_refused_as_unsupported_not_unknown(name: str) -> None:
    source = COMMANDS[name.upper()]["kind"] == "source"
    query = f"{name.upper()} x" if source else f"FROM logs-x | {name.upper()} x"
    with pytest.raises(UnsupportedQueryError) as err:
        parse_esql(query)
    assert err.value.message.startswith(f"ES|QL: unsupported command {name.upper()} (")
    assert err.value.message.endswith("the local engine does not run it)")
    assert err.value.query_column == (1 if source else 15)


def test_an_unsupported_command_names_its_first_version(project: FixtureProject) -> None:
    query = "FROM logs-kubernetes.audit_logs-* | USER_AGENT ua = kubernetes.audit.userAgent"
    text = esql_rule(project, query)
    line, column = position(text, "USER_AGENT")
    run = project.dac("validate")
    assert run.code == 1
    assert [p for p in run.problems if "ES|QL" in p] == [
        f"{RULE}:{line}:{column}: ES|QL: unsupported command USER_AGENT (Elasticsearch has it since 9.4.0; "
        f"the local engine does not run it) (query line 1, column {column - 2})"
    ]


def test_limit_by_is_unsupported_not_a_syntax_error() -> None:
    with pytest.raises(UnsupportedQueryError) as err:
        parse_esql("FROM i | LIMIT 10 BY a")
    assert "unsupported LIMIT ... BY" in err.value.message
    assert err.value.query_column == 19


def test_an_unknown_command_is_still_a_syntax_error() -> None:
    with pytest.raises(QueryError) as err:
        parse_esql("FROM i | FROBNICATE")
    assert not isinstance(err.value, UnsupportedQueryError)


def _assert_too_new(project: FixtureProject, text: str, name: str, since: str, minimum: str) -> None:
    """``dac validate`` refuses ``name`` (first in ``text``, the rule file) below ``since``, at its place."""
    line, column = position(text, f"{name}(")
    run = project.dac("validate")
    assert run.code == 1
    assert run.problems == [
        f"{RULE}:{line}:{column}: ES|QL: {name} needs Elasticsearch {since} or later, but min_stack_version "
        f"is {minimum}: raise min_stack_version (query line 1, column {column - 2})"
    ]
