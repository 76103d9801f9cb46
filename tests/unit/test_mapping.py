"""The shipped kubernetes.audit_logs mapping: it loads, and the facts rules depend on hold.

Source: elastic/integrations packages/kubernetes/data_stream/audit_logs (fields/*.yml,
manifest.yml), types converted the way Fleet's epm/elasticsearch/template/template.ts does.
"""

from __future__ import annotations

import json
from importlib import resources

import pytest

from dac.mapping import load_mapping, mapping_for_index

NAME = "kubernetes.audit_logs"


@pytest.fixture(scope="module")
def mapping():
    return load_mapping(NAME)


def test_loads_with_meta(mapping):
    meta = mapping.body["_meta"]
    assert (meta["package"], meta["data_stream"]) == ("kubernetes", "audit_logs")
    assert mapping.package_version == meta["package_version"]
    assert meta["ecs_version"].startswith("8.")
    assert mapping.index_patterns == ["logs-kubernetes.audit_logs-*"]
    assert any("ingest_pipeline/default.yml@" in source for source in meta["sources"])
    assert mapping_for_index("logs-kubernetes.audit_logs-*") is mapping
    assert mapping_for_index("logs-kubernetes.audit_logs-default") is mapping


def test_file_is_sorted_and_pretty_printed():
    text = resources.files("dac.data.mappings").joinpath(f"{NAME}.json").read_text("utf-8")
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"


def test_dynamic_mapping_is_off_at_the_root(mapping):
    # data_stream/audit_logs/manifest.yml: elasticsearch.index_template.mappings.dynamic: false
    assert mapping.body["dynamic"] is False


def test_keywords_carry_fleets_default_ignore_above(mapping):
    keywords = [spec for spec in mapping.fields.values() if spec.type == "keyword"]
    assert len(keywords) > 100
    # ECS event.original is index: false / doc_values: false: Fleet drops ignore_above (mappings.ts keyword).
    assert {spec.name for spec in keywords if spec.ignore_above != 1024} == {"event.original"}
    assert mapping.field("event.original").index is False


@pytest.mark.parametrize(
    ("field", "kind"),
    [
        # keyword in the cloud-provider-era fields.yml (it was text in packages up to ~1.24).
        ("kubernetes.audit.user.groups", "keyword"),
        ("kubernetes.audit.user.username", "keyword"),
        ("kubernetes.audit.verb", "keyword"),
        ("kubernetes.audit.objectRef.resource", "keyword"),
        ("kubernetes.audit.objectRef.subresource", "keyword"),
        ("kubernetes.audit.annotations.authorization_k8s_io/decision", "keyword"),
        ("kubernetes.audit.annotations.authorization_k8s_io/reason", "text"),
        ("kubernetes.audit.sourceIPs", "text"),
        ("kubernetes.audit.userAgent", "text"),
        ("kubernetes.audit.responseStatus.code", "long"),  # fields.yml says integer; Fleet maps it as long
        ("kubernetes.audit.requestObject.spec.containers.image", "keyword"),
        ("kubernetes.audit.requestObject.spec.volumes.hostPath", "flattened"),
        ("kubernetes.audit.stageTimestamp", "date"),
        ("@timestamp", "date"),
        ("source.ip", "ip"),
        ("related.user", "keyword"),
        ("user.name.text", "match_only_text"),
        ("user_agent.original.text", "match_only_text"),
        ("message", "match_only_text"),
        ("data_stream.dataset", "constant_keyword"),
        ("event.dataset", "keyword"),
        ("orchestrator.resource.type", "keyword"),
    ],
)
def test_field_types(mapping, field, kind):
    assert mapping.field(field).type == kind


@pytest.mark.parametrize(
    "field",
    [
        "kubernetes.audit.requestObject.spec.request",
        "kubernetes.audit.requestObject.spec.signerName",
        "kubernetes.audit.requestObject.spec.usages",
        "kubernetes.audit.requestObject.status.conditions.type",
        "kubernetes.audit.responseObject.spec.request",
        "kubernetes.audit.responseStatus.details.name",
        "kubernetes.audit.user.extra",
        "event.category",
        "event.type",
    ],
)
def test_fields_the_package_does_not_map(mapping, field):
    assert mapping.field(field) is None


def test_rules_are_nested_and_dynamic(mapping):
    assert {"kubernetes.audit.requestObject.rules", "kubernetes.audit.responseObject.rules"} <= mapping.nested
    audit = mapping.body["properties"]["kubernetes"]["properties"]["audit"]["properties"]
    assert audit["requestObject"]["properties"]["rules"] == {"type": "nested", "dynamic": True}


def test_user_extra_is_keyword_through_a_dynamic_template(mapping):
    # template.ts: an ``object_type: keyword`` wildcard makes a dynamic template and a dynamic parent.
    audit = mapping.body["properties"]["kubernetes"]["properties"]["audit"]["properties"]
    assert audit["user"]["dynamic"] is True
    assert audit["user"]["properties"]["extra"] == {"type": "object", "dynamic": True}
    templates = {name: body for entry in mapping.body["dynamic_templates"] for name, body in entry.items()}
    assert templates["kubernetes.audit.user.extra.*"] == {
        "mapping": {"type": "keyword"},
        "match_mapping_type": "string",
        "path_match": "kubernetes.audit.user.extra.*",
    }
