"""Every deploy scenario of issue 8, on a real Kibana or the stand-in (see conftest.py).

Scenarios that need a fault injected skip on a real Kibana, saying so; all others run on both.
"""

from __future__ import annotations

import json
import re

import yaml

from dac.objectdiff import field_changes
from tests.deploy.conftest import DeployRepo, needs_standin
from tests.fixtures.project import MASTERS, NON_SYSTEM, Run, edit
from tests.kibana_standin.server import Fault
from tests.repository import PROJECT

UNMANAGED = {
    "rule_id": "0b8f5d2e-6c1a-4f7e-9d3b-2a4c6e8f0a1b",
    "name": "Made in the Kibana UI",
    "description": "A rule a person created by hand.",
    "type": "query",
    "language": "kuery",
    "query": "event.action:*",
    "index": ["logs-*"],
    "severity": "low",
    "risk_score": 10,
    "enabled": False,
}


def writes(run: Run) -> int:
    """Write requests of a deploy, from dac's own summary line (so it works on a real Kibana too)."""
    found = re.search(r"(\d+) write requests", run.out)
    assert found, run.out
    return int(found.group(1))


def deploy(repo: DeployRepo, *args: str, env: dict[str, str] | None = None) -> Run:
    return repo.dac("deploy", "--env", "test", *args, env=env)


def rule_id(stem: str) -> str:
    """Read from the repository's rule file, so a legitimate rule edit does not break these tests."""
    return yaml.safe_load((PROJECT.detections / "kubernetes" / f"{stem}.yml").read_text())["rule_id"]


def rule_name(stem: str) -> str:
    return yaml.safe_load((PROJECT.detections / "kubernetes" / f"{stem}.yml").read_text())["name"]


NON_SYSTEM_ID, MASTERS_ID = rule_id(NON_SYSTEM), rule_id(MASTERS)


def rule_ids(repo: DeployRepo, space: str) -> list[str]:
    return sorted(r["rule_id"] for r in repo.kibana.find_rules(space))


def test_fresh_deploy_of_every_rule_into_two_spaces(repo: DeployRepo) -> None:
    spaces = [repo.kibana.new_space(), repo.kibana.new_space()]
    repo.targets(spaces)
    run = deploy(repo)
    assert run.code == 0, run.out + run.err
    built = {k: json.loads(v) for k, v in repo.built().items()}
    assert len(built) == 3
    assert f"Plan: {2 * len(built)} to create, 0 to update, 0 to delete." in run.out
    for space in spaces:
        rules = {r["rule_id"]: r for r in repo.kibana.find_rules(space)}
        assert rules.keys() == built.keys()
        for rule_id, body in built.items():
            assert rules[rule_id]["tags"] == [*body["tags"], "Managed by dac"]
            assert rules[rule_id]["meta"]["dac"]["repository"] == "dac-tests"
            assert field_changes(rules[rule_id], body, ignore=frozenset({"tags", "meta"})) == []


def test_a_redeploy_makes_zero_writes(repo: DeployRepo) -> None:
    space = repo.kibana.new_space()
    repo.targets([space])
    assert deploy(repo).code == 0
    if repo.kibana.standin:
        repo.kibana.standin.clear_requests()
    run = deploy(repo)
    assert run.code == 0, run.out + run.err
    assert "Plan: 0 to create, 0 to update, 0 to delete, 3 unchanged." in run.out
    assert writes(run) == 0
    if repo.kibana.standin:
        assert [r for r in repo.kibana.standin.requests if r.is_write] == []
    plan = repo.dac("plan", "--env", "test", "--detailed-exitcode")
    assert plan.code == 0, plan.out


def test_one_edited_rule_is_exactly_one_update_with_its_diff(repo: DeployRepo) -> None:
    space = repo.kibana.new_space()
    repo.targets([space])
    assert deploy(repo).code == 0
    path = repo.rule_file(NON_SYSTEM)
    version = repo.locked_version(NON_SYSTEM_ID)  # deployed as built
    verbs = 'and kubernetes.audit.verb:("create" or "update" or "patch")'
    fewer = 'and kubernetes.audit.verb:("create" or "update")'
    edits = {"severity: high\nrisk_score: 73": "severity: medium\nrisk_score: 47", verbs: fewer}
    # the query line as rendered: the rule file's line without the block scalar's two-space indent
    query_line = next(line for line in path.read_text().splitlines() if verbs in line)[2:]
    path.write_text(edit(path.read_text(), edits))
    plan = repo.dac("plan", "--env", "test", "--detailed-exitcode")
    assert plan.code == 2, plan.out + plan.err
    assert "Plan: 0 to create, 1 to update, 0 to delete, 2 unchanged." in plan.out
    assert '      severity: "high" → "medium"' in plan.out
    assert "      risk_score: 73 → 47" in plan.out
    assert f"      version: {version} → {version + 1}" in plan.out
    assert f"        -{query_line}\n        +{query_line.replace(verbs, fewer)}" in plan.out
    run = deploy(repo)
    assert run.code == 0 and writes(run) == 1, run.out
    rule = repo.kibana.get_rule(space, NON_SYSTEM_ID)
    assert rule is not None and (rule["severity"], rule["version"]) == ("medium", version + 1)


def test_a_removed_rule_is_pruned_and_nothing_else_touched(repo: DeployRepo) -> None:
    space = repo.kibana.new_space()
    repo.targets([space])
    unmanaged = repo.kibana.create_unmanaged_rule(space, UNMANAGED)
    assert deploy(repo).code == 0
    before = {r["rule_id"]: r for r in repo.kibana.find_rules(space)}
    repo.rule_file(MASTERS).unlink()
    kept = repo.dac("plan", "--env", "test")
    assert f"  ? {rule_name(MASTERS)} ({MASTERS_ID}): no longer in the repository" in kept.out
    assert "0 to delete" in kept.out
    run = deploy(repo, "--prune")
    assert run.code == 0, run.out + run.err
    assert f"  - {rule_name(MASTERS)} ({MASTERS_ID})" in run.out
    assert writes(run) == 1
    after = {r["rule_id"]: r for r in repo.kibana.find_rules(space)}
    assert sorted(before.keys() - after.keys()) == [MASTERS_ID]
    for rule_id, rule in after.items():  # untouched: same content, revision and update time
        assert field_changes(rule, before[rule_id]) == []
        assert rule["revision"] == before[rule_id]["revision"]
        assert rule["updated_at"] == before[rule_id]["updated_at"]
    assert after[UNMANAGED["rule_id"]]["revision"] == unmanaged["revision"]


def test_an_unmanaged_rule_is_left_alone_even_with_prune(repo: DeployRepo) -> None:
    space = repo.kibana.new_space()
    repo.targets([space])
    repo.kibana.create_unmanaged_rule(space, UNMANAGED)
    for path in (repo.root / "detections" / "kubernetes").glob("*.yml"):
        if path.stem != NON_SYSTEM:
            path.unlink()
    run = deploy(repo, "--prune")
    assert run.code == 0, run.out + run.err
    assert UNMANAGED["name"] not in run.out
    assert rule_ids(repo, space) == sorted([UNMANAGED["rule_id"], NON_SYSTEM_ID])


def test_a_ui_edit_is_drift_and_not_overwritten(repo: DeployRepo) -> None:
    space = repo.kibana.new_space()
    repo.targets([space])
    assert deploy(repo).code == 0
    rule_id = NON_SYSTEM_ID
    name = rule_name(NON_SYSTEM)
    repo.kibana.edit_out_of_band(space, rule_id, {"severity": "low", "risk_score": 20})
    plan = repo.dac("plan", "--env", "test", "--detailed-exitcode")
    assert plan.code == 2
    assert f"  ! {name} ({rule_id}): edited in Kibana since the last deploy" in plan.out
    assert '      severity: "low" → "high"' in plan.out  # Kibana → repository
    assert f"dac pull --env test --space {space} --rule-id {rule_id}" in plan.out
    assert "1 drifted" in plan.out
    run = deploy(repo)
    assert run.code == 1
    assert f"NOT APPLIED ! {name} ({rule_id}) in space {space}: edited in Kibana" in run.out
    assert writes(run) == 0
    assert repo.kibana.get_rule(space, rule_id)["severity"] == "low"  # type: ignore[index]
    assert deploy(repo, "--overwrite-drift").code == 0
    assert repo.kibana.get_rule(space, rule_id)["severity"] == "high"  # type: ignore[index]
    assert "3 unchanged" in deploy(repo).out


def test_a_503_on_import_is_retried_and_converges(repo: DeployRepo) -> None:
    needs_standin(repo.kibana, "a 503 on _import")
    space = repo.kibana.new_space()
    repo.targets([space])
    repo.kibana.standin.inject(Fault.status(503, retry_after="0"), path_contains="_import")  # type: ignore[union-attr]
    run = deploy(repo)
    assert run.code == 0, run.out + run.err
    assert re.search(r"retried: POST /s/\S+/api/detection_engine/rules/_import: HTTP 503", run.out)
    assert len(rule_ids(repo, space)) == 3
    assert "3 unchanged" in deploy(repo).out


def test_a_dropped_connection_mid_batch_converges_on_a_rerun(repo: DeployRepo) -> None:
    needs_standin(repo.kibana, "a dropped connection")
    space = repo.kibana.new_space()
    repo.targets([space], import_max_bytes=10_000)  # one rule per batch: three batches
    repo.kibana.standin.inject(Fault.drop(after_apply=True), nth=2, path_contains="_import")  # type: ignore[union-attr]
    first = deploy(repo, env={"KIBANA_MAX_RETRIES": "0"})
    assert first.code == 1
    assert len(re.findall(r"^NOT APPLIED \+ ", first.out, re.M)) == 1
    assert "connection dropped" in first.out
    second = deploy(repo)
    assert second.code == 0, second.out + second.err
    ids = rule_ids(repo, space)
    assert ids == sorted(set(ids)) and len(ids) == 3  # no duplicates, nothing lost
    assert "3 unchanged" in deploy(repo).out


def test_a_dropped_connection_is_retried_within_the_run(repo: DeployRepo) -> None:
    needs_standin(repo.kibana, "a dropped connection")
    space = repo.kibana.new_space()
    repo.targets([space])
    repo.kibana.standin.inject(Fault.drop(after_apply=True), path_contains="_import")  # type: ignore[union-attr]
    run = deploy(repo)
    assert run.code == 0, run.out + run.err  # the repeat met 409s, read the rules back: ours, as sent
    assert "connection dropped, retried" in run.out
    assert len(rule_ids(repo, space)) == 3


def test_partial_import_errors_exit_non_zero_naming_the_rules(repo: DeployRepo) -> None:
    needs_standin(repo.kibana, "a partial import failure")
    space = repo.kibana.new_space()
    repo.targets([space])
    failing = [NON_SYSTEM_ID, MASTERS_ID]
    repo.kibana.standin.inject(Fault.partial_import(failing), path_contains="_import")  # type: ignore[union-attr]
    run = deploy(repo)
    assert run.code == 1
    named = re.findall(r"^NOT APPLIED \+ .*\((\S+)\) in space .*: Kibana refused it: HTTP 500", run.out, re.M)
    assert sorted(named) == failing
    assert "2 not in their intended state" in run.out
    rerun = deploy(repo)
    assert rerun.code == 0 and "Plan: 2 to create, 0 to update, 0 to delete, 1 unchanged." in rerun.out
    assert len(rule_ids(repo, space)) == 3


def test_an_older_stack_skips_esql_rules_with_the_reason(repo: DeployRepo) -> None:
    from tests.kibana_standin.server import KibanaStandIn

    with KibanaStandIn(version="9.3.2") as old:
        repo.kibana.env["KIBANA_URL"] = old.url  # type: ignore[attr-defined]
        repo.kibana.env["KIBANA_API_KEY"] = old.api_key  # type: ignore[assignment]
        repo.targets(["default"])
        run = deploy(repo)
        assert run.code == 0, run.out + run.err
        reason = "needs stack 9.4.0, the target runs 9.3.2"
        assert f"  skip {rule_name(MASTERS)} ({MASTERS_ID}): {reason}" in run.out
        assert "Plan: 1 to create, 0 to update, 0 to delete, 2 skipped." in run.out
        assert [r["rule_id"] for r in old.rules("default")] == [NON_SYSTEM_ID]
        strict = repo.dac("plan", "--env", "test", "--skip-is-error")
        assert strict.code == 1 and "skipped, needs stack 9.4.0" in strict.out


def test_status_lists_every_managed_rule(repo: DeployRepo) -> None:
    space = repo.kibana.new_space()
    repo.targets([space], overrides={"enabled": False})
    repo.kibana.create_unmanaged_rule(space, UNMANAGED)
    assert deploy(repo).code == 0
    run = repo.dac("status", "--env", "test")
    assert run.code == 0, run.out + run.err
    assert run.out.count("disabled") == 3 and UNMANAGED["name"] not in run.out
    assert "3 managed rules in environment test" in run.out
    listed = json.loads(repo.dac("status", "--env", "test", "--format", "json").out)
    assert {s["status"] for s in listed} == {"never ran"} and len(listed) == 3


def test_a_delete_repeated_after_a_dropped_connection_converges(repo: DeployRepo) -> None:
    """The repeat meets `Rule not found` for the rule the first attempt deleted: read back, it is gone."""
    needs_standin(repo.kibana, "a dropped connection")
    space = repo.kibana.new_space()
    repo.targets([space])
    assert deploy(repo).code == 0
    repo.rule_file(MASTERS).unlink()
    repo.kibana.standin.inject(Fault.drop(after_apply=True), path_contains="_bulk_action")  # type: ignore[union-attr]
    run = deploy(repo, "--prune")
    assert run.code == 0, run.out + run.err
    assert "_bulk_action: connection dropped, retried" in run.out
    kept = [NON_SYSTEM, "csr_request_for_kube_controller_manager_identity"]
    assert rule_ids(repo, space) == sorted(rule_id(stem) for stem in kept)


def test_a_misspelt_space_is_an_error_and_nothing_is_written(repo: DeployRepo) -> None:
    repo.targets(["no-such-space-here"])
    run = deploy(repo)
    assert run.code == 1
    assert "error: space 'no-such-space-here' does not exist in Kibana" in run.out
    assert "nothing applied: the plan has errors" in run.err


def test_a_kibana_made_rule_is_adopted_when_identical_else_a_conflict(repo: DeployRepo) -> None:
    space = repo.kibana.new_space()
    repo.targets([space])
    assert repo.dac("build").code == 0
    built = {k: json.loads(v) for k, v in repo.built().items()}
    repo.kibana.create_unmanaged_rule(space, built[NON_SYSTEM_ID])
    repo.kibana.create_unmanaged_rule(space, {**built[MASTERS_ID], "severity": "high", "risk_score": 60})
    run = deploy(repo)
    assert run.code == 1 and "nothing applied: the plan has errors" in run.err
    assert f"  x {rule_name(MASTERS)} ({MASTERS_ID}): a rule with this rule_id was made in Kibana" in run.out
    repo.kibana.edit_out_of_band(space, MASTERS_ID, {"severity": "medium", "risk_score": 47})
    run = deploy(repo)
    assert run.code == 0, run.out + run.err
    assert f"  ~ {rule_name(NON_SYSTEM)} ({NON_SYSTEM_ID}): adopt: same content" in run.out
    rules = {r["rule_id"]: r for r in repo.kibana.find_rules(space)}
    assert all(r["meta"]["dac"]["repository"] == "dac-tests" for r in rules.values()) and len(rules) == 3
    assert "3 unchanged" in deploy(repo).out
