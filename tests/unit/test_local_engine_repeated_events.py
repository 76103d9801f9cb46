"""Repeated events do not change what the rules alert on (issue 10: "8 and 15 became 5 and 5").

An event's ``_id`` derives from its content (``dac.events.reader.document_id``), so a repeated
line is the same document, and Elasticsearch holds it once: a data stream refuses the second
``create`` with that ``_id`` (409), which is what the Elasticsearch engine's bulk load does.
Kibana's ES|QL rule then sees one row per document: it runs ``<query> | limit max_signals+1``
(security_solution ``rule_types/esql/build_esql_search_request.ts``) and names each alert by
``objectHash([_id, _version, _index, space:rule])`` (``rule_types/esql/utils/generate_alert_id.ts``).

The local engine used to run the query over every copy: the copies filled ES|QL's implicit
``LIMIT 1000`` before alerts were de-duplicated by id, so 200 copies of 50 events left 5 distinct
documents per rule. It now keeps one document per ``(index, _id)`` before any rule runs.
"""

from __future__ import annotations

from dac.compile import CompiledRule
from dac.engine.local import LocalEngine
from dac.events.generate import generate
from dac.events.reader import to_source_document

COPIES = 200


def _alert_ids(rules: list[CompiledRule], documents: list) -> dict[str, list[str]]:
    outcomes = LocalEngine().run([r.with_version(1) for r in rules], documents)
    return {o.rule_id: sorted(a["kibana.alert.uuid"] for a in o.alerts) for o in outcomes}


def test_repeating_every_event_keeps_every_rules_alerts(repository_rules: list[CompiledRule]) -> None:
    documents = [to_source_document(event, "k8s-audit") for event in generate("csr-attacks", 50, 3)]
    once = _alert_ids(repository_rules, documents)
    esql = [r for r in repository_rules if r.kibana["type"] == "esql"]
    assert esql and all(once[r.rule.rule_id] for r in esql)
    # Each ES|QL rule matches enough copies to pass the implicit LIMIT 1000 many times over.
    assert all(len(once[r.rule.rule_id]) * COPIES > 1000 for r in esql)

    repeated = [document for document in documents for _ in range(COPIES)]
    assert _alert_ids(repository_rules, repeated) == once
    assert _alert_ids(repository_rules, documents + documents[::-1]) == once
