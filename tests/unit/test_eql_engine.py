"""EQL event queries in-process, pinned against how Elasticsearch translates and runs them.

Sources (elastic/elasticsearch, x-pack/plugin/eql unless noted): planner/QueryTranslator.java,
ql/planner/ExpressionTranslators.java, optimizer/Optimizer.java, util/StringUtils.java,
parser/LogicalPlanBuilder.java, analysis/AnalysisUtils.java, ql/type/TextEsField.java.
"""

from __future__ import annotations

from typing import Any

import pytest

from dac.documents import SourceDocument
from dac.errors import QueryError, UnsupportedQueryError
from dac.mapping import IndexMapping
from dac.query.eql_engine import compile_eql

MAPPING = IndexMapping("t", {
    "dynamic": False,
    "dynamic_templates": [{"extra": {"path_match": "extra.*", "mapping": {"type": "keyword"}}}],
    "properties": {
        "@timestamp": {"type": "date"},
        "event": {"properties": {"category": {"type": "keyword"}}},
        "process": {"properties": {
            "name": {"type": "keyword", "ignore_above": 8},
            "args": {"type": "keyword"},
            "pid": {"type": "long"},
        }},
        "message": {"type": "text"},
        "title": {"type": "text", "fields": {"raw": {"type": "keyword"}}},
        "source": {"properties": {"ip": {"type": "ip"}}},
        "labels": {"type": "flattened"},
        "items": {"type": "nested", "properties": {"k": {"type": "keyword"}}},
        "extra": {"type": "object", "dynamic": True},
    },
})


def hits(query: str, *sources: dict[str, Any]) -> list[int]:
    """Indexes (0-based) of the sources the query returns, in the order returned."""
    documents = [SourceDocument("logs-t", str(i), s) for i, s in enumerate(sources)]
    return [int(d.id) for d in compile_eql(query, MAPPING)(documents)]


def names(*values: Any) -> list[dict[str, Any]]:
    return [{"process": {"name": v}} if v is not None else {} for v in values]


# ----- event category (LogicalPlanBuilder.visitEventFilter: Equals on event.category)


def test_named_category_is_a_case_sensitive_term_on_event_category():
    docs = [{"event": {"category": "process"}}, {"event": {"category": ["network", "process"]}},
            {"event": {"category": "Process"}}, {}]
    assert hits("process where true", *docs) == [0, 1]
    assert hits("any where true", *docs) == [0, 1, 2, 3]
    assert hits("any where false", *docs) == []


# ----- == and != (term / must_not term)


def test_double_equals_is_case_sensitive_and_any_value_matches():
    assert hits('any where process.args == "Cmd"', *[{"process": {"args": v}} for v in
                                                     ("Cmd", "cmd", ["x", "Cmd"], None)]) == [0, 2]


def test_not_equals_is_must_not_so_a_missing_field_matches():
    docs = [{"process": {"args": "a"}}, {"process": {"args": "b"}}, {"process": {"args": ["a", "b"]}}, {}]
    assert hits('any where process.args != "a"', *docs) == [1, 3]
    assert hits('any where not process.args == "a"', *docs) == [1, 3]


def test_not_of_a_range_is_not_rewritten_into_the_opposite_range():
    # EqlBooleanSimplification disables maybeSimplifyNegatable: not (pid < 2) stays must_not range.
    docs = [{"process": {"pid": 1}}, {"process": {"pid": 5}}, {}]
    assert hits("any where not process.pid < 2", *docs) == [1, 2]
    assert hits("any where process.pid >= 2", *docs) == [1]


def test_numeric_comparisons_on_a_long_field():
    docs = [{"process": {"pid": p}} for p in (1, 2, 3, "4")]
    assert hits("any where process.pid > 2", *docs) == [2, 3]
    assert hits("any where process.pid <= 2 and process.pid != 1", *docs) == [1]
    assert hits("any where 2 < process.pid", *docs) == [2, 3]  # literal on the left is flipped
    assert hits("any where process.pid == 4", *docs) == [3]  # "4" is indexed as 4
    assert hits("any where process.pid > -1 + 3", *docs) == [2, 3]  # constant arithmetic folds


# ----- : like like~ (term / wildcard, case_insensitive)


def test_colon_is_case_insensitive_equality_and_wildcards():
    docs = [{"process": {"args": v}} for v in ("CMD.exe", "cmd.exe", "cmdXexe", "xcmd.exe")]
    assert hits('any where process.args : "cmd.exe"', *docs) == [0, 1]
    assert hits('any where process.args : "cmd?exe"', *docs) == [0, 1, 2]
    assert hits('any where process.args : ("*.EXE", "nothing")', *docs) == [0, 1, 3]


def test_backslash_in_an_eql_pattern_is_a_literal_character():
    # StringUtils.toLikePattern: only * and ? are special, so Windows paths need no extra escaping.
    docs = [{"process": {"args": v}} for v in ("C:\\Windows\\cmd.exe", "C:Windows", "C:\\*x")]
    assert hits('any where process.args : "c:\\\\windows\\\\*"', *docs) == [0]
    assert hits('any where process.args like """C:\\*"""', *docs) == [0, 2]


def test_like_is_case_sensitive_and_like_tilde_is_not():
    docs = [{"process": {"args": v}} for v in ("Power", "power", "POWERS")]
    assert hits('any where process.args like "Pow*"', *docs) == [0]
    assert hits('any where process.args like~ "pow*"', *docs) == [0, 1, 2]
    assert hits('any where process.args like ("power", "POW?RS")', *docs) == [1, 2]


# ----- regex regex~ (Lucene regexp, whole value)


def test_regex_is_a_whole_value_lucene_regexp():
    docs = [{"process": {"args": v}} for v in ("abc123", "ABC123", "xabc123")]
    assert hits('any where process.args regex "abc[0-9]+"', *docs) == [0]
    assert hits('any where process.args regex~ "abc[0-9]+"', *docs) == [0, 1]
    assert hits('any where process.args regex ("x.*", "A.*")', *docs) == [1, 2]


def test_an_invalid_regex_is_a_query_error():
    with pytest.raises(QueryError, match="EQL: invalid regex"):
        compile_eql('any where process.args regex "a["', MAPPING)


# ----- in in~ not in


def test_in_is_case_sensitive_terms_and_in_tilde_is_not():
    docs = [{"process": {"args": v}} for v in ("a", "A", "b")] + [{}]
    assert hits('any where process.args in ("a", "c")', *docs) == [0]
    assert hits('any where process.args in~ ("a", "c")', *docs) == [0, 1]
    assert hits('any where process.args not in ("a", "b")', *docs) == [1, 3]
    assert hits('any where process.args not in~ ("a")', *docs) == [2, 3]
    assert hits("any where process.pid in (1, 3)", *[{"process": {"pid": p}} for p in (1, 2, 3)]) == [0, 2]


# ----- null checks (ReplaceNullChecks: IsNull / Not(IsNull))


def test_null_comparisons_test_existence():
    docs = [{"process": {"args": "a"}}, {"process": {"args": None}}, {"process": {"args": []}}, {}]
    assert hits("any where process.args == null", *docs) == [1, 2, 3]
    assert hits("any where process.args != null", *docs) == [0]


# ----- mapping: ignore_above, text fields, unmapped and unsupported fields


def test_keyword_values_beyond_ignore_above_are_not_indexed():
    docs = names("short", "muchtoolong")
    assert hits('any where process.name == "muchtoolong"', *docs) == []
    assert hits('any where process.name : "*"', *docs) == [0]
    assert hits("any where process.name == null", *docs) == [1]
    assert hits('any where process.name regex ".*"', *docs) == [0]


def test_text_field_comparisons_use_its_keyword_multi_field():
    docs = [{"title": "Hello World"}, {"title": "hello"}]
    assert hits('any where title == "Hello World"', *docs) == [0]
    assert hits('any where title : "hello*"', *docs) == [0, 1]
    assert hits("any where title != null", *docs) == [0, 1]


def test_text_field_without_keyword_multi_field_is_rejected():
    with pytest.raises(QueryError, match=r"No keyword/multi-field defined exact matches for \[message\]"):
        compile_eql('any where message == "x"', MAPPING)


def test_unmapped_field_is_an_unknown_column():
    with pytest.raises(QueryError, match=r"Unknown column \[process\.nope\]"):
        compile_eql('any where process.nope == "x"', MAPPING)
    with pytest.raises(QueryError, match=r"Unknown column \[event\.category\]"):
        compile_eql("process where true", IndexMapping("bare", {"properties": {"a": {"type": "keyword"}}}))


def test_optional_unmapped_field_is_null():
    docs = [{"process": {"pid": 1}}, {"process": {"pid": 2}}]
    assert hits("any where ?nope == null", *docs) == [0, 1]
    assert hits("any where ?nope != null", *docs) == []
    assert hits('any where ?nope == "x"', *docs) == []
    assert hits('any where not ?nope == "x"', *docs) == []
    assert hits("any where ?nope == null and process.pid == 2", *docs) == [1]
    assert hits("any where ?process.pid == 2", *docs) == [1]  # optional but mapped: a normal field
    with pytest.raises(UnsupportedQueryError, match="folds to null"):
        compile_eql('any where ?nope == "x" or process.pid == 2', MAPPING)


def test_object_and_nested_fields_are_rejected_and_unmodelled_types_refused():
    with pytest.raises(QueryError, match=r"Cannot use field \[process\] type \[object\] only its subfields"):
        compile_eql('any where process == "x"', MAPPING)
    with pytest.raises(QueryError, match=r"nested type in hierarchy \(field \[items\]\)"):
        compile_eql('any where items.k == "x"', MAPPING)
    with pytest.raises(UnsupportedQueryError, match=r"\[flattened\]"):
        compile_eql('any where labels == "x"', MAPPING)
    with pytest.raises(UnsupportedQueryError, match="dynamic template"):
        compile_eql('any where extra.thing == "x"', MAPPING)


def test_string_operators_need_string_fields():
    with pytest.raises(QueryError, match=r"can only be used on strings; \[process\.pid\] is \[long\]"):
        compile_eql('any where process.pid : "1*"', MAPPING)


# ----- functions


def test_starts_with_is_a_prefix_query_case_sensitive_unless_tilde():
    docs = [{"process": {"args": v}} for v in ("Power*shell", "powershell", "Powershell")]
    assert hits('any where startsWith(process.args, "Power")', *docs) == [0, 2]
    assert hits('any where startsWith~(process.args, "power")', *docs) == [0, 1, 2]
    assert hits('any where startsWith(process.args, "Power*")', *docs) == [0]  # prefix: * is literal


def test_ends_with_and_string_contains_are_raw_wildcard_queries():
    # CaseInsensitiveScalarFunctions: WILDCARD + string, unescaped, so * ? \ act as wildcard syntax.
    docs = [{"process": {"args": v}} for v in ("C:\\x\\cmd.exe", "C:\\x\\CMD.EXE", "xcmd.exe", "a.b")]
    assert hits('any where endsWith(process.args, "cmd.exe")', *docs) == [0, 2]
    assert hits('any where endsWith~(process.args, "cmd.exe")', *docs) == [0, 1, 2]
    assert hits('any where endsWith(process.args, "\\\\cmd.exe")', *docs) == [0, 2]
    assert hits('any where stringContains(process.args, "x\\\\c")', *docs) == [2]  # \c is an escaped c
    assert hits('any where stringContains(process.args, "?.e")', *docs) == [0, 2]


def test_cidr_match_on_an_ip_field():
    docs = [{"source": {"ip": v}} for v in ("10.1.2.3", "192.168.0.1", "::1", "bad")]
    assert hits('any where cidrMatch(source.ip, "10.0.0.0/8", "::1/128")', *docs) == [0, 2]
    with pytest.raises(QueryError, match="cidrMatch needs an ip field"):
        compile_eql('any where cidrMatch(process.args, "10.0.0.0/8")', MAPPING)


def test_script_functions_are_refused_by_name():
    with pytest.raises(UnsupportedQueryError, match=r"function length\(\)"):
        compile_eql("any where length(process.args) > 3", MAPPING)
    with pytest.raises(UnsupportedQueryError, match=r"function substring\(\)"):
        compile_eql('any where substring(process.args, 1) == "x"', MAPPING)


# ----- logic, order, pipes, unsupported query kinds


def test_and_or_not_and_document_order():
    docs = [{"event": {"category": "process"}, "process": {"args": a, "pid": p}}
            for a, p in (("a", 1), ("b", 2), ("a", 3), ("c", 4))]
    query = 'process where (process.args == "a" or process.pid == 4) and not process.pid == 1'
    assert hits(query, *docs) == [2, 3]


def test_head_and_tail_pipes():
    docs = [{"process": {"pid": p}} for p in range(6)]
    assert hits("any where process.pid > 0 | head 2", *docs) == [1, 2]
    assert hits("any where process.pid > 0 | tail 2", *docs) == [4, 5]
    assert hits("any where true | head 4 | tail 2", *docs) == [2, 3]


def test_other_pipes_are_rejected_like_elasticsearch():
    with pytest.raises(QueryError, match=r"Pipe \[filter\] is not supported"):
        compile_eql("any where true | filter process.pid == 1", MAPPING)


def test_sequences_are_not_executed():
    with pytest.raises(UnsupportedQueryError, match="EQL sequence queries"):
        compile_eql("sequence by process.pid [any where true] [any where true]", MAPPING)


def test_syntax_errors_are_located():
    with pytest.raises(QueryError) as caught:
        compile_eql("any where (process.pid", MAPPING)
    assert caught.value.query_line == 1 and caught.value.query_column is not None
