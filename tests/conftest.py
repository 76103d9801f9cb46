"""Shared fixtures: the repository's own rules, compiled once per session."""

from __future__ import annotations

import pytest

from dac.compile import CompiledRule
from tests.repository import compile_repository_rules

pytest_plugins = ["tests.kibana_standin.plugin"]  # which Kibana the deploy tests ran against


@pytest.fixture(scope="session")
def repository_rules() -> list[CompiledRule]:
    return compile_repository_rules()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The fuzzers' own figures (cases run, seed), which pytest would otherwise capture."""
    from tests.fuzz.support import REPORT_LINES

    for line in REPORT_LINES:
        terminalreporter.write_line(line)
