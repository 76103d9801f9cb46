"""Golden file: a small rule rendered to exactly the Kibana object written out by hand beside it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from dac.build import RULES_DIR, rule_json
from dac.cli import main
from tests.repository import PROJECT

GOLDEN = Path(__file__).resolve().parent.parent / "golden"


def test_golden_rule_renders_to_the_hand_written_object(tmp_path, monkeypatch) -> None:
    shutil.copytree(PROJECT.templates, tmp_path / "templates")
    shutil.copytree(GOLDEN / "detections", tmp_path / "detections")
    monkeypatch.chdir(tmp_path)
    assert main(["build", "--path", "detections", "--out", "build"]) == 0
    expected = json.loads((GOLDEN / "golden_rule.json").read_text("utf-8"))
    written = (tmp_path / "build" / RULES_DIR / f"{expected['rule_id']}.json").read_text("utf-8")
    assert json.loads(written) == expected
    assert written == rule_json(expected)  # sorted keys, two-space indent, one trailing newline


def test_golden_rule_scenarios_pass(tmp_path, monkeypatch) -> None:
    shutil.copytree(PROJECT.templates, tmp_path / "templates")
    shutil.copytree(GOLDEN / "detections", tmp_path / "detections")
    monkeypatch.chdir(tmp_path)
    assert main(["test", "--path", "detections"]) == 0
