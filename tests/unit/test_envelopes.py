"""``dac generate --format``: each envelope is read back as its format, to the same audit content."""

from __future__ import annotations

import json

import orjson
import pytest

from dac.cli import main
from dac.events.formats import convert, detect
from dac.events.generate import generate
from dac.events.k8s_audit import to_document


@pytest.mark.parametrize("envelope", ["native", "aks", "eks"])
def test_wrapped_events_convert_to_the_native_documents_audit_content(envelope, capsys) -> None:
    assert main(["generate", "csr-attacks", "--count", "25", "--seed", "4", "--format", envelope]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {detect(r) for r in records} == {envelope}
    documents = [s for r in records for _, s in convert(r, orjson.dumps(r), "auto")]
    natives = [to_document(e) for e in generate("csr-attacks", 25, seed=4)]
    assert len(documents) == 25
    for document, native in zip(documents, natives, strict=True):
        assert document["kubernetes"]["audit"] | {"aks_metadata": None} == native["kubernetes"]["audit"] | {
            "aks_metadata": None}
        assert document["@timestamp"] == native["@timestamp"]


def test_gke_entries_carry_the_method_and_request_where_the_integration_keeps_them(capsys) -> None:
    assert main(["generate", "csr-attacks", "--count", "10", "--seed", "4", "--format", "gke"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {detect(r) for r in records} == {"gke"}
    natives = list(generate("csr-attacks", 10, seed=4))
    for record, native in zip(records, natives, strict=True):
        (_, document), = convert(record, orjson.dumps(record), "auto")
        audit = document["kubernetes"]["audit"]
        assert audit["auditID"] == native["auditID"]
        assert audit["stageTimestamp"] == native["stageTimestamp"]
        payload = audit["protoPayload"]
        assert payload["methodName"].startswith("io.k8s.certificates.v1.certificatesigningrequests")
        assert payload["authenticationInfo"]["principalEmail"] == native["user"]["username"]
        if "spec" in native.get("requestObject", {}):
            assert payload["request"]["spec"]["request"] == native["requestObject"]["spec"]["request"]
        assert document["orchestrator"]["cluster"] == {"name": "demo", "id": "demo-project"}
