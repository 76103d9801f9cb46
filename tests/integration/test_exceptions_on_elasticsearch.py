"""Exception items on a real Elasticsearch: the node returns, for every item of every entry type
(match, match_any, exists, wildcard, nested; included and excluded), exactly the documents the
local evaluator matches, alone and combined into the rule's must_not filter.

The audit mapping has no nested field with mapped children, so the cases use their own small
mapping (tests/fixtures/exception_cases.py), indexed here into a throwaway index.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from tests.fixtures.exception_cases import CASES, DOCUMENTS, MAPPING, MAPPING_BODY

from dac.engine.es_connection import Connection
from dac.query.dsl import compile_query
from dac.query.exception_filter import exceptions_filter, item_filter


@pytest.fixture(scope="module")
def cases_index(es: Connection) -> Iterator[str]:
    name = f"dac-exceptions-{secrets.token_hex(4)}"
    es.client.indices.create(
        index=name, mappings=MAPPING_BODY, settings={"number_of_shards": 1, "number_of_replicas": 0}
    )
    try:
        for doc_id, source in DOCUMENTS.items():
            es.client.index(index=name, id=doc_id, document=source)
        es.client.indices.refresh(index=name)
        yield name
    finally:
        es.client.options(ignore_status=404).indices.delete(index=name)


def on_node(es: Connection, index: str, query: dict[str, Any]) -> set[str]:
    response = es.client.search(index=index, query=query, size=len(DOCUMENTS) + 1)
    return {hit["_id"] for hit in response["hits"]["hits"]}


def locally(query: dict[str, Any]) -> set[str]:
    matches = compile_query(query, MAPPING)
    return {doc_id for doc_id, source in DOCUMENTS.items() if matches(source)}


@pytest.mark.parametrize(("exception", "expected"), CASES, ids=[c[0]["item_id"] for c in CASES])
def test_node_and_local_engine_agree_on_each_item(
    es: Connection, cases_index: str, exception: dict[str, Any], expected: set[str]
) -> None:
    query = item_filter(exception)
    assert on_node(es, cases_index, query) == locally(query) == expected


def test_node_and_local_engine_agree_on_the_rules_must_not_filter(es: Connection, cases_index: str) -> None:
    items = [
        case[0]
        for case in CASES
        if case[0]["item_id"] in ("match", "wildcard-single", "nested", "exists-excluded", "match-text")
    ]
    query = {"bool": {"must_not": [exceptions_filter(items)]}}
    kept = on_node(es, cases_index, query)
    assert kept == locally(query)
    assert kept == set(DOCUMENTS) - {
        "alice",
        "two-names",
        "windows-alice",
        "bob",
        "dotted",
        "nameless",
        "too-long",
        "message",
    }
