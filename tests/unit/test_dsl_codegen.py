"""The generated evaluation code (dac.query.codegen) against a plain reference, on odd documents.

compile_query writes each query as one generated function: its fields read from the object they
all sit under (``kubernetes.audit``), its keyword tests written inline, each with a fallback to the
general walk for any document that is not plain nested objects. A reference evaluator built on
:func:`dac.documents.values_at` (Elasticsearch's reading of ``_source``: every dotted spelling of a
path, arrays flattened, nulls dropped) must agree on documents that hit every fallback: dotted keys
at each level, arrays of objects, nulls, a string or another Mapping where an object goes, numbers,
booleans and lists where a keyword goes. The KQL differential test checks the same code against a
real node.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import pytest

from dac.documents import values_at
from dac.mapping import IndexMapping, java_length, load_mapping
from dac.query import codegen
from dac.query.dsl import compile_query
from dac.query.kql import to_dsl

MAPPING = load_mapping("kubernetes.audit_logs")
KEYWORDS = ["kubernetes.audit.verb", "kubernetes.audit.objectRef.resource",
            "kubernetes.audit.objectRef.subresource",
            "kubernetes.audit.user.username", "kubernetes.audit.user.groups",
            "kubernetes.audit.annotations.authorization_k8s_io/decision",
            "kubernetes.audit.protoPayload.methodName",
            "kubernetes.audit.protoPayload.authenticationInfo.principalEmail"]
WORDS = ["create", "get", "allow", "csr", "system:node:a", "system:bootstrap:x", "alice", "", "Create"]
IGNORE_ABOVE = 1024  # every field above: keyword, ignore_above 1024 (the mapping file)
TOO_LONG = "x" * (IGNORE_ABOVE + 1)


# --------------------------------------------------------------------------- the reference


def keyword_values(doc: Mapping[str, Any], field: str) -> list[str]:
    """What a keyword field indexes: scalars as text, objects skipped, values past ignore_above dropped."""
    out = []
    for value in values_at(doc, field):
        if isinstance(value, Mapping):
            continue
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        if java_length(text) <= IGNORE_ABOVE:
            out.append(text)
    return out


def reference(query: tuple[Any, ...], doc: Mapping[str, Any]) -> bool:
    kind = query[0]
    if kind == "and":
        return all(reference(q, doc) for q in query[1])
    if kind == "or":
        return any(reference(q, doc) for q in query[1])
    if kind == "not":
        return not reference(query[1], doc)
    values = keyword_values(doc, query[1])
    if kind == "is":
        return any(v in query[2] for v in values)
    if kind == "prefix":
        return any(v.startswith(query[2]) for v in values)
    assert kind == "exists"
    return bool(values)


def kql(query: tuple[Any, ...]) -> str:
    kind = query[0]
    if kind in ("and", "or"):
        return "(" + f" {kind} ".join(kql(q) for q in query[1]) + ")"
    if kind == "not":
        return f"not ({kql(query[1])})"
    if kind == "is":
        return f"{query[1]}:(" + " or ".join(f'"{v}"' for v in query[2]) + ")"
    if kind == "prefix":
        return f"{query[1]}:" + query[2].replace(":", "\\:") + "*"
    return f"{query[1]}:*"


def random_query(rng: random.Random, depth: int = 0) -> tuple[Any, ...]:
    if depth >= 3 or rng.random() < 0.35:
        field = rng.choice(KEYWORDS)
        roll = rng.random()
        if roll < 0.15:
            return ("exists", field)
        if roll < 0.3:
            return ("prefix", field, rng.choice(["system", "system:node", "a", "cre"]))
        return ("is", field, tuple(rng.sample(WORDS[:-2], rng.randint(1, 3))))
    kind = rng.choice(["and", "or", "not"])
    if kind == "not":
        return ("not", random_query(rng, depth + 1))
    return (kind, tuple(random_query(rng, depth + 1) for _ in range(rng.randint(2, 3))))


# --------------------------------------------------------------------------- odd documents


def random_value(rng: random.Random) -> Any:
    roll = rng.random()
    if roll < 0.5:
        return rng.choice(WORDS)
    if roll < 0.6:
        return None
    if roll < 0.75:
        return [rng.choice([*WORDS, None, 7]) for _ in range(rng.randint(0, 3))]
    if roll < 0.85:
        return rng.choice([200, 2.5, True, False])
    if roll < 0.9:
        return TOO_LONG
    return {"nested": "object"}


def put(rng: random.Random, node: dict[str, Any], parts: list[str], value: Any) -> None:
    """Set a path, sometimes as one dotted key, sometimes inside an array of objects."""
    if len(parts) > 1 and rng.random() < 0.08:
        cut = rng.randint(2, len(parts))
        parts = [".".join(parts[:cut]), *parts[cut:]]
    head, rest = parts[0], parts[1:]
    if not rest:
        node[head] = value
        return
    child = node.get(head)
    if isinstance(child, list) and child and isinstance(child[-1], dict):
        child = child[-1]
    elif not isinstance(child, dict):
        child = {}
        node[head] = [child, {}] if rng.random() < 0.04 else child
    put(rng, child, rest, value)


def spoil(rng: random.Random, doc: dict[str, Any]) -> dict[str, Any]:
    """Now and then a string, a null or a read-only Mapping where an object goes."""
    audit = doc.get("kubernetes", {}).get("audit") if isinstance(doc.get("kubernetes"), dict) else None
    roll = rng.random()
    if roll < 0.03:
        doc["kubernetes"] = rng.choice(["text", None, 5])
    elif roll < 0.06 and isinstance(audit, dict):
        doc["kubernetes"]["audit"] = MappingProxyType(audit)
    elif roll < 0.1 and isinstance(audit, dict) and audit:
        audit[rng.choice(list(audit))] = rng.choice(["text", None, [None]])
    elif roll < 0.12:
        doc = {"kubernetes": [doc.get("kubernetes"), {"audit": {"verb": "create"}}]}
    return doc


def random_document(rng: random.Random) -> dict[str, Any]:
    doc: dict[str, Any] = {"@timestamp": "2026-01-01T00:00:00Z"}
    for field in rng.sample(KEYWORDS, rng.randint(1, len(KEYWORDS))):
        put(rng, doc, field.split("."), random_value(rng))
    return spoil(rng, doc)


# --------------------------------------------------------------------------- the tests


def test_generated_code_agrees_with_the_reference_on_odd_documents() -> None:
    rng = random.Random(20261127)
    docs = [random_document(rng) for _ in range(250)]
    for _ in range(150):
        query = random_query(rng)
        matches = compile_query(to_dsl(kql(query), MAPPING), MAPPING)
        for doc in docs:
            assert matches(doc) == reference(query, doc), (kql(query), doc)


def test_fields_under_one_object_are_read_from_it() -> None:
    """The rule shape: every field under kubernetes.audit, one generated function walking to it."""
    query = ('kubernetes.audit.verb:"create" and (kubernetes.audit.objectRef.resource:"csr" '
             'or kubernetes.audit.protoPayload.methodName:("a" or "b"))')
    matches = compile_query(to_dsl(query, MAPPING), MAPPING)
    assert matches.__code__.co_filename == "<dac.query.codegen>"
    plain = {"kubernetes": {"audit": {"verb": "create", "objectRef": {"resource": "csr"}}}}
    assert matches(plain)
    assert matches({"kubernetes.audit": {"verb": "create", "protoPayload": {"methodName": "b"}}})
    assert matches({"kubernetes": {"audit.objectRef.resource": "csr", "audit": {"verb": "create"}}})
    split = [{"audit": {"verb": "create"}}, {"audit": {"objectRef": {"resource": "csr"}}}]
    assert matches({"kubernetes": split})
    csr = {"objectRef": {"resource": "csr"}}
    assert matches({"kubernetes.audit.verb": "create", "kubernetes": {"audit": csr}})
    assert matches({"kubernetes": {"audit.verb": "create", "audit.objectRef": {"resource": "csr"}}})
    assert not matches({"kubernetes": {"audit": {"verb": "create", "objectRef": {"resource": "CSR"}}}})
    assert not matches({"kubernetes": "create"})


@pytest.mark.parametrize("name", ['we"ird', "it's", "back\\slash", "new\nline", "é", "a b", "x:y'), print(1"])
def test_odd_field_names_reach_the_generated_code_as_values_only(name: str) -> None:
    mapping = IndexMapping("odd", {"properties": {"outer": {"properties": {
        name: {"type": "keyword"}, "other": {"type": "keyword"}}}}})
    dsl = {"bool": {"filter": [{"term": {f"outer.{name}": {"value": "v'\"\\"}}},
                               {"bool": {"must_not": {"term": {"outer.other": {"value": "x"}}}}}]}}
    matches = compile_query(dsl, mapping)
    assert matches({"outer": {name: "v'\"\\"}})
    assert not matches({"outer": {name: "v'\"\\", "other": "x"}})
    assert not matches({"outer": {name: "v"}})


@pytest.mark.parametrize("source", ["def make():\n    return 'text'", "def make():\n    return b\n# x",
                                    "def make():\n    return {}", "def make():\n    return a\\\nb"])
def test_generated_source_with_anything_but_own_tokens_is_refused(source: str) -> None:
    with pytest.raises(AssertionError, match="own tokens"):
        codegen._define(source, ["make"])


def test_deep_trees_keep_their_closures() -> None:
    query = "kubernetes.audit.verb:a"
    for _ in range(codegen.MAX_DEPTH + 5):
        query = f"not ({query} or kubernetes.audit.user.username:b)"
    matches = compile_query(to_dsl(query, MAPPING), MAPPING)
    doc = {"kubernetes": {"audit": {"verb": "a"}}}
    expected = (codegen.MAX_DEPTH + 5) % 2 == 0
    assert matches(doc) is expected


def test_a_sample_orders_the_operands_and_changes_no_answer() -> None:
    rng = random.Random(7)
    docs = [random_document(rng) for _ in range(150)]
    for _ in range(60):
        query = random_query(rng)
        dsl = to_dsl(kql(query), MAPPING)
        tuned = compile_query(dsl, MAPPING, sample=docs[:40])
        for doc in docs:
            assert tuned(doc) == reference(query, doc), (kql(query), doc)


def test_reorder_starts_an_and_with_what_fails_most_and_an_or_with_what_matches_most() -> None:
    def leaf(name: str) -> Any:
        return lambda source: source.get(name) == "yes"

    common, rare, never = leaf("common"), leaf("rare"), leaf("never")
    both = codegen.combination(lambda s: common(s) and rare(s), "and", [common, rare])
    either = codegen.combination(lambda s: never(s) or common(s), "or", [never, common])
    assert codegen.reorder(both, [0.9, 0.01]).combines[1] == (rare, common)
    assert codegen.reorder(either, [0.0, 0.9]).combines[1] == (common, never)
    assert codegen.reorder(both, [0.5, 0.5]).combines[1] == (common, rare)  # a tie keeps the query's order
    sample = [{"common": "yes"}, {"common": "yes", "rare": "yes"}, {}]
    assert codegen.leaf_rates(both, sample) == [2 / 3, 1 / 3]


def test_the_kql_executor_tuned_on_its_documents_finds_the_same_hits(monkeypatch: pytest.MonkeyPatch) -> None:
    from dac.engine import local
    from dac.events.generate import generate
    from dac.events.reader import to_source_document
    from tests.repository import compile_repository_rules

    rules = [c.with_version(1) for c in compile_repository_rules()]
    rule = next(r for r in rules if r["language"] == "kuery")
    docs = [to_source_document(e, "k8s-audit")
            for scenario in ("mixed", "csr-attacks", "csr-benign") for e in generate(scenario, 700, seed=11)]
    plain, _ = local.compile_rule(rule)
    compiled = plain.matches
    expected = [d.id for d, _ in plain(docs)]
    assert plain.matches is compiled  # 2,100 documents: too few to be worth tuning
    assert expected
    monkeypatch.setattr(local._KqlExecutor, "TUNE_AFTER", 1_000)
    monkeypatch.setattr(local._KqlExecutor, "TUNING_SAMPLE", 100)
    for batch in (512, len(docs)):
        tuned, _ = local.compile_rule(rule)
        untuned = tuned.matches
        hits = [d.id for start in range(0, len(docs), batch) for d, _ in tuned(docs[start:start + batch])]
        assert tuned.matches is not untuned  # compiled again, on a sample
        assert hits == expected
