"""KQL parsing, pinned to Kibana's grammar.

Expected trees come from Kibana's own grammar tests (elastic/kibana
src/platform/packages/shared/kbn-es-query/src/kuery/ast/ast.test.ts) and from reading
grammar.peggy; the real-world queries are shaped like query rules in elastic/detection-rules.
"""

from __future__ import annotations

import pytest

from dac.errors import QueryError
from dac.query.kql import (
    And,
    Exists,
    Field,
    Is,
    KqlNode,
    MatchAll,
    Nested,
    Not,
    Or,
    Range,
    Value,
    parse_kql,
    referenced_fields,
)


def sx(node: KqlNode) -> str:
    """A compact rendering: (is field value), values as 'x' (unquoted), q'x' (quoted), w'x*' (pattern)."""
    match node:
        case MatchAll():
            return "(match_all)"
        case And(children):
            return "(and " + " ".join(sx(c) for c in children) + ")"
        case Or(children):
            return "(or " + " ".join(sx(c) for c in children) + ")"
        case Not(child):
            return f"(not {sx(child)})"
        case Is(field, value):
            return f"(is {_field(field)} {_value(value)})"
        case Exists(field):
            return f"(exists {_field(field)})"
        case Range(field, op, value):
            return f"(range {_field(field)} {op} {_value(value)})"
        case Nested(path, query):
            return f"(nested {_field(path)} {sx(query)})"
    raise AssertionError(node)


def _field(field: Field | None) -> str:
    if field is None or field.name is None:
        return "null"
    return ("w" if field.wildcard else "") + repr(field.name)


def _value(value: Value) -> str:
    prefix = "w" if value.wildcard is not None else "q" if value.quoted else ""
    return prefix + repr(value.text)


# ---------------------------------------------------------------- Kibana's grammar tests (ast.test.ts)

KIBANA_CASES = [
    ("  ", "(match_all)"),
    ("", "(match_all)"),
    ("foo", "(is null 'foo')"),
    ("  foo ", "(is null 'foo')"),
    ("foo bar", "(is null 'foo bar')"),
    ("foo and bar", "(and (is null 'foo') (is null 'bar'))"),
    ("foo and\u00a0bar", "(and (is null 'foo') (is null 'bar'))"),
    ("foo or bar", "(or (is null 'foo') (is null 'bar'))"),
    ("foo and bar and baz", "(and (is null 'foo') (is null 'bar') (is null 'baz'))"),
    ("foo or bar or baz", "(or (is null 'foo') (is null 'bar') (is null 'baz'))"),
    ("not (foo or bar)", "(not (or (is null 'foo') (is null 'bar')))"),
    ("foo or bar and baz or qux",
     "(or (is null 'foo') (and (is null 'bar') (is null 'baz')) (is null 'qux'))"),
    ("(foo or bar) and baz", "(and (or (is null 'foo') (is null 'bar')) (is null 'baz'))"),
    ("foo:bar", "(is 'foo' 'bar')"),
    ("foo:bar baz", "(is 'foo' 'bar baz')"),
    ('foo:"bar baz"', "(is 'foo' q'bar baz')"),
    ("foo:(bar or baz)", "(or (is 'foo' 'bar') (is 'foo' 'baz'))"),
    ("foo:((bar or baz) and not qux)", "(and (or (is 'foo' 'bar') (is 'foo' 'baz')) (not (is 'foo' 'qux')))"),
    ("bytes > 1000 and bytes < 8000", "(and (range 'bytes' gt '1000') (range 'bytes' lt '8000'))"),
    ("bytes >= 1000 and bytes <= 8000", "(and (range 'bytes' gte '1000') (range 'bytes' lte '8000'))"),
    ("machine*:osx", "(is w'machine*' 'osx')"),
    ("foo:ba*", "(is 'foo' w'ba*')"),
    ("foo:*", "(exists 'foo')"),
    ("nestedField:{ childOfNested: foo }", "(nested 'nestedField' (is 'childOfNested' 'foo'))"),
    (
        "response:200 and nestedField:{ childOfNested:foo or childOfNested:bar }",
        "(and (is 'response' '200') "
        "(nested 'nestedField' (or (is 'childOfNested' 'foo') (is 'childOfNested' 'bar'))))",
    ),
    (
        "nestedField:{ nestedChild:{ doublyNestedChild:foo } }",
        "(nested 'nestedField' (nested 'nestedChild' (is 'doublyNestedChild' 'foo')))",
    ),
    ("((((((((((foo))))))))))", "(is null 'foo')"),
    # fromLiteralExpression: unquoted true/false are booleans, numbers stay strings.
    ("f:true", "(is 'f' True)"),
    ("f:false", "(is 'f' False)"),
    ("f:-4", "(is 'f' '-4')"),
    ("f:070", "(is 'f' '070')"),
    ("f:0.0.1", "(is 'f' '0.0.1')"),
    ('f:\\\\\\(\\)\\:\\<\\>\\"\\*', "(is 'f' '\\\\():<>\"*')"),
    ("f:\\\\u00A0", "(is 'f' '\\\\u00A0')"),
    ('f:"\\\\():<>\\"*"', "(is 'f' q'\\\\():<>\"*')"),
    ('f:"\\\\"', "(is 'f' q'\\\\')"),
    ("f:foo*bar", "(is 'f' w'foo*bar')"),
]


@pytest.mark.parametrize(("query", "expected"), KIBANA_CASES)
def test_kibana_grammar_cases(query: str, expected: str) -> None:
    assert sx(parse_kql(query)) == expected


# ---------------------------------------------------------------- behaviour read from grammar.peggy

GRAMMAR_CASES = [
    # Operators are case-insensitive and need whitespace around them.
    ("a:b AND c:d", "(and (is 'a' 'b') (is 'c' 'd'))"),
    ("a:b Or c:d", "(or (is 'a' 'b') (is 'c' 'd'))"),
    ("NOT a:b", "(not (is 'a' 'b'))"),
    ("a:b  or\n\tc:d", "(or (is 'a' 'b') (is 'c' 'd'))"),
    ("a:b or", "(is 'a' 'b or')"),  # no whitespace after "or": it is part of the value
    ("a:bor c", "(is 'a' 'bor c')"),
    ("nothing:x", "(is 'nothing' 'x')"),  # "not" only counts when followed by whitespace
    ("a:(not b)", "(not (is 'a' 'b'))"),
    ("a:(b and not (c or d))", "(and (is 'a' 'b') (not (or (is 'a' 'c') (is 'a' 'd'))))"),
    ("a:((b))", "(is 'a' 'b')"),
    # Whitespace around ":" and range operators, and inside groups.
    ("a : b", "(is 'a' 'b')"),
    ('"a" : "b"  ', "(is 'a' q'b')"),
    ("( a:b )", "(is 'a' 'b')"),
    ("a:( b or c )", "(or (is 'a' 'b') (is 'a' 'c'))"),
    ("x>5", "(range 'x' gt '5')"),
    ('@timestamp < "2024-01-01"', "(range '@timestamp' lt q'2024-01-01')"),
    ("n:{a:b}", "(nested 'n' (is 'a' 'b'))"),
    ("n : {  a:b  }", "(nested 'n' (is 'a' 'b'))"),
    # Field names: quoted, with spaces, escaped specials, wildcards, "null" means no field.
    ('"user.name":bob', "(is 'user.name' 'bob')"),
    ("machine os:win", "(is 'machine os' 'win')"),
    ("a\\:b:c", "(is 'a:b' 'c')"),
    ("*:*", "(exists w'*')"),
    ("*:foo", "(is w'*' 'foo')"),
    ("null:foo", "(is null 'foo')"),
    ("or a:b", "(is 'or a' 'b')"),  # "or" needs whitespace before it to be a keyword
    ("f:null", "(is 'f' None)"),
    ('f:"null"', "(is 'f' q'null')"),
    # Escapes in unquoted values: specials, keywords, whitespace, unicode.
    ("f:\\or", "(is 'f' 'or')"),
    ("f:\\AND", "(is 'f' 'AND')"),
    ("f:a \\or b", "(is 'f' 'a or b')"),
    ("f:\\not", "(is 'f' 'ot')"),  # "\n" is an escaped newline first; trim() then drops it
    ("f:a\\tb", "(is 'f' 'a\\tb')"),
    ("f:\\u0041", "(is 'f' 'A')"),
    ("f:a\\{b\\}", "(is 'f' 'a{b}')"),
    ("f:a\\*b", "(is 'f' 'a*b')"),  # an escaped star is not a wildcard
    ("f:a\\**", "(is 'f' w'a**')"),
    ("f:**", "(is 'f' w'**')"),  # two stars is not "exists" in Kibana
    ("f:*bar", "(is 'f' w'*bar')"),  # leading wildcards: the detection engine allows them
    # Quoted strings keep unknown escapes and never make patterns.
    ('f:"C:\\Windows\\*"', "(is 'f' q'C:\\\\Windows\\\\*')"),
    ('f:"a\\nb"', "(is 'f' q'a\\nb')"),
    ('f:"a \\"q\\" b"', "(is 'f' q'a \"q\" b')"),
    ('f:"*"', "(is 'f' q'*')"),
    ('f:"not or and"', "(is 'f' q'not or and')"),
]


@pytest.mark.parametrize(("query", "expected"), GRAMMAR_CASES)
def test_grammar_behaviour(query: str, expected: str) -> None:
    assert sx(parse_kql(query)) == expected


# ---------------------------------------------------------------- real-world rule queries

REAL_WORLD = [
    (
        "event.category:process and host.os.type:linux and event.type:start "
        "and process.name:(bash or sh or zsh)",
        "(and (is 'event.category' 'process') (is 'host.os.type' 'linux') (is 'event.type' 'start') "
        "(or (is 'process.name' 'bash') (is 'process.name' 'sh') (is 'process.name' 'zsh')))",
    ),
    (
        'kubernetes.audit.objectRef.resource:"certificatesigningrequests"\n'
        'and kubernetes.audit.verb:("create" or "update" or "patch")\n'
        "and (not kubernetes.audit.objectRef.subresource:* "
        'or kubernetes.audit.objectRef.subresource:"approval")\n'
        "and kubernetes.audit.responseStatus.code < 400",
        "(and (is 'kubernetes.audit.objectRef.resource' q'certificatesigningrequests') "
        "(or (is 'kubernetes.audit.verb' q'create') (is 'kubernetes.audit.verb' q'update') "
        "(is 'kubernetes.audit.verb' q'patch')) "
        "(or (not (exists 'kubernetes.audit.objectRef.subresource')) "
        "(is 'kubernetes.audit.objectRef.subresource' q'approval')) "
        "(range 'kubernetes.audit.responseStatus.code' lt '400'))",
    ),
    (
        "not kubernetes.audit.user.username:(system\\:node\\:* or system\\:serviceaccount\\:kube-system\\:*)",
        "(not (or (is 'kubernetes.audit.user.username' w'system:node:*') "
        "(is 'kubernetes.audit.user.username' w'system:serviceaccount:kube-system:*')))",
    ),
    ("file.path:/etc/cron.d/*", "(is 'file.path' w'/etc/cron.d/*')"),
    ("source.ip:(10.0.0.0/8 or 172.16.0.0/12)",
     "(or (is 'source.ip' '10.0.0.0/8') (is 'source.ip' '172.16.0.0/12'))"),
    ("winlog.event_data.TargetUserName:*$", "(is 'winlog.event_data.TargetUserName' w'*$')"),
    ("process.args:(\"-c\" or \"-e\")", "(or (is 'process.args' q'-c') (is 'process.args' q'-e'))"),
    ("registry.path:HKLM\\\\SOFTWARE\\\\*", "(is 'registry.path' w'HKLM\\\\SOFTWARE\\\\*')"),
    (
        "kubernetes.audit.annotations.authorization_k8s_io/decision:allow",
        "(is 'kubernetes.audit.annotations.authorization_k8s_io/decision' 'allow')",
    ),
    ("destination.port:(22 or 3389) and not source.ip:127.0.0.1",
     "(and (or (is 'destination.port' '22') (is 'destination.port' '3389')) "
     "(not (is 'source.ip' '127.0.0.1')))"),
]


@pytest.mark.parametrize(("query", "expected"), REAL_WORLD)
def test_real_world_queries(query: str, expected: str) -> None:
    assert sx(parse_kql(query)) == expected


# ---------------------------------------------------------------- syntax errors

ERRORS = [
    ("user.name:", 'KQL: expected a value after "user.name:" but found the end of the query', 1, 11),
    ("user.name: ", 'KQL: expected a value after "user.name:" but found the end of the query', 1, 12),
    ("x >= ", 'KQL: expected a value after "x >=" but found the end of the query', 1, 6),
    ("a:b or ", 'KQL: expected a query after "or" but found the end of the query', 1, 8),
    ("a:b and ", 'KQL: expected a query after "and" but found the end of the query', 1, 9),
    ("not ", 'KQL: expected a query after "not" but found the end of the query', 1, 5),
    ("not not a:b", 'KQL: expected a query after "not" but found "not"', 1, 5),
    ("(", 'KQL: expected a query after "(" but found the end of the query', 1, 2),
    ("a:(b or )", 'KQL: expected a query after "or" but found ")"', 1, 9),
    ("(a:b", 'KQL: expected ")" but found the end of the query', 1, 5),
    ("n:{ a:b", 'KQL: expected "}" but found the end of the query', 1, 8),
    ("a:b)", 'KQL: expected the end of the query but found ")"', 1, 4),
    ('"abc', 'KQL: expected a closing double quote for the quoted string but found "\\""', 1, 1),
    ("a:C\\Windows", 'KQL: expected "and", "or" or the end of the query but found "\\"', 1, 4),
    # ":" is special in unquoted values: dates must be quoted.
    ("x <= 2024-01-01T00:00:00", 'KQL: expected "and", "or" or the end of the query but found ":"', 1, 19),
    ("a:\\W", 'KQL: expected a value after "a:" but found "\\"', 1, 3),
    # "not" inside a value starts a keyword: Kibana rejects this too.
    ("a:cannot run", 'KQL: expected "and", "or" or the end of the query but found "not"', 1, 6),
    ("a:b c:d", 'KQL: expected "and", "or" or the end of the query but found ":"', 1, 6),
    ("a:b and\n  c:", 'KQL: expected a value after "c:" but found the end of the query', 2, 5),
    ('a:"b" c', 'KQL: expected the end of the query but found "c"', 1, 7),
    ("a:b:c", 'KQL: expected "and", "or" or the end of the query but found ":"', 1, 4),
    ("a:{b:c", 'KQL: expected "}" but found the end of the query', 1, 7),
    ("a:(b", 'KQL: expected "and", "or" or ")" but found the end of the query', 1, 5),
]


@pytest.mark.parametrize(("query", "message", "line", "column"), ERRORS)
def test_syntax_errors(query: str, message: str, line: int, column: int) -> None:
    with pytest.raises(QueryError) as caught:
        parse_kql(query)
    error = caught.value
    assert (error.message, error.query_line, error.query_column) == (message, line, column)
    assert "\n" not in str(caught.value)


# ---------------------------------------------------------------- referenced fields


def test_referenced_fields_with_positions() -> None:
    query = 'a.b:x and not\n  c:(y or z) and n:{ inner:1 and deeper:{ leaf >= 2 } } and free text and e:*'
    refs = [(r.name, r.line, r.column) for r in referenced_fields(parse_kql(query))]
    assert refs == [
        ("a.b", 1, 1),
        ("c", 2, 3),
        ("c", 2, 3),
        ("n", 2, 18),
        ("n.inner", 2, 22),
        ("n.deeper", 2, 34),
        ("n.deeper.leaf", 2, 43),
        ("e", 2, 75),
    ]


def test_referenced_fields_skip_free_text_and_null() -> None:
    assert referenced_fields(parse_kql("foo and null:bar")) == []
