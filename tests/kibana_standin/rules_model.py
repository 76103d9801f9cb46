"""The detection rule object as Kibana 9.x validates, defaults and answers it (no HTTP here).

Sources (elastic/kibana, x-pack/solutions/security/plugins/security_solution/):
- ``server/lib/detection_engine/rule_management/logic/detection_rules_client/mergers/apply_rule_defaults.ts``
  (``RULE_DEFAULTS``, ``setTypeSpecificDefaults``, ``addEcsToRequiredFields``);
- ``.../mergers/apply_rule_update.ts`` (PUT: defaults again, ``enabled``/``version`` kept unless sent);
- ``.../mergers/apply_rule_patch.ts`` (PATCH: merge over the existing rule);
- ``x-pack/platform/plugins/shared/alerting/server/rules_client/lib/increment_revision.ts`` with
  ``fieldsToExcludeFromRevisionUpdates`` (rules_client.ts): ``revision`` goes up when any attribute or
  param other than ``enabled`` and the bookkeeping fields changes;
- ``common/api/detection_engine/model/rule_schema/rule_schemas.schema.yaml`` (the create/update props
  per type, which fields each type requires).
"""

from __future__ import annotations

import uuid
from typing import Any

# apply_rule_defaults.ts RULE_DEFAULTS (DEFAULT_MAX_SIGNALS is 100 in common/constants.ts).
RULE_DEFAULTS: dict[str, Any] = {
    "enabled": False,
    "risk_score_mapping": [],
    "severity_mapping": [],
    "interval": "5m",
    "to": "now",
    "from": "now-6m",
    "exceptions_list": [],
    "false_positives": [],
    "max_signals": 100,
    "actions": [],
    "related_integrations": [],
    "required_fields": [],
    "setup": "",
    "references": [],
    "threat": [],
    "tags": [],
    "author": [],
    "output_index": "",
    "version": 1,
}

# rule_schemas.schema.yaml SharedCreateProps / SharedParams: the fields every rule type takes.
SHARED_FIELDS = frozenset({
    "rule_id", "name", "description", "risk_score", "severity", "enabled", "version", "tags",
    "interval", "from", "to", "actions", "exceptions_list", "author", "false_positives", "references",
    "max_signals", "threat", "setup", "related_integrations", "required_fields", "meta", "namespace",
    "output_index", "throttle", "note", "license", "building_block_type", "rule_name_override",
    "timestamp_override", "timestamp_override_fallback_disabled", "timeline_id", "timeline_title",
    "investigation_fields", "risk_score_mapping", "severity_mapping", "response_actions",
    "alias_purpose", "alias_target_id", "outcome",
})
# rule_schemas.schema.yaml <Type>RuleCreateFields: type-specific fields, required ones separately.
TYPE_FIELDS: dict[str, frozenset[str]] = {
    "query": frozenset({"type", "query", "language", "index", "data_view_id", "filters", "saved_id",
                        "alert_suppression"}),
    "saved_query": frozenset({"type", "query", "language", "index", "data_view_id", "filters", "saved_id",
                              "alert_suppression"}),
    "eql": frozenset({"type", "query", "language", "index", "data_view_id", "filters",
                      "timestamp_field", "event_category_override", "tiebreaker_field",
                      "alert_suppression"}),
    "esql": frozenset({"type", "query", "language", "alert_suppression"}),
    "threshold": frozenset({"type", "query", "language", "index", "data_view_id", "filters", "saved_id",
                            "threshold", "alert_suppression"}),
    "new_terms": frozenset({"type", "query", "language", "index", "data_view_id", "filters",
                            "new_terms_fields", "history_window_start", "alert_suppression"}),
    "threat_match": frozenset({"type", "query", "language", "index", "data_view_id", "filters", "saved_id",
                               "threat_filters", "threat_query", "threat_mapping", "threat_language",
                               "threat_index", "threat_indicator_path", "concurrent_searches",
                               "items_per_search", "alert_suppression"}),
    "machine_learning": frozenset({"type", "anomaly_threshold", "machine_learning_job_id",
                                   "alert_suppression"}),
}
TYPE_REQUIRED: dict[str, tuple[str, ...]] = {
    "query": (),
    "saved_query": ("saved_id",),
    "eql": ("query", "language"),
    "esql": ("query", "language"),
    "threshold": ("query", "threshold"),
    "new_terms": ("query", "new_terms_fields", "history_window_start"),
    "threat_match": ("query", "threat_query", "threat_mapping", "threat_index"),
    "machine_learning": ("anomaly_threshold", "machine_learning_job_id"),
}
# The literal language some types require (EqlQueryLanguage, EsqlQueryLanguage).
TYPE_LANGUAGE = {"eql": "eql", "esql": "esql"}
SEVERITIES = ("low", "medium", "high", "critical")
# Fields Kibana owns; a request's values for them are ignored (RuleResponse's server-set fields).
MANAGED_FIELDS = ("id", "revision", "immutable", "rule_source", "created_at", "created_by", "updated_at",
                  "updated_by", "execution_summary")
# increment_revision.ts skips these (fieldsToExcludeFromRevisionUpdates: enabled, createdAt, updatedAt,
# revision, executionStatus, ...); in rule-response terms:
NOT_REVISIONED = frozenset({"enabled", *MANAGED_FIELDS})
# addEcsToRequiredFields (common/detection_engine/rule_management/utils.ts) sets ``ecs`` from
# ecsFieldMap. The stand-in does not ship that map: a field counts as ECS when its top-level
# name is an ECS field set (ECS 8.x field sets), which is right for the fields these rules read.
ECS_FIELD_SETS = frozenset({
    "@timestamp", "agent", "as", "client", "cloud", "container", "data_stream", "destination", "device",
    "dll", "dns", "ecs", "email", "error", "event", "faas", "file", "group", "host", "http", "labels",
    "log", "message", "network", "observer", "orchestrator", "organization", "package", "process",
    "registry", "related", "rule", "server", "service", "source", "span", "tags", "threat", "tls",
    "trace", "transaction", "url", "user", "user_agent", "vulnerability",
})


class RuleValidationError(Exception):
    """A body the route's zod schema rejects; ``messages`` as Kibana's stringifyZodError lists them."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__(", ".join(messages))
        self.messages = messages


def validate_props(body: Any, *, need_identity: bool, need_rule_id: bool = False) -> None:
    """Check a create/update/import body like RuleCreateProps/RuleUpdateProps/RuleToImport do.

    Messages follow zod's (``field: Required``, ``field: Expected number, received string``).
    """
    if not isinstance(body, dict):
        raise RuleValidationError(["Expected object, received " + _js_type(body)])
    problems: list[str] = []
    if need_identity and body.get("rule_id") is None and body.get("id") is None:
        # update_rule_route.ts / patch: validateUpdateRuleProps -> 'either "id" or "rule_id" must be set'
        problems.append('either "id" or "rule_id" must be set')
    if need_rule_id and body.get("rule_id") is None:
        problems.append("rule_id: Required")
    kind = body.get("type")
    if kind is None:
        problems.append("type: Required")
    elif kind not in TYPE_FIELDS:
        expected = " | ".join(f"'{k}'" for k in TYPE_FIELDS)
        problems.append(f"type: Invalid discriminator value. Expected {expected}")
    for name in ("name", "description"):
        _check(body, name, str, problems, required=True, nonempty=True)
    if _check(body, "risk_score", int, problems, required=True) and not 0 <= body["risk_score"] <= 100:
        problems.append("risk_score: Number must be less than or equal to 100"
                        if body["risk_score"] > 100 else
                        "risk_score: Number must be greater than or equal to 0")
    if "severity" not in body:
        problems.append("severity: Required")
    elif body["severity"] not in SEVERITIES:
        problems.append("severity: Invalid enum value. Expected 'low' | 'medium' | 'high' | 'critical', "
                        f"received '{body['severity']}'")
    _check(body, "enabled", bool, problems)
    if _check(body, "version", int, problems) and body["version"] < 1:
        problems.append("version: Number must be greater than or equal to 1")
    if _check(body, "max_signals", int, problems) and body["max_signals"] < 1:
        problems.append("max_signals: Number must be greater than or equal to 1")
    for name in ("interval", "from", "to", "query", "language", "rule_id", "note", "setup"):
        _check(body, name, str, problems)
    for name in ("tags", "index", "author", "references", "false_positives", "threat", "actions",
                 "exceptions_list", "related_integrations", "required_fields"):
        _check(body, name, list, problems)
    _check(body, "meta", dict, problems)
    if kind in TYPE_FIELDS:
        for name in TYPE_REQUIRED[kind]:
            if body.get(name) is None:
                problems.append(f"{name}: Required")
        if kind in TYPE_LANGUAGE and body.get("language") is not None \
                and body["language"] != TYPE_LANGUAGE[kind]:
            problems.append(f"language: Invalid literal value, expected \"{TYPE_LANGUAGE[kind]}\"")
    if problems:
        raise RuleValidationError(problems)


def _check(body: dict[str, Any], name: str, kind: type, problems: list[str], *,
           required: bool = False, nonempty: bool = False) -> bool:
    """Whether ``body[name]`` is present and well typed; records a zod-style problem otherwise."""
    if name not in body:
        if required:
            problems.append(f"{name}: Required")
        return False
    value = body[name]
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if not ok:
        wanted = {int: "number", str: "string", bool: "boolean", list: "array", dict: "object"}[kind]
        problems.append(f"{name}: Expected {wanted}, received {_js_type(value)}")
        return False
    if nonempty and not value:
        problems.append(f"{name}: String must contain at least 1 character(s)")
        return False
    return True


def _js_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def with_defaults(props: dict[str, Any]) -> dict[str, Any]:
    """applyRuleDefaults: RULE_DEFAULTS, the props the type knows (zod strips the rest), type defaults."""
    kind = props["type"]
    known = SHARED_FIELDS | TYPE_FIELDS[kind]
    rule = dict(RULE_DEFAULTS)
    rule.update({k: v for k, v in props.items() if k in known and v is not None})
    if kind in ("query", "saved_query", "threshold", "new_terms", "threat_match"):
        rule.setdefault("language", "kuery")  # setTypeSpecificDefaults: props.language ?? 'kuery'
    if kind == "query":
        rule.setdefault("query", "")  # setTypeSpecificDefaults: props.query ?? ''
    if kind == "threat_match":
        rule.setdefault("threat_indicator_path", "threat.indicator")  # DEFAULT_INDICATOR_SOURCE_PATH
    rule["required_fields"] = [
        {"name": f.get("name"), "type": f.get("type"), "ecs": is_ecs_field(str(f.get("name", "")))}
        for f in rule["required_fields"] if isinstance(f, dict)
    ]
    return rule


def is_ecs_field(name: str) -> bool:
    return name.split(".", 1)[0] in ECS_FIELD_SETS


def new_rule(props: dict[str, Any], *, user: str, now: str) -> dict[str, Any]:
    """The response of a create (create_rule.ts): defaults, ``enabled`` false unless sent, Kibana's fields."""
    rule = with_defaults(props)
    rule["rule_id"] = props.get("rule_id") or str(uuid.uuid4())
    rule.update({
        "id": str(uuid.uuid4()),
        "immutable": False,
        "rule_source": {"type": "internal"},  # normalizeRuleSource for a custom rule
        "revision": 0,
        "created_at": now,
        "created_by": user,
        "updated_at": now,
        "updated_by": user,
    })
    return rule


def updated_rule(existing: dict[str, Any], props: dict[str, Any], *, user: str, now: str) -> dict[str, Any]:
    """PUT (apply_rule_update.ts): the props with defaults; ``enabled`` and ``version`` kept unless sent."""
    rule = with_defaults(props)
    rule["enabled"] = props["enabled"] if props.get("enabled") is not None else existing["enabled"]
    rule["version"] = props["version"] if props.get("version") is not None else existing["version"]
    return _carry_over(existing, rule, user=user, now=now)


def patched_rule(existing: dict[str, Any], patch: dict[str, Any], *, user: str, now: str) -> dict[str, Any]:
    """PATCH (apply_rule_patch.ts): the sent fields over the existing rule; the type may not change."""
    kind = existing["type"]
    known = SHARED_FIELDS | TYPE_FIELDS[kind]
    rule = {k: v for k, v in existing.items() if k not in MANAGED_FIELDS}
    rule.update({k: v for k, v in patch.items() if k in known and k not in ("rule_id", "type")})
    if "required_fields" in patch:
        rule["required_fields"] = with_defaults({**rule, "type": kind})["required_fields"]
    return _carry_over(existing, rule, user=user, now=now)


def _carry_over(existing: dict[str, Any], rule: dict[str, Any], *, user: str, now: str) -> dict[str, Any]:
    """Kibana's fields from the existing rule; ``revision`` +1 when a revisioned field changed."""
    rule["rule_id"] = existing["rule_id"]
    for name in ("id", "immutable", "rule_source", "created_at", "created_by"):
        rule[name] = existing[name]
    rule["revision"] = existing["revision"] + (1 if revisioned_change(existing, rule) else 0)
    rule["updated_at"] = now  # the alerting rules client stamps every update
    rule["updated_by"] = user
    if "execution_summary" in existing:
        rule["execution_summary"] = existing["execution_summary"]
    return rule


def revisioned_change(before: dict[str, Any], after: dict[str, Any]) -> bool:
    """increment_revision.ts: any attribute or param other than the excluded ones differs."""
    keys = (before.keys() | after.keys()) - NOT_REVISIONED
    return any(before.get(k) != after.get(k) for k in keys)
