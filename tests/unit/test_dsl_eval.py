"""The DSL evaluator against Elasticsearch's documented and implemented behaviour.

References (elastic/elasticsearch unless noted):
docs reference/mapping/params/ignore-above, reference/query-dsl/{exists,term,match,
match-phrase,wildcard,range,nested,bool}-query, reference/mapping/types/{keyword,ip,boolean,
flattened,constant-keyword}; server/.../index/query/BoolQueryBuilder.java and
common/lucene/search/Queries.java (minimum_should_match); server/.../index/mapper/
DateFieldMapper.java + common/time/JavaDateMathParser.java (range rounding, missing date
fields); IpFieldMapper.termQuery (CIDR); NumberFieldMapper (coercion, decimals on longs).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from dac.documents import values_at
from dac.errors import QueryError, UnsupportedQueryError
from dac.mapping import IndexMapping, load_mapping
from dac.query.dsl import analyze, compile_query, getter
from dac.query.kql import to_dsl

MAPPING = IndexMapping("t", {
    "dynamic": False,
    "properties": {
        "user": {"properties": {
            "name": {"type": "keyword", "ignore_above": 8, "fields": {"text": {"type": "match_only_text"}}},
            "extra": {"type": "object", "dynamic": True},
        }},
        "message": {"type": "text"},
        "code": {"type": "long"},
        "ratio": {"type": "double"},
        "@timestamp": {"type": "date"},
        "client": {"properties": {"ip": {"type": "ip"}}},
        "flag": {"type": "boolean"},
        "labels": {"type": "flattened", "ignore_above": 5},
        "rules": {"type": "nested",
                  "properties": {"verb": {"type": "keyword"}, "group": {"type": "keyword"}}},
        "data_stream": {"properties": {"dataset": {"type": "constant_keyword", "value": "k8s.audit"}}},
        "open": {"type": "object", "dynamic": True},
    },
    "dynamic_templates": [
        {"extra": {"path_match": "user.extra.*", "match_mapping_type": "string",
                   "mapping": {"type": "keyword"}}},
    ],
})
NOW = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)


def matches(query: dict[str, Any], doc: dict[str, Any], mapping: IndexMapping = MAPPING) -> bool:
    return compile_query(query, mapping, now=NOW)(doc)


def term(field: str, value: Any, **options: Any) -> dict[str, Any]:
    return {"term": {field: {"value": value, **options}}}


# ---------------------------------------------------------------- field access


DOCS = [
    {"a": {"b": {"c": 1}}},
    {"a.b": {"c": 2}, "a": {"b.c": 3, "b": [{"c": [4, None, [5]]}, {"x": 1}]}},
    {"a": [{"b": {"c": "x"}}, {"b": None}, {"b.c": {"d": 1}}], "a.b.c": [None, 6]},
    {"a": "scalar", "a.b": [], "x": {"a": {"b": {"c": 7}}}},
]


@pytest.mark.parametrize("doc", DOCS)
@pytest.mark.parametrize("path", ["a.b.c", "a.b", "a", "x.a.b.c", "missing"])
def test_getter_agrees_with_values_at(doc: dict[str, Any], path: str) -> None:
    assert getter(path)(doc) == values_at(doc, path)


def test_dotted_and_nested_spellings_are_the_same_field() -> None:
    query = term("user.name", "bob")
    assert matches(query, {"user": {"name": "bob"}})
    assert matches(query, {"user.name": "bob"})
    assert matches(query, {"user": [{"name": "x"}, {"name": ["y", "bob"]}]})


# ---------------------------------------------------------------- keyword semantics


def test_unmapped_fields_match_nothing_and_do_not_exist() -> None:
    doc = {"unmapped": "x", "user": {"name": "bob"}}
    assert not matches(term("unmapped", "x"), doc)
    assert not matches({"match": {"unmapped": "x"}}, doc)
    assert not matches({"exists": {"field": "unmapped"}}, doc)
    assert not matches({"wildcard": {"unmapped": {"value": "*"}}}, doc)
    assert matches({"bool": {"must_not": term("unmapped", "x")}}, doc)


def test_keyword_is_exact_and_case_sensitive() -> None:
    doc = {"user": {"name": "Bob"}}
    assert matches(term("user.name", "Bob"), doc)
    assert not matches(term("user.name", "bob"), doc)
    assert not matches(term("user.name", "Bo"), doc)
    assert matches(term("user.name", "bob", case_insensitive=True), doc)
    assert matches({"match": {"user.name": "Bob"}}, doc)  # keyword analyzer: the whole value
    assert not matches({"match": {"user.name": "bob"}}, doc)


def test_ignore_above_counts_utf16_units_and_drops_the_value() -> None:
    long_doc = {"user": {"name": "abcdefghi"}}  # 9 > 8
    assert not matches(term("user.name", "abcdefghi"), long_doc)
    assert not matches({"exists": {"field": "user.name"}}, long_doc)
    assert not matches({"wildcard": {"user.name": "*"}}, long_doc)
    assert matches({"exists": {"field": "user.name.text"}}, long_doc)  # the text sub-field still has it
    assert matches(term("user.name", "abcdefgh"), {"user": {"name": "abcdefgh"}})  # 8 is kept
    emoji = "abcdef\U0001f600"  # 7 code points, 8 UTF-16 units
    assert matches(term("user.name", emoji), {"user": {"name": emoji}})
    assert not matches(term("user.name", emoji + "x"), {"user": {"name": emoji + "x"}})


def test_numbers_and_booleans_are_indexed_as_text_on_keyword() -> None:
    assert matches(term("user.name", "200"), {"user": {"name": 200}})
    assert matches(term("user.name", 200), {"user": {"name": "200"}})
    assert matches(term("user.name", "true"), {"user": {"name": True}})
    assert matches({"terms": {"user.name": ["x", "false"]}}, {"user": {"name": [False]}})


def test_arrays_nulls_and_empty_values() -> None:
    exists = {"exists": {"field": "user.name"}}
    assert matches(term("user.name", "b"), {"user": {"name": ["a", "b"]}})
    assert not matches(exists, {"user": {"name": None}})
    assert not matches(exists, {"user": {"name": []}})
    assert not matches(exists, {"user": {"name": [None, None]}})
    assert matches(exists, {"user": {"name": [None, "x"]}})
    assert matches(exists, {"user": {"name": ""}})  # an empty string exists
    assert matches(term("user.name", ""), {"user": {"name": ""}})


def test_wildcard_patterns_and_escapes() -> None:
    doc = {"user": {"name": "a*b?c"}}
    assert matches({"wildcard": {"user.name": {"value": "a\\*b\\?c"}}}, doc)
    assert matches({"wildcard": {"user.name": {"value": "a?b*"}}}, doc)
    assert not matches({"wildcard": {"user.name": {"value": "a\\*x*"}}}, doc)
    assert matches({"wildcard": {"user.name": {"value": "*C", "case_insensitive": True}}}, doc)
    assert not matches({"wildcard": {"user.name": {"value": "*C"}}}, doc)
    assert matches({"wildcard": {"user.name": "*"}}, {"user": {"name": ""}})


# ---------------------------------------------------------------- text


def test_standard_analyzer() -> None:
    assert analyze("Hello, World! foo-bar foo_bar 1.5 a.1 don't user:bob U.S.A. ÉCOLE") == [
        "hello", "world", "foo", "bar", "foo_bar", "1.5", "a", "1", "don't", "user:bob", "u.s.a", "école"]
    assert analyze("x" * 300) == ["x" * 255, "x" * 45]


def test_match_and_match_phrase_on_text() -> None:
    doc = {"message": ["The quick brown fox", "lazy dog"]}
    assert matches({"match": {"message": "QUICK cat"}}, doc)
    assert not matches({"match": {"message": {"query": "quick cat", "operator": "and"}}}, doc)
    assert matches({"match": {"message": {"query": "quick dog", "operator": "and"}}}, doc)
    assert matches({"match_phrase": {"message": "quick brown"}}, doc)
    assert not matches({"match_phrase": {"message": "brown quick"}}, doc)
    assert not matches({"match_phrase": {"message": "fox lazy"}}, doc)  # values do not join
    assert not matches({"match": {"message": "!!"}}, doc)  # no tokens: matches nothing
    assert matches(term("message", "quick"), doc)  # term is not analysed: one lowercase token
    assert not matches(term("message", "Quick"), doc)


def test_match_only_text_sub_field() -> None:
    doc = {"user": {"name": "Jane Doe"}}
    assert matches({"match_phrase": {"user.name.text": "jane doe"}}, doc)
    assert not matches(term("user.name", "jane doe"), doc)


# ---------------------------------------------------------------- numbers, dates, ips, booleans


def test_long_fields() -> None:
    assert matches(term("code", "403"), {"code": 403})
    assert matches({"match": {"code": 403}}, {"code": "403"})
    assert matches(term("code", 5), {"code": 5.7})  # coerced to 5 at index time
    assert not matches(term("code", 5.5), {"code": 5})  # a decimal never equals a long
    assert matches({"range": {"code": {"lt": 400}}}, {"code": [500, 201]})
    assert not matches({"range": {"code": {"gte": "400"}}}, {"code": 399})
    assert not matches({"range": {"code": {"gt": 1}}}, {"code": "many"})  # malformed: absent
    with pytest.raises(QueryError, match="not a number"):
        compile_query(term("code", "abc"), MAPPING)
    assert not matches({"match": {"code": {"query": "abc", "lenient": True}}}, {"code": 1})


def test_date_ranges_round_like_elasticsearch() -> None:
    doc = {"@timestamp": "2024-01-01T18:30:00.000Z"}
    assert matches({"range": {"@timestamp": {"lte": "2024-01-01"}}}, doc)  # lte rounds up to 23:59:59.999
    assert not matches({"range": {"@timestamp": {"gt": "2024-01-01"}}}, doc)  # gt rounds up too
    assert matches({"range": {"@timestamp": {"gte": "2024-01-01", "lt": "2024-01-02"}}}, doc)
    assert not matches({"range": {"@timestamp": {"lt": "2024-01-01T18:30:00Z"}}}, doc)
    assert matches({"range": {"@timestamp": {"gte": "2024-01-01T20:00:00", "time_zone": "+02:00"}}}, doc)
    assert matches({"range": {"@timestamp": {"gte": "2024-01-01T18:30:00", "time_zone": "Zulu"}}}, doc)
    assert matches({"range": {"@timestamp": {"gte": 1704133800000}}}, doc)
    with_format = {"gte": "2024-01-01T18:30:00", "format": "strict_date_optional_time"}
    assert matches({"range": {"@timestamp": with_format}}, doc)
    recent = {"@timestamp": "2024-06-01T11:57:00Z"}
    assert matches({"range": {"@timestamp": {"gte": "now-5m"}}}, recent)
    assert not matches({"range": {"@timestamp": {"gte": "now-1m"}}}, recent)
    assert matches({"range": {"@timestamp": {"gte": "now/d", "lte": "now/d"}}}, recent)
    assert matches({"range": {"@timestamp": {"gte": 1704133800000, "lte": 1704133800000}}},
                   {"@timestamp": 1704133800000})  # epoch_millis in _source


def test_date_term_covers_the_rounded_range() -> None:
    assert matches(term("@timestamp", "2024-01-01"), {"@timestamp": "2024-01-01T23:00:00Z"})
    assert not matches(term("@timestamp", "2024-01-01"), {"@timestamp": "2024-01-02T00:00:00Z"})


def test_ip_fields() -> None:
    doc = {"client": {"ip": ["10.1.2.3", "2001:db8::1"]}}
    assert matches(term("client.ip", "10.0.0.0/8"), doc)
    assert matches(term("client.ip", "::ffff:10.1.2.3"), doc)
    assert matches({"match": {"client.ip": "2001:db8::/32"}}, doc)
    assert not matches(term("client.ip", "192.168.0.0/16"), doc)
    assert matches({"range": {"client.ip": {"gte": "10.1.0.0", "lt": "10.2.0.0"}}}, doc)
    assert not matches({"exists": {"field": "client.ip"}}, {"client": {"ip": "not-an-ip"}})


def test_boolean_fields() -> None:
    assert matches(term("flag", True), {"flag": "true"})
    assert matches(term("flag", "false"), {"flag": ""})  # an empty string indexes as false
    assert not matches(term("flag", True), {"flag": "yes"})
    with pytest.raises(QueryError, match="not a boolean"):
        compile_query(term("flag", "yes"), MAPPING)


# ---------------------------------------------------------------- flattened, constant_keyword, dynamic


def test_flattened_root_and_keys() -> None:
    doc = {"labels": {"app": "web", "tier": {"name": "front"}, "n": 1, "long": "toolongvalue"}}
    assert matches(term("labels", "front"), doc)
    assert matches(term("labels", "1"), doc)
    assert matches(term("labels.tier.name", "front"), doc)
    assert not matches(term("labels.app", "front"), doc)
    assert not matches(term("labels", "toolongvalue"), doc)  # ignore_above applies per leaf
    assert matches(term("labels.app", "web"), {"labels": {"app": "web"}})
    assert matches({"wildcard": {"labels.tier.name": "fr*"}}, doc)


def test_constant_keyword_uses_the_mapped_value() -> None:
    assert matches(term("data_stream.dataset", "k8s.audit"), {})
    assert not matches(term("data_stream.dataset", "other"), {"data_stream": {"dataset": "other"}})
    assert matches({"exists": {"field": "data_stream.dataset"}}, {})


def test_dynamic_templates_and_dynamic_objects() -> None:
    assert matches(term("user.extra.team", "blue"), {"user": {"extra": {"team": "blue"}}})
    with pytest.raises(UnsupportedQueryError, match="dynamic"):
        compile_query(term("open.thing", "x"), MAPPING)


# ---------------------------------------------------------------- nested


def test_nested_objects_are_matched_one_at_a_time() -> None:
    doc = {"rules": [{"verb": "get", "group": "a"}, {"verb": "create", "group": "b"}]}
    both = {"bool": {"filter": [term("rules.verb", "create"), term("rules.group", "b")]}}
    crossed = {"bool": {"filter": [term("rules.verb", "create"), term("rules.group", "a")]}}
    assert matches({"nested": {"path": "rules", "query": both, "score_mode": "none"}}, doc)
    assert not matches({"nested": {"path": "rules", "query": crossed, "score_mode": "none"}}, doc)
    assert not matches(term("rules.verb", "create"), doc)  # nested fields are invisible outside
    with pytest.raises(QueryError, match="nested object"):
        compile_query({"nested": {"path": "user", "query": {"match_all": {}}}}, MAPPING)


# ---------------------------------------------------------------- bool


def test_bool_clause_semantics() -> None:
    doc = {"code": 1}
    yes, no = term("code", 1), term("code", 2)
    assert matches({"bool": {}}, doc)
    assert matches({"bool": {"should": [no, yes]}}, doc)
    assert not matches({"bool": {"should": [no]}}, doc)
    assert matches({"bool": {"filter": [yes], "should": [no]}}, doc)  # should optional beside filter
    assert not matches({"bool": {"filter": [yes], "should": [no], "minimum_should_match": 1}}, doc)
    assert not matches({"bool": {"should": [yes, no], "minimum_should_match": 2}}, doc)
    assert matches({"bool": {"should": [yes, no], "minimum_should_match": "50%"}}, doc)
    assert matches({"bool": {"should": [yes, no], "minimum_should_match": -1}}, doc)
    assert not matches({"bool": {"should": [yes], "minimum_should_match": 2}}, doc)
    assert matches({"bool": {"must_not": no}}, doc)  # Kibana sends must_not as an object
    assert not matches({"bool": {"must": [yes], "must_not": [yes]}}, doc)
    assert matches({"constant_score": {"filter": yes}}, doc)
    assert not matches({"match_none": {}}, doc)


def test_one_field_disjunction_agrees_with_plain_or() -> None:
    values = {"bool": {"should": [
        {"bool": {"should": [term("user.name", "alice")], "minimum_should_match": 1}},
        {"bool": {"should": [{"wildcard": {"user.name": {"value": "sys*"}}}], "minimum_should_match": 1}},
        {"bool": {"should": [{"wildcard": {"user.name": {"value": "*\\:x"}}}], "minimum_should_match": 1}},
    ], "minimum_should_match": 1}}
    for name, expected in [("alice", True), ("system", True), ("a:x", True), ("Alice", False),
                           ("sysverylong", False), (7, False)]:
        assert matches(values, {"user": {"name": name}}) is expected, name


# ---------------------------------------------------------------- refusals


@pytest.mark.parametrize(("query", "named"), [
    ({"fuzzy": {"user.name": "bob"}}, "'fuzzy'"),
    ({"multi_match": {"query": "x", "type": "best_fields", "lenient": True}}, "multi_match"),
    ({"query_string": {"query": "x*"}}, "query_string"),
    ({"match_phrase": {"message": {"query": "a b", "slop": 1}}}, "slop"),
    ({"term": {"user.name": {"value": "x", "boost": 2, "_name": "n", "foo": 1}}}, "foo"),
])
def test_unsupported_constructs_are_named(query: dict[str, Any], named: str) -> None:
    with pytest.raises(UnsupportedQueryError, match=named):
        compile_query(query, MAPPING)


# ---------------------------------------------------------------- KQL end to end


def test_query_string_as_kibana_sends_it() -> None:
    on_keyword = {"query_string": {"fields": ["user.name"], "query": "a\\-b*"}}
    assert matches(on_keyword, {"user": {"name": "a-bc"}})
    assert not matches(on_keyword, {"user": {"name": "A-bc"}})
    # On text, the pattern meets single lowercase tokens: "foo-bar*" can never match.
    text = {"message": "Foo-Bar baz"}
    assert matches({"query_string": {"fields": ["message"], "query": "FOO*"}}, text)
    assert not matches({"query_string": {"fields": ["message"], "query": "foo\\-bar*"}}, text)
    assert matches({"query_string": {"fields": ["message"], "query": "zzz ba*"}}, text)  # terms are OR-ed


def test_kql_rule_over_the_kubernetes_mapping() -> None:
    mapping = load_mapping("kubernetes.audit_logs")
    query = ('kubernetes.audit.objectRef.resource:"certificatesigningrequests" '
             'and kubernetes.audit.verb:("create" or "update") '
             "and (not kubernetes.audit.objectRef.subresource:* "
             "or kubernetes.audit.objectRef.subresource:approval) "
             "and kubernetes.audit.responseStatus.code < 400 "
             "and not kubernetes.audit.user.username:(system\\:node\\:* or \"system:admin\")")
    match = compile_query(to_dsl(query, mapping), mapping)

    def doc(**audit: Any) -> dict[str, Any]:
        base = {"objectRef": {"resource": "certificatesigningrequests"}, "verb": "create",
                "responseStatus": {"code": 201}, "user": {"username": "alice"}}
        return {"kubernetes": {"audit": {**base, **audit}}}

    assert match(doc())
    assert match(doc(objectRef={"resource": "certificatesigningrequests", "subresource": "approval"}))
    assert not match(doc(objectRef={"resource": "certificatesigningrequests", "subresource": "status"}))
    assert not match(doc(verb="get"))
    assert not match(doc(responseStatus={"code": 403}))
    assert not match(doc(user={"username": "system:node:worker-1"}))
    assert not match(doc(user={"username": "system:admin"}))
    assert match(doc(user={"username": "System:admin"}))
    assert not match(doc(objectRef={"resource": "pods"}))
