"""Say what the fuzzers ran: examples per test and the seed, at the end of the session."""

from __future__ import annotations

import pytest

from tests.fuzz.support import BUDGETS, seed_description


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    reports = terminalreporter.stats.get("passed", []) + terminalreporter.stats.get("failed", [])
    ran = [item for item in reports if "tests/fuzz/" in item.nodeid]
    if not ran:
        return
    names = {item.nodeid.rpartition("::")[2] for item in ran}
    examples = sum(BUDGETS.get(name, 0) for name in names)
    terminalreporter.write_line(
        f"fuzz: {len(names)} property tests, up to {examples} examples in all (Hypothesis, each under a "
        f"time limit), {seed_description()}")
