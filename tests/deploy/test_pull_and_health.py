"""`dac pull` (Kibana → rule files → build, byte for byte), `--wait-healthy`, and secrets in no output."""

from __future__ import annotations

import json
import re

from tests.deploy.conftest import DeployRepo
from tests.deploy.test_deploy import MASTERS_ID, NON_SYSTEM_ID, deploy, rule_name
from tests.fixtures.project import MASTERS, NON_SYSTEM

MODELINE = "# yaml-language-server: $schema=../../tooling/dac/schema/rule.schema.json\n"


def built_lists(repo: DeployRepo) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (repo.root / "build" / "exceptions").glob("*.json")}


def test_pull_then_build_gives_the_kibana_objects_byte_for_byte(repo: DeployRepo) -> None:
    space = repo.kibana.new_space()
    repo.targets([space])
    assert deploy(repo).code == 0
    before = repo.built()
    lists_before = built_lists(repo)
    assert lists_before  # rule 1's own exception list came along
    folder = repo.root / "detections" / "kubernetes"
    scenarios = {}
    for path in sorted(folder.glob("*.yml")):  # take every rule file away, keep its test scenarios
        text = path.read_text()
        scenarios[text.split("\n", 2)[1].split(": ", 1)[1]] = text[text.index("\ntests:") + 1 :]
        path.unlink()
    run = repo.dac("pull", "--env", "test", "--all-custom")
    assert run.code == 0, run.out + run.err
    assert "3 new rule files need test scenarios" in run.err
    pulled = sorted(folder.glob("*.yml"))
    assert len(pulled) == 3
    for path in pulled:
        text = path.read_text()
        assert text.startswith(MODELINE)
        assert "{%" not in text and "template:" not in text  # queries are literal
        path.write_text(text + scenarios[re.search(r"^rule_id: (\S+)", text, re.M).group(1)])  # type: ignore[union-attr]
    build = repo.dac("build")
    assert build.code == 0, build.err
    assert repo.built() == before
    assert built_lists(repo) == lists_before
    plan = repo.dac("plan", "--env", "test").out
    assert "3 unchanged" in plan and "Exceptions: 0 to create, 0 to update, 0 to delete" in plan


def test_pulling_an_unchanged_rule_leaves_its_file_alone(repo: DeployRepo) -> None:
    """Even from an environment whose overrides changed the rule in Kibana (enabled: false)."""
    space = repo.kibana.new_space()
    repo.targets([space], overrides={"enabled": False})
    assert deploy(repo).code == 0
    path = repo.rule_file(MASTERS)
    text = path.read_text()
    run = repo.dac("pull", "--env", "test", "--rule-id", MASTERS_ID)
    assert run.code == 0, run.err
    assert run.out.startswith("unchanged ")
    assert path.read_text() == text
    (item,) = json.loads(repo.dac("pull", "--env", "test", "--rule-id", MASTERS_ID, "--format", "json").out)
    assert (item["rule_id"], item["state"], item["fields"]) == (MASTERS_ID, "unchanged", [])


def test_pulling_a_drifted_rule_brings_the_ui_edit_into_the_file(repo: DeployRepo) -> None:
    space = repo.kibana.new_space()
    repo.targets([space])
    assert deploy(repo).code == 0
    path = repo.rule_file(NON_SYSTEM)
    version = repo.locked_version(NON_SYSTEM_ID)  # deployed as built
    text = path.read_text()
    repo.kibana.edit_out_of_band(space, NON_SYSTEM_ID, {"severity": "medium", "risk_score": 47})
    run = repo.dac("pull", "--env", "test", "--rule-id", NON_SYSTEM_ID)
    assert run.code == 0, run.out + run.err
    assert "(risk_score, severity)" in run.out
    lines = zip(text.splitlines(), path.read_text().splitlines(), strict=True)
    changed = [(old, new) for old, new in lines if old != new]
    assert changed == [("severity: high", "severity: medium"), ("risk_score: 73", "risk_score: 47")]
    plan = repo.dac("plan", "--env", "test")
    assert "Kibana already holds this content" in plan.out and "drifted" not in plan.out
    assert f"      version: {version} → {version + 1}" in plan.out
    assert deploy(repo).code == 0
    assert "3 unchanged" in repo.dac("plan", "--env", "test").out


def test_a_field_the_format_cannot_express_is_an_error_naming_it(repo: DeployRepo) -> None:
    space = repo.kibana.new_space()
    repo.targets([space])
    assert deploy(repo).code == 0
    repo.kibana.edit_out_of_band(space, NON_SYSTEM_ID, {"building_block_type": "default"})
    before = repo.rule_file(NON_SYSTEM).read_text()
    run = repo.dac("pull", "--env", "test", "--rule-id", NON_SYSTEM_ID)
    assert run.code == 1
    assert "field 'building_block_type' cannot be expressed in a rule file" in run.err
    assert repo.rule_file(NON_SYSTEM).read_text() == before


def test_wait_healthy_reports_a_failed_esql_execution(repo: DeployRepo) -> None:
    space = repo.kibana.new_space()
    repo.targets([space])
    run = deploy(repo, "--wait-healthy=60")
    health = re.findall(r"^health (\w+) (.*) \((\S+)\) in space \S+: (.*)$", run.out, re.M)
    assert sorted(h[2] for h in health) == sorted(repo.built())  # every created enabled rule
    failed = [h for h in health if h[0] == "FAILED"]
    assert run.code == (1 if failed else 0), run.out
    if repo.kibana.standin is not None:  # it runs rules on the local node, which has no ES|QL
        esql = [rule_name(MASTERS), rule_name("csr_request_for_kube_controller_manager_identity")]
        assert sorted(h[1] for h in failed) == sorted(esql), run.out  # the health lines say why
        assert all(h[3].startswith("failed: An error occurred during rule execution") for h in failed)


def test_the_api_key_appears_in_no_output_of_any_command(repo: DeployRepo) -> None:
    """DeployRepo.dac asserts it for every run; here every command, and their failures, run once."""
    space = repo.kibana.new_space()
    repo.targets([space])
    runs = [
        repo.dac("plan", "--env", "test", "--format", "json"),
        deploy(repo, "--format", "json"),
        repo.dac("status", "--env", "test"),
        repo.dac("pull", "--env", "test", "--rule-id", NON_SYSTEM_ID),
        repo.dac("plan", "--env", "test", "--space", "no-such-space"),
        repo.dac("plan", "--env", "test", env={"KIBANA_API_KEY": "wrong-" + (repo.kibana.api_key or "")}),
    ]
    # status exits 1 when an enabled rule's last run failed, as the ES|QL rules may have by now
    assert [r.code for r in runs[:2]] == [0, 0] and runs[2].code in (0, 1)
    assert [r.code for r in runs[3:]] == [0, 1, 1]
    assert "HTTP 401" in runs[-1].err and "wrong-" not in runs[-1].err
