"""Shared fixtures: the repository's own rules, compiled once per session."""

from __future__ import annotations

import pytest

from dac.compile import CompiledRule
from tests.repository import compile_repository_rules

pytest_plugins = ["tests.kibana_standin.plugin"]  # which Kibana the deploy tests ran against


@pytest.fixture(scope="session")
def repository_rules() -> list[CompiledRule]:
    return compile_repository_rules()
