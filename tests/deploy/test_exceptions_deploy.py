"""Exceptions as code through deploy, drift and pull (issue 12), on a real Kibana or the stand-in.

Rule 1 (NON_SYSTEM) carries its own items (its rule_default list); every fact about them is read from
its rule file, so a legitimate tuning edit does not break these tests.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import DeployRepo
from tests.deploy.test_deploy import NON_SYSTEM_ID, deploy, writes
from tests.fixtures.project import NON_SYSTEM
from tests.repository import PROJECT

LIST_ID = f"{NON_SYSTEM_ID}-exceptions"
RULE_ITEMS = yaml.safe_load((PROJECT.detections / "kubernetes" / f"{NON_SYSTEM}.yml").read_text())[
    "exceptions"
]["items"]
FIRST = RULE_ITEMS[0]


def item_lines(run_out: str) -> list[str]:
    return [
        line.strip()
        for line in run_out.splitlines()
        if line.strip().startswith(("+ item", "~ item", "- item", "! item", "= item", "? item"))
    ]


def ui_item(**fields: Any) -> dict[str, Any]:
    """An item as the Kibana UI's "Add rule exception" flyout sends it (no meta, no item_id chosen)."""
    return {
        "list_id": LIST_ID,
        "item_id": str(uuid.uuid4()),
        "namespace_type": "single",
        "type": "simple",
        "name": "Backup operator",
        "description": "",
        "entries": [
            {
                "field": "kubernetes.audit.user.username",
                "operator": "included",
                "type": "match",
                "value": "system:serviceaccount:velero:velero",
            }
        ],
        "comments": [{"comment": "velero restores CSRs"}],
        **fields,
    }


def with_second_item(repo: DeployRepo) -> dict[str, Any]:
    """Add a second item to rule 1's file (a copy of the first on another identity); returns it."""
    path = repo.rule_file(NON_SYSTEM)
    data = yaml.safe_load(path.read_text())
    second = {
        **FIRST,
        "item_id": "dac-test-second-item",
        "name": "A second excepted identity",
        "entries": [
            {**FIRST["entries"][0], "value": "system:serviceaccount:cert-manager:cert-manager-webhook"}
        ],
    }
    second.pop("expires", None)
    data["exceptions"]["items"].append(second)
    from dac.deploy.pull import replace_key

    path.write_text(replace_key(path.read_text(), "exceptions", data["exceptions"]))
    return second


def test_first_deploy_creates_the_list_and_items_before_the_rule(repo: DeployRepo) -> None:
    space = repo.kibana.new_space()
    repo.targets([space])
    run = deploy(repo)
    assert run.code == 0, run.out + run.err
    assert "  exceptions:" in run.out
    assert re.search(rf"^    \+ list .* \({re.escape(LIST_ID)}\)$", run.out, re.M), run.out
    assert sorted(item_lines(run.out)) == sorted(f"+ item {i['name']} ({i['item_id']})" for i in RULE_ITEMS)
    assert f"Exceptions: {1 + len(RULE_ITEMS)} to create, 0 to update, 0 to delete." in run.out
    live = repo.kibana.exception_items(space, LIST_ID)
    assert sorted(i["item_id"] for i in live) == sorted(i["item_id"] for i in RULE_ITEMS)
    for item in live:
        assert item["meta"]["owner"] and item["meta"]["dac"]["repository"] == "dac-tests"
        assert "Managed by dac" in item["tags"]
    status, the_list = repo.kibana.request(
        "GET", "/api/exception_lists", space=space, query={"list_id": LIST_ID, "namespace_type": "single"}
    )
    assert status == 200 and "Managed by dac" in the_list["tags"]
    rule = repo.kibana.get_rule(space, NON_SYSTEM_ID)
    assert rule is not None
    assert [(r["id"], r["list_id"], r["type"]) for r in rule["exceptions_list"]] == [
        (the_list["id"], LIST_ID, "rule_default")
    ]
    if repo.kibana.standin is not None:  # the order Kibana needs: a list exists before a rule names it
        order = [(r.method, r.path) for r in repo.kibana.standin.requests if r.is_write and r.space == space]
        first_list = order.index(("POST", "/api/exception_lists"))
        first_item = order.index(("POST", "/api/exception_lists/items"))
        first_rule = order.index(("POST", "/api/detection_engine/rules/_import"))
        assert first_list < first_item < first_rule, order


def test_a_redeploy_with_exceptions_makes_zero_writes_and_few_reads(repo: DeployRepo) -> None:
    space = repo.kibana.new_space()
    repo.targets([space])
    assert deploy(repo).code == 0
    run = deploy(repo)
    assert run.code == 0, run.out
    assert f"Exceptions: 0 to create, 0 to update, 0 to delete, {1 + len(RULE_ITEMS)} unchanged." in run.out
    assert writes(run) == 0
    reads = int(re.search(r"(\d+) read and", run.out).group(1))  # type: ignore[union-attr]
    assert reads <= 6, run.out  # status, space, rules, lists, items (one page each)
    assert repo.dac("plan", "--env", "test", "--detailed-exitcode").code == 0


def test_an_edited_item_is_exactly_one_item_update(repo: DeployRepo) -> None:
    space = repo.kibana.new_space()
    repo.targets([space])
    assert deploy(repo).code == 0
    path = repo.rule_file(NON_SYSTEM)
    before = repo.kibana.get_rule(space, NON_SYSTEM_ID)
    path.write_text(
        path.read_text().replace(f"name: {FIRST['name']}\n", "name: cert-manager's controller\n", 1)
    )
    plan = repo.dac("plan", "--env", "test", "--detailed-exitcode")
    assert plan.code == 2, plan.out + plan.err
    assert f"~ item cert-manager's controller ({FIRST['item_id']})" in item_lines(plan.out)
    assert f'      name: "{FIRST["name"]}" → "cert-manager\'s controller"' in plan.out
    assert "Plan: 0 to create, 0 to update, 0 to delete, 3 unchanged." in plan.out
    run = deploy(repo)
    assert run.code == 0 and writes(run) == 1, run.out
    [live] = [i for i in repo.kibana.exception_items(space, LIST_ID) if i["item_id"] == FIRST["item_id"]]
    assert live["name"] == "cert-manager's controller"
    assert [c["comment"] for c in live["comments"]] == FIRST.get("comments", [])  # not repeated
    assert repo.kibana.get_rule(space, NON_SYSTEM_ID)["revision"] == before["revision"]  # type: ignore[index]
    assert writes(deploy(repo)) == 0


def test_a_removed_item_is_deleted_only_with_prune(repo: DeployRepo) -> None:
    space = repo.kibana.new_space()
    repo.targets([space])
    path = repo.rule_file(NON_SYSTEM)
    original = path.read_text()
    second = with_second_item(repo)
    assert deploy(repo).code == 0
    assert second["item_id"] in [i["item_id"] for i in repo.kibana.exception_items(space, LIST_ID)]
    path.write_text(original)
    kept = deploy(repo)
    assert kept.code == 0 and writes(kept) == 0, kept.out
    assert f"? item {second['name']} ({second['item_id']}): no longer in the repository" in " ".join(
        item_lines(kept.out)
    )
    run = deploy(repo, "--prune")
    assert run.code == 0 and writes(run) == 1, run.out
    assert f"- item {second['name']} ({second['item_id']})" in item_lines(run.out)
    assert sorted(i["item_id"] for i in repo.kibana.exception_items(space, LIST_ID)) == sorted(
        i["item_id"] for i in RULE_ITEMS
    )


def drop_all_exceptions(path: Path) -> None:
    """Rule 1 without its exception items, and without the scenarios that expect them."""
    from dac.deploy.pull import replace_key

    path.write_text(
        replace_key(path.read_text(), "exceptions", None)
        .replace("suppressed_by: cert-manager-controller-csr-signer", "")
        .replace("alerts: 2\n", "alerts: 3\n")
    )
    path.write_text(
        re.sub(
            r"  - name: cert-manager's controller is excepted\n(    .*\n)+?(?=  - name)", "", path.read_text()
        )
    )


def test_removing_all_exceptions_updates_the_rule_and_prunes_its_list(repo: DeployRepo) -> None:
    space = repo.kibana.new_space()
    repo.targets([space])
    assert deploy(repo).code == 0
    path = repo.rule_file(NON_SYSTEM)
    drop_all_exceptions(path)
    run = deploy(repo, "--prune")
    assert run.code == 0, run.out + run.err
    assert re.search(rf"^    - list .* \({re.escape(LIST_ID)}\)$", run.out, re.M), run.out
    assert "Exceptions: 0 to create, 0 to update, 1 to delete." in run.out  # the list (its items go with it)
    assert writes(run) == 2  # the rule update, then the list delete
    rule = repo.kibana.get_rule(space, NON_SYSTEM_ID)
    assert rule is not None and rule["exceptions_list"] == []
    assert repo.kibana.exception_items(space, LIST_ID) == []
    status, _ = repo.kibana.request(
        "GET", "/api/exception_lists", space=space, query={"list_id": LIST_ID, "namespace_type": "single"}
    )
    assert status == 404
    assert writes(deploy(repo, "--prune")) == 0


def test_an_item_added_in_kibana_is_drift_kept_and_pulled_into_the_rule_file(repo: DeployRepo) -> None:
    space = repo.kibana.new_space()
    repo.targets([space])
    assert deploy(repo).code == 0
    added = repo.kibana.add_exception_item(space, ui_item())
    plan = repo.dac("plan", "--env", "test", "--detailed-exitcode")
    assert plan.code == 2
    assert f"! item Backup operator ({added['item_id']}): added in Kibana to a managed list" in " ".join(
        item_lines(plan.out)
    )
    run = deploy(repo, "--prune")
    assert run.code == 1 and writes(run) == 0, run.out  # drift is reported, never deleted silently
    assert f"NOT APPLIED ! Backup operator ({added['item_id']})" in run.out
    assert added["item_id"] in [i["item_id"] for i in repo.kibana.exception_items(space, LIST_ID)]

    pulled = repo.dac("pull", "--env", "test", "--rule-id", NON_SYSTEM_ID)
    assert pulled.code == 0, pulled.err
    assert "(exceptions)" in pulled.out
    text = repo.rule_file(NON_SYSTEM).read_text()
    items = yaml.safe_load(text)["exceptions"]["items"]
    assert [i["item_id"] for i in items] == [*(i["item_id"] for i in RULE_ITEMS), added["item_id"]]
    new = items[-1]
    assert new["owner"].startswith("UNKNOWN: made in Kibana by ") and new["reason"].startswith("UNKNOWN")
    assert new["comments"] == ["velero restores CSRs"] and new["entries"] == added["entries"]
    assert items[:-1] == RULE_ITEMS  # the repository's own items come back as they were
    assert text.count("expires: 20") == sum(1 for i in RULE_ITEMS if "expires" in i)  # dates unquoted
    build = repo.dac("build")
    assert build.code == 0, build.err
    assert f"exception item {added['item_id']!r}: owner is the placeholder `dac pull` wrote" in build.err
    adopt = deploy(repo)  # the item now carries owner, reason and the mark: one update, no drift
    assert adopt.code == 0 and writes(adopt) == 1, adopt.out
    assert writes(deploy(repo)) == 0


def test_an_item_edited_in_kibana_is_drift_until_overwrite_drift(repo: DeployRepo) -> None:
    space = repo.kibana.new_space()
    repo.targets([space])
    assert deploy(repo).code == 0
    repo.kibana.edit_exception_item(space, FIRST["item_id"], {"name": "edited in the UI"})
    run = deploy(repo)
    assert run.code == 1 and writes(run) == 0, run.out
    assert f"! item edited in the UI ({FIRST['item_id']})" not in item_lines(run.out)  # shown by repo name
    assert any(
        line.startswith(f"! item {FIRST['name']} ({FIRST['item_id']})") for line in item_lines(run.out)
    )
    assert f'      name: "edited in the UI" → "{FIRST["name"]}"' in run.out
    forced = deploy(repo, "--overwrite-drift")
    assert forced.code == 0 and writes(forced) == 1, forced.out
    [live] = [i for i in repo.kibana.exception_items(space, LIST_ID) if i["item_id"] == FIRST["item_id"]]
    assert live["name"] == FIRST["name"]


def test_plan_json_lists_exception_items_with_their_list(repo: DeployRepo) -> None:
    space = repo.kibana.new_space()
    repo.targets([space])
    body = json.loads(repo.dac("plan", "--env", "test", "--format", "json").out)
    kinds = {(i["kind"], i["id"], i["list_id"], i["action"]) for i in body["items"] if i["kind"] != "rule"}
    assert ("exception_list", LIST_ID, None, "create") in kinds
    assert ("exception_item", FIRST["item_id"], LIST_ID, "create") in kinds
    assert body["exception_counts"]["create"] == 1 + len(RULE_ITEMS)
    assert body["counts"]["create"] == 3


@pytest.mark.integration
def test_a_deployed_exception_suppresses_the_alert_on_the_real_node(
    repo: DeployRepo, repository_rules: list[Any]
) -> None:
    standin = repo.kibana.standin
    if standin is None:
        pytest.skip("a real Kibana runs rules on its own cluster, not on this suite's node")
    if not standin.es_url:
        pytest.fail("no Elasticsearch for the stand-in to execute on (set ES_URL)", pytrace=False)
    from dac.engine.elasticsearch import server_mappings
    from dac.engine.es_connection import connect
    from dac.mapping import mapping_for_index
    from dac.scenarios import Scenario

    rule = next(r for r in repository_rules if r.rule.rule_id == NON_SYSTEM_ID)
    index = next(
        i
        for i, spec in enumerate(rule.rule.tests)
        if spec["expect"].get("suppressed_by") and spec["expect"]["alerts"] > 0
    )
    documents = Scenario(rule, index).documents()
    connection = connect({"ES_URL": standin.es_url})
    client = connection.client
    target = f"logs-kubernetes.audit_logs-dactest{uuid.uuid4().hex[:8]}"
    mapping = mapping_for_index(target)
    assert mapping is not None
    client.indices.create(
        index=target,
        mappings=server_mappings(mapping, connection.capabilities.modules),
        settings={"number_of_shards": 1, "number_of_replicas": 0},
    )
    space = repo.kibana.new_space()
    try:
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        for doc in documents:
            client.index(index=target, document={**doc.source, "@timestamp": now})
        client.indices.refresh(index=target)
        repo.targets(
            [space], rules={"paths": [f"detections/kubernetes/{NON_SYSTEM}.yml"]}, overrides={"enabled": True}
        )
        assert deploy(repo).code == 0
        standin.wait_for_executions()
        alerts_index = f".alerts-security.alerts-{space}"
        client.indices.refresh(index=alerts_index)
        hits = client.search(
            index=alerts_index, size=50, query={"term": {"kibana.alert.rule.rule_id": NON_SYSTEM_ID}}
        )["hits"]["hits"]
        users = sorted(h["_source"]["kubernetes"]["audit"]["user"]["username"] for h in hits)
        excepted = FIRST["entries"][0]["value"]
        assert excepted not in users
        assert len(users) == rule.rule.tests[index]["expect"]["alerts"], users
    finally:
        client.options(ignore_status=404).indices.delete(index=target)


def test_pulling_an_item_with_a_value_list_entry_is_an_error_naming_it(repo: DeployRepo) -> None:
    space = repo.kibana.new_space()
    repo.targets([space])
    assert deploy(repo).code == 0
    entry = {
        "field": "kubernetes.audit.user.username",
        "operator": "included",
        "type": "list",
        "list": {"id": "allowed-users", "type": "keyword"},
    }
    added = repo.kibana.add_exception_item(space, ui_item(name="From a value list", entries=[entry]))
    before = repo.rule_file(NON_SYSTEM).read_text()
    run = repo.dac("pull", "--env", "test", "--rule-id", NON_SYSTEM_ID)
    assert run.code == 1
    assert f"exception item {added['item_id']!r} (From a value list) uses a value list" in run.err
    assert repo.rule_file(NON_SYSTEM).read_text() == before


def without_comments(repo: DeployRepo) -> dict[str, Any]:
    """Drop the comments of rule 1's first item that has some: Kibana cannot remove comments on
    update, so the deploy replaces the item (delete, create). Returns that item."""
    from dac.deploy.pull import replace_key

    path = repo.rule_file(NON_SYSTEM)
    data = yaml.safe_load(path.read_text())
    [chosen, *_] = [i for i in data["exceptions"]["items"] if i.get("comments")]
    del chosen["comments"]
    path.write_text(replace_key(path.read_text(), "exceptions", data["exceptions"]))
    return chosen


def test_replacing_an_item_keeps_an_edit_made_after_the_plan(repo: DeployRepo) -> None:
    """Kibana's item DELETE takes no _version: the deploy re-reads the item and compares (review 5.2)."""
    import dac.deploy.session as session

    space = repo.kibana.new_space()
    repo.targets([space])
    assert deploy(repo).code == 0
    chosen = without_comments(repo)
    planned = session.make_plan

    def plan_then_ui_edit(*args: Any, **kwargs: Any) -> Any:
        plan = planned(*args, **kwargs)
        repo.kibana.edit_exception_item(space, chosen["item_id"], {"name": "edited in the UI meanwhile"})
        return plan

    repo.monkeypatch.setattr(session, "make_plan", plan_then_ui_edit)
    run = deploy(repo)
    assert run.code == 1, run.out
    assert "edited in Kibana since the plan read it; not replaced" in run.out
    [live] = [i for i in repo.kibana.exception_items(space, LIST_ID) if i["item_id"] == chosen["item_id"]]
    assert live["name"] == "edited in the UI meanwhile" and live["comments"]


def test_a_failed_re_create_says_the_item_is_now_absent(repo: DeployRepo) -> None:
    from tests.deploy.conftest import needs_standin
    from tests.kibana_standin.server import Fault

    needs_standin(repo.kibana, "a 400 on the item's re-create")
    space = repo.kibana.new_space()
    repo.targets([space])
    assert deploy(repo).code == 0
    chosen = without_comments(repo)
    repo.kibana.standin.inject(Fault.status(400), method="POST", path_contains="exception_lists/items")  # type: ignore[union-attr]
    run = deploy(repo)
    assert run.code == 1, run.out
    assert re.search(rf"{re.escape(chosen['item_id'])}.*deleted to be replaced, but not re-created: "
                     r"the item is now absent: .*HTTP 400", run.out), run.out
    assert chosen["item_id"] not in {i["item_id"] for i in repo.kibana.exception_items(space, LIST_ID)}
    assert deploy(repo).code == 0  # the next deploy creates it


def test_a_list_no_rule_references_stays_visible_to_plan_and_prune(repo: DeployRepo) -> None:
    """Review 3.6: after a deploy without --prune the rules no longer reference the list, and the plan
    used to stop reading the space's lists, so the orphan vanished from it and --prune missed it."""
    space = repo.kibana.new_space()
    repo.targets([space])
    assert deploy(repo).code == 0
    path = repo.rule_file(NON_SYSTEM)
    drop_all_exceptions(path)
    kept = deploy(repo)
    assert kept.code == 0, kept.out + kept.err
    assert repo.kibana.get_rule(space, NON_SYSTEM_ID)["exceptions_list"] == []  # type: ignore[index]
    orphan = rf"^    \? list .* \({re.escape(LIST_ID)}\): no longer in the repository"
    plan = repo.dac("plan", "--env", "test")
    assert re.search(orphan, plan.out, re.M), plan.out
    pruned = deploy(repo, "--prune")
    assert pruned.code == 0 and "Exceptions: 0 to create, 0 to update, 1 to delete." in pruned.out, pruned.out
    assert not re.search(orphan, repo.dac("plan", "--env", "test").out, re.M)
