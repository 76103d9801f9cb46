"""The version lock: Kibana only takes an update with a higher version, so a changed rule must bump it."""

from __future__ import annotations

import hashlib
import json
import stat
from typing import Any

import pytest

from dac.cli import main
from tests.fixtures.project import MASTERS, NON_SYSTEM, FixtureProject, position
from tests.repository import PROJECT

RULE_ID = "2e7c9c78-3a0d-4c84-b5e2-1066ffa3acca"
MASTERS_ID = "d4818217-6ce5-4ae6-8902-c9397d85da6c"
NAME = "Kubernetes Client Certificate Signing Request Created or Approved by Non-System Identity"
LOCK = "detections/version.lock.json"


@pytest.fixture
def project(project: FixtureProject) -> FixtureProject:
    project.copy_rule(NON_SYSTEM)
    return project


def build(project: FixtureProject) -> dict[str, dict[str, Any]]:
    """Build, and return the built rules by rule_id."""
    run = project.dac("build", "--out", "out")
    assert run.code == 0, run.err
    lines = (project.root / "out" / "rules.ndjson").read_text("utf-8").splitlines()
    return {obj["rule_id"]: obj for obj in map(json.loads, lines) if "rule_id" in obj}  # not exception lists


def content_hash(rule: dict[str, Any]) -> str:
    """SHA-256 of the built rule without its version, serialised compactly with sorted keys."""
    body = {k: v for k, v in rule.items() if k != "version"}
    text = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_lock(project: FixtureProject) -> dict[str, Any]:
    return json.loads(project.lock.read_text("utf-8"))


def change_description(project: FixtureProject) -> None:
    path = project.detections / "rule.yml"
    path.write_text(path.read_text("utf-8").replace("description: >-\n", "description: >-\n  Changed.\n", 1))


def test_a_new_rule_gets_version_1_and_is_locked(project: FixtureProject) -> None:
    assert not project.lock.exists()
    rule = build(project)[RULE_ID]
    assert rule["version"] == 1
    assert read_lock(project) == {RULE_ID: {"name": NAME, "version": 1, "sha256": content_hash(rule)}}
    assert project.lock.read_text("utf-8").endswith("}\n")


def test_the_lock_gets_the_mode_of_any_new_file(project: FixtureProject) -> None:
    build(project)
    plain = project.root / "plain.txt"
    plain.write_text("x")  # created with the process umask, as an editor or git checkout would
    assert stat.S_IMODE(project.lock.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)


def test_rebuilding_an_unchanged_rule_keeps_its_version(project: FixtureProject) -> None:
    build(project)
    lock = project.lock.read_bytes()
    assert build(project)[RULE_ID]["version"] == 1
    assert project.lock.read_bytes() == lock


def test_a_changed_description_bumps_the_version_and_the_hash(project: FixtureProject) -> None:
    first = build(project)[RULE_ID]
    change_description(project)
    second = build(project)[RULE_ID]
    assert second["description"].startswith("Changed. ")
    assert second["version"] == 2
    entry = read_lock(project)[RULE_ID]
    assert entry == {"name": NAME, "version": 2, "sha256": content_hash(second)}
    assert entry["sha256"] != content_hash(first)
    assert build(project)[RULE_ID]["version"] == 2  # and it stays 2 until the next change


def test_a_change_to_a_shared_template_bumps_only_the_rules_it_renders(project: FixtureProject) -> None:
    project.copy_rule(MASTERS, to="masters.yml")
    build(project)
    identities = project.root / "templates" / "data" / "system_identities.yml"
    identities.write_text(identities.read_text("utf-8") + "- identity: example-operator\n  used_by: a test\n")
    rules = build(project)
    assert (rules[RULE_ID]["version"], rules[MASTERS_ID]["version"]) == (2, 1)


def test_check_lock_fails_on_a_change_without_a_rebuild(project: FixtureProject) -> None:
    build(project)
    assert project.dac("validate", "--check-lock").code == 0
    change_description(project)
    text = (project.detections / "rule.yml").read_text("utf-8")
    line, column = position(text, RULE_ID)
    run = project.dac("validate", "--check-lock")
    assert run.code == 1
    assert run.err.splitlines() == [
        f"detections/rule.yml:{line}:{column}: rule changed since it was locked: "
        f"run `dac build` and commit {LOCK}",
        "1 rules compiled, 1 problems",
    ]
    assert project.dac("validate").code == 0  # without --check-lock the change is fine
    build(project)
    assert project.dac("validate", "--check-lock").code == 0


def test_check_lock_fails_on_a_rule_that_was_never_locked(project: FixtureProject) -> None:
    run = project.dac("validate", "--check-lock")
    assert run.code == 1
    assert run.err.splitlines()[0] == (
        f"detections/rule.yml:2:10: rule is not in the version lock: run `dac build` and commit {LOCK}"
    )


TOO_DEEP = "nesting depth exceeds the limit of 64 levels (dac.limits.MAX_NESTING_DEPTH)"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{\n  "x": {\n    "name": "a",\n    "version": 1,\n  }\n}\n',
         f"{LOCK}:5:3: version lock: not valid JSON: Expecting property name enclosed in double quotes"),
        ("", f"{LOCK}:1:1: version lock: not valid JSON: Expecting value"),
        ('{"x": {"name": "a", "version": 1}}\n', f"{LOCK}:1:1: version lock entry is malformed: 'sha256'"),
        ('{"x": {"name": "a", "version": "one", "sha256": "0"}}\n',
         f"{LOCK}:1:1: version lock entry is malformed: invalid literal for int() with base 10: 'one'"),
        ("[]\n", f"{LOCK}:1:1: version lock entry is malformed: 'list' object has no attribute 'items'"),
        ('{"x": ' + "[" * 65 + "]" * 65 + "}",
         f"{LOCK}:1:1: version lock: {TOO_DEEP}"),
        ("[" * 100_000 + "]" * 100_000,
         f"{LOCK}:1:1: version lock: {TOO_DEEP}"),
    ],
)  # fmt: skip
def test_a_malformed_lock_is_a_located_error(project: FixtureProject, content: str, message: str) -> None:
    project.write(LOCK, content)
    for command in (["validate", "--check-lock"], ["build", "--out", "out"]):
        run = project.dac(*command)
        assert (run.code, run.err) == (1, f"dac: {message}\n")
    assert not (project.root / "out").exists()  # build stopped before writing anything


def test_the_repository_lock_is_current(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["validate", "--check-lock", "--path", str(PROJECT.detections)])
    assert code == 0, capsys.readouterr().err
