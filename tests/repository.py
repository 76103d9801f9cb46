"""The repository under test: its project paths and its rules, compiled."""

from __future__ import annotations

from pathlib import Path

from dac.compile import CompiledRule, compile_rules
from dac.loader import rule_files
from dac.project import Project
from dac.render.environment import Templates

REPO = Path(__file__).resolve().parent.parent
PROJECT = Project.at(REPO / "detections")


def compile_repository_rules() -> list[CompiledRule]:
    compiled, problems = compile_rules(rule_files(PROJECT.detections), Templates(PROJECT.templates))
    if problems:
        raise AssertionError("the repository's rules do not compile:\n" + "\n".join(map(str, problems)))
    return compiled
