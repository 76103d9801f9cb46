"""ES|QL evaluator: columns from the mapping, command semantics, and the CSR query end to end."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest

from dac.documents import SourceDocument, values_at
from dac.errors import QueryError
from dac.mapping import IndexMapping
from dac.query.esql import compile_esql, parse_esql
from dac.query.esql.values import path_reader

MAPPING = IndexMapping(
    "t",
    {
        "dynamic": False,
        "properties": {
            "k": {"type": "keyword", "ignore_above": 8},
            "t": {"type": "text", "fields": {"raw": {"type": "keyword"}}},
            "n": {"type": "long"},
            "i": {"type": "integer"},
            "f": {"type": "float"},
            "b": {"type": "boolean"},
            "ts": {"type": "date"},
            "ip": {"type": "ip"},
            "geo": {"type": "geo_point"},
            "obj": {"properties": {"x": {"type": "keyword"}, "y": {"type": "keyword"}}},
        },
    },
)


def docs(*sources: dict[str, Any]) -> list[SourceDocument]:
    return [SourceDocument("idx-1", f"d{n}", src) for n, src in enumerate(sources)]


def run(query: str, *sources: dict[str, Any], mapping: IndexMapping = MAPPING) -> list[dict[str, Any]]:
    return compile_esql(parse_esql(query), mapping).run(docs(*sources))


def column(query: str, name: str, *sources: dict[str, Any]) -> list[Any]:
    return [row[name] for row in run(query, *sources)]


# ---- loading columns (blockloader/KeywordFieldBlockLoaderTests.java, TextFieldBlockLoaderTests.java) ----


def test_keyword_values_are_sorted_deduplicated_and_ignore_above_drops_long_values() -> None:
    source = {"k": ["zed", "alice", "alice", "waytoolongvalue", 5, True]}
    assert column("FROM t | KEEP k", "k", source) == [["5", "alice", "true", "zed"]]


def test_ignore_above_counts_utf16_units() -> None:
    # 4 emoji are 8 UTF-16 units (kept); 5 are 10 (dropped), though only 5 code points.
    assert column("FROM t | KEEP k", "k", {"k": "😀" * 4}, {"k": "😀" * 5}) == ["😀" * 4, None]
    # one value: 8 units kept, 9 dropped, whatever its code points (8, 9, 5, 6)
    values = ["abcdefgh", "abcdefghi", "ab😀😀😀", "abc😀😀😀"]
    assert column("FROM t | KEEP k", "k", *({"k": v} for v in values)) == ["abcdefgh", None, "ab😀😀😀", None]


def test_text_values_keep_source_order_and_duplicates() -> None:
    assert column("FROM t | KEEP t", "t", {"t": ["b", "a", "b"]}) == [["b", "a", "b"]]
    assert column("FROM t | KEEP t.raw", "t.raw", {"t": ["b", "a", "b"]}) == [["a", "b"]]


def test_numbers_booleans_dates_and_ips_come_back_sorted_and_typed() -> None:
    source = {
        "n": ["5", 3.9, 1],
        "i": 7,
        "f": 0.1,
        "b": [True, "false"],
        "ts": [1700000000000, "2024-01-02"],
        "ip": ["10.0.0.2", "::1", "10.0.0.2"],
    }
    row = run("FROM t | KEEP n, i, f, b, ts, ip", source)[0]
    assert row == {
        "n": [1, 3, 5],
        "i": 7,
        "f": 0.10000000149011612,  # float doc values are float32
        "b": [False, True],
        "ts": ["2023-11-14T22:13:20.000Z", "2024-01-02T00:00:00.000Z"],
        "ip": ["::1", "10.0.0.2"],
    }


def test_dotted_keys_nested_objects_and_arrays_of_objects_are_all_read() -> None:
    sources = ({"obj.x": "a"}, {"obj": {"x": "b"}}, {"obj": [{"x": "d"}, {"x": "c"}]}, {"obj": {"x": None}})
    assert column("FROM t | KEEP obj.x", "obj.x", *sources) == ["a", "b", ["c", "d"], None]


@pytest.mark.parametrize(
    "source",
    [
        {"a": {"b": {"c": 1}}},
        {"a.b": {"c": 1}, "a": {"b": {"c": 2}}},
        {"a": [{"b": {"c": 1}}, {"b.c": [2, 3]}]},
        {"a": {"b": [{"c": [4, None, {"d": 1}]}, 5]}},
        {"a": {"b": {"c": {"e": 1}}}},
        {"a": "scalar"},
        {"a.b.c": None},
    ],
)
def test_path_reader_agrees_with_values_at(source: dict[str, Any]) -> None:
    assert path_reader("a.b.c")(source) == values_at(source, "a.b.c")


def test_metadata_columns() -> None:
    row = run("FROM t METADATA _index, _id, _version, _source | KEEP _*", {"k": "v"})[0]
    assert row == {"_index": "idx-1", "_id": "d0", "_version": 1, "_source": {"k": "v"}}


def test_from_lists_all_mapped_fields_sorted_then_metadata() -> None:
    program = compile_esql(parse_esql("FROM t METADATA _id"), MAPPING)
    assert program.columns == [
        "b",
        "f",
        "geo",
        "i",
        "ip",
        "k",
        "n",
        "obj.x",
        "obj.y",
        "t",
        "t.raw",
        "ts",
        "_id",
    ]
    assert program.run(docs({"geo": [1, 2]}))[0]["geo"] is None  # unsupported types read as null


def test_unknown_and_unsupported_columns_are_errors() -> None:
    with pytest.raises(QueryError) as err:
        run("FROM t\n| WHERE nope == 1")
    assert (str(err.value), err.value.query_line, err.value.query_column) == (
        "ES|QL: Unknown column [nope] (query line 2, column 9)",
        2,
        9,
    )
    with pytest.raises(QueryError, match="Unknown column \\[obj\\]"):
        run("FROM t | KEEP obj")  # an object is not a column
    with pytest.raises(QueryError, match="Cannot use field \\[geo\\] with unsupported type \\[geo_point\\]"):
        run("FROM t | EVAL g = geo")
    with pytest.raises(QueryError, match="Unknown column \\[_id\\]"):
        run("FROM t | KEEP _id")  # metadata must be asked for


# ---- commands ----------------------------------------------------------------------------


def test_where_keeps_only_true_rows() -> None:
    sources = ({"i": 1}, {"i": 2}, {}, {"i": [1, 2]})
    assert column("FROM t | WHERE i == 1", "i", *sources) == [1]
    assert column("FROM t | WHERE NOT i == 1", "i", *sources) == [2]  # null and multi-values drop out
    assert column("FROM t | WHERE i == 1 OR i IS NULL", "i", *sources) == [1, None]


def test_eval_replaces_a_column_by_appending_it() -> None:
    program = compile_esql(parse_esql("FROM t | KEEP i, k | EVAL i = i + 1, j = i * 2"), MAPPING)
    assert program.columns == ["k", "i", "j"]
    assert program.run(docs({"i": 1, "k": "x"})) == [{"k": "x", "i": 2, "j": 4}]


def test_keep_orders_by_most_specific_pattern() -> None:
    program = compile_esql(parse_esql("FROM t | KEEP obj.*, i, *, obj.y"), MAPPING)
    assert program.columns[:3] == ["obj.x", "i", "b"]
    assert program.columns[-1] == "obj.y"
    with pytest.raises(QueryError, match="No matches found for pattern \\[zz\\*\\]"):
        run("FROM t | KEEP zz*")


def test_drop_and_rename() -> None:
    program = compile_esql(parse_esql("FROM t | KEEP i, k, n | DROP n | RENAME i AS k2, k AS i"), MAPPING)
    assert program.columns == ["k2", "i"]
    assert program.run(docs({"i": 1, "k": "x"})) == [{"k2": 1, "i": "x"}]
    shadowing = compile_esql(parse_esql("FROM t | KEEP i, k | RENAME i AS k"), MAPPING)
    assert shadowing.columns == ["k"]


def test_sort_nulls_multivalues_and_several_keys() -> None:
    sources = (
        {"i": 2, "k": "b"},
        {"k": "a"},
        {"i": 1, "k": "c"},
        {"i": 2, "k": "a"},
        {"i": [0, 9], "k": "m"},
    )
    assert column("FROM t | SORT i, k | KEEP k", "k", *sources) == ["m", "c", "a", "b", "a"]
    assert column("FROM t | SORT i DESC, k | KEEP k", "k", *sources) == ["a", "m", "a", "b", "c"]
    assert column("FROM t | SORT i NULLS FIRST | KEEP k", "k", *sources)[0] == "a"


def test_limit_and_the_implicit_default_limit() -> None:
    many = [{"i": n} for n in range(1200)]
    assert len(run("FROM t", *many)) == 1000  # FROM t ≡ FROM t | LIMIT 1000
    assert len(run("FROM t | LIMIT 1100", *many)) == 1100
    assert len(run("FROM t | LIMIT 1100 | EVAL x = 1", *many)) == 1000
    assert len(run("FROM t | LIMIT 2", *many)) == 2


def test_rows_are_produced_lazily() -> None:
    consumed = 0

    def documents() -> Iterator[SourceDocument]:
        nonlocal consumed
        for n in range(100):
            consumed += 1
            yield SourceDocument("i", str(n), {"i": n})

    program = compile_esql(parse_esql("FROM t | WHERE i > 4 | LIMIT 3"), MAPPING)
    assert [row["i"] for row in program.run(documents())] == [5, 6, 7]
    assert consumed == 8


def test_stats_aggregates_and_groups() -> None:
    sources = ({"k": "a", "n": 1}, {"k": "a", "n": [2, 3]}, {"k": "b", "n": 10}, {"n": 5}, {"k": "b"})
    rows = run(
        "FROM t | STATS c = COUNT(*), cn = COUNT(n), s = SUM(n), mn = MIN(n), mx = MAX(n), a = AVG(n), "
        "v = VALUES(n), cd = COUNT_DISTINCT(n) BY k | SORT k",
        *sources,
    )
    assert rows == [
        {"c": 2, "cn": 3, "s": 6, "mn": 1, "mx": 3, "a": 2.0, "v": [1, 2, 3], "cd": 3, "k": "a"},
        {"c": 2, "cn": 1, "s": 10, "mn": 10, "mx": 10, "a": 10.0, "v": 10, "cd": 1, "k": "b"},
        {"c": 1, "cn": 1, "s": 5, "mn": 5, "mx": 5, "a": 5.0, "v": 5, "cd": 1, "k": None},
    ]


def test_stats_multivalued_key_and_empty_input() -> None:
    assert run("FROM t | STATS c = COUNT(*) BY k | SORT k", {"k": ["x", "y"]}, {"k": "x"}) == [
        {"c": 2, "k": "x"},
        {"c": 1, "k": "y"},
    ]
    assert run("FROM t | STATS COUNT(*), MAX(n)") == [{"COUNT(*)": 0, "MAX(n)": None}]
    assert run("FROM t | STATS COUNT(*) BY k") == []


def test_mv_expand() -> None:
    rows = run("FROM t | KEEP k, i | MV_EXPAND k", {"k": ["b", "a"], "i": 1}, {"i": 2})
    assert rows == [{"k": "a", "i": 1}, {"k": "b", "i": 1}, {"k": None, "i": 2}]


# ---- the CSR detection query ----------------------------------------------------------------

K8S = IndexMapping(
    "kubernetes.audit_logs",
    {
        "dynamic": False,
        "properties": {
            "kubernetes": {
                "properties": {
                    "audit": {
                        "properties": {
                            "verb": {"type": "keyword", "ignore_above": 1024},
                            "objectRef": {
                                "properties": {
                                    "resource": {"type": "keyword", "ignore_above": 1024},
                                    "subresource": {"type": "keyword", "ignore_above": 1024},
                                }
                            },
                            "requestObject": {"type": "object", "dynamic": False, "properties": {}},
                        }
                    }
                }
            }
        },
    },
)
CSR_QUERY = '''FROM logs-kubernetes.audit_logs-* METADATA _id, _index, _version, _source
| WHERE kubernetes.audit.objectRef.resource == "certificatesigningrequests" AND kubernetes.audit.verb == "create" AND kubernetes.audit.objectRef.subresource IS NULL
| EVAL pem = FROM_BASE64(JSON_EXTRACT(_source, "kubernetes.audit.requestObject.spec.request"))
| EVAL body = REPLACE(REPLACE(pem, """(?s)^.*?-----BEGIN CERTIFICATE REQUEST-----(.*?)-----END CERTIFICATE REQUEST-----.*$""", "$1"), """[^\\r\\n]*:[^\\r\\n]*|\\s""", "")
| WHERE body RLIKE """([A-Za-z0-9+/]{4})*(MBMx|MIIC).*"""
| KEEP _id, _index, body'''  # noqa: E501


def audit(
    verb: str = "create", subresource: str | None = None, request: str | bytes | None = None
) -> dict[str, Any]:
    ref: dict[str, Any] = {"resource": "certificatesigningrequests"}
    if subresource:
        ref["subresource"] = subresource
    spec: dict[str, Any] = {}
    if request is not None:
        raw = request.encode() if isinstance(request, str) else request
        spec["request"] = base64.b64encode(raw).decode()
    return {"kubernetes": {"audit": {"verb": verb, "objectRef": ref, "requestObject": {"spec": spec}}}}


def pem(body: str, headers: str = "") -> str:
    return f"-----BEGIN CERTIFICATE REQUEST-----\n{headers}{body}\n-----END CERTIFICATE REQUEST-----\n"


def test_csr_query_end_to_end() -> None:
    sources = [
        audit(request=pem("ABCDMBMxEFGH\r\nIJKL")),  # match after four base64 characters
        audit(request=pem("ABCMBMxEFGH")),  # MBMx not on a 4-character boundary
        audit(request=pem("MIIC\nAAAA", headers="Proc-Type: 4,ENCRYPTED\n")),  # header lines are removed
        audit(verb="get", request=pem("MIICAAAA")),
        audit(subresource="approval", request=pem("MIICAAAA")),
        audit(request=b"\xff\xfe" + pem("MIICAAAA").encode()),  # not UTF-8: FROM_BASE64 gives null
        audit(request=None),  # no request at all
        {
            "kubernetes": {
                "audit": {
                    "verb": "create",
                    "objectRef": {"resource": "certificatesigningrequests"},
                    "requestObject": {"spec": {"request": "not base64!"}},
                }
            }
        },
    ]
    rows = compile_esql(parse_esql(CSR_QUERY), K8S).run(docs(*sources))
    assert rows == [
        {"_id": "d0", "_index": "idx-1", "body": "ABCDMBMxEFGHIJKL"},
        {"_id": "d2", "_index": "idx-1", "body": "MIICAAAA"},
    ]


def test_path_reader_agrees_with_values_at_on_odd_json_documents() -> None:
    """The generated fast path (dac.query.codegen) and its fallback give values_at's answer on
    documents with dotted keys, arrays of objects, nulls and scalars where objects go."""
    import json
    import random

    from tests.unit.test_dsl_codegen import KEYWORDS, random_document

    rng = random.Random(20261127)
    readers = {field: path_reader(field) for field in KEYWORDS}
    checked = 0
    for _ in range(600):
        doc = random_document(rng)
        try:
            doc = json.loads(json.dumps(doc))  # JSON-shaped only: what a _source can be
        except TypeError:
            continue  # a read-only Mapping, which no JSON source holds
        for field, read in readers.items():
            assert read(doc) == values_at(doc, field), (field, doc)
            checked += 1
    assert checked > 3000
