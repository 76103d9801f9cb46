"""KQL -> Elasticsearch DSL, pinned to the shapes Kibana's own tests assert.

Sources (elastic/kibana, src/platform/packages/shared/kbn-es-query/src/):
kuery/functions/{is,range,and,or,not,nested}.test.ts for each function's output,
es_query/build_es_query.ts + from_kuery.ts for the outer bool, and the security solution's
rule_types/utils/get_query_filter_load_fields.ts for the options a query rule uses
(dateFormatTZ 'Zulu', a data view of the fields the query names).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from dac.errors import QueryError
from dac.mapping import IndexMapping, load_mapping
from dac.query.kql import to_dsl

# Mirrors the Kibana test stub fields the expectations below rely on.
STUB = IndexMapping("stub", {
    "dynamic": False,
    "properties": {
        "extension": {"type": "text"},
        "machine": {"properties": {"os": {"type": "text", "fields": {"keyword": {"type": "keyword"}}}}},
        "@timestamp": {"type": "date"},
        "bytes": {"type": "long"},
        "nestedField": {"type": "nested", "properties": {
            "child": {"type": "keyword"},
            "nestedChild": {"type": "nested", "properties": {"doublyNestedChild": {"type": "text"}}},
        }},
    },
})


def inner(query: str, mapping: IndexMapping | None = STUB) -> dict[str, Any]:
    """The KQL part of buildEsQuery's output (the single bool.filter entry)."""
    dsl = to_dsl(query, mapping)
    assert dsl["bool"]["must"] == dsl["bool"]["should"] == dsl["bool"]["must_not"] == []
    (only,) = dsl["bool"]["filter"]
    return only


def should(*queries: dict[str, Any]) -> dict[str, Any]:
    return {"bool": {"should": list(queries), "minimum_should_match": 1}}


def test_build_es_query_wraps_the_kql_in_filter() -> None:
    assert to_dsl("extension:jpg", STUB) == {
        "bool": {"must": [], "filter": [should({"match": {"extension": "jpg"}})], "should": [],
                 "must_not": []}
    }


@pytest.mark.parametrize("query", ["", "   ", "*:*"])
def test_match_all_is_dropped(query: str) -> None:
    assert to_dsl(query, STUB) == {"bool": {"must": [], "filter": [], "should": [], "must_not": []}}


# ---------------------------------------------------------------- is.test.ts

IS_CASES = [
    ("extension:*", should({"exists": {"field": "extension"}})),
    ("extension:jpg", should({"match": {"extension": "jpg"}})),
    ('extension:"jpg"', should({"match_phrase": {"extension": "jpg"}})),
    ("extension:jpg*", should({"query_string": {"fields": ["extension"], "query": "jpg*"}})),
    ("machine.os.keyword:win*", should({"wildcard": {"machine.os.keyword": {"value": "win*"}}})),
    ("machine.os.keyword:*\\\\*", should({"wildcard": {"machine.os.keyword": {"value": "*\\\\*"}}})),
    ('machine.os.keyword:"Win 7"', should({"term": {"machine.os.keyword": {"value": "Win 7"}}})),
    ("machine.os.keyword:Win 7", should({"term": {"machine.os.keyword": {"value": "Win 7"}}})),
    ("ext*:jpg", should({"match": {"extension": "jpg"}})),
    # A date: an exact range, with the detection engine's dateFormatTZ.
    ('@timestamp:"2018-04-03T19:04:17"',
     should({"range": {"@timestamp": {"gte": "2018-04-03T19:04:17", "lte": "2018-04-03T19:04:17",
                                      "time_zone": "Zulu"}}})),
    # Epoch values carry no time zone.
    ("@timestamp:1522782257000",
     should({"range": {"@timestamp": {"gte": "1522782257000", "lte": "1522782257000"}}})),
    # A wildcard field that reaches into nested objects gets a nested query added.
    ("*doublyNested*:foo",
     should({"nested": {"path": "nestedField.nestedChild", "score_mode": "none",
                        "query": {"match": {"nestedField.nestedChild.doublyNestedChild": "foo"}}}})),
    # Free text: no field.
    ("200", {"multi_match": {"type": "best_fields", "query": "200", "lenient": True}}),
    ('"jpg"', {"multi_match": {"type": "phrase", "query": "jpg", "lenient": True}}),
    ("jpg*", {"query_string": {"query": "jpg*"}}),
    # Unquoted true/false/null stay non-strings, as JSON.
    ("machine.os.keyword:true", should({"term": {"machine.os.keyword": {"value": True}}})),
]


@pytest.mark.parametrize(("query", "expected"), IS_CASES)
def test_is(query: str, expected: dict[str, Any]) -> None:
    assert inner(query) == expected


def test_wildcard_values_are_escaped_for_query_string() -> None:
    # wildcard.ts toQueryStringQuery: reserved characters get a backslash, "*" stays.
    assert inner("machine.os.keyword:a-b/c\\:d?*") == should(
        {"wildcard": {"machine.os.keyword": {"value": "a\\-b\\/c\\:d\\?*"}}})


# ---------------------------------------------------------------- range.test.ts

RANGE_CASES = [
    ("bytes > 1000", should({"range": {"bytes": {"gt": "1000"}}})),
    ("bytes <= 8000", should({"range": {"bytes": {"lte": "8000"}}})),
    ('@timestamp < "2018-01-03T19:04:17"',
     should({"range": {"@timestamp": {"lt": "2018-01-03T19:04:17", "time_zone": "Zulu"}}})),
    ("@timestamp >= 1514998457000", should({"range": {"@timestamp": {"gte": "1514998457000"}}})),
    ("byt* >= 1000", should({"range": {"bytes": {"gte": "1000"}}})),
]


@pytest.mark.parametrize(("query", "expected"), RANGE_CASES)
def test_range(query: str, expected: dict[str, Any]) -> None:
    assert inner(query) == expected


# ---------------------------------------------------------------- and/or/not/nested.test.ts


def test_and_or_not_shapes() -> None:
    jpg, png = should({"match": {"extension": "jpg"}}), should({"match": {"extension": "png"}})
    assert inner("extension:jpg and extension:png") == {"bool": {"filter": [jpg, png]}}
    assert inner("extension:jpg or extension:png") == should(jpg, png)
    assert inner("not extension:jpg") == {"bool": {"must_not": jpg}}
    assert inner("extension:(jpg or not png)") == {
        "bool": {"should": [jpg, {"bool": {"must_not": png}}], "minimum_should_match": 1}}


def test_nested_group() -> None:
    assert inner("nestedField:{ child:foo }") == {
        "nested": {"path": "nestedField", "score_mode": "none",
                   "query": should({"match": {"nestedField.child": "foo"}})}}
    assert inner("nestedField:{ nestedChild:{ doublyNestedChild:foo } }") == {
        "nested": {"path": "nestedField", "score_mode": "none", "query": {
            "nested": {"path": "nestedField.nestedChild", "score_mode": "none",
                       "query": should({"match": {"nestedField.nestedChild.doublyNestedChild": "foo"}})}}}}


def test_nested_field_outside_its_group_fails_like_kibana() -> None:
    with pytest.raises(QueryError) as caught:
        to_dsl("x:1 and nestedField.child:foo", STUB)
    assert caught.value.message == (
        "KQL: nestedField.child is a nested field, but is not in a nested group in the KQL expression.")
    assert (caught.value.query_line, caught.value.query_column) == (1, 9)


def test_fields_inside_a_nested_group_are_not_typed() -> None:
    # getKqlFieldNames names only the nested path, so the rule's data view lacks the inner
    # field unless the query also names it outside the group: match, not term.
    assert inner("nestedField:{ child:\"x\" }")["nested"]["query"] == should(
        {"match_phrase": {"nestedField.child": "x"}})


# ---------------------------------------------------------------- the data view decides the query


def test_unknown_fields_fall_back_to_match_on_the_name() -> None:
    assert inner("no.such.field:x") == should({"match": {"no.such.field": "x"}})
    assert inner("no.such.field:x*") == should({"query_string": {"fields": ["no.such.field"], "query": "x*"}})
    assert inner("no.*:x") == should({"match": {"no.*": "x"}})


def test_without_a_mapping_every_field_is_untyped() -> None:
    assert inner("machine.os.keyword:x", None) == should({"match": {"machine.os.keyword": "x"}})
    assert inner("@timestamp:x", None) == should({"match": {"@timestamp": "x"}})


def test_csr_rule_on_the_kubernetes_mapping() -> None:
    mapping = load_mapping("kubernetes.audit_logs")
    query = ('kubernetes.audit.objectRef.resource:"certificatesigningrequests" '
             "and not kubernetes.audit.objectRef.subresource:* "
             "and kubernetes.audit.responseStatus.code < 400 "
             "and not kubernetes.audit.user.username:(system\\:node\\:* or \"system:admin\") "
             "and message:denied")
    assert inner(query, mapping) == {"bool": {"filter": [
        should({"term": {"kubernetes.audit.objectRef.resource": {"value": "certificatesigningrequests"}}}),
        {"bool": {"must_not": should({"exists": {"field": "kubernetes.audit.objectRef.subresource"}})}},
        should({"range": {"kubernetes.audit.responseStatus.code": {"lt": "400"}}}),
        {"bool": {"must_not": {"bool": {"should": [
            should({"wildcard": {"kubernetes.audit.user.username": {"value": "system\\:node\\:*"}}}),
            should({"term": {"kubernetes.audit.user.username": {"value": "system:admin"}}}),
        ], "minimum_should_match": 1}}}},
        should({"match": {"message": "denied"}}),
    ]}}


def test_a_wildcard_field_expands_over_the_mapping_in_name_order() -> None:
    assert inner("*:x") == should(
        {"range": {"@timestamp": {"gte": "x", "lte": "x", "time_zone": "Zulu"}}},
        {"match": {"bytes": "x"}},
        {"match": {"extension": "x"}},
        {"match": {"machine.os": "x"}},
        {"term": {"machine.os.keyword": {"value": "x"}}},
        {"nested": {"path": "nestedField", "query": {"term": {"nestedField.child": {"value": "x"}}},
                    "score_mode": "none"}},
        {"nested": {"path": "nestedField.nestedChild", "score_mode": "none",
                    "query": {"match": {"nestedField.nestedChild.doublyNestedChild": "x"}}}},
    )
    text = json.dumps(to_dsl("*:x and extension:(a or b*)", STUB))
    assert text == json.dumps(to_dsl("*:x and extension:(a or b*)", STUB))
