"""Fixtures of the unit tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.project import FixtureProject, new_project


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FixtureProject:
    """An empty project (the repository's templates/, no rules) that is also the working folder."""
    monkeypatch.chdir(tmp_path)
    return new_project(tmp_path)
