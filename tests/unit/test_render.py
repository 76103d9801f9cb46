"""The Kibana rule objects rendered from the repository's rules."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from dac.attack import load_attack
from dac.compile import CompiledRule
from dac.errors import RuleError
from dac.mapping import load_mapping
from dac.render.environment import Templates
from tests.repository import PROJECT

# Kibana's create API body (security_solution common/api/detection_engine/model/rule_schema/
# rule_schemas.gen.ts): the base fields every rule type shares, plus rule_id ...
BASE_REQUIRED = {"name", "description", "risk_score", "severity"}
BASE_OPTIONAL = {
    "rule_id", "rule_name_override", "timestamp_override", "timestamp_override_fallback_disabled",
    "timeline_id", "timeline_title", "license", "note", "building_block_type", "output_index", "namespace",
    "meta", "investigation_fields", "throttle", "response_actions", "version", "tags", "enabled",
    "risk_score_mapping", "severity_mapping", "interval", "from", "to", "actions", "exceptions_list",
    "author", "false_positives", "references", "max_signals", "threat", "setup", "related_integrations",
    "required_fields",
}  # fmt: skip
# ... and the fields of each type (QueryRuleCreateFields, EqlRuleCreateFields, EsqlRuleCreateFields).
TYPE_REQUIRED = {
    "query": {"type"},
    "eql": {"type", "query", "language"},
    "esql": {"type", "language", "query"},
}
TYPE_OPTIONAL = {
    "query": {"index", "data_view_id", "filters", "saved_id", "alert_suppression", "query", "language"},
    "eql": {"index", "data_view_id", "filters", "event_category_override", "tiebreaker_field",
            "timestamp_field", "alert_suppression"},
    "esql": {"alert_suppression"},
}  # fmt: skip

# What this repository always emits, on top of what Kibana requires (so a build never depends on
# Kibana's defaults, which differ between versions).
ALWAYS = {
    "rule_id", "enabled", "version", "interval", "from", "to", "max_signals", "author", "license", "tags",
    "references", "false_positives", "threat", "related_integrations", "required_fields", "query", "language",
}  # fmt: skip


def by_stem(rules: list[CompiledRule], stem: str) -> CompiledRule:
    return next(r for r in rules if r.rule.path.stem == stem)


def kibana(rule: CompiledRule) -> dict[str, Any]:
    return rule.with_version(1)


def test_the_repository_has_one_query_rule_and_two_esql_rules(repository_rules: list[CompiledRule]) -> None:
    assert sorted(r.kibana["type"] for r in repository_rules) == ["esql", "esql", "query"]


def test_every_rule_has_the_keys_kibana_takes_for_its_type(repository_rules: list[CompiledRule]) -> None:
    for rule in repository_rules:
        body = kibana(rule)
        kind = body["type"]
        allowed = BASE_REQUIRED | BASE_OPTIONAL | TYPE_REQUIRED[kind] | TYPE_OPTIONAL[kind]
        assert set(body) <= allowed, (rule.rule.path, set(body) - allowed)
        assert BASE_REQUIRED | TYPE_REQUIRED[kind] | ALWAYS <= set(body), rule.rule.path


def test_query_rules_read_index_patterns_with_kql(repository_rules: list[CompiledRule]) -> None:
    body = kibana(by_stem(repository_rules, "csr_created_or_approved_by_non_system_identity"))
    assert (body["type"], body["language"]) == ("query", "kuery")
    assert body["index"] == ["logs-kubernetes.audit_logs-*"]
    assert body["query"].startswith('kubernetes.audit.annotations.authorization_k8s_io/decision:"allow"\n')


@pytest.mark.parametrize(
    "stem", ["csr_request_for_system_masters_group", "csr_request_for_kube_controller_manager_identity"]
)
def test_esql_rules_name_their_index_in_the_query(repository_rules: list[CompiledRule], stem: str) -> None:
    body = kibana(by_stem(repository_rules, stem))
    assert (body["type"], body["language"]) == ("esql", "esql")
    assert "index" not in body  # an ES|QL rule reads the indices of its FROM command
    first_line = body["query"].splitlines()[0]
    assert first_line == "FROM logs-kubernetes.audit_logs-* METADATA _id, _index, _version, _source"
    # The request body is unmapped: the rule decodes it from _source (GKE keeps it in protoPayload).
    assert 'JSON_EXTRACT(_source, "kubernetes.audit.requestObject.spec.request")' in body["query"]
    assert 'JSON_EXTRACT(_source, "kubernetes.audit.protoPayload.request.spec.request")' in body["query"]


def test_no_jinja_is_left_in_any_rendered_text(repository_rules: list[CompiledRule]) -> None:
    for rule in repository_rules:
        for key in ("query", "note", "setup", "description"):
            text = rule.kibana[key]
            assert not re.search(r"\{\{|\{%|\{#|%\}|#\}", text), (rule.rule.path, key)


def test_included_notes_are_rendered(repository_rules: list[CompiledRule]) -> None:
    for stem in ("csr_request_for_system_masters_group", "csr_request_for_kube_controller_manager_identity"):
        body = by_stem(repository_rules, stem).kibana
        assert body["note"].startswith("## Triage and analysis\n")
        assert body["setup"].startswith("## Setup\n")
    masters = by_stem(repository_rules, "csr_request_for_system_masters_group").kibana["note"]
    assert "`O=system:masters`" in masters


def test_threat_names_and_references_come_from_attack_data(repository_rules: list[CompiledRule]) -> None:
    attack = load_attack()
    for rule in repository_rules:
        declared = [(t["tactic"], t.get("techniques", [])) for t in rule.rule.data["threat"]]
        rendered = rule.kibana["threat"]
        assert [(b["tactic"]["id"], [t["id"] for t in b["technique"]]) for b in rendered] == declared
        for block in rendered:
            tactic = attack.tactics[block["tactic"]["id"]]
            assert block["framework"] == "MITRE ATT&CK"
            assert block["tactic"] == {"id": tactic.id, "name": tactic.name, "reference": tactic.reference}
            for entry in block["technique"]:
                technique = attack.techniques[entry["id"]]
                assert entry == {"id": technique.id, "name": technique.name, "reference": technique.reference}


def test_threat_of_the_non_system_identity_rule(repository_rules: list[CompiledRule]) -> None:
    body = by_stem(repository_rules, "csr_created_or_approved_by_non_system_identity").kibana
    assert [(b["tactic"]["name"], [t["name"] for t in b["technique"]]) for b in body["threat"]] == [
        ("Credential Access", ["Steal or Forge Authentication Certificates"]),
        ("Persistence", ["Account Manipulation"]),
    ]
    assert body["threat"][0]["technique"][0]["reference"] == "https://attack.mitre.org/techniques/T1649/"


QUERY_RULE_FIELDS = [
    "kubernetes.audit.annotations.authorization_k8s_io/decision",
    "kubernetes.audit.objectRef.resource",
    "kubernetes.audit.objectRef.subresource",
    "kubernetes.audit.protoPayload.authenticationInfo.principalEmail",
    "kubernetes.audit.protoPayload.methodName",
    "kubernetes.audit.responseStatus.code",
    "kubernetes.audit.user.username",
    "kubernetes.audit.verb",
]
# Fields the ES|QL rules read from the index; csr_pem (an EVAL column) and the METADATA fields are not.
ESQL_RULE_FIELDS = [
    "@timestamp",
    "kubernetes.audit.auditID",
    "kubernetes.audit.objectRef.name",
    "kubernetes.audit.objectRef.resource",
    "kubernetes.audit.objectRef.subresource",
    "kubernetes.audit.protoPayload.methodName",
    "kubernetes.audit.user.username",
    "kubernetes.audit.verb",
    "source.ip",
    "user_agent.original",
]


@pytest.mark.parametrize(
    ("stem", "fields"),
    [
        ("csr_created_or_approved_by_non_system_identity", QUERY_RULE_FIELDS),
        ("csr_request_for_system_masters_group", ESQL_RULE_FIELDS),
        ("csr_request_for_kube_controller_manager_identity", ESQL_RULE_FIELDS),
    ],
)
def test_required_fields_are_the_query_fields_typed_by_the_mapping(
    repository_rules: list[CompiledRule], stem: str, fields: list[str]
) -> None:
    mapping = load_mapping("kubernetes.audit_logs")
    body = by_stem(repository_rules, stem).kibana
    assert body["required_fields"] == [{"name": f, "type": mapping.field(f).type} for f in fields]
    types = {f["name"]: f["type"] for f in body["required_fields"]}
    assert types["kubernetes.audit.verb"] == "keyword"
    assert types.get("kubernetes.audit.responseStatus.code", "long") == "long"
    assert (types.get("source.ip", "ip"), types.get("@timestamp", "date")) == ("ip", "date")


def test_related_integrations_are_passed_through(repository_rules: list[CompiledRule]) -> None:
    for rule in repository_rules:
        assert rule.kibana["related_integrations"] == rule.rule.data["related_integrations"]
        assert rule.kibana["related_integrations"] == [
            {"package": "kubernetes", "integration": "audit_logs", "version": "^1.84.0"}
        ]


def test_schedule_and_metadata_are_copied_from_the_rule(repository_rules: list[CompiledRule]) -> None:
    for rule in repository_rules:
        data, body = rule.rule.data, rule.kibana
        for key in ("rule_id", "name", "description", "severity", "risk_score", "interval", "from",
                    "max_signals", "enabled", "author", "license", "tags", "references", "false_positives"):
            assert body[key] == data[key], (rule.rule.path, key)
        assert body["to"] == "now"


def test_non_system_identity_rule_excludes_exactly_the_shared_identity_list(
    repository_rules: list[CompiledRule],
) -> None:
    identities = [
        entry["identity"]
        for entry in yaml.safe_load((PROJECT.templates / "data" / "system_identities.yml").read_text("utf-8"))
    ]
    assert len(identities) >= 5
    query = by_stem(repository_rules, "csr_created_or_approved_by_non_system_identity").kibana["query"]
    # KQL: an exact value is a quoted string; a wildcard pattern stays unquoted with ":" escaped
    # (kbn-es-query kuery grammar: ":" is special in an unquoted value).
    expected = [i.replace(":", "\\:") if "*" in i else f'"{i}"' for i in identities]
    # the same list for the audit user name and for GKE's principal
    for field in ("user.username", "protoPayload.authenticationInfo.principalEmail"):
        clause = re.search(rf"and not kubernetes\.audit\.{re.escape(field)}:\((.*?)\)\)$", query, re.M)
        assert clause is not None, query
        assert clause.group(1).split(" or ") == expected


def test_data_files_with_any_yaml_suffix_are_read(tmp_path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.yml").write_text("x: 1\n")
    (tmp_path / "data" / "b.YAML").write_text("y: 2\n")
    assert Templates(tmp_path).data == {"a": {"x": 1}, "b": {"y": 2}}


def test_an_alias_in_a_data_file_is_refused(tmp_path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.yml").write_text("base: &b [1]\nagain: *b\n")
    with pytest.raises(RuleError, match=r"a.yml:2:8: YAML alias \*b is not allowed"):
        _ = Templates(tmp_path).data
