"""ES|QL parser: shapes from x-pack/plugin/esql/src/main/antlr (parser/Expression.g4, lexer/*.g4)."""

from __future__ import annotations

import pytest

from dac.errors import QueryError, UnsupportedQueryError
from dac.query.esql import parse_esql, referenced_fields
from dac.query.esql import syntax as s

CSR_QUERY = """FROM logs-kubernetes.audit_logs-* METADATA _id, _index, _version, _source
| WHERE kubernetes.audit.objectRef.resource == "certificatesigningrequests" AND kubernetes.audit.verb == "create"
| EVAL pem = FROM_BASE64(JSON_EXTRACT(_source, "kubernetes.audit.requestObject.spec.request"))
| KEEP _id, _index, pem"""  # noqa: E501


def where(text: str) -> s.Expr:
    query = parse_esql(f"FROM i | WHERE {text}")
    command = query.commands[0]
    assert isinstance(command, s.Where)
    return command.condition


def test_from_indices_and_metadata() -> None:
    query = parse_esql('from a-*, "b" metadata _id, _source // trailing comment')
    assert query.indices == ["a-*", "b"]
    assert query.metadata == ["_id", "_source"]
    assert query.commands == ()


def test_keywords_are_case_insensitive_and_comments_are_skipped() -> None:
    query = parse_esql("FrOm i /* block /* nested */ comment */ | wHeRe x == 1 // end")
    assert isinstance(query.commands[0], s.Where)


def test_precedence_not_binds_tighter_than_and_which_binds_tighter_than_or() -> None:
    expr = where("NOT a == 1 AND b == 2 OR c == 3")
    assert isinstance(expr, s.Binary) and expr.op == "or"
    assert isinstance(expr.left, s.Binary) and expr.left.op == "and"
    assert isinstance(expr.left.left, s.Unary) and expr.left.left.op == "not"


def test_arithmetic_precedence_and_negative_literals() -> None:
    expr = where("a + 2 * -3 > 4")
    assert isinstance(expr, s.Binary) and expr.op == ">"
    add = expr.left
    assert isinstance(add, s.Binary) and add.op == "+"
    mul = add.right
    assert isinstance(mul, s.Binary) and mul.op == "*"
    assert mul.right == s.Literal(1, 24, "-3", -3, "integer")


def test_predicates() -> None:
    expr = where(
        'a NOT IN (1, 2) AND b IS NOT NULL AND c NOT LIKE "x*" AND d RLIKE """a\\d""" AND e LIKE ("p", "q")'
    )
    found = [n for n in s.walk(expr) if isinstance(n, s.In | s.IsNull | s.Match)]
    assert [type(n).__name__ for n in found] == ["In", "IsNull", "Match", "Match", "Match"]
    assert found[0].negated and found[1].negated and found[2].negated
    assert found[3].patterns == ("a\\d",)
    assert found[4].patterns == ("p", "q")


def test_string_literals_escapes_and_triple_quotes() -> None:
    expr = where('a == "t\\tq\\"b\\\\" OR b == """raw \\d "x" """ OR c == """"q""""')
    literals = [n.value for n in s.walk(expr) if isinstance(n, s.Literal)]
    assert literals == ['t\tq"b\\', 'raw \\d "x" ', '"q"']


def test_numbers_integer_long_double() -> None:
    expr = where("a == 1 OR a == 3000000000 OR a == 1.5 OR a == .5e2 OR a == 2e3")
    literals = [(n.value, n.type) for n in s.walk(expr) if isinstance(n, s.Literal)]
    assert literals == [
        (1, "integer"),
        (3000000000, "long"),
        (1.5, "double"),
        (50.0, "double"),
        (2000.0, "double"),
    ]


def test_backquoted_identifiers_and_dotted_names() -> None:
    expr = where("`weird name`.x == `a``b`")
    assert isinstance(expr, s.Binary)
    assert expr.left == s.Attribute(1, 16, "`weird name`.x", "weird name.x")
    assert isinstance(expr.right, s.Attribute) and expr.right.name == "a`b"


def test_keyword_cannot_be_unquoted_identifier() -> None:
    with pytest.raises(QueryError) as err:
        parse_esql("FROM i | WHERE user.first == 1")
    assert (err.value.query_line, err.value.query_column) == (1, 21)
    assert parse_esql("FROM i | WHERE user.`first` == 1").commands


def test_eval_names_unaliased_columns_by_their_text() -> None:
    query = parse_esql("FROM i | EVAL x = LENGTH(a), TO_UPPER( b )")
    command = query.commands[0]
    assert isinstance(command, s.Eval)
    assert [(f.name, f.aliased) for f in command.fields] == [("x", True), ("TO_UPPER( b )", False)]


def test_sort_defaults_nulls_last_for_asc_and_first_for_desc() -> None:
    query = parse_esql("FROM i | SORT a, b DESC, c ASC NULLS FIRST, d DESC NULLS LAST")
    command = query.commands[0]
    assert isinstance(command, s.Sort)
    assert [(o.descending, o.nulls_first) for o in command.orders] == [
        (False, False),
        (True, True),
        (False, True),
        (True, False),
    ]


def test_keep_drop_rename_stats_limit_mv_expand() -> None:
    query = parse_esql(
        "FROM i | KEEP a.*, `b.c`, d | DROP x* | RENAME a AS b, c = d | STATS n = COUNT(*), COUNT(x) BY g "
        "| LIMIT 5 | MV_EXPAND g"
    )
    keep, drop, rename, stats, limit, expand = query.commands
    assert isinstance(keep, s.Keep)
    assert [(p.name, p.regex is not None) for p in keep.patterns] == [
        ("a.*", True),
        ("b.c", False),
        ("d", False),
    ]
    assert isinstance(drop, s.Drop) and drop.patterns[0].regex is not None
    assert isinstance(rename, s.Rename)
    assert [(o.name, n.name) for o, n in rename.pairs] == [("a", "b"), ("d", "c")]
    assert isinstance(stats, s.Stats)
    assert [f.name for f in stats.aggregates] == ["n", "COUNT(x)"]
    assert [f.name for f in stats.groups] == ["g"]
    assert isinstance(stats.aggregates[0].expr, s.Call) and isinstance(
        stats.aggregates[0].expr.args[0], s.Star
    )
    assert limit == s.Limit(1, 100, "LIMIT 5", 5)
    assert isinstance(expand, s.MvExpand) and expand.target.name == "g"


def test_cast_to_string() -> None:
    expr = where('a::keyword == "1"')
    assert isinstance(expr, s.Binary) and isinstance(expr.left, s.Cast)


@pytest.mark.parametrize(
    ("query", "line", "column"),
    [
        ("FROM i | WHERE a ==", 1, 20),  # end of input
        ("FROM i | WHERE a == 1 == 2", 1, 23),  # comparisons do not chain
        ("FROM i\n| WHERE (a == 1", 2, 16),
        ('FROM i | WHERE a == "unterminated', 1, 21),
        ('FROM i | WHERE a == "bad \\d escape"', 1, 26),
        ('FROM i | WHERE a == """spans\nlines"""', 1, 21),
        ("FROM i | LIMIT x", 1, 16),
        ("FROM i | WHERE a == 1 |", 1, 24),
        ("WHERE a == 1", 1, 1),
        ("FROM i | FROBNICATE", 1, 10),
        ("FROM i METADATA _nope", 1, 17),
        ("FROM i | RENAME a* AS b", 1, 17),
        ("FROM i | EVAL = 1", 1, 15),
    ],
)
def test_syntax_errors_are_located(query: str, line: int, column: int) -> None:
    with pytest.raises(QueryError) as err:
        parse_esql(query)
    assert not isinstance(err.value, UnsupportedQueryError)
    assert (err.value.query_line, err.value.query_column) == (line, column), str(err.value)


@pytest.mark.parametrize(
    ("query", "message", "column"),
    [
        ('FROM i | DISSECT a "%{b}"', "unsupported command DISSECT", 10),
        ("ROW a = 1", "unsupported command ROW", 1),
        ('FROM i | WHERE a =~ "x"', "unsupported operator =~", 18),
        ("FROM i | WHERE a == ?p", "unsupported query parameters", 21),
        ("FROM i | WHERE a::ip == b", "unsupported cast to [ip]", 19),
        ("FROM remote:i", "unsupported remote cluster index patterns", 12),
        ("FROM i METADATA _score", "unsupported metadata field [_score]", 17),
        ("FROM i | STATS c = COUNT(*) WHERE a == 1", "unsupported per-aggregation WHERE filter", 29),
    ],
)
def test_unsupported_constructs_are_named(query: str, message: str, column: int) -> None:
    with pytest.raises(UnsupportedQueryError) as err:
        parse_esql(query)
    assert message in str(err.value)
    assert err.value.query_column == column


def test_referenced_fields_skip_created_columns_and_metadata() -> None:
    query = parse_esql(
        'FROM i METADATA _id\n| WHERE a == 1 AND _id == "x"\n| EVAL b = c + 1\n| RENAME d AS e\n'
        "| WHERE b > 0 AND e == 1 AND f == 2\n| KEEP b, g, h*"
    )
    refs = [(r.name, r.line, r.column) for r in referenced_fields(query)]
    assert refs == [("a", 2, 9), ("c", 3, 12), ("d", 4, 10), ("f", 5, 30), ("g", 6, 11)]


def test_referenced_fields_of_the_csr_query() -> None:
    refs = referenced_fields(parse_esql(CSR_QUERY))
    assert [r.name for r in refs] == ["kubernetes.audit.objectRef.resource", "kubernetes.audit.verb"]
    assert (refs[1].line, refs[1].column) == (2, 81)
