"""Every input format converts as Elastic's Kubernetes integration does, judged by its pipeline tests.

Fixtures: tests/fixtures/integrations/ (SOURCES.md names the upstream commits). EKS has no upstream
pipeline test; its fixture is written from the CloudWatch Logs subscription-filter documentation.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from dac.events.formats import detect
from dac.events.k8s_audit import Collected, to_document
from dac.events.reader import read_events
from dac.mapping import load_mapping

FIXTURES = Path(__file__).parents[1] / "fixtures" / "integrations"
# What Agent and Fleet add around the pipeline (data_stream.*, ecs.version, event.dataset) and the
# pipeline's input-dependent cloud.provider: absent from pipeline tests, which feed the pipeline alone.
AROUND_THE_PIPELINE = ("data_stream.", "ecs.", "event.dataset", "cloud.provider")
# d9de7824's expected documents predate the pipeline's orchestrator.* processors (default.yml at
# 8e8a63a8 has them) and carry no @timestamp (pipeline tests give none; dac sets stageTimestamp).
NEWER_PIPELINE = ("orchestrator.", "@timestamp")


def leaves(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, inner in value.items():
            out.update(leaves(inner, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: value}


def expected(name: str) -> list[dict[str, Any]]:
    return json.loads((FIXTURES / f"{name}-expected.json").read_text("utf-8"))["expected"]


def lines(name: str) -> list[bytes]:
    return (FIXTURES / name).read_bytes().splitlines()


def compare(ours: dict[str, Any], theirs: dict[str, Any], extra_allowed: tuple[str, ...]) -> int:
    """Every field upstream expects, with its value; nothing more besides ``extra_allowed``."""
    mine, wanted = leaves(ours), leaves(theirs)
    wanted.pop("tags", None)  # test-audit.log-config.yml adds preserve_original_event
    assert {k: mine.get(k) for k in wanted} == wanted
    extra = sorted(k for k in mine.keys() - wanted.keys() if not k.startswith(extra_allowed))
    assert extra == []
    return len(wanted)


def test_native_events_as_the_pipeline_test_feeds_them() -> None:
    """The pipeline test sends each line as ``message`` (no Agent processors), as cloud inputs do."""
    docs = expected("test-audit.log")
    for line, theirs in zip(lines("test-audit.log")[:3], docs[:3], strict=True):
        event = orjson.loads(line)
        assert detect(event) == "native"
        ours = to_document(event, collected=Collected("message", line.decode()))
        assert compare(ours, theirs, AROUND_THE_PIPELINE + NEWER_PIPELINE) == len(leaves(theirs)) - 1


def test_native_events_read_from_the_file_as_agent_does() -> None:
    """Agent's filestream dedots annotations first: no event.outcome, no event.original (stream.yml.hbs)."""
    theirs = expected("test-audit.log")[0]
    ours = read_events([FIXTURES / "test-audit.log"], "auto").documents[0].source
    assert "outcome" not in ours["event"] and "original" not in ours["event"]
    assert ours["kubernetes"] == theirs["kubernetes"]


def test_gke_log_entry() -> None:
    line = lines("test-audit.log")[3]
    assert detect(orjson.loads(line)) == "gke"
    (document,) = [d for d in read_events([FIXTURES / "test-audit.log"], "auto").documents
                   if "protoPayload" in d.source["kubernetes"]["audit"]]
    ours = document.source
    assert compare(ours, expected("test-audit.log")[3], AROUND_THE_PIPELINE + NEWER_PIPELINE) == 26
    assert ours["orchestrator"] == {
        "type": "kubernetes",
        "resource": {"name": "readyz", "type": "k8s_cluster"},
        "cluster": {"name": "test-cluster", "id": "elastic-siem"},
    }
    assert ours["cloud"] == {"provider": "gcp"}
    assert ours["@timestamp"] == "2025-07-13T08:38:39.127Z"  # the entry's timestamp


def test_aks_kube_audit_record() -> None:
    result = read_events([FIXTURES / "test-kube-audit.log"], "auto")
    assert result.errors == []
    (document,) = result.documents
    theirs = expected("test-kube-audit.log")[0]
    assert compare(document.source, theirs, AROUND_THE_PIPELINE) == len(leaves(theirs))
    assert document.source["cloud"] == {"provider": "azure"}


def test_aks_event_hub_message_holds_several_records() -> None:
    record = orjson.loads(lines("test-kube-audit.log")[0])
    second = {**record, "time": "2025-10-07T16:19:20.000000001Z"}
    from dac.events.formats import convert

    converted = list(convert({"records": [record, second]}, b"", "auto"))
    assert [source["@timestamp"] for _, source in converted] == [
        "2025-10-07T16:19:19.647Z", "2025-10-07T16:19:20.000Z"]


def test_aks_metadata_is_mapped_with_the_version_that_introduced_it() -> None:
    mapping = load_mapping("kubernetes.audit_logs")
    theirs = expected("test-kube-audit.log")[0]["kubernetes"]["audit"]["aks_metadata"]
    assert {f"kubernetes.audit.aks_metadata.{k}" for k in theirs} <= set(mapping.fields)
    assert "aks_metadata" in mapping.body["_meta"]["field_versions"]


def test_eks_cloudwatch_subscription_payload() -> None:
    result = read_events([FIXTURES / "eks-cloudwatch-subscription.ndjson"], "auto")
    assert result.errors == []  # the CONTROL_MESSAGE carries no events and is not an error
    payload = orjson.loads(lines("eks-cloudwatch-subscription.ndjson")[1])
    assert len(result.documents) == len(payload["logEvents"]) == 2
    for document, item in zip(result.documents, payload["logEvents"], strict=True):
        event = orjson.loads(item["message"])
        native = to_document(event, collected=Collected("aws-cloudwatch", item["message"]))
        assert document.source["kubernetes"] == native["kubernetes"]
        assert document.source["event"]["original"] == item["message"]
        assert document.source["event"]["outcome"] == "success"
        assert document.source["cloud"] == {"provider": "aws"}
    # @timestamp is the log event's timestamp (ms since the epoch), as the aws-cloudwatch input sets it
    assert [d.source["@timestamp"] for d in result.documents] == [
        "2025-11-20T10:00:01.200Z", "2025-11-20T10:00:02.700Z"]
    assert len({d.id for d in result.documents}) == 2


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"messageType": "DATA_MESSAGE", "logEvents": [{"message": "{"}]}, "logEvents[0].message is not"),
        ({"category": "kube-audit", "properties": {}}, "AKS record has no properties.log string"),
        ({"protoPayload": {"@type": "x"}, "timestamp": "2025-01-01T00:00:00Z"}, "not a google.cloud.audit"),
    ],
)
def test_broken_envelopes_are_one_line_errors(tmp_path, record, message) -> None:
    path = tmp_path / "x.ndjson"
    path.write_text(json.dumps(record) + "\n", "utf-8")
    result = read_events([path], "auto")
    assert len(result.errors) == 1 and message in str(result.errors[0])
    assert str(result.errors[0]).startswith(f"{path}:1: ")
