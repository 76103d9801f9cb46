"""The Elasticsearch side on a real server: it answers, accepts the shipped mapping and
behaves as the mapping file says, and runs a KQL rule end to end through ElasticsearchEngine."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from dac.documents import SourceDocument
from dac.engine.elasticsearch import ElasticsearchEngine, server_mappings
from dac.engine.es_connection import Connection
from dac.events.reader import to_source_document
from dac.mapping import load_mapping

MAPPING = load_mapping("kubernetes.audit_logs")
CSR_REQUEST = "kubernetes.audit.requestObject.spec.request"
GROUPS = "kubernetes.audit.user.groups"


def audit_event(n: int, verb: str, *, user: str = "alice", groups: list[str] | None = None,
                request: str | None = None) -> dict:
    """A raw ``audit.k8s.io/v1`` Event on certificatesigningrequests, ``n`` seconds after 12:00."""
    stamp = f"2026-03-01T12:00:{n:02d}.000000Z"
    event = {
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Request",
        "auditID": f"00000000-0000-4000-8000-{n:012d}", "stage": "ResponseComplete",
        "requestURI": "/apis/certificates.k8s.io/v1/certificatesigningrequests", "verb": verb,
        "user": {"username": user, "groups": groups or ["system:authenticated"]},
        "sourceIPs": ["10.0.0.7"], "userAgent": "kubectl/v1.33.1",
        "objectRef": {"resource": "certificatesigningrequests", "name": f"csr-{n}",
                      "apiGroup": "certificates.k8s.io", "apiVersion": "v1"},
        "responseStatus": {"metadata": {}, "code": 201 if verb == "create" else 200},
        "requestReceivedTimestamp": stamp, "stageTimestamp": stamp,
        "annotations": {"authorization.k8s.io/decision": "allow"},
    }
    if request is not None:
        event["requestObject"] = {"kind": "CertificateSigningRequest", "spec": {"request": request}}
    return event


def document(event: dict) -> SourceDocument:
    """The event as the Kubernetes integration stores it, with the id `dac` gives it."""
    return to_source_document(event, "k8s-audit")


def test_node_answers_cluster_health(es: Connection) -> None:
    health = es.client.cluster.health()
    assert health["status"] in ("green", "yellow")
    assert health["number_of_nodes"] >= 1
    assert es.description.startswith("Elasticsearch 9.")


@pytest.fixture
def audit_index(es: Connection) -> Iterator[str]:
    """A throwaway index created from the shipped mapping through an index template."""
    name = f"dac-facts-{secrets.token_hex(4)}"
    ack = es.client.indices.put_index_template(
        name=name, index_patterns=[name], priority=1000,
        template={"settings": {"number_of_shards": 1, "number_of_replicas": 0},
                  "mappings": server_mappings(MAPPING, es.capabilities.modules)},
    )
    assert ack["acknowledged"]
    try:
        yield name
    finally:
        es.client.options(ignore_status=404).indices.delete(index=name)
        es.client.options(ignore_status=404).indices.delete_index_template(name=name)


def test_shipped_mapping_is_accepted_and_es_confirms_its_facts(es: Connection, audit_index: str) -> None:
    long_group, edge_group = "g" * 1025, "e" * 1024
    docs = [
        document(audit_event(1, "create", request="LS0tLS1CRUdJTiBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0=")),
        document(audit_event(2, "get", groups=["system:authenticated", long_group, edge_group])),
    ]
    for doc in docs:
        es.client.index(index=audit_index, id=doc.id, document=doc.source)
    es.client.indices.refresh(index=audit_index)

    def hits(query: dict) -> list[str]:
        found = es.client.search(index=audit_index, query=query)["hits"]["hits"]
        return sorted(hit["_id"] for hit in found)

    caps = es.client.field_caps(index=audit_index, fields=[CSR_REQUEST, GROUPS])["fields"]
    # spec.request is in _source but unmapped (dynamic: false): not searchable at all.
    assert MAPPING.field(CSR_REQUEST) is None and CSR_REQUEST not in caps
    assert hits({"exists": {"field": CSR_REQUEST}}) == []
    assert es.client.get(index=audit_index, id=docs[0].id)["_source"] == docs[0].source
    # user.groups is what the mapping file says (keyword, ignore_above 1024) ...
    spec = MAPPING.field(GROUPS)
    assert (spec.type, spec.ignore_above) == ("keyword", 1024)
    assert set(caps[GROUPS]) == {"keyword"} and caps[GROUPS]["keyword"]["searchable"]
    # ... so a value longer than 1024 characters is kept in _source but never matches.
    assert hits({"term": {GROUPS: long_group}}) == []
    assert hits({"term": {GROUPS: edge_group}}) == [docs[1].id]
    assert hits({"term": {GROUPS: "system:authenticated"}}) == sorted(d.id for d in docs)


RULE = {
    "rule_id": "0b9e1b3c-0000-4000-8000-000000000001",
    "name": "Test: CSR created",
    "description": "integration test rule",
    "type": "query",
    "language": "kuery",
    "index": ["logs-kubernetes.audit_logs-*"],
    "query": 'kubernetes.audit.objectRef.resource : "certificatesigningrequests" '
             'and kubernetes.audit.verb : "create"',
    "from": "now-6m",
    "to": "now",
    "max_signals": 100,
    "severity": "low",
    "risk_score": 21,
    "version": 1,
}


def csr_documents() -> list[SourceDocument]:
    verbs = ["create", "get", "create", "list", "create", "create"]
    return [document(audit_event(n, verb, user=f"user{n}")) for n, verb in enumerate(verbs)]


def test_kql_rule_end_to_end(es_engine: ElasticsearchEngine) -> None:
    docs = csr_documents()
    creates = [d.id for d in docs if d.source["kubernetes"]["audit"]["verb"] == "create"]
    other_index = dict(RULE, rule_id="0b9e1b3c-0000-4000-8000-000000000002", index=["logs-other-*"])
    capped = dict(RULE, rule_id="0b9e1b3c-0000-4000-8000-000000000003", max_signals=2)

    outcome, elsewhere, first_two = es_engine.run([RULE, other_index, capped], docs)

    assert outcome.skipped is None
    assert [a["kibana.alert.ancestors"][0]["id"] for a in outcome.alerts] == creates  # @timestamp asc
    alert = outcome.alerts[0]
    assert alert["kibana.alert.rule.rule_id"] == RULE["rule_id"]
    assert alert["kibana.alert.ancestors"][0]["index"] == "logs-kubernetes.audit_logs-default"
    assert alert["kubernetes"]["audit"]["user"]["username"] == "user0"
    assert elsewhere.alerts == []
    assert [a["kibana.alert.ancestors"][0]["id"] for a in first_two.alerts] == creates[:2]


def test_time_window_is_now_minus_from(es_engine: ElasticsearchEngine) -> None:
    docs = csr_documents()
    # The documents are at 12:00:00-12:00:05; a 6-minute window ending 12:06:02 keeps 12:00:02 on.
    now = datetime(2026, 3, 1, 12, 6, 2, tzinfo=UTC)
    [outcome] = es_engine.run([RULE], docs, now=now)
    users = [a["kubernetes"]["audit"]["user"]["username"] for a in outcome.alerts]
    assert users == ["user2", "user4", "user5"]
    assert all(a["@timestamp"].startswith("2026-03-01T12:06:02") for a in outcome.alerts)


def test_run_writes_alerts_and_cleans_up_only_its_own(es: Connection) -> None:
    namespace = f"dac{secrets.token_hex(4)}"
    kept = ElasticsearchEngine(es, namespace=namespace, keep=True)
    [outcome] = kept.run([RULE], csr_documents())
    data = f"logs-kubernetes.audit_logs-default-{namespace}"
    alerts_index = f".alerts-security.alerts-{namespace}"
    try:
        stored = es.client.search(index=alerts_index, size=100)["hits"]["hits"]
        assert sorted(hit["_source"]["kibana.alert.uuid"] for hit in stored) == sorted(
            a["kibana.alert.uuid"] for a in outcome.alerts
        )
        assert es.client.count(index=data)["count"] == 6
    finally:
        target = es.client.options(ignore_status=404)
        if es.capabilities.data_streams:
            target.indices.delete_data_stream(name=data)
        else:
            target.indices.delete(index=data)
        target.indices.delete(index=alerts_index)
        target.indices.delete_index_template(name=data)

    # Without keep, nothing of the run is left behind.
    ElasticsearchEngine(es, namespace=namespace).run([RULE], csr_documents())
    leftovers = es.client.indices.get(index=f"*{namespace}*", expand_wildcards="all")
    assert dict(leftovers) == {}
    templates = es.client.options(ignore_status=404).indices.get_index_template(name=f"*{namespace}*")
    assert templates.get("index_templates", []) == []


def test_rules_the_server_cannot_run_are_skipped_with_the_reason(es: Connection, es_engine) -> None:
    esql = dict(RULE, rule_id="0b9e1b3c-0000-4000-8000-000000000004", type="esql", language="esql",
                query="FROM logs-kubernetes.audit_logs-* METADATA _id, _index | LIMIT 10")
    [outcome] = es_engine.run([esql], csr_documents())
    if es.capabilities.esql:
        assert outcome.skipped is None and len(outcome.alerts) == 6
    else:
        assert outcome.skipped == "server lacks ES|QL" and outcome.alerts == []
