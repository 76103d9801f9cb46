"""Exception items → DSL (Kibana's translation) and the local engine's evaluation of it.

The DSL shapes follow elastic/kibana x-pack/solutions/security/plugins/lists/server/services/
exception_lists/build_exception_filter.ts; what each shape matches follows Elasticsearch
(match_phrase on keyword is the exact value, wildcard is case-sensitive, nested clauses hold
within one nested object, a value above ignore_above is not indexed). The integration suite
checks the same cases against a real node (tests/integration/test_exceptions_on_elasticsearch.py).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from dac.documents import SourceDocument
from dac.engine.local import LocalEngine
from dac.query.dsl import compile_query
from dac.query.exception_filter import (
    active_items,
    entry_clause,
    exceptions_filter,
    item_clauses,
    item_filter,
    rule_items,
    with_exceptions,
)
from tests.fixtures.exception_cases import (
    CASES,
    DOCUMENTS,
    MAPPING,
    exists,
    item,
    match,
    match_any,
    nested,
    wildcard,
)


def matching(dsl: dict[str, Any]) -> set[str]:
    matches = compile_query(dsl, MAPPING)
    return {doc_id for doc_id, source in DOCUMENTS.items() if matches(source)}


@pytest.mark.parametrize(("exception", "expected"), CASES, ids=[c[0]["item_id"] for c in CASES])
def test_each_entry_type_matches_what_elasticsearch_returns(
    exception: dict[str, Any], expected: set[str]
) -> None:
    assert matching(item_filter(exception)) == expected


def test_match_is_a_match_phrase_in_a_should_buildMatchClause() -> None:
    assert entry_clause(match("user.name", "x")) == {
        "bool": {"minimum_should_match": 1, "should": [{"match_phrase": {"user.name": "x"}}]}
    }


def test_excluded_wraps_the_clause_in_must_not_buildExclusionClause() -> None:
    assert entry_clause(match("user.name", "x", "excluded")) == {
        "bool": {"must_not": entry_clause(match("user.name", "x"))}
    }


def test_match_any_ors_one_phrase_clause_per_value_getBaseMatchAnyClause() -> None:
    assert entry_clause(match_any("f", ["a"])) == entry_clause(match("f", "a"))
    assert entry_clause(match_any("f", ["a", "b"])) == {
        "bool": {
            "minimum_should_match": 1,
            "should": [entry_clause(match("f", "a")), entry_clause(match("f", "b"))],
        }
    }


def test_exists_and_wildcard_shapes_buildExistsClause_buildMatchWildcardClause() -> None:
    assert entry_clause(exists("f")) == {
        "bool": {"minimum_should_match": 1, "should": [{"exists": {"field": "f"}}]}
    }
    assert entry_clause(wildcard("f", "a*")) == {"bool": {"filter": {"wildcard": {"f": "a*"}}}}


def test_nested_prefixes_inner_fields_and_ands_them_buildNestedClause() -> None:
    clause = entry_clause(nested("rules", match("verb", "create"), exists("group")))
    assert clause == {
        "nested": {
            "path": "rules",
            "score_mode": "none",
            "query": {
                "bool": {
                    "filter": [
                        entry_clause(match("rules.verb", "create")),
                        entry_clause(exists("rules.group")),
                    ]
                }
            },
        }
    }


def test_an_item_ands_its_entries_and_os_types_or_two_os_fields_transformOsType() -> None:
    two = item("i", match("a", "1"), match("b", "2"))
    assert item_clauses(two) == [
        {"bool": {"filter": [entry_clause(match("a", "1")), entry_clause(match("b", "2"))]}}
    ]
    with_os = item_clauses(item("i", match("a", "1"), os_types=["linux", "windows"]))
    assert [c["bool"]["filter"][0] for c in with_os] == [
        entry_clause(match(f, os))
        for f in ("host.os.type", "host.os.name.caseless")
        for os in ("linux", "windows")
    ]


def test_the_rule_filter_is_one_should_over_all_items_in_must_not() -> None:
    items = [item("a", match("user.name", "alice")), item("b", wildcard("user.name", "?ob"))]
    combined = exceptions_filter(items)
    assert combined == {"bool": {"should": [*item_clauses(items[0]), *item_clauses(items[1])]}}
    query = with_exceptions(
        {"bool": {"must": [], "filter": [{"match_all": {}}], "should": [], "must_not": []}}, items
    )
    assert query["bool"]["must_not"] == [combined]
    assert matching(query) == set(DOCUMENTS) - {"alice", "two-names", "windows-alice", "bob", "dotted"}
    assert exceptions_filter([]) is None


def test_expired_items_are_left_out_removeExpiredExceptions() -> None:
    start = datetime(2027, 1, 1, tzinfo=UTC)
    kept = item("kept", match("f", "x")) | {"expire_time": "2027-01-01T00:00:00.000Z"}  # not before the start
    gone = item("gone", match("f", "x")) | {"expire_time": "2026-12-31T23:59:59.999Z"}
    assert [i["item_id"] for i in active_items([kept, gone, item("forever", match("f", "x"))], start)] == [
        "kept",
        "forever",
    ]


def test_rule_items_come_from_the_lists_the_rule_names() -> None:
    rule = {
        "rule_id": "r",
        "exceptions_list": [{"id": "l", "list_id": "l", "type": "detection", "namespace_type": "single"}],
    }
    assert rule_items(rule, {"l": [item("a", match("f", "x"))]})[0]["item_id"] == "a"
    assert rule_items(rule, None) == []
    with pytest.raises(Exception, match="exception list 'l' was not provided"):
        rule_items(rule, {})


def test_local_engine_suppresses_and_says_which_item() -> None:
    from tests.repository import compile_repository_rules

    rule = next(c for c in compile_repository_rules() if c.exception_lists)
    lists = rule.exception_items()
    ((list_id, items),) = lists.items()
    username = items[0]["entries"][0]["value"]
    stamp = "2026-03-01T12:00:00.000Z"

    def doc(n: int, user: str) -> SourceDocument:
        source = {
            "@timestamp": stamp,
            "kubernetes": {
                "audit": {
                    "objectRef": {"resource": "certificatesigningrequests"},
                    "verb": "create",
                    "annotations": {"authorization_k8s_io/decision": "allow"},
                    "responseStatus": {"code": 201},
                    "user": {"username": user},
                }
            },
        }
        return SourceDocument("logs-kubernetes.audit_logs-default", str(n), source)

    docs = [doc(1, username), doc(2, "alice"), doc(3, username.upper())]
    outcome = LocalEngine().run([rule.with_version(1)], docs, exceptions=lists)[0]
    alerted = sorted(a["kibana.alert.ancestors"][0]["id"] for a in outcome.alerts)
    assert alerted == ["2", "3"]  # match is case-sensitive: the upper-case name still alerts
    assert [(s.document_id, s.item_id, s.list_id) for s in outcome.suppressed] == [
        ("1", items[0]["item_id"], list_id)
    ]
    assert LocalEngine().run([rule.with_version(1)], docs)[0].suppressed == []  # no lists given: none applied
