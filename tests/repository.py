"""The repository under test: its project paths and its rules, compiled."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dac.compile import CompiledRule, compile_rules
from dac.loader import load_yaml, rule_files
from dac.project import Project
from dac.render.environment import Templates

REPO = Path(__file__).resolve().parent.parent
PROJECT = Project.at(REPO / "detections")


def compile_repository_rules() -> list[CompiledRule]:
    compiled, problems = compile_rules(rule_files(PROJECT.detections), Templates(PROJECT.templates))
    if problems:
        raise AssertionError("the repository's rules do not compile:\n" + "\n".join(map(str, problems)))
    return compiled


def shipped_rule(stem: str) -> dict[str, Any]:
    """A shipped rule's YAML data: tests about rule content read it, so a rule edit breaks none of them."""
    return load_yaml(PROJECT.detections / "kubernetes" / f"{stem}.yml").data
