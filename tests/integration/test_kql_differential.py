"""Differential fuzzing of KQL: the local engine and a real Elasticsearch must return the same hits.

Random KQL drawn from the grammar over the mapping's fields (keyword, text, match_only_text,
multi-fields, long, date, ip, boolean, flattened, a dynamic-template field, unmapped fields;
exact, quoted and wildcard values, ranges, ``field:*``, value lists, field-name wildcards, nested
``and``/``or``/``not``) runs over random documents built to hit the mapping's edge cases (values
past ``ignore_above``, multi-values, arrays of objects, dotted keys, case and analysis, nulls,
empty strings, numbers as strings and strings as numbers). Each query is translated once by
:func:`dac.query.kql.to_dsl`, as Kibana would; the local DSL evaluator and Elasticsearch
(``_msearch`` over one index per corpus) must agree on every hit set, and on whether the query
fails at all. A disagreement fails the test with the smallest query and document that still
disagree, shrunk against the server.

Budget: ``CORPORA`` corpora of ``DOCUMENTS`` documents, ``QUERIES`` queries each; seed fixed.
``DAC_FUZZ_SEED`` and ``DAC_FUZZ_CASES`` (queries per corpus) run it longer locally.

Both sides use the mapping the server was given (``server_mappings``): on a server without the
constant-keyword and mapper-extras modules, those fields are keyword and text there, and the data
view Kibana builds from field_caps sees the same.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from tests.fuzz.support import REPORT_LINES

from dac.engine.elasticsearch import server_mappings
from dac.engine.es_connection import Connection
from dac.errors import DacError
from dac.mapping import IndexMapping, load_mapping
from dac.query.dsl import compile_query
from dac.query.kql import to_dsl

SEED = int(os.environ.get("DAC_FUZZ_SEED", "20261127"))
QUERIES = int(os.environ.get("DAC_FUZZ_CASES", "800"))
CORPORA = 3
DOCUMENTS = 120
MSEARCH_BATCH = 100
ERROR = "error"  # the outcome of a query that fails (ES answers 400; the local engine raises)

# --------------------------------------------------------------------------- the field pool

# No constant_keyword field (data_stream.*): where the server has the module, ES takes its value
# from the first document and refuses others, which random documents would keep tripping over.
KEYWORD = ["kubernetes.audit.verb", "kubernetes.audit.user.username", "kubernetes.audit.user.groups",
           "kubernetes.audit.objectRef.resource", "event.action", "kubernetes.audit.objectRef.name",
           "host.os.name"]
TEXT = ["kubernetes.audit.userAgent", "kubernetes.audit.responseStatus.message", "message", "error.message",
        "kubernetes.audit.sourceIPs"]
MULTI_FIELD = ["host.os.name.text"]  # text indexing host.os.name's values
LONG = ["kubernetes.audit.responseStatus.code", "log.offset"]
DATE = ["@timestamp", "kubernetes.audit.stageTimestamp"]
IP = ["source.ip", "related.ip"]
BOOLEAN = ["host.containerized", "kubernetes.audit.requestObject.spec.hostNetwork"]
FLATTENED = "kubernetes.audit.requestObject.spec.volumes.hostPath"  # queried by its keys
# A dynamic template maps it as keyword, but only for a string (match_mapping_type: string): a
# number as its first value would map it as long, a string that looks like a date as date
# (date_detection, on by default), and the field's type would then depend on the data. The local
# engine takes the template's type, so it gets strings that are no dates.
DYNAMIC = "kubernetes.audit.user.extra.scope"
UNMAPPED = ["kubernetes.audit.requestObject.spec.request", "custom.unmapped"]

WORDS = ["create", "Create", "CREATE", "get", "list", "system:masters", "system:node:ip-10-0-1-5",
         "alice", "Alice", "bob", "kubectl/v1.33.1", "a b", "a-b", "a_b", "O'Neil", "x.y", "é", "ÉCOLE",
         "Straße", "😀", "*", "a*b", "a?b", "back\\slash", 'quo"te', "(x)", "k:v", "or", "and", "not", "200",
         "2.5", "true", "10.0.0.1", "2026-03-01"]
SENTENCES = ["kubectl/v1.33.1 (linux/amd64) kubernetes/abc123", "Hello World", "foo-bar_baz qux",
             "system:masters is a group", "The QUICK brown fox", "user@example.com logged in", "3.14 and 2,5",
             "O'Neil's café", "ÉCOLE straße", "error: forbidden (403)", "x.y.z", "create", "CREATE get"]
LONG_KEYWORD = ["k" * 1024, "k" * 1025, "é" * 1025, "😀" * 512, "😀" * 513]  # 😀 is 2 UTF-16 units
NUMBERS = [0, 1, 200, 201, 403, 404, 500, -1, 2**40, "200", "404", 5.7, "5"]
DATES = ["2026-03-01T12:00:00.000Z", "2026-03-01T12:00:00Z", "2026-03-01", "2026-03-01T13:30:00+02:00",
         "2026-02-28T23:59:59.999Z", "2026-03-02T00:00:00Z", 1772366400000, "1772366400000", "2025-12-31"]
IPS = ["10.0.0.1", "10.0.0.7", "10.0.0.255", "10.1.0.1", "192.168.1.1", "::1", "fe80::1", "::ffff:10.0.0.1"]
BOOLS = [True, False, "true", "false", ""]
# Query-only values: date math (now is months after the corpus dates, so the two clocks never
# straddle a document) and CIDR blocks (IpFieldMapper#termQuery).
DATE_MATH = ["now-3650d", "now/d", "now-1y/M", "2026-03-01||+1d", "2026-03-01||/M",
             "2026-03-01T12:00:00Z||-1h", "2026-03", "2026"]
CIDRS = ["10.0.0.0/8", "10.0.0.0/24", "10.0.0.1/32", "::/0", "fe80::/10", "::ffff:10.0.0.0/104"]
# Known divergence, kept out of the queries: Lucene refuses to determinize the automaton of a
# wildcard pattern with a long run after its first wildcard (TooComplexToDeterminizeException,
# "Determinizing automaton with 1026 states ... would require more than 10000 effort",
# Operations.DEFAULT_DETERMINIZE_WORK_LIMIT), so ES fails the query; measured here from about 430
# characters after a "*". The local engine does not model Lucene's determinization effort.
WILDCARD_MAX = 200
# Known divergence, kept out of the queries: ES parses the bounds of a range on a date or numeric
# field (a KQL date value is such a range) while rewriting it, and only when the shard holds values
# of the field (RangeQueryBuilder#doRewrite, MappedFieldType#isFieldWithinQuery; without values the
# range becomes match_none unparsed), clause by clause before the bool is built. Whether a malformed
# bound fails the search therefore depends on each shard's data; the local engine always fails.
# The fuzzer writes well-formed bounds for those fields (tests/unit/test_dsl_eval.py covers
# malformed ones); WELL_FORMED marks where.
# Field-name patterns, each with a field whose values it is queried with (WELL_FORMED).
FIELD_PATTERNS = [("kubernetes.audit.user.*", "kubernetes.audit.user.username"), ("*.ip", "source.ip"),
                  ("host.os.*", "host.os.name"), ("kubernetes.audit.*Timestamp", "@timestamp"),
                  ("event.o*", "event.action"), ("kubernetes.audit.objectRef.*", "kubernetes.audit.verb")]


@dataclass(frozen=True)
class Leaf:
    """One KQL clause, as text."""

    text: str


@dataclass(frozen=True)
class Op:
    kind: str  # and | or | not
    children: tuple[Any, ...]


Query = Leaf | Op


def kql(query: Query) -> str:
    if isinstance(query, Leaf):
        return query.text
    if query.kind == "not":
        return f"not {_group(query.children[0])}"
    return f" {query.kind} ".join(_group(c) for c in query.children)


def _group(query: Query) -> str:
    return kql(query) if isinstance(query, Leaf) else f"({kql(query)})"


# --------------------------------------------------------------------------- documents


def _value(rng: random.Random, name: str) -> Any:
    """A value for field ``name`` from its type's edge cases; sometimes a list, null or ''."""
    roll = rng.random()
    if roll < 0.06:
        return None
    if roll < 0.1:
        return ""
    if roll < 0.25:
        return [_scalar(rng, name) for _ in range(rng.randint(0, 3))]
    return _scalar(rng, name)


def _scalar(rng: random.Random, name: str) -> Any:
    if name in LONG:
        return rng.choice(NUMBERS)
    if name in DATE:
        return rng.choice(DATES)
    if name in IP:
        return rng.choice(IPS)
    if name in BOOLEAN:
        return rng.choice(BOOLS)
    if name in TEXT:
        return rng.choice(SENTENCES + WORDS)
    if rng.random() < 0.05:
        return rng.choice(LONG_KEYWORD)
    if rng.random() < 0.1:
        return rng.choice([200, 2.5, True, False])  # JSON numbers and booleans indexed as keyword text
    return rng.choice(WORDS + SENTENCES[:3])


def _document(rng: random.Random) -> dict[str, Any]:
    fields = rng.sample(KEYWORD + TEXT + LONG + DATE + IP + BOOLEAN + UNMAPPED, rng.randint(2, 8))
    values: dict[str, Any] = {name: _value(rng, name) for name in fields}
    if rng.random() < 0.3:  # strings only: see DYNAMIC
        words = [w for w in WORDS if w != "2026-03-01"]
        values[DYNAMIC] = rng.choice([rng.choice(words), [rng.choice(words), rng.choice(words)], None, ""])
    if rng.random() < 0.3:
        values[FLATTENED] = rng.choice([{"path": "/var/run/docker.sock", "type": "Socket"}, {"path": "/etc"},
                                        {"path": ["/a", "/b"], "extra": {"deep": "Directory"}}])
    doc: dict[str, Any] = {}
    for name, value in values.items():
        _put(rng, doc, name.split("."), value)
    if rng.random() < 0.15:
        _split_into_array(rng, doc)
    return doc


def _put(rng: random.Random, node: dict[str, Any], parts: list[str], value: Any) -> None:
    """Set a dotted path, sometimes as one dotted key (``{"a.b": v}``): ES reads both alike."""
    if len(parts) > 1 and rng.random() < 0.15:
        cut = rng.randint(2, len(parts))
        parts = [".".join(parts[:cut]), *parts[cut:]]
    head, rest = parts[0], parts[1:]
    if not rest:
        node[head] = value
        return
    child = node.get(head)
    if not isinstance(child, dict):
        child = node[head] = {}
    _put(rng, child, rest, value)


def _split_into_array(rng: random.Random, doc: dict[str, Any]) -> None:
    """Turn one object with several members into an array of objects sharing them out."""
    candidates = [(parent, key) for parent, key, value in _objects(doc)
                  if isinstance(value, dict) and len(value) > 1]
    if not candidates:
        return
    parent, key = rng.choice(candidates)
    members = list(parent[key].items())
    cut = rng.randint(1, len(members) - 1)
    parent[key] = [dict(members[:cut]), dict(members[cut:])]


def _objects(node: dict[str, Any]) -> list[tuple[dict[str, Any], str, Any]]:
    found = []
    for key, value in node.items():
        found.append((node, key, value))
        if isinstance(value, dict):
            found += _objects(value)
    return found


# --------------------------------------------------------------------------- queries


def _escape_unquoted(text: str) -> str:
    escaped = "".join("\\" + c if c in '\\():<>"*{}' else c for c in text)
    if escaped[-3:].lower() == "not":  # "not" before a space is the keyword, even inside a literal
        escaped = escaped[:-3] + "\\" + escaped[-3:]
    return escaped


def _literal(rng: random.Random, value: Any, wildcard: bool = False) -> str:
    """``value`` as a KQL literal: quoted, or unquoted with escapes; ``wildcard`` adds an unescaped ``*``."""
    text = value if isinstance(value, str) else json.dumps(value)
    if wildcard:  # an unquoted literal cannot hold a plain space; keep the first word
        text = (text.split() or [""])[0][:WILDCARD_MAX]
        cut = rng.randint(0, len(text))
        head, tail = text[:cut], text[cut:]
        if rng.random() < 0.5:
            tail = ""
        return _escape_unquoted(head) + "*" + _escape_unquoted(tail) if (head or tail) else "*"
    keyword = text.lower() in ("or", "and", "not", "null", "true", "false") and not isinstance(value, bool)
    needs_quotes = not text or text != text.strip() or any(c in text for c in " \t\n\u00a0") or keyword
    if needs_quotes or rng.random() < 0.4:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return _escape_unquoted(text)


def _field_value(rng: random.Random, name: str) -> Any:
    """A value to query ``name`` with: mostly one documents hold, else a query-only form."""
    if rng.random() < 0.2 and name in DATE:
        return rng.choice(DATE_MATH)
    if rng.random() < 0.2 and name in IP:
        return rng.choice(CIDRS)
    if rng.random() < 0.15 and name not in DATE + LONG:  # a case or analysis variant; see WELL_FORMED
        value = _scalar(rng, name)
        return str(value).upper() if rng.random() < 0.5 else str(value).lower()
    return _scalar(rng, name)


def _leaf(rng: random.Random) -> Leaf:
    kind = rng.random()
    name = rng.choice(KEYWORD + TEXT + MULTI_FIELD + LONG + DATE + IP + BOOLEAN + UNMAPPED + [DYNAMIC])
    if kind < 0.1:
        return Leaf(f"{name}:*")
    if kind < 0.15:
        pattern, like = rng.choice(FIELD_PATTERNS)
        return Leaf(f"{pattern}:{_literal(rng, _field_value(rng, like))}")
    if kind < 0.2:
        key = rng.choice(["path", "type", "extra.deep", "missing"])
        value = rng.choice(["/etc", "/var/run/docker.sock", "Socket", "Directory", "/a", "/b", "socket"])
        return Leaf(f"{FLATTENED}.{key}:{_literal(rng, value, wildcard=rng.random() < 0.3)}")
    if kind < 0.35 and name in LONG + DATE + IP + KEYWORD:
        op = rng.choice(["<", "<=", ">", ">="])
        return Leaf(f"{name} {op} {_literal(rng, _field_value(rng, name))}")
    if kind < 0.45:
        values = [_literal(rng, _field_value(rng, name), wildcard=rng.random() < 0.2)
                  for _ in range(rng.randint(2, 3))]
        joined = rng.choice([" or ", " and "]).join(values)
        return Leaf(f"{name}:({'not ' if rng.random() < 0.2 else ''}{joined})")
    wildcard = name not in LONG + DATE + IP + BOOLEAN and rng.random() < 0.25
    return Leaf(f"{name}:{_literal(rng, _field_value(rng, name), wildcard)}")


def _query(rng: random.Random, depth: int = 0) -> Query:
    if depth >= 3 or rng.random() < 0.4:
        return _leaf(rng)
    kind = rng.choice(["and", "or", "not"])
    if kind == "not":
        return Op("not", (_query(rng, depth + 1),))
    return Op(kind, tuple(_query(rng, depth + 1) for _ in range(rng.randint(2, 3))))


# --------------------------------------------------------------------------- the two engines

LOCAL_NOW = datetime.now(UTC)


def local_hits(mapping: IndexMapping, query: Query, docs: dict[str, dict[str, Any]]) -> frozenset[str] | str:
    """The local hits; the query compiled again with its operands ordered on a sample of the
    documents (as the local engine's KQL executor does on large inputs) must find the same."""
    try:
        dsl = to_dsl(kql(query), mapping)
        matches = compile_query(dsl, mapping, LOCAL_NOW)
        hits = frozenset(doc_id for doc_id, source in docs.items() if matches(source))
    except DacError:
        return ERROR
    ordered = compile_query(dsl, mapping, LOCAL_NOW, sample=list(docs.values())[:20])
    reordered = frozenset(doc_id for doc_id, source in docs.items() if ordered(source))
    assert reordered == hits, f"a sample changed the hits of {kql(query)}"
    return hits


def es_hits(es: Connection, index: str, dsls: list[dict[str, Any]], size: int) -> list[frozenset[str] | str]:
    body: list[dict[str, Any]] = []
    for dsl in dsls:
        body += [{"index": index}, {"query": dsl, "size": size, "_source": False, "sort": ["_doc"]}]
    answers = es.client.msearch(searches=body)["responses"]
    return [ERROR if "error" in a else frozenset(h["_id"] for h in a["hits"]["hits"]) for a in answers]


def fails_unpruned(es: Connection, wide_index: str, dsl: dict[str, Any]) -> bool:
    """Whether ES fails the query where its rewrite cannot prune any date range.

    Known divergence, not followed locally: ES rewrites a range on a date field that no value in
    the shard falls in to match_none (RangeQueryBuilder#doRewrite via DateFieldType#isFieldWithinQuery),
    and a bool whose required clause did so, or whose should clauses all did, to match_none
    (BoolQueryBuilder#doRewrite) before any clause is built; a clause that would fail (a wildcard on
    an ip field) then never runs, and the search succeeds. Whether a query fails therefore depends
    on each shard's data; the local engine reports the failing clause. ``wide_index`` holds the
    earliest and latest dates ES takes in every date field, so nothing is pruned there: a query
    that fails there but not on a corpus is this divergence, not a bug.
    """
    answer = es.client.indices.validate_query(index=wide_index, query=dsl, rewrite=True)
    return not answer.get("valid")


WIDE_DATES = ("0001-01-01T00:00:00.000Z", "9999-12-31T23:59:59.999Z")


def wide_documents(mapping: IndexMapping) -> dict[str, dict[str, Any]]:
    """Two documents holding the earliest and the latest date in every date field."""
    docs: dict[str, dict[str, Any]] = {"lo": {}, "hi": {}}
    for spec in mapping.fields.values():
        if spec.type in ("date", "date_nanos"):
            for doc, value in zip(docs.values(), WIDE_DATES, strict=True):
                node = doc
                *parents, leaf = spec.name.split(".")
                for part in parents:
                    node = node.setdefault(part, {})
                node[leaf] = value
    return docs


@dataclass
class Corpus:
    index: str
    docs: dict[str, dict[str, Any]]
    rejected: int = 0


@dataclass
class Disagreement:
    query: Query
    document: dict[str, Any]
    local: bool | str
    remote: bool | str
    cases: int = 0
    notes: list[str] = field(default_factory=list)


def create_index(es: Connection, mapping_body: dict[str, Any], name: str) -> str:
    es.client.indices.create(index=name, mappings=mapping_body,
                             settings={"number_of_shards": 1, "number_of_replicas": 0})
    return name


def load_corpus(es: Connection, index: str, docs: dict[str, dict[str, Any]]) -> Corpus:
    """Index the documents; those ES rejects (a malformed long, an object where a value goes) leave."""
    body: list[dict[str, Any]] = []
    for doc_id, source in docs.items():
        body += [{"index": {"_index": index, "_id": doc_id}}, source]
    answer = es.client.bulk(operations=body, refresh=True)
    rejected = {item["index"]["_id"] for item in answer["items"] if item["index"].get("error")}
    return Corpus(index, {k: v for k, v in docs.items() if k not in rejected}, len(rejected))


# --------------------------------------------------------------------------- shrinking


def _one_doc_outcome(es: Connection, scratch: str, mapping: IndexMapping, query: Query,
                     doc: dict[str, Any]) -> tuple[bool | str, bool | str] | None:
    """(local, remote) for one document in the scratch index; None if ES rejects the document."""
    try:  # always id "d": each candidate replaces the last
        es.client.index(index=scratch, id="d", document=doc, refresh=True)
    except Exception:
        return None
    local = local_hits(mapping, query, {"d": doc})
    try:
        dsl = to_dsl(kql(query), mapping)
    except DacError:
        return None
    [remote] = es_hits(es, scratch, [dsl], 10)
    return (local if local == ERROR else "d" in local), (remote if remote == ERROR else "d" in remote)


def _query_candidates(query: Query) -> list[Query]:
    if isinstance(query, Leaf):
        return []
    kids = query.children
    found: list[Query] = list(kids)
    if query.kind != "not" and len(kids) > 2:
        found += [Op(query.kind, (*kids[:i], *kids[i + 1:])) for i in range(len(kids))]
    for i, child in enumerate(kids):
        found += [Op(query.kind, (*kids[:i], c, *kids[i + 1:])) for c in _query_candidates(child)]
    return found


def _doc_candidates(doc: Any) -> list[Any]:
    if isinstance(doc, dict):
        found: list[Any] = [{k: v for k, v in doc.items() if k != key} for key in doc]
        for key, value in doc.items():
            found += [{**doc, key: c} for c in _doc_candidates(value)]
        return found
    if isinstance(doc, list):
        found = [doc[:i] + doc[i + 1:] for i in range(len(doc))]
        found += [item for item in doc if not isinstance(item, list)] if len(doc) == 1 else []
        for i, item in enumerate(doc):
            found += [[*doc[:i], c, *doc[i + 1:]] for c in _doc_candidates(item)]
        return found
    return []


def shrink(es: Connection, scratch: str, mapping: IndexMapping, query: Query,
           doc: dict[str, Any]) -> Disagreement:
    """Greedy: keep any smaller query or document that still disagrees, until none does."""
    outcome = _one_doc_outcome(es, scratch, mapping, query, doc)
    if outcome is None or outcome[0] == outcome[1]:  # disagrees only inside its corpus: report as is
        return Disagreement(query, doc, "?", "?", notes=["did not reproduce on a one-document index"])
    budget = 300
    improved = True
    while improved and budget > 0:
        improved = False
        for candidate_query in _query_candidates(query):
            budget -= 1
            found = _one_doc_outcome(es, scratch, mapping, candidate_query, doc)
            if found is not None and found[0] != found[1]:
                query, outcome, improved = candidate_query, found, True
                break
        if improved:
            continue
        for candidate_doc in _doc_candidates(doc):
            budget -= 1
            found = _one_doc_outcome(es, scratch, mapping, query, candidate_doc)
            if found is not None and found[0] != found[1]:
                doc, outcome, improved = candidate_doc, found, True
                break
    return Disagreement(query, doc, outcome[0], outcome[1])


# --------------------------------------------------------------------------- the test


@pytest.fixture
def fuzz_indices(es: Connection) -> Callable[[str], str]:
    created: list[str] = []
    mapping_body = server_mappings(load_mapping("kubernetes.audit_logs"), es.capabilities.modules)
    run = f"dac-kqlfuzz-{secrets.token_hex(4)}"

    def make(suffix: str) -> str:
        created.append(create_index(es, mapping_body, f"{run}-{suffix}"))
        return created[-1]

    yield make
    if created:
        es.client.options(ignore_status=404).indices.delete(index=",".join(created))


def test_local_kql_agrees_with_elasticsearch(es: Connection, fuzz_indices: Callable[[str], str]) -> None:
    started = time.perf_counter()
    served = server_mappings(load_mapping("kubernetes.audit_logs"), es.capabilities.modules)
    mapping = IndexMapping("kubernetes.audit_logs", served)
    rng = random.Random(SEED)
    wide = load_corpus(es, fuzz_indices("wide"), wide_documents(mapping))
    assert not wide.rejected
    cases = agreed_errors = rejected = index_rewrites = 0
    found: list[tuple[Query, str, frozenset[str] | str, frozenset[str] | str, Corpus]] = []
    for number in range(CORPORA):
        corpus = load_corpus(es, fuzz_indices(f"c{number}"),
                             {str(i): _document(rng) for i in range(DOCUMENTS)})
        rejected += corpus.rejected
        queries = [_query(rng) for _ in range(QUERIES)]
        for start in range(0, len(queries), MSEARCH_BATCH):
            batch = queries[start:start + MSEARCH_BATCH]
            dsls = []
            for query in batch:
                try:
                    dsls.append(to_dsl(kql(query), mapping))
                except DacError as exc:  # the generator writes only valid KQL
                    raise AssertionError(f"generated invalid KQL {kql(query)!r}: {exc}") from None
            remote = es_hits(es, corpus.index, dsls, DOCUMENTS)
            for query, dsl, answer in zip(batch, dsls, remote, strict=True):
                cases += 1
                local = local_hits(mapping, query, corpus.docs)
                if local == ERROR and answer == ERROR:
                    agreed_errors += 1
                elif local == ERROR and answer != ERROR and fails_unpruned(es, wide.index, dsl):
                    index_rewrites += 1
                elif local != answer:
                    found.append((query, kql(query), local, answer, corpus))
    elapsed = time.perf_counter() - started
    summary = (f"KQL differential: {cases} query x corpus cases ({CORPORA} corpora of {DOCUMENTS} documents, "
               f"{rejected} refused by Elasticsearch; {agreed_errors} queries failed on both sides, "
               f"{index_rewrites} failed locally and on ES without the corpus's date-range pruning), "
               f"seed {SEED}, {elapsed:.1f} s, {len(found)} disagreements")
    REPORT_LINES.append(summary)
    if not found:
        return
    scratch = fuzz_indices("shrink")
    reports: list[str] = []
    seen: set[str] = set()
    for query, text, local, remote, corpus in found[:12]:
        differing = sorted(set(corpus.docs) if ERROR in (local, remote) else local ^ remote)  # type: ignore[operator]
        shrunk = shrink(es, scratch, mapping, query, corpus.docs[differing[0]])
        if kql(shrunk.query) in seen or len(reports) >= 5:
            continue
        seen.add(kql(shrunk.query))
        text = text if len(text) <= 300 else text[:297] + "..."
        reports.append(
            f"query: {kql(shrunk.query)}\n  document: {json.dumps(shrunk.document, ensure_ascii=False)}\n"
            f"  local matches: {shrunk.local}, Elasticsearch matches: {shrunk.remote} "
            f"{' '.join(shrunk.notes)}\n"
            f"  DSL: {json.dumps(to_dsl(kql(shrunk.query), mapping))}\n  (found as: {text})"
        )
    pytest.fail(f"{len(found)} of {cases} KQL cases disagree with Elasticsearch (seed {SEED}); the first "
                "distinct ones, shrunk:\n" + "\n".join(reports), pytrace=False)
