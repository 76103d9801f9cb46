"""``dac build``: per-rule JSON and the import NDJSON, reproducible and swapped in only when complete."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dac.build import write_build
from tests.fixtures.project import MASTERS, NON_SYSTEM, FixtureProject

NON_SYSTEM_ID = "2e7c9c78-3a0d-4c84-b5e2-1066ffa3acca"
EXCEPTIONS_ID = f"{NON_SYSTEM_ID}-exceptions"  # rule 1's own items (its rule_default list)
MASTERS_ID = "d4818217-6ce5-4ae6-8902-c9397d85da6c"


@pytest.fixture
def project(project: FixtureProject) -> FixtureProject:
    # File order (a, b) is the reverse of rule_id order (2e7c…, d481…): the output must not follow files.
    project.copy_rule(MASTERS, to="a.yml")
    project.copy_rule(NON_SYSTEM, to="b.yml")
    return project


def build(project: FixtureProject, out: str = "out") -> Path:
    run = project.dac("build", "--out", out)
    assert run.code == 0, run.err
    return project.root / out


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` (hidden ones too) and its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_build_writes_one_file_per_rule_and_the_ndjson(project: FixtureProject) -> None:
    out = build(project)
    assert sorted(snapshot(out)) == [
        f"exceptions/{EXCEPTIONS_ID}.json",
        "rules.ndjson",
        f"rules/{NON_SYSTEM_ID}.json",
        f"rules/{MASTERS_ID}.json",
    ]
    lines = (out / "rules.ndjson").read_text("utf-8").splitlines(keepends=True)
    lines, exceptions = lines[:2], [json.loads(line) for line in lines[2:]]
    # after the rules, each exception list followed by its items (Kibana's export layout)
    built = json.loads((out / "exceptions" / f"{EXCEPTIONS_ID}.json").read_text("utf-8"))
    assert exceptions == [built["list"], *built["items"]]
    assert [json.loads(line)["rule_id"] for line in lines] == [NON_SYSTEM_ID, MASTERS_ID]
    for line in lines:
        rule = json.loads(line)
        # One compact object per line, equal to the per-rule file.
        assert line == json.dumps(rule, sort_keys=True, ensure_ascii=False, separators=(",", ":")) + "\n"
        assert json.loads((out / "rules" / f"{rule['rule_id']}.json").read_text("utf-8")) == rule
        assert rule["version"] == 1


def test_output_is_byte_identical_across_runs(project: FixtureProject) -> None:
    first = snapshot(build(project, "one"))
    second = snapshot(build(project, "two"))
    again = snapshot(build(project, "one"))
    assert first == second == again


def test_every_json_object_has_its_keys_sorted(project: FixtureProject) -> None:
    out = build(project)

    def sorted_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
        keys = [k for k, _ in pairs]
        assert keys == sorted(keys)
        return dict(pairs)

    for path in [out / "rules.ndjson", *(out / "rules").iterdir()]:
        for line in path.read_text("utf-8").splitlines() if path.suffix == ".ndjson" else [path.read_text()]:
            json.loads(line, object_pairs_hook=sorted_keys)
    rule_file = (out / "rules" / f"{NON_SYSTEM_ID}.json").read_text("utf-8")
    assert rule_file == json.dumps(json.loads(rule_file), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


@pytest.mark.parametrize("enabled", ["true", "false"])
def test_enabled_is_always_written(project: FixtureProject, enabled: str) -> None:
    project.copy_rule(NON_SYSTEM, {"enabled: true": f"enabled: {enabled}"}, to="b.yml")
    out = build(project)
    rule = json.loads((out / "rules" / f"{NON_SYSTEM_ID}.json").read_text("utf-8"))
    assert rule["enabled"] is (enabled == "true")


def test_quotes_and_backslashes_in_a_query_survive_unchanged(project: FixtureProject) -> None:
    query = 'kubernetes.audit.user.username:"a \\"quoted\\" \\\\ value"'
    text = project.rule_text(NON_SYSTEM)
    start, end = text.index("query: |\n"), text.index("severity:")
    project.write("detections/b.yml", text[:start] + f"query: |\n  {query}\n" + text[end:])
    out = build(project)
    line = (out / "rules.ndjson").read_text("utf-8").splitlines()[0]
    assert json.loads(line)["query"] == query
    assert json.loads((out / "rules" / f"{NON_SYSTEM_ID}.json").read_text("utf-8"))["query"] == query
    # JSON escapes each quote and backslash once.
    assert '"query":"kubernetes.audit.user.username:\\"a \\\\\\"quoted\\\\\\" \\\\\\\\ value\\""' in line


def test_a_failed_build_leaves_the_previous_one_intact(project: FixtureProject) -> None:
    out = build(project)
    before = snapshot(out)
    lock_before = project.lock.read_bytes()
    project.copy_rule(NON_SYSTEM, {"risk_score: 73": "risk_score: 21"}, to="b.yml")
    run = project.dac("build", "--out", "out")
    assert run.code == 1
    assert run.err.splitlines()[-1] == "build failed: 1 problems; the previous build is untouched"
    assert "detections/b.yml:" in run.err and "risk_score 21 does not fit severity 'high'" in run.err
    assert snapshot(out) == before
    assert project.lock.read_bytes() == lock_before


def test_a_rule_removed_from_the_repository_leaves_the_build(project: FixtureProject) -> None:
    out = build(project)
    (project.detections / "a.yml").unlink()
    build(project)
    expected = [f"exceptions/{EXCEPTIONS_ID}.json", "rules.ndjson", f"rules/{NON_SYSTEM_ID}.json"]
    assert sorted(snapshot(out)) == expected
    built = [json.loads(line) for line in (out / "rules.ndjson").read_text().splitlines()]
    # the rule, then its exception list and each of its items (as many as the shipped rule has)
    items = json.loads((out / "exceptions" / f"{EXCEPTIONS_ID}.json").read_text())["items"]
    assert [obj.get("rule_id") for obj in built] == [NON_SYSTEM_ID, None, *(None for _ in items)]
    assert [obj.get("item_id") for obj in built[2:]] == [item["item_id"] for item in items]


def test_write_build_failing_midway_changes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_build([{"rule_id": "a", "name": "first"}], out)
    before = snapshot(out)
    with pytest.raises(TypeError):  # the second rule cannot be serialised: the build stops half-way
        write_build([{"rule_id": "a", "name": "changed"}, {"rule_id": "b", "bad": object()}], out)
    assert snapshot(out) == before
    assert sorted(p.name for p in out.iterdir()) == ["exceptions", "rules", "rules.ndjson"]


def test_no_staging_folders_are_left_behind(project: FixtureProject) -> None:
    out = build(project)
    build(project)
    assert sorted(p.name for p in out.iterdir()) == ["exceptions", "rules", "rules.ndjson"]
    assert sorted(p.name for p in project.root.iterdir()) == ["detections", "docs", "out", "templates"]
    pages = project.root / "docs" / "rules"  # regenerated by every build
    assert sorted(p.name for p in pages.iterdir()) == ["a.md", "b.md"]
