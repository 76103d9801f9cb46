"""A legitimate rule edit, made as a user would on a copy of the repository, breaks no test.

Change one rule's severity and risk score, run ``dac build`` (what ``make build`` runs), and
the tests that read the repository's rules, docs pages and lock still pass: tests about rule
content read the rule files, and ``dac build`` regenerates docs/rules/*.md.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.fixtures.project import MASTERS
from tests.repository import REPO, shipped_rule

# The tests that read the repository itself (its rules, pages, lock), run again in the copy.
REPOSITORY_TESTS = [
    "tests/rules/test_docs.py",
    "tests/rules/test_scenarios.py",
    "tests/unit/test_cli.py",
    "tests/unit/test_run.py",
    "tests/unit/test_golden.py",
    "tests/unit/test_lock.py",
    "tests/unit/test_render.py",
    "tests/unit/test_rule_schema.py",
]
_NOT_COPIED = shutil.ignore_patterns(".venv", ".git", "build", ".pytest_cache", "__pycache__", "*.egg-info")


def test_changing_severity_and_risk_score_then_building_keeps_the_tests_green(tmp_path: Path) -> None:
    copy = tmp_path / "repo"
    shutil.copytree(REPO, copy, ignore=_NOT_COPIED)
    rule_file = copy / "detections" / "kubernetes" / f"{MASTERS}.yml"
    severity, score = ("low", 15) if shipped_rule(MASTERS)["severity"] != "low" else ("critical", 80)
    text = rule_file.read_text("utf-8")
    text = re.sub(r"^severity: .*$", f"severity: {severity}", text, count=1, flags=re.M)
    text = re.sub(r"^risk_score: .*$", f"risk_score: {score}", text, count=1, flags=re.M)
    rule_file.write_text(text, "utf-8")

    dac = Path(sys.executable).with_name("dac")
    build = subprocess.run([dac, "build"], cwd=copy, capture_output=True, text=True, check=False)
    assert build.returncode == 0, build.stderr
    page = (copy / "docs" / "rules" / f"{MASTERS}.md").read_text("utf-8")
    assert f"| {severity} / {score} |" in page  # the page was regenerated
    check = subprocess.run([dac, "validate", "--check-lock"], cwd=copy, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr

    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not integration",
         *REPOSITORY_TESTS],
        cwd=copy, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert tests.returncode == 0, tests.stdout[-3000:]
