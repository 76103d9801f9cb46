"""What the KQL differential fuzzer (tests/integration/test_kql_differential.py) found the DSL
evaluator doing differently from Elasticsearch 9.5, each pinned with the behaviour ES showed.

Sources (elastic/elasticsearch): BooleanFieldMapper.BooleanFieldType#indexedValueForSearch (only
"true"/"false"); the "Cannot search on field [f] since it is not indexed nor has doc values."
check of every field type (e.g. KeywordFieldTypeTests#testTermQuery); KeyedFlattenedFieldType
(#wildcardQuery throws, #prefixQuery works; query_string's other wildcards run on the root
field's key\\0value terms, measured); Lucene's StandardTokenizer <EMOJI> tokens (ES's _analyze
API returns them); BoolQueryBuilder#doRewrite and the term-level builders' rewrite of
unmapped fields to match_none.
"""

from __future__ import annotations

from typing import Any

import pytest

from dac.errors import QueryError
from dac.mapping import IndexMapping
from dac.query.dsl import analyze, compile_query
from dac.query.kql import to_dsl

MAPPING = IndexMapping("t", {
    "dynamic": False,
    "properties": {
        "flag": {"type": "boolean"},
        "original": {"type": "keyword", "index": False, "doc_values": False},
        "slow": {"type": "keyword", "index": False},  # doc values: searchable, slowly
        "agent": {"type": "text"},
        "paths": {"type": "flattened"},
        "verb": {"type": "keyword"},
    },
})


def hits(kql: str, doc: dict[str, Any]) -> bool:
    return compile_query(to_dsl(kql, MAPPING), MAPPING)(doc)


def test_a_boolean_query_value_is_true_or_false_only() -> None:
    assert hits("flag:true", {"flag": "true"}) and not hits("flag:false", {"flag": True})
    assert hits("flag:false", {"flag": ""})  # in a document "" is indexed as false ...
    with pytest.raises(QueryError, match="is not a boolean"):
        hits('flag:""', {"flag": ""})  # ... but a query for "" fails: was a silent no-match


def test_a_field_neither_indexed_nor_with_doc_values_cannot_be_searched() -> None:
    with pytest.raises(QueryError, match=r"Cannot search on field \[original\]"):
        hits("original:x", {"original": "x"})  # was: matched
    assert not hits("original:*", {"original": "x"})  # exists never matches it, and does not fail
    assert hits("slow:x", {"slow": "x"})


def test_a_wildcard_on_a_flattened_key_reads_every_keys_key_and_value() -> None:
    doc = {"paths": {"path": "/var/run", "type": "Socket"}}
    assert hits("paths.path:/var*", doc) and hits("paths.path:*", doc)  # a prefix is keyed
    # Other patterns test the root field's "key\0value" terms of every key: "*Socket" finds the
    # value of "type" though the query names "path", and "/v*n" matches nothing.
    assert hits("paths.path:*Socket", doc)  # was: no match
    assert not hits("paths.path:/v*n", doc)  # was: matched
    assert hits("paths:*run", doc)  # the root field supports any wildcard


def test_emoji_are_tokens_of_the_standard_analyzer() -> None:
    # What POST _analyze {"analyzer": "standard"} answers on Elasticsearch 9.5.
    assert analyze("a😀😀b 🇫🇷 ❤️ 👍🏽 👨‍👩‍👧 x©y _😀") == [
        "a", "😀", "😀", "b", "🇫🇷", "❤️", "👍🏽", "👨\u200d👩\u200d👧", "x", "©", "y", "😀"]
    assert hits("agent:😀*", {"agent": "😀"})  # was: no token, no match


def test_a_term_level_query_on_an_unmapped_field_makes_its_bool_match_none_before_a_failing_sibling() -> None:
    # ES rewrites exists/term/range/wildcard on an unmapped field to match_none, and a bool with
    # a match_none filter to match_none, before it builds the failing flag:"" clause.
    assert not hits('nope:* and flag:""', {"flag": ""})  # was: QueryError
    assert not hits('nope < 3 and flag:""', {"flag": ""})
    with pytest.raises(QueryError):
        hits('nope:* or flag:""', {"flag": ""})  # a should clause is still built
    with pytest.raises(QueryError):
        hits('not nope:* and flag:""', {"flag": ""})  # so is a filter beside a must_not


def test_date_math_on_an_anchor_date_works_on_millisecond_fields() -> None:
    # The anchor of "date||math" was read as nanoseconds on a millisecond field: 1970 (seed 8).
    dates = IndexMapping("d", {"properties": {"@timestamp": {"type": "date"}}})
    query = to_dsl('@timestamp:"2026-03-01||+1d"', dates)
    assert compile_query(query, dates)({"@timestamp": "2026-03-02T00:00:00Z"})
    before = to_dsl('@timestamp < "2026-03-01||/M"', dates)
    assert compile_query(before, dates)({"@timestamp": "2026-02-28T23:59:59Z"})
    assert not compile_query(before, dates)({"@timestamp": "2026-03-01T00:00:00Z"})


def test_a_cidr_on_an_ipv4_mapped_address_is_refused() -> None:
    # InetAddresses.parseCidr: "CIDR notation is not allowed with IPv6-mapped IPv4 address" (seed 7).
    ips = IndexMapping("i", {"properties": {"ip": {"type": "ip"}}})
    with pytest.raises(QueryError, match="IPv6-mapped IPv4"):
        compile_query(to_dsl('ip:"::ffff:10.0.0.0/104"', ips), ips)
    assert compile_query(to_dsl('ip:"::/0"', ips), ips)({"ip": "10.0.0.1"})
