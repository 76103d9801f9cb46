"""The one field-level diff of Kibana rule objects (deploy plan and PR review share it)."""

from __future__ import annotations

from dac.objectdiff import field_changes, normalise


def test_managed_fields_and_key_order_are_not_changes() -> None:
    repo = {"name": "r", "severity": "low", "query": "a:1"}
    kibana = {"severity": "low", "name": "r", "query": "a:1", "id": "x", "revision": 4,
              "updated_at": "2026-01-01T00:00:00Z", "execution_summary": {}}
    assert field_changes(kibana, repo) == []


def test_trailing_white_space_in_a_query_is_not_a_change() -> None:
    assert field_changes({"query": "a:1  \nand b:2\n\n"}, {"query": "a:1\nand b:2"}) == []
    assert normalise({"query": "x \n"})["query"] == "x"


def test_scalar_added_removed_and_changed_fields() -> None:
    changes = field_changes({"severity": "low", "tags": ["a"]}, {"severity": "high", "note": "n"})
    assert [(c.field, c.before, c.after) for c in changes] == [
        ("note", None, "n"), ("severity", "low", "high"), ("tags", ["a"], None)]
    assert not changes[1].is_text and changes[0].is_text


def test_query_change_is_a_unified_diff() -> None:
    (change,) = field_changes({"query": "a:1\nand b:2"}, {"query": "a:1\nand b:3"})
    assert change.is_text
    assert change.unified_diff() == "@@ -1,2 +1,2 @@\n a:1\n-and b:2\n+and b:3"


def test_ignored_fields_are_left_out() -> None:
    assert field_changes({"version": 1}, {"version": 2}, ignore=frozenset({"version"})) == []


def test_what_kibana_fills_in_on_read_is_not_a_change() -> None:
    """normalize_rule_fields_common.ts answers absent fields as [] or '' and flags ECS fields."""
    repo = {"name": "r", "required_fields": [{"name": "a", "type": "keyword"}]}
    kibana = {"name": "r", "setup": "", "exceptions_list": [], "actions": [], "meta": None,
              "required_fields": [{"name": "a", "type": "keyword", "ecs": False}]}
    assert field_changes(kibana, repo) == []
    assert field_changes({"enabled": False}, {}) != []  # false is a value, not an empty field
