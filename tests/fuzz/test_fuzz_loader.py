"""The rule loader and compiler on mutated real rule files and on arbitrary YAML-ish text.

Whatever a pull request puts in ``detections/``, validation ends with compiled rules or with
problems that each point at a line of the file: never another exception, never a hang.
"""

from __future__ import annotations

import tempfile
from functools import cache
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from dac.compile import compile_rules
from dac.errors import DacError
from dac.render.environment import Templates
from tests.fuzz.strategies import SYNTAX_CHARS, mutated
from tests.fuzz.support import assert_located, fuzz, time_limit
from tests.repository import PROJECT

YAML_PIECES = ["&a ", "*a", "<<: *a", "!!str ", "!!binary ", "!!python/object:os.system ", "---\n", "...\n",
               "? ", "- ", ": ", "|\n", ">-\n", "{", "}", "[", "]", "#", "%YAML 1.1\n", "\t", "  ", "\n",
               "'", '"', "~", "null", "yes", "0x1F", "1e400", ".nan", "2026-03-01", "{{ ", " }}", "{% ",
               " %}", "{#", "#}", "\x00", "\ufeff", "\r\n", "template: ", "queries/../../etc", "rule_id: ",
               "language: esql", "type: eql", "query: "]


@cache
def rule_texts() -> list[str]:
    return [p.read_text("utf-8") for p in sorted(PROJECT.detections.rglob("*.yml"))]


@cache
def workspace() -> tuple[Path, Templates]:
    folder = Path(tempfile.mkdtemp(prefix="dac-fuzz-loader-"))
    return folder, Templates(PROJECT.templates)


@pytest.fixture(scope="module", autouse=True)
def warm_caches() -> None:
    """Fill the caches before the first example (the first compile loads schema, ATT&CK, parsers)."""
    rule_texts()
    _validate(rule_texts()[0])


def _validate(content: str | bytes) -> None:
    folder, templates = workspace()
    path = folder / "rule.yml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, "utf-8", errors="surrogatepass")
    with time_limit():
        compiled, problems = compile_rules([path], templates)
    assert compiled or problems, "a rule file that neither compiles nor reports a problem"
    for problem in problems:
        assert isinstance(problem, DacError)
        assert_located(problem, "rule file")
        assert problem.location is not None and problem.location.line is not None, problem


def _mutations() -> st.SearchStrategy[str]:
    @st.composite
    def build(draw: st.DrawFn) -> str:
        text = draw(mutated(rule_texts(), max_edits=4))
        # and some YAML-level edits: a piece of YAML syntax at a line start or inside a line
        lines = text.split("\n")
        for _ in range(draw(st.integers(0, 3))):
            i = draw(st.integers(0, len(lines) - 1))
            piece = draw(st.sampled_from(YAML_PIECES + SYNTAX_CHARS))
            at = draw(st.integers(0, len(lines[i])))
            lines[i] = lines[i][:at] + piece + lines[i][at:]
        return "\n".join(lines)

    return build()


@fuzz(max_examples=200)
@given(_mutations())
# Crashes the fuzzer found (issue 10), each now a located error:
@example("rule_id: &a [*a, *a]\nname: *a\n")  # RecursionError on a recursive alias
@example("a: " + "[" * 600 + "]" * 600 + "\n")  # RecursionError from 500 levels of nesting on
@example("\x1frule_id: x\n")  # a control character: a three-line message placed at 1:1
@example("rule_id: x\nname: 2026-13-45\n")  # ValueError: an impossible date as a plain scalar
@example("rule_id: !!int zz\n")  # ValueError from an explicit tag
@example("\ufeffrule_id: x\n")
def test_mutated_rule_files(text: str) -> None:
    _validate(text)


@fuzz(max_examples=100)
@given(st.one_of(
    st.lists(st.sampled_from(YAML_PIECES + SYNTAX_CHARS), max_size=40).map("".join),
    st.binary(max_size=200),
))
def test_arbitrary_rule_files(content: str | bytes) -> None:
    _validate(content)
