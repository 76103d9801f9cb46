"""The planner is pure: desired rules and Kibana's rules in, one item per rule out (no HTTP)."""

from __future__ import annotations

from typing import Any

from dac.deploy.ownership import MANAGED_TAG, drifted, owned_by, stamp, unstamped
from dac.deploy.plan import (
    EXCEPTION_ITEM,
    EXCEPTION_LIST,
    RULE,
    DesiredRule,
    PlanItem,
    mass_deletion_errors,
    plan_space,
    version_tuple,
)
from dac.deploy.render import count_line, plan_text

REPO = "repo"


def body(rule_id: str, **fields: Any) -> dict[str, Any]:
    base = {"rule_id": rule_id, "name": f"rule {rule_id}", "type": "query", "language": "kuery",
            "query": "a:1", "severity": "low", "risk_score": 21, "enabled": True, "version": 1,
            "tags": ["t"], "index": ["logs-*"]}
    return {**base, **fields}


def desired(rule_id: str, min_stack: str | None = None, **fields: Any) -> DesiredRule:
    return DesiredRule(stamp(body(rule_id, **fields), REPO, "test"), f"{rule_id}.yml", min_stack)


def in_kibana(rule: dict[str, Any], **edits: Any) -> dict[str, Any]:
    """What Kibana answers for ``rule``: managed fields and filled-in defaults added, then ``edits``."""
    return {**rule, "id": f"obj-{rule['rule_id']}", "revision": 0, "setup": "", "actions": [],
            "exceptions_list": [], "rule_source": {"type": "internal"}, "immutable": False, **edits}


def plan(want: list[DesiredRule], have: list[dict[str, Any]], **options: Any) -> dict[str, str]:
    items = plan_space("s", want, have, repository=REPO, stack_version="9.5.0", **options)
    return {item.id: item.action for item in items}


def test_new_rules_are_created_and_deployed_ones_unchanged() -> None:
    one, two = desired("1"), desired("2")
    assert plan([one, two], [in_kibana(one.body)]) == {"1": "unchanged", "2": "create"}


def test_the_marks_are_a_tag_people_see_and_a_content_hash() -> None:
    stamped = stamp(body("1"), REPO, "staging")
    assert MANAGED_TAG in stamped["tags"]
    assert stamped["meta"]["dac"]["repository"] == REPO
    assert owned_by(stamped, REPO) and not owned_by(stamped, "other")
    assert unstamped(stamped) == body("1")


def test_a_repository_edit_is_one_update_with_its_field_diff() -> None:
    old = desired("1")
    new = desired("1", severity="high", risk_score=73, version=2, query="a:1\nand b:2")
    (item,) = plan_space("s", [new], [in_kibana(old.body)], repository=REPO, stack_version="9.5.0")
    assert item.action == "update"
    assert [c.field for c in item.changes] == ["query", "risk_score", "severity", "version"]
    text = plan_text_of([item])
    assert '      severity: "low" → "high"' in text
    assert "        +and b:2" in text


def plan_text_of(items: list[Any]) -> str:
    from dac.deploy.plan import Plan

    return plan_text(Plan("test", "http://kibana", "9.5.0", REPO, items), "--env test")


def test_a_kibana_edit_is_drift_diffed_kibana_to_repository() -> None:
    rule = desired("1")
    edited = in_kibana(rule.body, severity="critical", risk_score=99)
    assert drifted(edited) and not drifted(in_kibana(rule.body))
    (item,) = plan_space("s", [rule], [edited], repository=REPO, stack_version="9.5.0")
    assert item.action == "drift"
    assert {(c.field, c.before, c.after) for c in item.changes} == {
        ("severity", "critical", "low"), ("risk_score", 99, 21)}
    assert "dac pull --env test --space s --rule-id 1" in plan_text_of([item])


def test_pulled_drift_only_refreshes_the_mark() -> None:
    """After `dac pull` took a Kibana edit in, the repository and Kibana agree: no drift, one write."""
    rule = desired("1")
    edited = in_kibana(rule.body, severity="critical", risk_score=99)
    repo_now = desired("1", severity="critical", risk_score=99)
    (item,) = plan_space("s", [repo_now], [edited], repository=REPO, stack_version="9.5.0")
    assert item.action == "update" and item.changes == ()


def test_removed_rules_are_kept_unless_pruned_and_drifted_ones_never_deleted() -> None:
    gone, edited = desired("1"), desired("2")
    have = [in_kibana(gone.body), in_kibana(edited.body, note="mine")]
    assert plan([], have) == {"1": "orphan", "2": "orphan"}
    assert plan([], have, prune=True) == {"1": "delete", "2": "drift"}


def test_rules_the_repository_does_not_manage_are_never_touched() -> None:
    ui_rule = body("9", name="made in the UI")
    other = stamp(body("8"), "another-repo", "prod")
    assert plan([], [in_kibana(ui_rule), in_kibana(other)], prune=True) == {}


def test_an_unmanaged_rule_with_a_repository_rule_id_is_a_conflict_unless_identical() -> None:
    rule = desired("1")
    assert plan([rule], [in_kibana(body("1", severity="high"))]) == {"1": "conflict"}
    assert plan([rule], [in_kibana(body("1"))]) == {"1": "update"}  # adopted: identical content
    assert plan([rule], [in_kibana(body("1"), immutable=True, rule_source={"type": "external"})]) == {
        "1": "conflict"}


def test_a_rule_above_the_stack_version_is_skipped_with_the_reason() -> None:
    items = plan_space("s", [desired("1", min_stack="9.6.0")], [], repository=REPO, stack_version="9.5.4")
    assert items[0].action == "skip"
    assert items[0].reason == "needs stack 9.6.0, the target runs 9.5.4"
    assert version_tuple("9.5.0-SNAPSHOT") == (9, 5, 0) and version_tuple("9.4") == (9, 4, 0)


def test_mass_deletion_needs_a_flag() -> None:
    rules = [desired(str(n)) for n in range(8)]
    have = [in_kibana(r.body) for r in rules]
    items = plan_space("s", rules[:5], have, repository=REPO, stack_version="9.5.0", prune=True)
    assert mass_deletion_errors(items, {"s": 20}) == []  # 3 of 20
    items = plan_space("s", rules[:1], have, repository=REPO, stack_version="9.5.0", prune=True)
    assert mass_deletion_errors(items, {"s": 20})  # 7 deletes: more than a few
    items = plan_space("s", rules[:4], have[:7], repository=REPO, stack_version="9.5.0", prune=True)
    assert mass_deletion_errors(items, {"s": 5})  # 3 of 5: most of the space


def test_mass_deletion_counts_drifted_leftovers_and_exceptions() -> None:
    """apply.py deletes these too (review 5.1): drifted leftovers with --prune --overwrite-drift, a
    list with all its items, items added in Kibana to a managed list."""
    drifted_rules = [PlanItem(RULE, "s", f"r{n}", f"rule {n}", "drift", current={}) for n in range(6)]
    assert mass_deletion_errors(drifted_rules, {"s": 100}, prune=True) == []  # kept without the flag
    errors = mass_deletion_errors(drifted_rules, {"s": 100}, prune=True, overwrite_drift=True)
    assert errors == [
        "space 's': the plan deletes 6 of its 100 rules; pass --allow-mass-delete if that is intended"
    ]
    big_list = PlanItem(EXCEPTION_LIST, "s", "l", "list", "delete", current={}, holds=5)
    assert mass_deletion_errors([big_list], {"s": 100}) == [
        "space 's': the plan deletes 0 of its 100 rules and 6 exception lists and items; "
        "pass --allow-mass-delete if that is intended"
    ]
    added = [PlanItem(EXCEPTION_ITEM, "s", f"i{n}", "item", "drift", current={}, group="l") for n in range(6)]
    assert mass_deletion_errors(added, {"s": 100}, prune=False, overwrite_drift=True) == []  # not deleted
    assert mass_deletion_errors(added, {"s": 100}, prune=True, overwrite_drift=True)
    small = [PlanItem(EXCEPTION_LIST, "s", "l", "list", "delete", current={}, holds=2), *added[:3]]
    assert mass_deletion_errors(small, {"s": 100}) == []  # 3 objects; the added items are kept


def test_the_count_line_ends_the_plan() -> None:
    from dac.deploy.plan import Plan

    items = plan_space("s", [desired("1"), desired("2")], [in_kibana(desired("2").body)],
                       repository=REPO, stack_version="9.5.0")
    assert count_line(Plan("t", "u", "9.5.0", REPO, items)) == (
        "Plan: 1 to create, 0 to update, 0 to delete, 1 unchanged.")


# --------------------------------------------------------------------------- exception lists and items


def a_list(*items: dict[str, Any]) -> Any:
    from dac.deploy.plan import DesiredList

    lst = {
        "list_id": "L",
        "name": "list L",
        "description": "d",
        "type": "rule_default",
        "namespace_type": "single",
        "tags": [],
    }
    return DesiredList(stamp(lst, REPO, "test"), tuple(stamp(i, REPO, "test") for i in items))


def an_item(item_id: str, value: str = "x", **fields: Any) -> dict[str, Any]:
    return {
        "item_id": item_id,
        "list_id": "L",
        "type": "simple",
        "namespace_type": "single",
        "name": f"item {item_id}",
        "description": "d",
        "os_types": [],
        "tags": [],
        "entries": [{"field": "user.name", "operator": "included", "type": "match", "value": value}],
        "comments": [{"comment": "why"}],
        "meta": {"owner": "o", "reason": "r"},
        "expire_time": "2030-01-01T00:00:00Z",
        **fields,
    }


def stored(obj: dict[str, Any], **edits: Any) -> dict[str, Any]:
    """``obj`` as Kibana answers it: ids, versions, bookkeeping, comment ids and a normalised expire_time."""
    out = {
        **obj,
        "id": f"so-{obj.get('item_id', obj['list_id'])}",
        "_version": "WzEsMV0=",
        "tie_breaker_id": "t",
        "created_at": "c",
        "created_by": "elastic",
        "updated_at": "u",
        "updated_by": "elastic",
        **edits,
    }
    if "comments" in obj:
        out["comments"] = [
            {**c, "id": "c1", "created_at": "c", "created_by": "elastic"} for c in obj["comments"]
        ]
    if "expire_time" in obj:
        out["expire_time"] = "2030-01-01T00:00:00.000Z"
    if "item_id" not in obj:
        out.update(immutable=False, version=1, os_types=[])
    return out


def exception_plan(
    want: list[Any], lists: list[dict[str, Any]], items: list[dict[str, Any]], **options: Any
) -> dict[str, str]:
    from dac.deploy.plan import plan_exceptions

    return {
        f"{i.kind}:{i.id}": i.action
        for i in plan_exceptions("s", want, lists, items, repository=REPO, **options)
    }


def test_exceptions_new_list_and_items_are_created_deployed_ones_unchanged() -> None:
    lst = a_list(an_item("a"), an_item("b"))
    assert exception_plan([lst], [], []) == {
        "exception_list:L": "create",
        "exception_item:a": "create",
        "exception_item:b": "create",
    }
    live = [stored(i) for i in lst.items]
    assert exception_plan([lst], [stored(lst.body)], live) == {
        "exception_list:L": "unchanged",
        "exception_item:a": "unchanged",
        "exception_item:b": "unchanged",
    }


def test_exceptions_repo_edit_is_update_ui_edit_is_drift_ui_addition_is_drift() -> None:
    old = a_list(an_item("a"))
    new = a_list(an_item("a", value="y"))
    live = [stored(old.items[0])]
    assert exception_plan([new], [stored(old.body)], live)["exception_item:a"] == "update"
    edited = [stored(old.items[0], name="renamed in the UI")]
    assert exception_plan([old], [stored(old.body)], edited)["exception_item:a"] == "drift"
    stranger = stored(an_item("ui")) | {"meta": None, "tags": []}
    result = exception_plan([old], [stored(old.body)], [*live, stranger], prune=True)
    assert result["exception_item:ui"] == "drift"


def test_exceptions_removed_item_is_deleted_only_with_prune_and_unreferenced_list_too() -> None:
    lst = a_list(an_item("a"), an_item("b"))
    live = [stored(i) for i in lst.items]
    fewer = a_list(an_item("a"))
    assert exception_plan([fewer], [stored(lst.body)], live)["exception_item:b"] == "orphan"
    assert exception_plan([fewer], [stored(lst.body)], live, prune=True)["exception_item:b"] == "delete"
    assert exception_plan([], [stored(lst.body)], live, prune=True) == {"exception_list:L": "delete"}
    assert exception_plan([], [stored(lst.body)], live) == {"exception_list:L": "orphan"}


def test_exception_comparison_ignores_kibana_bookkeeping_and_the_reference_id() -> None:
    from dac.deploy.ownership import content_hash
    from dac.objectdiff import field_changes

    item = stamp(an_item("a"), REPO, "test")
    assert content_hash(stored(item)) == content_hash(item) and not drifted(stored(item))
    rule = body(
        "1", exceptions_list=[{"id": "L", "list_id": "L", "type": "rule_default", "namespace_type": "single"}]
    )
    live = {**rule, "exceptions_list": [{**rule["exceptions_list"][0], "id": "so-L"}]}
    assert field_changes(live, rule) == []
