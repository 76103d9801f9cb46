"""Templates from a pull request run in Jinja's sandbox: known escapes are located errors and run nothing.

Each payload goes into a rule's inline query (or into the Kibana object template, which is
rendered with native types); ``dac validate`` must exit 1 with one located line, and the
command the payload tries to run must not have run (its marker file does not exist).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dac.render import sandbox
from tests.fixtures.project import NON_SYSTEM, FixtureProject, position

RULE = "detections/rule.yml"

ESCAPES = [
    "{{ cycler.__init__.__globals__.os.popen('touch MARKER').read() }}",
    "{{ joiner.__init__.__globals__.os.system('touch MARKER') }}",
    "{{ lipsum.__globals__['os'].popen('touch MARKER').read() }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ self._TemplateReference__context }}",
    "{{ self.__init__.__globals__ }}",
    "{{ config }}",
    "{{ request.application.__globals__.__builtins__ }}",
    "{{ namespace.__init__.__globals__.os.popen('touch MARKER') }}",
    "{{ '{0.__class__.__base__.__subclasses__}'.format(rule) }}",
    "{{ '{0.__init__.__globals__}'.format(cycler) }}",
    "{{ rule|attr('__class__') }}",
    "{{ data.__class__.__init__.__globals__ }}",
    "{% do rule.update({'severity': 'low'}) %}",
    "{% do data.system_identities.append({'identity': 'x'}) %}",
    "{% for i in range(10**10) %}{% endfor %}",
    "{{ 'x' * 10**9 }}",
    "{{ [1] * 1000000000 }}",
    "{{ 2 ** 100000 }}",
    "{{ '%1000000000s' % 'x' }}",
    "{{ '{0:>1000000000}'.format('x') }}",
    "{{ 'x' | center(1000000000) }}",
    "{{ 'x' | indent(1000000000) }}",
    "{% for i in range(2000) %}{{ 'x' * 1000 }}{% endfor %}",
]


def inline_query(project: FixtureProject, query: str) -> int:
    """The non-system rule with ``query`` as its one-line inline query; returns the query's line."""
    text = project.rule_text(NON_SYSTEM)
    start, end = text.index("query: |\n"), text.index("severity:")
    text = text[:start] + f"query: |\n  {query}\n" + text[end:]
    project.write(RULE, text)
    return position(text, query)[0]


@pytest.mark.parametrize("payload", ESCAPES)
def test_an_escape_in_an_inline_query_is_a_located_error_and_runs_nothing(
    project: FixtureProject, payload: str
) -> None:
    marker = project.root / "MARKER"
    line = inline_query(project, payload.replace("MARKER", str(marker)))
    run = project.dac("validate")
    assert run.code == 1, run.err
    assert len(run.problems) == 1, run.err
    assert run.problems[0].startswith(f"{RULE}:{line}:3: template error: "), run.problems[0]
    assert "Traceback" not in run.err
    assert not marker.exists()


def test_an_escape_in_the_kibana_object_template_runs_nothing(project: FixtureProject) -> None:
    """The rule object renders with native types: the same sandbox applies."""
    marker = project.root / "MARKER"
    template = project.root / "templates" / "kibana" / "rule.j2"
    payload = ESCAPES[0].replace("MARKER", str(marker))
    template.write_text(template.read_text("utf-8").replace("{{- kibana -}}", payload), "utf-8")
    project.copy_rule(NON_SYSTEM)
    run = project.dac("validate")
    assert run.code == 1
    assert run.problems == [
        f"templates/kibana/rule.j2:{template.read_text('utf-8').count(chr(10))}:1: template error: "
        "access to attribute '__init__' of 'type' object is unsafe. (rendered for detections/rule.yml:1:1)"
    ]
    assert not marker.exists()


def test_the_rule_object_template_still_builds_its_own_dict(project: FixtureProject) -> None:
    project.copy_rule(NON_SYSTEM)
    run = project.dac("show", "--format", "json", RULE)
    assert run.code == 0, run.err
    assert '"index": [' in run.out and '"note": ' in run.out


def test_a_render_that_runs_too_long_is_stopped(project: FixtureProject, monkeypatch) -> None:
    monkeypatch.setattr(sandbox, "MAX_RENDER_SECONDS", 0.2)
    line = inline_query(
        project, "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    )
    run = project.dac("validate")
    assert run.problems == [
        f"{RULE}:{line}:3: template error: rendering exceeds the limit of 0.2 seconds "
        "(dac.limits.MAX_RENDER_SECONDS)"
    ]


def test_a_render_that_doubles_a_string_is_stopped_at_the_memory_limit(project: FixtureProject) -> None:
    line = inline_query(
        project,
        "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}"
        "{% endfor %}{{ ns.s | length }}",
    )
    run = project.dac("validate")
    assert run.problems == [
        f"{RULE}:{line}:3: template error: rendering memory exceeds the limit of 1,073,741,824 bytes "
        "(dac.limits.MAX_RENDER_MEMORY_BYTES)"
    ]


def test_a_template_file_over_the_size_limit_is_refused(project: FixtureProject, tmp_path: Path) -> None:
    project.copy_rule(NON_SYSTEM)
    big = project.root / "templates" / "macros" / "kql.j2"
    big.write_text("{# " + "x" * 1_000_000 + " #}\n" + big.read_text("utf-8"), "utf-8")
    run = project.dac("validate")
    assert len(run.problems) == 1
    assert run.problems[0].startswith("templates/macros/kql.j2:1:1: file size 1,"), run.problems[0]
    assert "exceeds the limit of 1,000,000 bytes (dac.limits.MAX_FILE_BYTES)" in run.problems[0]
