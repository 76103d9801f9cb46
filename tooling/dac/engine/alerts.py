"""Alert documents with the shape Kibana's detection engine writes.

One alert per matching source document (one per result row for ES|QL), with
the source fields copied, the source ``event`` object moved under
``kibana.alert.original_event.*`` and ``event.kind: signal``, and the
``kibana.alert.*`` fields Kibana sets. Both engines build alerts here, so
their outputs compare field for field.

Kibana references (security_solution server/lib/detection_engine/rule_types):
``factories/utils/build_alert.ts`` (fields), ``utils/utils.ts`` ``generateId``
(the alert uuid: SHA-256 of source index, source id, source version, rule id),
``utils/reason_formatters.ts`` (the reason sentence).
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime
from typing import Any

from dac.documents import SourceDocument, values_at
from dac.engine.base import KibanaRule

# Kibana's rule saved-object id is random; ours is derived from rule_id so runs compare.
RULE_UUID_NAMESPACE = uuid.UUID("6f1c2a8e-2b87-4c35-9a49-3f0f2cf4a8d1")
SPACE_ID = "default"
RULE_TYPE_IDS = {
    "query": "siem.queryRule",
    "eql": "siem.eqlRule",
    "esql": "siem.esqlRule",
    "threshold": "siem.thresholdRule",
    "new_terms": "siem.newTermsRule",
}


def rule_uuid(rule: KibanaRule) -> str:
    return str(uuid.uuid5(RULE_UUID_NAMESPACE, rule["rule_id"]))


def alert_uuid(document: SourceDocument, rule: KibanaRule, source_version: int = 1) -> str:
    """Kibana's ``generateId(index, id, version, ruleId)``: the same hit never alerts twice."""
    key = f"{document.index}{document.id}{source_version}{rule_uuid(rule)}"
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def build_alert(
    rule: KibanaRule,
    document: SourceDocument,
    now: datetime,
    row: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The alert for ``document``; ``row`` is an ES|QL result row merged over the source."""
    source = dict(document.source)
    original_event = source.pop("event", None)
    alert: dict[str, Any] = source
    if row:
        alert.update({k: v for k, v in row.items() if not k.startswith("_")})
    if isinstance(original_event, dict):
        for key, value in _flatten(original_event, "kibana.alert.original_event").items():
            alert[key] = value
    first_timestamp = next(iter(values_at(document.source, "@timestamp")), None)
    alert.update(
        {
            "@timestamp": now.isoformat().replace("+00:00", "Z"),
            "event.kind": "signal",
            "kibana.alert.original_time": first_timestamp,
            "kibana.alert.ancestors": [
                {"id": document.id, "type": "event", "index": document.index, "depth": 0}
            ],
            "kibana.alert.depth": 1,
            "kibana.alert.reason": reason(rule, document.source),
            "kibana.alert.rule.rule_id": rule["rule_id"],
            "kibana.alert.rule.name": rule["name"],
            "kibana.alert.rule.uuid": rule_uuid(rule),
            "kibana.alert.rule.type": rule["type"],
            "kibana.alert.rule.rule_type_id": RULE_TYPE_IDS[rule["type"]],
            "kibana.alert.rule.version": rule.get("version"),
            "kibana.alert.rule.severity": rule["severity"],
            "kibana.alert.rule.risk_score": rule["risk_score"],
            "kibana.alert.severity": rule["severity"],
            "kibana.alert.risk_score": rule["risk_score"],
            "kibana.alert.status": "active",
            "kibana.alert.workflow_status": "open",
            "kibana.alert.uuid": alert_uuid(document, rule),
            "kibana.space_ids": [SPACE_ID],
        }
    )
    return alert


def reason(rule: KibanaRule, source: dict[str, Any]) -> str:
    """Kibana's common reason sentence (reason_formatters.ts ``buildReasonMessageUtil``)."""

    def value(field: str) -> str | None:
        found = [str(v) for v in values_at(source, field)]
        if not found or found == ["-"]:
            return None
        return ", ".join(found)

    category = value("event.category")
    process, parent, file = value("process.name"), value("process.parent.name"), value("file.name")
    src_ip, src_port = value("source.ip"), value("source.port")
    dst_ip, dst_port = value("destination.ip"), value("destination.port")
    user, host = value("user.name"), value("host.name")
    text = f"{category} event" if category else "event"
    if any((process, parent, file, src_ip, src_port, dst_ip, dst_port)):
        text += " with"
    text += f" process {process}," if process else ""
    text += f" parent process {parent}," if parent else ""
    text += f" file {file}," if file else ""
    text += f" source {src_ip}" if src_ip else ""
    text += f":{src_port}," if src_port else ""
    text += f" destination {dst_ip}" if dst_ip else ""
    text += f":{dst_port}," if dst_port else ""
    text += f" by {user}" if user else ""
    text += f" on {host}" if host else ""
    return f"{text} created {rule['severity']} alert {rule['name']}."


def _flatten(value: dict[str, Any], prefix: str) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, inner in value.items():
        path = f"{prefix}.{key}"
        if isinstance(inner, dict):
            flat.update(_flatten(inner, path))
        else:
            flat[path] = inner
    return flat
