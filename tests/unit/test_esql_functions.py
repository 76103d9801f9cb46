"""ES|QL scalar functions and operators: values, null and multi-value behaviour.

Sources: x-pack/plugin/esql/.../expression/function/scalar/** (e.g. string/Substring.java,
string/Locate.java, string/Replace.java, string/JsonExtract.java, convert/FromBase64.java and
its FromBase64Tests.java) and predicate/operator/** for arithmetic and comparisons.
"""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest

from dac.documents import SourceDocument
from dac.errors import QueryError, UnsupportedQueryError
from dac.mapping import IndexMapping
from dac.query.esql import compile_esql, parse_esql

MAPPING = IndexMapping(
    "t",
    {
        "dynamic": False,
        "properties": {
            "k": {"type": "keyword"},
            "t": {"type": "text"},
            "n": {"type": "long"},
            "i": {"type": "integer"},
            "d": {"type": "double"},
            "b": {"type": "boolean"},
            "ts": {"type": "date"},
        },
    },
)
DOC = {"k": ["b", "a"], "n": [3, 1], "i": 7, "d": 2.5, "b": True, "ts": "2024-05-06T07:08:09.123Z", "t": "Hi"}


def run(query: str, *sources: dict[str, Any]) -> list[dict[str, Any]]:
    docs = [SourceDocument("idx", str(n), src) for n, src in enumerate(sources)]
    return compile_esql(parse_esql(query), MAPPING).run(docs)


def value(expr: str, source: dict[str, Any] | None = None) -> Any:
    rows = run(f"FROM t METADATA _source | EVAL x = {expr} | KEEP x", DOC if source is None else source)
    return rows[0]["x"]


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ('TO_LOWER("ÀBC")', "àbc"),
        ('TO_UPPER("straße")', "STRASSE"),
        ("TO_UPPER(k)", ["A", "B"]),  # a conversion: applied to each (doc-values sorted) value
        ("TO_LOWER(null)", None),
        ('LENGTH("héllo😀")', 6),  # code points
        ("LENGTH(k)", None),  # multi-valued input: null (ES warns)
        ("LENGTH(null)", None),
        ('CONCAT("a", "b", "c")', "abc"),
        ('CONCAT("a", null)', None),
        ('CONCAT("a", k)', None),
        ('SUBSTRING("hello", 2, 3)', "ell"),
        ('SUBSTRING("hello", -3)', "llo"),
        ('SUBSTRING("hello", 0, 2)', "he"),  # 0 counts as 1
        ('SUBSTRING("hello", 10)', ""),
        ('SUBSTRING("hello", 2, -1)', None),  # negative length: null with a warning
        ('SUBSTRING("h😀llo", 2, 2)', "😀l"),
        ('STARTS_WITH("hello", "he")', True),
        ('ENDS_WITH("hello", "he")', False),
        ('STARTS_WITH(k, "a")', None),
        ('LOCATE("hello", "l")', 3),
        ('LOCATE("hello", "l", 4)', 4),
        ('LOCATE("hello", "z")', 0),
        ('LOCATE("😀a", "a")', 3),  # 1 + String.indexOf: counts UTF-16 units
        ('LOCATE("a", "abc")', 0),
        ('TRIM("  a b \\t\\n")', "a b"),
        ('LTRIM("  a ")', "a "),
        ('RTRIM("  a ")', "  a"),
        ('TRIM("\u2003a\u00a0")', "a\u00a0"),  # Character.isWhitespace: no-break spaces are not trimmed
        ('SPLIT("a,,b", ",")', ["a", "", "b"]),
        ('SPLIT("abc", ",")', "abc"),
        ('SPLIT("a", "ab")', None),  # the delimiter must be one byte
        ('COALESCE(null, null, "z")', "z"),
        ('COALESCE(null, k, "z")', ["a", "b"]),  # a multi-value is returned whole
        ('CASE(i > 5, "big", i == 1, "one", "other")', "big"),
        ('CASE(i > 50, "big")', None),
        ('CASE(n > 0, "mv", "else")', "else"),  # a multi-valued condition is not true
        ("TO_STRING(1.0)", "1.0"),
        ("TO_STRING(1e20)", "1.0E20"),
        ("TO_STRING(0.0001)", "1.0E-4"),
        ("TO_STRING(b)", "true"),
        ("TO_STRING(ts)", "2024-05-06T07:08:09.123Z"),
        ("TO_STRING(n)", ["1", "3"]),
        ("n::string", ["1", "3"]),
        ('TO_BASE64("hello")', "aGVsbG8="),
        ('FROM_BASE64("aGVsbG8=")', "hello"),
        ('FROM_BASE64("aGVsbG8")', "hello"),  # padding is optional for java.util.Base64
        ('FROM_BASE64("aGVsbA")', "hell"),
        ('FROM_BASE64("aGVsbG8==")', None),  # wrong ending unit
        ('FROM_BASE64("aGVs bG8=")', None),  # whitespace is not in the alphabet
        ('FROM_BASE64("a")', None),  # last unit has not enough bits
        ('FROM_BASE64("=")', None),
        ('FROM_BASE64("")', ""),
        ('REPLACE("aXbX", "X", "-")', "a-b-"),
        # java.util.regex replacements: \ escapes the next character, $n is a group; what
        # re.sub would read in a template (\1, \g<1>, \n) stays literal
        ('REPLACE("aXb", "X", "\\\\\\\\")', "a\\b"),
        ('REPLACE("aXb", "X", "\\\\1\\\\g<0>")', "a1g<0>b"),
        ('REPLACE("aXb", "(X)", "[$1]")', "a[X]b"),
        ('REPLACE("aXb", "X", "\\\\$")', "a$b"),
        ('REPLACE(null, "X", "-")', None),
        ('REPLACE("a", null, "-")', None),
        ('REPLACE(k, "a", "-")', None),
        ('REPLACE("ab", k, "-")', None),  # a multi-valued pattern
        ("MV_COUNT(k)", 2),
        ('MV_COUNT("x")', 1),
        ("MV_COUNT(null)", None),
        ("MV_FIRST(n)", 1),
        ("MV_LAST(n)", 3),
    ],
)
def test_functions(expr: str, expected: Any) -> None:
    assert value(expr) == expected


def test_rules_with_the_same_replace_share_its_result_and_long_texts_are_not_kept() -> None:
    from dac.query.esql import functions

    short = "k: v\nbody\n" * 10
    long = "k: v\nbody\n" * (functions._SHARED_REPLACE_CHARS // 5)
    for text in (short, long):
        expected = re.sub(r"[^\n]*:[^\n]*", "", text)
        functions._shared_replace.cache_clear()
        first = value('REPLACE(t, """[^\\n]*:[^\\n]*""", "")', {"t": text})
        second = value('REPLACE(t, """[^\\n]*:[^\\n]*""", "")', {"t": text})  # another query compiled
        assert first == second == expected
        hits = functions._shared_replace.cache_info().hits
        assert hits == (1 if text is short else 0)


def test_from_base64_of_bytes_that_are_not_utf8_is_null() -> None:
    # FromBase64Tests.java ("decoded value is not valid UTF-8, which is not supported yet"),
    # elastic/elasticsearch#154955, backported to 9.4 and 9.5.
    for raw in (b"a\xf0", b"\xff\xfe", b"\xed\xa0\x80", b"\xc0\x80"):
        encoded = base64.b64encode(raw).decode()
        assert value(f'FROM_BASE64("{encoded}")') is None, raw
    assert value(f'FROM_BASE64("{base64.b64encode("é😀".encode()).decode()}")') == "é😀"


def test_replace_with_a_per_row_pattern_that_does_not_compile_is_null() -> None:
    assert value('REPLACE("a(b", k, "-")', {"k": "("}) is None
    assert value('REPLACE("a(b", k, "-")', {"k": "\\("}) == "a-b"


JSON = '{"a": {"b": [1, {"c": "x"}], "n": 1.50, "t": true, "z": null}, "a.b": "dotted", "a": 2}'


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("a.b[1].c", "x"),
        ("$.a.b[0]", "1"),
        ("a.n", "1.50"),  # numbers keep their JSON text
        ("a.t", "true"),
        ("a.z", None),  # JSON null
        ("a.b", '[1, {"c": "x"}]'),  # arrays and objects as JSON text
        ("['a.b']", "dotted"),
        ("a['b'][ 1 ][\"c\"]", "x"),
        ("a.missing", None),
        ("a.b[5]", None),
        ("a.b.c", None),  # a key into an array
        ("$", JSON),
    ],
)
def test_json_extract_on_a_string(path: str, expected: Any) -> None:
    query = f"FROM t | EVAL x = JSON_EXTRACT(k, {json_string(path)}) | KEEP x"
    assert run(query, {"k": JSON})[0]["x"] == expected


def json_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def test_json_extract_first_duplicate_key_wins_and_invalid_json_is_null() -> None:
    assert value('JSON_EXTRACT(k, "a")', {"k": '{"a": 1, "a": 2}'}) == "1"
    assert value('JSON_EXTRACT(k, "a")', {"k": '{"a": }'}) is None
    assert value('JSON_EXTRACT(k, "a")', {"k": ""}) is None
    assert value('JSON_EXTRACT(k, "b")', {"k": '{"a": [1, 2, }'}) is None  # skipping validates
    assert value('JSON_EXTRACT(k, "a")', {"k": '{"a": "v", garbage'}) == "v"  # nothing after is read


def test_json_extract_on_source() -> None:
    source = {
        "kubernetes": {"audit": {"requestObject": {"spec": {"request": "UEVN", "usages": ["a", "b"]}}}},
        "dotted.key": 1,
    }
    assert value('JSON_EXTRACT(_source, "kubernetes.audit.requestObject.spec.request")', source) == "UEVN"
    assert value('JSON_EXTRACT(_source, "kubernetes.audit.requestObject.spec.usages")', source) == '["a","b"]'
    assert value('JSON_EXTRACT(_source, "dotted.key")', source) is None  # dots always separate keys
    assert value("JSON_EXTRACT(_source, \"['dotted.key']\")", source) == "1"


@pytest.mark.parametrize("path", [".a", "a.", "a..b", "$a", "a[01]", "a[-1]", "a[*]", "a[]", "a['x"])
def test_json_extract_rejects_a_malformed_constant_path(path: str) -> None:
    with pytest.raises(QueryError, match="invalid JSON_EXTRACT path"):
        value(f"JSON_EXTRACT(k, {json_string(path)})", {"k": "{}"})


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("5 / 2", 2),
        ("-5 / 2", -2),  # Java truncates toward zero
        ("-5 % 3", -2),
        ("5.0 / 2", 2.5),
        ("5 / 0", None),  # "/ by zero": null with a warning
        ("5.0 / 0", None),
        ("2147483647 + 1", None),  # integer overflow: null with a warning
        ("2147483647 + 1 * n", None),  # multi-valued operand
        ("i + 2147483647", None),
        ("TO_STRING(3000000000 + 1)", "3000000001"),
        ("-i", -7),
        ("d * 2", 5.0),
        ('k == "a"', None),  # a multi-valued comparison is null
        ("i > null", None),
        ('t == "Hi"', True),
        ("i == 7.0", True),
        ('ts > "2024-01-01"', True),  # the string literal is cast to a datetime
        ('"a" IN ("a", "b")', True),
        ('"c" IN ("a", null)', None),
        ('"a" NOT IN ("a", null)', False),
        ('k IN ("a")', None),
        ("i IN (1, 7)", True),
        ('"abc" LIKE "a*"', True),
        ('"abc" NOT LIKE "a*"', False),
        ('k LIKE "a*"', None),
        ('null LIKE "a*"', None),
        ('"abc" RLIKE "a.c"', True),
        ('"abc" LIKE ("x*", "*c")', True),
        ("null IS NULL", True),
        ("k IS NULL", False),
        ("NOT (i > 1)", False),
        ("NOT (i > null)", None),
        ("true AND null", None),
        ("false AND null", False),
        ("true OR null", True),
        ("false OR null", None),
    ],
)
def test_operators(expr: str, expected: Any) -> None:
    assert value(expr) == expected


@pytest.mark.parametrize(
    ("expr", "error", "message"),
    [
        (
            "LENGTH(n)",
            QueryError,
            "first argument of [LENGTH(n)] must be [string], found value [n] type [long]",
        ),
        ('SUBSTRING(k, "1")', QueryError, 'second argument of [SUBSTRING(k, "1")] must be [integer]'),
        ("k == 1", QueryError, "first argument of [k == 1] is [keyword] so second argument must also be"),
        ("k + 1", QueryError, "must be [numeric]"),
        ("FOO(k)", QueryError, "Unknown function [foo]"),
        ("COUNT(k)", QueryError, "not allowed outside STATS"),
        ("ABS(n)", UnsupportedQueryError, "unsupported function ABS"),
        ('k RLIKE "a&b"', UnsupportedQueryError, "intersection"),
        ('REPLACE(k, "\\\\p{L}", "")', UnsupportedQueryError, "\\p"),
        ('REPLACE(k, "(", "")', QueryError, "invalid regular expression [(]"),
        ("CONCAT(k)", QueryError, "expects at least 2 arguments"),
    ],
)
def test_compile_errors(expr: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as err:
        value(expr)
    assert message in str(err.value)
    assert isinstance(err.value, QueryError) and err.value.query_line == 1
