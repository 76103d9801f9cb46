"""Conformance of the Kibana stand-in, through raw HTTP: one test per documented Kibana behaviour the
deployer relies on, each named after the Kibana source it follows (see server.py for the paths).

The ``kibana_target`` fixture gives a real Kibana when ``KIBANA_URL`` (or the docker-compose stack) is
there, so these same tests then check the real thing; tests of what only a test double can do (fault
injection, execution on the local node) skip there, saying so.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.kibana_standin.server import Fault, KibanaStandIn
from tests.kibana_standin.target import KibanaTarget

RULES = "/api/detection_engine/rules"
NEEDS_STANDIN = "fault injection needs the stand-in"


def a_rule(**fields: Any) -> dict[str, Any]:
    """A minimal valid custom query rule with a fresh rule_id."""
    return {
        "rule_id": f"standin-test-{uuid.uuid4().hex[:12]}",
        "name": "Stand-in conformance rule",
        "description": "A rule the conformance tests create.",
        "type": "query",
        "language": "kuery",
        "index": ["logs-kubernetes.audit_logs-*"],
        "query": 'kubernetes.audit.verb:"create"',
        "risk_score": 47,
        "severity": "medium",
        **fields,
    }


def standin_of(target: KibanaTarget, reason: str = NEEDS_STANDIN) -> KibanaStandIn:
    if target.standin is None:
        pytest.skip(reason)
    return target.standin


def create(target: KibanaTarget, rule: dict[str, Any], space: str | None = None) -> dict[str, Any]:
    status, body = target.request("POST", RULES, space=space, body=rule)
    assert status == 200, body
    return body


def multipart(filename: str, content: bytes) -> tuple[bytes, str]:
    boundary = f"standin{uuid.uuid4().hex}"
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            "Content-Type: application/ndjson\r\n\r\n").encode()
    return head + content + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def import_rules(target: KibanaTarget, rules: list[dict[str, Any]], space: str | None = None,
                 filename: str = "rules.ndjson", **query: str) -> tuple[int, Any]:
    content = b"".join(json.dumps(r).encode() + b"\n" for r in rules)
    data, content_type = multipart(filename, content)
    return target.request("POST", f"{RULES}/_import", space=space, data=data, content_type=content_type,
                          query=query or None)


# --------------------------------------------------------------------------- headers and routes


def test_status_gives_the_stack_version_core_status_route(kibana_target: KibanaTarget) -> None:
    status, body = kibana_target.request("GET", "/api/status")
    assert status == 200
    assert body["version"]["number"].count(".") == 2
    status, body = kibana_target.request("GET", "/api/status", authorization=None)
    assert status == 200 and "version" not in body  # authRequired 'optional': the redacted status
    status, _ = kibana_target.request("GET", "/api/status", authorization="ApiKey bm90LWEta2V5")
    assert status == 401


def test_write_without_kbn_xsrf_is_400_core_xsrf_post_auth_handler(kibana_target: KibanaTarget) -> None:
    status, body = kibana_target.request("POST", RULES, body=a_rule(), xsrf=False)
    assert status == 400
    assert "kbn-xsrf" in body["message"]


@pytest.mark.parametrize("authorization", [None, "ApiKey bm90LWEtcmVhbC1rZXk=", "Basic bm9ib2R5Om5vcGU="])
def test_missing_or_bad_credentials_are_401_security_authenticator(
    kibana_target: KibanaTarget, authorization: str | None
) -> None:
    status, body = kibana_target.request("GET", f"{RULES}/_find", authorization=authorization)
    assert status == 401
    assert body["statusCode"] == 401


@pytest.mark.parametrize("route", ["_bulk_create", "_bulk_update", "_bulk_delete"])
def test_bulk_crud_routes_removed_in_9_0_are_404(kibana_target: KibanaTarget, route: str) -> None:
    status, _ = kibana_target.request("POST", f"{RULES}/{route}", body=[a_rule()])
    assert status == 404


# --------------------------------------------------------------------------- create, read, update, patch


def test_create_fills_kibana_defaults_apply_rule_defaults(kibana_target: KibanaTarget) -> None:
    sent = a_rule(required_fields=[{"name": "kubernetes.audit.verb", "type": "keyword"},
                                   {"name": "user.name", "type": "keyword"}])
    rule = create(kibana_target, sent)
    assert rule["enabled"] is False  # RULE_DEFAULTS.enabled; create_rule.ts: rule.enabled ?? false
    assert rule["version"] == 1 and rule["revision"] == 0
    assert str(uuid.UUID(rule["id"])) == rule["id"]
    assert rule["immutable"] is False and rule["rule_source"] == {"type": "internal"}
    for name, value in {"exceptions_list": [], "actions": [], "risk_score_mapping": [],
                        "severity_mapping": [], "output_index": "", "interval": "5m", "from": "now-6m",
                        "to": "now", "max_signals": 100, "tags": [], "setup": ""}.items():
        assert rule[name] == value, name
    assert rule["required_fields"] == [{"name": "kubernetes.audit.verb", "type": "keyword", "ecs": False},
                                       {"name": "user.name", "type": "keyword", "ecs": True}]
    assert rule["created_at"] == rule["updated_at"] and rule["created_by"] == rule["updated_by"]
    assert "execution_summary" not in rule  # absent until the first run


def test_duplicate_rule_id_is_409_create_rule_route(kibana_target: KibanaTarget) -> None:
    rule = create(kibana_target, a_rule())
    status, body = kibana_target.request("POST", RULES, body=a_rule(rule_id=rule["rule_id"]))
    assert status == 409
    assert body == {"status_code": 409, "message": f'rule_id: "{rule["rule_id"]}" already exists'}


@pytest.mark.parametrize("missing", ["name", "description", "risk_score", "severity", "type"])
def test_create_without_a_required_field_is_400_rule_create_props(
    kibana_target: KibanaTarget, missing: str
) -> None:
    rule = a_rule()
    del rule[missing]
    status, body = kibana_target.request("POST", RULES, body=rule)
    assert status == 400
    assert missing in json.dumps(body)


def test_esql_rule_needs_its_query_and_language_rule_schemas(kibana_target: KibanaTarget) -> None:
    status, _ = kibana_target.request("POST", RULES, body=a_rule(type="esql", language="kuery",
                                                                 index=None, query="FROM logs-*"))
    assert status == 400


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_unknown_rule_is_404_get_id_error(kibana_target: KibanaTarget, method: str) -> None:
    status, body = kibana_target.request(method, RULES, query={"rule_id": "no-such-rule"})
    assert status == 404
    assert body == {"status_code": 404, "message": 'rule_id: "no-such-rule" not found'}
    status, body = kibana_target.request(method, RULES, query={"id": "4a7ff83d-3055-4bb2-ba68-587b9c6c15a4"})
    assert status == 404
    assert body["message"] == 'id: "4a7ff83d-3055-4bb2-ba68-587b9c6c15a4" not found'


def test_update_and_patch_of_unknown_rule_are_404_update_rule(kibana_target: KibanaTarget) -> None:
    for method in ("PUT", "PATCH"):
        status, body = kibana_target.request(method, RULES, body=a_rule(rule_id="no-such-rule"))
        assert status == 404, method
        assert body["message"] == 'rule_id: "no-such-rule" not found'


def test_put_replaces_keeps_version_and_enabled_unless_sent_apply_rule_update(
    kibana_target: KibanaTarget,
) -> None:
    rule = create(kibana_target, a_rule(enabled=False, version=7, tags=["a"], note="n"))
    replacement = a_rule(rule_id=rule["rule_id"], query='kubernetes.audit.verb:"update"')
    status, updated = kibana_target.request("PUT", RULES, body=replacement)
    assert status == 200
    assert updated["version"] == 7  # not bumped, not reset
    assert updated["enabled"] is False
    assert updated["tags"] == [] and "note" not in updated  # fields not sent go back to defaults
    assert updated["id"] == rule["id"] and updated["created_at"] == rule["created_at"]
    assert updated["revision"] == 1  # the query changed


def test_patch_merges_and_keeps_version_apply_rule_patch(kibana_target: KibanaTarget) -> None:
    rule = create(kibana_target, a_rule(tags=["a"], version=3))
    status, patched = kibana_target.request("PATCH", RULES,
                                            body={"rule_id": rule["rule_id"], "name": "Renamed"})
    assert status == 200
    assert patched["name"] == "Renamed" and patched["tags"] == ["a"] and patched["version"] == 3


def test_revision_counts_param_changes_not_enable_increment_revision(kibana_target: KibanaTarget) -> None:
    rule = create(kibana_target, a_rule())
    rule_id = rule["rule_id"]
    _, toggled = kibana_target.request("PATCH", RULES, body={"rule_id": rule_id, "enabled": True})
    _, toggled = kibana_target.request("PATCH", RULES, body={"rule_id": rule_id, "enabled": False})
    assert toggled["revision"] == 0  # ``enabled`` is in fieldsToExcludeFromRevisionUpdates
    _, same = kibana_target.request("PUT", RULES, body=a_rule(rule_id=rule_id))
    assert same["revision"] == 0  # nothing changed
    _, changed = kibana_target.request("PATCH", RULES, body={"rule_id": rule_id, "risk_score": 50})
    assert changed["revision"] == 1


# --------------------------------------------------------------------------- spaces and _find


def test_spaces_are_isolated_spaces_routes(kibana_target: KibanaTarget) -> None:
    space = kibana_target.new_space()
    rule = create(kibana_target, a_rule(), space=space)
    assert kibana_target.get_rule(space, rule["rule_id"]) is not None
    assert kibana_target.get_rule("default", rule["rule_id"]) is None
    assert rule["rule_id"] not in {r["rule_id"] for r in kibana_target.find_rules("default")}
    status, _ = kibana_target.request("POST", "/api/spaces/space", body={"id": space, "name": space})
    assert status == 409  # spaces_client.ts create: the id is taken
    status, _ = kibana_target.request("GET", "/api/spaces/space/no-such-space-here")
    assert status == 404


def test_rules_api_does_not_check_the_space_exists_spaces_on_post_auth_interceptor(
    kibana_target: KibanaTarget,
) -> None:
    """Only /app paths verify the space (on_post_auth_interceptor.ts; elastic/kibana#67164): a rule sent
    to a space nobody created is stored there, so a client must check the space itself."""
    space = f"dac-test-never-created-{uuid.uuid4().hex[:8]}"
    assert kibana_target.request("GET", f"/api/spaces/space/{space}")[0] == 404
    rule = create(kibana_target, a_rule(), space=space)
    try:
        assert kibana_target.get_rule(space, rule["rule_id"]) is not None
    finally:
        kibana_target.request("DELETE", RULES, space=space, query={"rule_id": rule["rule_id"]})


def test_find_pages_and_filters_find_rules_route(kibana_target: KibanaTarget) -> None:
    space = kibana_target.new_space()
    for i in range(5):
        create(kibana_target, a_rule(name=f"Paged rule {i}", tags=["paged", f"n{i % 2}"]), space=space)
    status, body = kibana_target.request("GET", f"{RULES}/_find", space=space,
                                         query={"per_page": 2, "page": 3, "sort_field": "name",
                                                "sort_order": "asc"})
    assert status == 200
    assert (body["page"], body["perPage"], body["total"]) == (3, 2, 5)
    assert [r["name"] for r in body["data"]] == ["Paged rule 4"]
    status, body = kibana_target.request("GET", f"{RULES}/_find", space=space,
                                         query={"filter": 'alert.attributes.tags:"n1"', "per_page": 100})
    assert status == 200 and body["total"] == 2
    status, _ = kibana_target.request("GET", f"{RULES}/_find", space=space, query={"sort_field": "name"})
    assert status == 400  # validateFindRulesRequestQuery: sort_field and sort_order together


# --------------------------------------------------------------------------- _import and _export


def test_import_reports_per_rule_errors_in_a_200_import_rules_route(kibana_target: KibanaTarget) -> None:
    space = kibana_target.new_space()
    existing = create(kibana_target, a_rule(), space=space)
    fresh, invalid = a_rule(), a_rule()
    del invalid["severity"]
    status, body = import_rules(kibana_target, [a_rule(rule_id=existing["rule_id"]), fresh, invalid],
                                space=space)
    assert status == 200
    assert body["success"] is False and body["success_count"] == 1 and body["rules_count"] == 3
    by_rule = {e["rule_id"]: e["error"] for e in body["errors"]}
    assert by_rule[existing["rule_id"]]["status_code"] == 409  # existing rule_id without overwrite
    assert by_rule[invalid["rule_id"]]["status_code"] == 400  # validated like a create
    assert fresh["rule_id"] not in by_rule  # successes are not listed
    assert kibana_target.get_rule(space, fresh["rule_id"])["enabled"] is False


def test_import_rule_id_twice_in_a_file_get_tuple_duplicate_errors(kibana_target: KibanaTarget) -> None:
    space = kibana_target.new_space()
    first = a_rule(name="First")
    status, body = import_rules(kibana_target, [first, {**first, "name": "Last"}], space=space)
    assert status == 200 and body["success_count"] == 1
    assert body["errors"] == [{"rule_id": first["rule_id"], "error": {
        "status_code": 400, "message": f'More than one rule with rule-id: "{first["rule_id"]}" found'}}]
    assert kibana_target.get_rule(space, first["rule_id"])["name"] == "Last"


def test_import_with_overwrite_updates_import_rules_route(kibana_target: KibanaTarget) -> None:
    space = kibana_target.new_space()
    rule = create(kibana_target, a_rule(), space=space)
    status, body = import_rules(kibana_target, [a_rule(rule_id=rule["rule_id"], name="Imported")],
                                space=space, overwrite="true")
    assert status == 200 and body["success"] is True and body["success_count"] == 1
    assert kibana_target.get_rule(space, rule["rule_id"])["name"] == "Imported"


def test_import_needs_an_ndjson_file_name_import_rules_route(kibana_target: KibanaTarget) -> None:
    status, body = import_rules(kibana_target, [a_rule()], filename="rules.json")
    assert status == 400
    assert body["message"] == "Invalid file extension .json"


def test_import_payload_over_the_limit_is_413_max_rule_import_payload_bytes(
    kibana_target: KibanaTarget,
) -> None:
    padding = {"note": "x" * (10 * 1024 * 1024)}  # xpack.securitySolution.maxRuleImportPayloadBytes: 10 MB
    status, _ = import_rules(kibana_target, [a_rule(**padding)])
    assert status == 413


def test_export_is_ndjson_with_details_export_rules_route(kibana_target: KibanaTarget) -> None:
    space = kibana_target.new_space()
    rule = create(kibana_target, a_rule(), space=space)
    status, text = kibana_target.request("POST", f"{RULES}/_export", space=space,
                                         body={"objects": [{"rule_id": rule["rule_id"]},
                                                           {"rule_id": "no-such-rule"}]})
    assert status == 200
    lines = [json.loads(line) for line in text.splitlines()]
    assert lines[0]["rule_id"] == rule["rule_id"]
    assert lines[1]["exported_rules_count"] == 1
    assert lines[1]["missing_rules"] == [{"rule_id": "no-such-rule"}]
    status, text = kibana_target.request("POST", f"{RULES}/_export", space=space,
                                         query={"exclude_export_details": "true"})
    assert [json.loads(line)["rule_id"] for line in text.splitlines()] == [rule["rule_id"]]


# --------------------------------------------------------------------------- _bulk_action


def test_bulk_action_refuses_over_100_ids_and_ids_with_query_validate_bulk_action(
    kibana_target: KibanaTarget,
) -> None:
    ids = [str(uuid.uuid4()) for _ in range(101)]
    status, body = kibana_target.request("POST", f"{RULES}/_bulk_action",
                                         body={"action": "disable", "ids": ids})
    assert status == 400 and body["message"] == "More than 100 ids sent for bulk edit action."
    status, body = kibana_target.request("POST", f"{RULES}/_bulk_action",
                                         body={"action": "delete", "ids": ids[:1], "query": ""})
    assert status == 400 and body["message"].startswith("Both query and ids are sent")


def test_bulk_enable_disable_delete_by_id_bulk_actions_route(kibana_target: KibanaTarget) -> None:
    space = kibana_target.new_space()
    first, second = create(kibana_target, a_rule(), space=space), create(kibana_target, a_rule(), space=space)
    status, body = kibana_target.request("POST", f"{RULES}/_bulk_action", space=space,
                                         body={"action": "disable", "ids": [first["id"]]})
    assert status == 200 and body["attributes"]["summary"]["succeeded"] == 1
    status, body = kibana_target.request("POST", f"{RULES}/_bulk_action", space=space,
                                         body={"action": "delete", "ids": [first["id"]]})
    assert status == 200
    assert [r["rule_id"] for r in body["attributes"]["results"]["deleted"]] == [first["rule_id"]]
    assert kibana_target.get_rule(space, first["rule_id"]) is None
    assert kibana_target.get_rule(space, second["rule_id"]) is not None


def test_bulk_action_without_ids_or_query_hits_every_rule_fetch_rules_by_query_or_ids(
    kibana_target: KibanaTarget,
) -> None:
    """The hazard issue 8 names: a body without ``ids`` (e.g. a misspelt field) selects all rules."""
    space = kibana_target.new_space()
    rules = [create(kibana_target, a_rule(enabled=False), space=space) for _ in range(3)]
    status, body = kibana_target.request("POST", f"{RULES}/_bulk_action", space=space,
                                         body={"action": "enable", "rule_ids": [rules[0]["rule_id"]]})
    assert status == 200 and body["attributes"]["summary"]["succeeded"] == 3
    assert all(kibana_target.get_rule(space, r["rule_id"])["enabled"] for r in rules)


def test_bulk_action_partial_failure_is_500_with_per_rule_errors_bulk_actions_response(
    kibana_target: KibanaTarget,
) -> None:
    space = kibana_target.new_space()
    rule = create(kibana_target, a_rule(), space=space)
    missing = str(uuid.uuid4())
    status, body = kibana_target.request("POST", f"{RULES}/_bulk_action", space=space,
                                         body={"action": "enable", "ids": [rule["id"], missing]})
    assert status == 500
    assert body["message"] == "Bulk edit partially failed"
    assert body["attributes"]["summary"] == {"failed": 1, "succeeded": 1, "skipped": 0, "total": 2}
    assert [r["id"] for e in body["attributes"]["errors"] for r in e["rules"]] == [missing]


# --------------------------------------------------------------------------- fault injection


def test_injected_status_with_retry_after_hits_the_nth_matching_request(kibana_target: KibanaTarget) -> None:
    standin = standin_of(kibana_target)
    standin.inject(Fault.status(503, retry_after="1"), nth=2, method="GET", path_contains="_find")
    assert kibana_target.request("GET", "/api/status")[0] == 200  # not matching: not counted
    assert kibana_target.request("GET", f"{RULES}/_find")[0] == 200
    status, _ = kibana_target.request("GET", f"{RULES}/_find")
    assert status == 503
    assert kibana_target.request("GET", f"{RULES}/_find")[0] == 200  # a fault plays once
    assert [r.status for r in standin.requests] == [200, 200, 503, 200]


def test_injected_drop_applies_only_when_asked(kibana_target: KibanaTarget) -> None:
    standin = standin_of(kibana_target)
    lost, applied = a_rule(), a_rule()
    standin.inject(Fault.drop(), method="POST")
    with pytest.raises(OSError):
        kibana_target.request("POST", RULES, body=lost)
    standin.inject(Fault.drop(after_apply=True), method="POST")
    with pytest.raises(OSError):
        kibana_target.request("POST", RULES, body=applied)
    assert kibana_target.get_rule("default", lost["rule_id"]) is None
    assert kibana_target.get_rule("default", applied["rule_id"]) is not None


def test_injected_timeout_holds_then_closes_without_applying(kibana_target: KibanaTarget) -> None:
    standin = standin_of(kibana_target)
    rule = a_rule()
    standin.inject(Fault.timeout(0.3), method="POST")
    started = time.monotonic()
    with pytest.raises(OSError):
        kibana_target.request("POST", RULES, body=rule)
    assert time.monotonic() - started >= 0.3
    assert kibana_target.get_rule("default", rule["rule_id"]) is None


def test_injected_partial_import_fails_the_named_rules_in_a_200(kibana_target: KibanaTarget) -> None:
    standin = standin_of(kibana_target)
    failing, passing = a_rule(), a_rule()
    standin.inject(Fault.partial_import([failing["rule_id"]]), path_contains="_import")
    status, body = import_rules(kibana_target, [failing, passing])
    assert status == 200 and body["success_count"] == 1
    assert body["errors"] == [{"rule_id": failing["rule_id"],
                               "error": {"status_code": 500, "message": "stand-in injected import failure"}}]
    assert [r["rule_id"] for r in standin.rules()] == [passing["rule_id"]]


def test_requests_are_recorded_without_credentials(kibana_target: KibanaTarget) -> None:
    standin = standin_of(kibana_target)
    space = kibana_target.new_space()
    standin.clear_requests()
    kibana_target.request("GET", f"{RULES}/_find", space=space, query={"per_page": 5})
    [recorded] = standin.requests
    assert (recorded.method, recorded.path, recorded.space, recorded.query, recorded.is_write) == (
        "GET", f"{RULES}/_find", space, {"per_page": "5"}, False)
    assert kibana_target.api_key not in repr(standin.requests)


# --------------------------------------------------------------------------- execution (integration)


@pytest.mark.integration
def test_enabled_esql_rule_fails_with_the_server_error_on_a_node_without_esql(
    kibana_target: KibanaTarget, repository_rules: list[Any],
) -> None:
    standin = standin_of(kibana_target, "execution on the local Elasticsearch node is the stand-in's")
    if not standin.es_url:
        pytest.fail("no Elasticsearch for the stand-in to execute on (set ES_URL)", pytrace=False)
    esql = next(r for r in repository_rules if r.kibana["type"] == "esql")
    space = kibana_target.new_space()
    create(kibana_target, {**esql.with_version(1), "enabled": True}, space=space)
    standin.run_enabled_rules(space)
    last = kibana_target.get_rule(space, esql.kibana["rule_id"])["execution_summary"]["last_execution"]
    from dac.engine.es_connection import connect

    if connect({"ES_URL": standin.es_url}).capabilities.esql:
        assert last["status"] == "succeeded"
    else:
        assert (last["status"], last["status_order"]) == ("failed", 30)
        assert "_query" in last["message"]  # the server's own answer to the ES|QL request


@pytest.mark.integration
def test_enabled_query_rule_alerts_into_the_space_alerts_index(kibana_target: KibanaTarget) -> None:
    standin = standin_of(kibana_target, "execution on the local Elasticsearch node is the stand-in's")
    if not standin.es_url:
        pytest.fail("no Elasticsearch for the stand-in to execute on (set ES_URL)", pytrace=False)
    from elasticsearch import Elasticsearch

    from dac.engine.elasticsearch import server_mappings
    from dac.engine.es_connection import connect
    from dac.mapping import mapping_for_index

    connection = connect({"ES_URL": standin.es_url})
    client: Elasticsearch = connection.client
    index = f"logs-kubernetes.audit_logs-standin{uuid.uuid4().hex[:8]}"
    space = kibana_target.new_space()
    mapping = mapping_for_index(index)
    assert mapping is not None
    client.indices.create(index=index, mappings=server_mappings(mapping, connection.capabilities.modules),
                          settings={"number_of_shards": 1, "number_of_replicas": 0})
    try:
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        client.index(index=index, refresh=True, document={
            "@timestamp": now, "kubernetes": {"audit": {"verb": "create", "user": {"username": "alice"}}}})
        empty = create(kibana_target, a_rule(index=[f"{index}-nothing-*"], enabled=True), space=space)
        rule = create(kibana_target, a_rule(index=[index], enabled=True), space=space)
        standin.run_enabled_rules(space)
        last = kibana_target.get_rule(space, rule["rule_id"])["execution_summary"]["last_execution"]
        assert last["status"] == "succeeded", last
        alerts = client.search(index=f".alerts-security.alerts-{space}",
                               query={"term": {"kibana.alert.rule.rule_id": rule["rule_id"]}})
        [alert] = alerts["hits"]["hits"]
        assert alert["_source"]["kibana.space_ids"] == [space]
        nothing = kibana_target.get_rule(space, empty["rule_id"])["execution_summary"]["last_execution"]
        assert nothing["status"] == "partial failure"  # no index matches its pattern
    finally:
        client.options(ignore_status=404).indices.delete(index=f"{index},.alerts-security.alerts-{space}",
                                                         expand_wildcards="all")


@pytest.mark.integration
def test_enabling_runs_the_rule_in_the_background(kibana_target: KibanaTarget) -> None:
    standin = standin_of(kibana_target, "execution on the local Elasticsearch node is the stand-in's")
    if not standin.es_url:
        pytest.fail("no Elasticsearch for the stand-in to execute on (set ES_URL)", pytrace=False)
    space = kibana_target.new_space()
    rule = create(kibana_target, a_rule(index=["logs-kubernetes.audit_logs-nothing-here-*"]), space=space)
    assert "execution_summary" not in rule
    kibana_target.request("POST", f"{RULES}/_bulk_action", space=space,
                          body={"action": "enable", "ids": [rule["id"]]})
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        summary = kibana_target.get_rule(space, rule["rule_id"]).get("execution_summary")
        if summary and summary["last_execution"]["status"] not in ("running", "going to run"):
            break
        time.sleep(0.1)
    assert summary and summary["last_execution"]["status"] == "partial failure"


# --------------------------------------------------------------------------- exception lists and items
# LISTS = x-pack/solutions/security/plugins/lists/server

LISTS = "/api/exception_lists"
ITEMS = "/api/exception_lists/items"


def a_list(**fields: Any) -> dict[str, Any]:
    return {"list_id": f"standin-list-{uuid.uuid4().hex[:10]}", "name": "Stand-in list",
            "description": "A list the conformance tests create.", "type": "detection",
            "namespace_type": "single", **fields}


def an_item(list_id: str, **fields: Any) -> dict[str, Any]:
    return {"list_id": list_id, "item_id": f"standin-item-{uuid.uuid4().hex[:10]}", "name": "Stand-in item",
            "description": "An item the conformance tests create.", "type": "simple",
            "namespace_type": "single",
            "entries": [{"field": "kubernetes.audit.user.username", "operator": "included", "type": "match",
                         "value": "alice"}], **fields}


def post(target: KibanaTarget, path: str, body: dict[str, Any], space: str | None = None) -> dict[str, Any]:
    status, answer = target.request("POST", path, space=space, body=body)
    assert status == 200, answer
    return answer


def test_exception_list_create_read_and_409_create_exception_list_route(kibana_target: KibanaTarget) -> None:
    space = kibana_target.new_space()
    body = a_list(tags=["t"], meta={"k": "v"})
    created = post(kibana_target, LISTS, body, space)
    # utils/index.ts transformSavedObjectToExceptionList
    for key in ("id", "_version", "tie_breaker_id", "created_at", "created_by", "updated_at", "updated_by"):
        assert created[key], key
    assert (created["immutable"], created["version"], created["os_types"]) == (False, 1, [])
    assert {k: created[k] for k in body} == body
    status, again = kibana_target.request("POST", LISTS, space=space, body=body)
    assert status == 409 and again["message"] == f'exception list id: "{body["list_id"]}" already exists'
    status, read = kibana_target.request("GET", LISTS, space=space,
                                         query={"list_id": body["list_id"], "namespace_type": "single"})
    assert status == 200 and read["id"] == created["id"]
    status, missing = kibana_target.request("GET", LISTS, space=space,
                                            query={"list_id": "no-such-list", "namespace_type": "single"})
    assert status == 404 and missing["status_code"] == 404


def test_exception_item_create_shape_and_conflicts_create_exception_list_item_route(
    kibana_target: KibanaTarget,
) -> None:
    space = kibana_target.new_space()
    listed = post(kibana_target, LISTS, a_list(), space)
    body = an_item(listed["list_id"], comments=[{"comment": "why"}], meta={"owner": "me"},
                   expire_time="2099-01-01T00:00:00.000Z")
    item = post(kibana_target, ITEMS, body, space)
    for key in ("id", "_version", "tie_breaker_id", "created_at", "created_by", "updated_at", "updated_by"):
        assert item[key], key
    [comment] = item["comments"]  # transformCreateCommentsToComments
    assert comment["comment"] == "why" and comment["id"] and comment["created_at"] and comment["created_by"]
    assert (item["meta"], item["expire_time"], item["os_types"]) == ({"owner": "me"}, body["expire_time"], [])
    status, again = kibana_target.request("POST", ITEMS, space=space, body=body)
    assert status == 409 and again["message"] == f'exception list item id: "{body["item_id"]}" already exists'
    status, orphan = kibana_target.request("POST", ITEMS, space=space, body=an_item("no-such-list"))
    assert status == 404 and orphan["message"] == 'exception list id: "no-such-list" does not exist'


def test_item_update_checks_version_and_keeps_comments_update_overwrite_exception_list_item(
    kibana_target: KibanaTarget,
) -> None:
    space = kibana_target.new_space()
    listed = post(kibana_target, LISTS, a_list(), space)
    item = post(kibana_target, ITEMS, an_item(listed["list_id"], comments=[{"comment": "first"}]), space)
    update = {k: item[k] for k in ("item_id", "namespace_type", "name", "description", "type", "entries")}
    status, stale = kibana_target.request("PUT", ITEMS, space=space,
                                          body={**update, "name": "renamed", "_version": "Wzk5OSwxXQ=="})
    assert status == 409, stale
    status, updated = kibana_target.request("PUT", ITEMS, space=space, body={
        **update, "name": "renamed", "_version": item["_version"], "comments": [{"comment": "second"}]})
    assert status == 200, updated
    assert updated["name"] == "renamed" and updated["_version"] != item["_version"]
    assert [c["comment"] for c in updated["comments"]] == ["first", "second"]  # kept, then added
    assert updated["id"] == item["id"] and updated["created_at"] == item["created_at"]
    status, missing = kibana_target.request("PUT", ITEMS, space=space, body={**update, "item_id": "nope"})
    assert status == 404 and missing["message"] == 'exception list item item_id: "nope" does not exist'


def test_item_find_spans_lists_and_pages_find_exception_list_item_route(kibana_target: KibanaTarget) -> None:
    space = kibana_target.new_space()
    first, second = post(kibana_target, LISTS, a_list(), space), post(kibana_target, LISTS, a_list(), space)
    for lst, n in ((first, 3), (second, 2)):
        for _ in range(n):
            post(kibana_target, ITEMS, an_item(lst["list_id"]), space)
    both = {"list_id": f"{first['list_id']},{second['list_id']}", "namespace_type": "single,single"}
    status, page = kibana_target.request("GET", f"{ITEMS}/_find", space=space,
                                         query={**both, "page": 2, "per_page": 2})
    assert status == 200
    assert (page["total"], page["page"], page["per_page"], len(page["data"])) == (5, 2, 2, 2)
    status, bad = kibana_target.request("GET", f"{ITEMS}/_find", space=space,
                                        query={**both, "namespace_type": "single"})
    assert status == 400 and "same comma separated number" in bad["message"]
    status, _ = kibana_target.request("GET", f"{ITEMS}/_find", space=space,
                                      query={"list_id": "no-such-list", "namespace_type": "single"})
    assert status == 404  # find_exception_list_items.ts: no list found → null → 404


def test_deleting_a_list_deletes_its_items_delete_exception_list(kibana_target: KibanaTarget) -> None:
    space = kibana_target.new_space()
    listed = post(kibana_target, LISTS, a_list(), space)
    item = post(kibana_target, ITEMS, an_item(listed["list_id"]), space)
    status, deleted = kibana_target.request("DELETE", LISTS, space=space,
                                            query={"list_id": listed["list_id"], "namespace_type": "single"})
    assert status == 200 and deleted["id"] == listed["id"]
    status, _ = kibana_target.request("GET", ITEMS, space=space,
                                      query={"item_id": item["item_id"], "namespace_type": "single"})
    assert status == 404
    status, _ = kibana_target.request("DELETE", LISTS, space=space,
                                      query={"list_id": listed["list_id"], "namespace_type": "single"})
    assert status == 404


def test_single_lists_belong_to_their_space_agnostic_ones_to_all_get_saved_object_type(
    kibana_target: KibanaTarget,
) -> None:
    one, two = kibana_target.new_space(), kibana_target.new_space()
    single = post(kibana_target, LISTS, a_list(), one)
    status, _ = kibana_target.request("GET", LISTS, space=two,
                                      query={"list_id": single["list_id"], "namespace_type": "single"})
    assert status == 404
    post(kibana_target, LISTS, a_list(list_id=single["list_id"]), two)  # the same list_id, another space
    agnostic = post(kibana_target, LISTS, a_list(namespace_type="agnostic"), one)
    try:
        status, seen = kibana_target.request("GET", LISTS, space=two, query={
            "list_id": agnostic["list_id"], "namespace_type": "agnostic"})
        assert status == 200 and seen["id"] == agnostic["id"]
    finally:
        kibana_target.request("DELETE", LISTS, space=one,
                              query={"list_id": agnostic["list_id"], "namespace_type": "agnostic"})


def test_import_creates_lists_then_resolves_rule_references_check_rule_exception_references(
    kibana_target: KibanaTarget,
) -> None:
    space = kibana_target.new_space()
    lst = a_list(type="rule_default")
    item = {k: v for k, v in an_item(lst["list_id"]).items()}
    reference = {"id": lst["list_id"], "list_id": lst["list_id"], "type": "rule_default",
                 "namespace_type": "single"}
    linked = a_rule(exceptions_list=[reference])
    dangling = a_rule(exceptions_list=[{**reference, "id": "x", "list_id": "no-such-list"}])
    status, answer = import_rules(kibana_target, [linked, dangling, lst, item], space=space)
    assert status == 200, answer
    assert answer["exceptions_success_count"] == 2 and answer["success_count"] == 2
    [error] = answer["errors"]
    assert error["rule_id"] == dangling["rule_id"] and error["error"]["status_code"] == 400
    assert "references a non existent exception list" in error["error"]["message"]
    stored = kibana_target.get_rule(space, linked["rule_id"])
    live_list = kibana_target.request("GET", LISTS, space=space,
                                      query={"list_id": lst["list_id"], "namespace_type": "single"})[1]
    assert stored["exceptions_list"] == [{**reference, "id": live_list["id"]}]  # id from list_id
    assert kibana_target.get_rule(space, dangling["rule_id"])["exceptions_list"] == []  # link dropped
    assert [i["item_id"] for i in kibana_target.exception_items(space, lst["list_id"])] == [item["item_id"]]


def test_rules_api_stores_exception_references_as_given_create_rule_route(
    kibana_target: KibanaTarget,
) -> None:
    space = kibana_target.new_space()
    reference = {"id": "not-a-list", "list_id": "no-such-list", "type": "detection",
                 "namespace_type": "single"}
    rule = create(kibana_target, a_rule(exceptions_list=[reference]), space=space)
    assert rule["exceptions_list"] == [reference]


@pytest.mark.integration
def test_execution_applies_the_rules_exception_items_get_exceptions(kibana_target: KibanaTarget) -> None:
    standin = standin_of(kibana_target, "execution on the local Elasticsearch node is the stand-in's")
    if not standin.es_url:
        pytest.fail("no Elasticsearch for the stand-in to execute on (set ES_URL)", pytrace=False)
    from dac.engine.elasticsearch import server_mappings
    from dac.engine.es_connection import connect
    from dac.mapping import mapping_for_index

    connection = connect({"ES_URL": standin.es_url})
    client = connection.client
    index = f"logs-kubernetes.audit_logs-standin{uuid.uuid4().hex[:8]}"
    space = kibana_target.new_space()
    mapping = mapping_for_index(index)
    assert mapping is not None
    client.indices.create(index=index, mappings=server_mappings(mapping, connection.capabilities.modules),
                          settings={"number_of_shards": 1, "number_of_replicas": 0})
    try:
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        for user in ("alice", "bob"):
            client.index(index=index, refresh=True, document={
                "@timestamp": now, "kubernetes": {"audit": {"verb": "create", "user": {"username": user}}}})
        lst = post(kibana_target, LISTS, a_list(), space)
        post(kibana_target, ITEMS, an_item(lst["list_id"]), space)  # alice is excepted
        expired = an_item(lst["list_id"], expire_time="2000-01-01T00:00:00.000Z")
        expired["entries"] = [{**expired["entries"][0], "value": "bob"}]
        post(kibana_target, ITEMS, expired, space)  # expired: bob still alerts
        reference = {"id": lst["id"], "list_id": lst["list_id"], "type": "detection",
                     "namespace_type": "single"}
        rule = create(kibana_target, a_rule(index=[index], enabled=True, exceptions_list=[reference]),
                      space=space)
        standin.run_enabled_rules(space)
        last = kibana_target.get_rule(space, rule["rule_id"])["execution_summary"]["last_execution"]
        assert last["status"] == "succeeded", last
        client.indices.refresh(index=f".alerts-security.alerts-{space}")
        alerts = client.search(index=f".alerts-security.alerts-{space}",
                               query={"term": {"kibana.alert.rule.rule_id": rule["rule_id"]}})
        users = [h["_source"]["kubernetes"]["audit"]["user"]["username"] for h in alerts["hits"]["hits"]]
        assert users == ["bob"]
    finally:
        client.options(ignore_status=404).indices.delete(index=f"{index},.alerts-security.alerts-{space}",
                                                         expand_wildcards="all")


# --------------------------------------------------------------------------- the harness itself

def test_target_repr_shows_no_secret_pytest_prints_fixture_values() -> None:
    """pytest puts fixture reprs into a failing test's report, i.e. the CI log of a real-Kibana run."""
    password, key = "s3cret-pass", "s3cret-api-key"
    token = "Basic " + base64.b64encode(f"elastic:{password}".encode()).decode()
    target = KibanaTarget(
        url=f"https://elastic:{password}@kb.example:5601",
        env={"KIBANA_URL": "https://kb.example:5601", "KIBANA_API_KEY": key, "KIBANA_PASSWORD": password},
        api_key=key, kind="real Kibana at https://kb.example:5601", secrets=[password, key],
        _authorization=token,
    )
    shown = repr(target)
    assert "real Kibana at https://kb.example:5601" in shown
    for secret in (password, key, token.split()[1]):
        assert secret not in shown
