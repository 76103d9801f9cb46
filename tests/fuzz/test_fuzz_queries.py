"""The KQL, EQL and ES|QL parsers, and the local engine behind them, on arbitrary and mutated queries.

Every query either parses, or fails with a QueryError at a position inside the query; what
parses either compiles and runs on real documents, or fails with a DacError. Never another
exception, never a hang (see support.py for the budget and the time limit).
"""

from __future__ import annotations

import contextlib
from functools import cache

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from dac.documents import SourceDocument
from dac.errors import DacError
from dac.events.generate import generate
from dac.events.reader import to_source_document
from dac.query import esql, kql
from dac.query.dsl import compile_query
from dac.query.eql_engine import compile_eql
from dac.query.eql_query import parse_eql
from tests.fuzz.strategies import MAPPING, kql_queries, mutated, syntax_text
from tests.fuzz.support import fuzz, result_or_located_error, time_limit
from tests.repository import compile_repository_rules


@cache
def documents() -> list[SourceDocument]:
    """Real indexed documents: mixed audit traffic with CSR requests."""
    return [to_source_document(e, "k8s-audit") for e in generate("mixed", 40, 5)]


@cache
def rule_queries(language: str) -> list[str]:
    return [r.kibana["query"] for r in compile_repository_rules() if r.kibana["language"] == language]


@pytest.fixture(scope="module", autouse=True)
def warm_caches() -> None:
    """Fill the caches before the first example, so that no example pays for them (deadline)."""
    documents()
    for language in ("kuery", "esql"):
        rule_queries(language)


KQL_SEEDS = [
    'kubernetes.audit.verb:"create" and not user.name:(alice or bob*)',
    "kubernetes.audit.responseStatus.code >= 400 or source.ip:10.0.0.0/8",
    "kubernetes.audit.user.*:system\\:* and @timestamp < now-5m",
    'message:"a phrase" or kubernetes.audit.requestObject.rules:{ verbs:create }',
]
EQL_SEEDS = [
    'any where kubernetes.audit.verb == "create" and user.name : ("alice*", "bob")',
    "any where kubernetes.audit.responseStatus.code >= 400 and not source.ip == null",
    'any where startsWith~(kubernetes.audit.user.username, "system:") or cidrMatch(source.ip, "10.0.0.0/8")',
    'any where kubernetes.audit.userAgent like~ "kubectl*" and kubernetes.audit.verb in ("get", "list")',
    'sequence by user.name [any where true] [any where kubernetes.audit.verb regex "c.*"]',
]
ESQL_SEEDS = [
    'FROM logs-* METADATA _id, _index | WHERE kubernetes.audit.verb == "create" | KEEP _id, user.name',
    "FROM logs-* | EVAL x = LENGTH(kubernetes.audit.verb) * 2 | WHERE x > 4 OR x IS NULL | SORT x DESC "
    "NULLS LAST | LIMIT 5",
    'FROM logs-* | STATS c = COUNT(*) BY kubernetes.audit.verb | WHERE c > 1 | RENAME c AS n',
    'FROM logs-* | WHERE kubernetes.audit.userAgent RLIKE "kube.*" AND TO_LOWER(user.name) LIKE "a*"',
    'FROM logs-* METADATA _source | EVAL j = JSON_EXTRACT(_source, "kubernetes.audit.verb") | KEEP j',
]


def _run_kql(text: str) -> None:
    parsed = result_or_located_error(lambda: kql.parse_kql(text), f"KQL {text!r}")
    if isinstance(parsed, DacError):
        return
    dsl = result_or_located_error(lambda: kql.to_dsl(parsed, MAPPING), f"KQL to DSL {text!r}")
    if isinstance(dsl, DacError):
        return
    with time_limit():
        try:
            matches = compile_query(dsl, MAPPING)
            for document in documents():
                matches(document.source)
        except DacError:
            pass  # a query the engine refuses (free text, a malformed date): reported, not a crash


@fuzz(max_examples=300)
@given(st.one_of(kql_queries(), mutated(KQL_SEEDS)))
# Found by this test: a token with a line break made a two-line error message (issue 10).
@example('kubernetes.audit.verb:"create" a\nnd not user.name:(alice or bob*)')
@example('a:("b" or c")\nand (not x:* or y:"approval")')
def test_kql_grammar_and_mutations(text: str) -> None:
    _run_kql(text)


@fuzz(max_examples=150)
@given(st.one_of(syntax_text(), st.text(max_size=60)))
def test_kql_raw_text(text: str) -> None:
    _run_kql(text)


@fuzz(max_examples=40)
@given(st.data())
def test_kql_rule_queries_mutated(data: st.DataObject) -> None:
    _run_kql(data.draw(mutated(rule_queries("kuery") or KQL_SEEDS)))


def _run_eql(text: str) -> None:
    parsed = result_or_located_error(lambda: parse_eql(text), f"EQL {text!r}")
    if isinstance(parsed, DacError):
        return
    with time_limit(), contextlib.suppress(DacError):
        compile_eql(text, MAPPING)(documents())


@fuzz(max_examples=250)
@given(st.one_of(mutated(EQL_SEEDS), syntax_text(120)))
# Found by this test: an AttributeError inside the eql package's type-error path (issue 10).
@example('any where+ startsWith~(kubernetes.audit.user.username, "system:")')
def test_eql_parser_and_engine(text: str) -> None:
    _run_eql(text)


def _run_esql(text: str) -> None:
    parsed = result_or_located_error(lambda: esql.parse_esql(text), f"ES|QL {text!r}")
    if isinstance(parsed, DacError):
        return
    with time_limit(), contextlib.suppress(DacError):
        esql.compile_esql(parsed, MAPPING).run(documents())


@fuzz(max_examples=300)
@given(st.one_of(mutated(ESQL_SEEDS), syntax_text(160).map(lambda t: "FROM logs-* | " + t)))
# Found by this test: a backquoted name running over a line break made a two-line message.
@example('FROM logs-*\n| WHERE k`ubernetes.audit.verb == "create"\n`    AND user.name IS NULL')
def test_esql_parser_and_engine(text: str) -> None:
    _run_esql(text)


@fuzz(max_examples=40)
@given(st.data())
def test_esql_rule_queries_mutated(data: st.DataObject) -> None:
    _run_esql(data.draw(mutated(rule_queries("esql"), max_edits=3)))
