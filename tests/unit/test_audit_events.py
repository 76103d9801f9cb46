"""Raw audit events: what each stage and outcome carries, CSR life cycle, scenarios and corpus."""

from __future__ import annotations

import base64
import collections
import json
import re
from datetime import UTC, datetime
from random import Random

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from dac.asn1 import STRING_TYPES
from dac.errors import DacError
from dac.events import audit
from dac.events.csr import ENCODING_FAMILIES, KEY_TYPES, PemStyle, Subject, make_csr
from dac.events.generate import BENIGN_SHAPES, MALICIOUS_SHAPES, SCENARIOS, efficacy_corpus, generate

AT = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
MICRO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
ALICE = audit.human("alice")


def _masters_csr(signer: str = audit.CLIENT_SIGNER, name: str = "evil") -> audit.CsrObject:
    csr = make_csr(Subject.simple("x", ("system:masters",)), "ed25519")
    return audit.new_csr(Random(1), ALICE, name=name, csr=csr, signer_name=signer, created=AT)


def _both_stages(request: audit.ApiRequest) -> tuple[dict, dict]:
    received, complete = request.events(Random(2), AT, audit.STAGES)
    return received, complete


def test_request_received_has_no_body_status_or_decision_and_no_name_on_create():
    received, complete = _both_stages(audit.csr_create(_masters_csr("example.com/ca")))
    assert received["auditID"] == complete["auditID"]
    for key in ("requestObject", "responseObject", "responseStatus", "annotations"):
        assert key not in received
    assert "name" not in received["objectRef"]
    assert complete["objectRef"]["name"] == "evil"  # taken from the decoded body
    assert complete["responseStatus"] == {"metadata": {}, "code": 201}
    assert complete["annotations"]["authorization.k8s.io/decision"] == "allow"
    assert complete["requestObject"]["spec"]["signerName"] == "example.com/ca"
    assert complete["responseObject"]["spec"]["username"] == "alice"
    for event in (received, complete):
        assert MICRO_TIME.match(event["requestReceivedTimestamp"])
        assert MICRO_TIME.match(event["stageTimestamp"])
        assert event["stageTimestamp"] > event["requestReceivedTimestamp"]
    assert complete["stageTimestamp"] > received["stageTimestamp"]


def test_authorization_denial_never_decoded_the_body():
    _, event = _both_stages(audit.csr_create(_masters_csr(), outcome="forbidden"))
    assert "requestObject" not in event and "name" not in event["objectRef"]
    assert event["responseStatus"]["code"] == 403
    assert event["responseStatus"]["message"] == (
        'certificatesigningrequests.certificates.k8s.io is forbidden: User "alice" cannot create resource '
        '"certificatesigningrequests" in API group "certificates.k8s.io" at the cluster scope')
    assert event["annotations"] == {"authorization.k8s.io/decision": "forbid",
                                    "authorization.k8s.io/reason": ""}
    assert event["responseObject"]["kind"] == "Status"


def test_subject_restriction_admission_refuses_masters_for_the_client_signer_by_default():
    _, event = _both_stages(audit.csr_create(_masters_csr()))
    assert event["responseStatus"]["code"] == 403
    assert event["responseStatus"]["message"].endswith(
        "use of kubernetes.io/kube-apiserver-client signer with system:masters group is not allowed")
    assert event["annotations"]["authorization.k8s.io/decision"] == "allow"
    assert event["requestObject"]["metadata"]["name"] == "evil"
    _, other_signer = _both_stages(audit.csr_create(_masters_csr("example.com/ca")))
    assert other_signer["responseStatus"]["code"] == 201


def test_validation_failure_is_422_with_the_body():
    _, event = _both_stages(audit.csr_create(_masters_csr("example.com/ca"), outcome="invalid"))
    assert event["responseStatus"]["code"] == 422 and event["responseStatus"]["reason"] == "Invalid"
    assert event["responseStatus"]["details"]["causes"][0]["field"] == "spec.request"
    assert "requestObject" in event


@pytest.mark.parametrize(("level", "has_request", "has_response"), [
    ("Metadata", False, False), ("Request", True, False), ("RequestResponse", True, True)])
def test_level_decides_which_bodies_are_logged(level, has_request, has_response):
    (event,) = audit.csr_create(_masters_csr("example.com/ca"), level=level).events(Random(0), AT)
    assert ("requestObject" in event, "responseObject" in event) == (has_request, has_response)
    assert event["level"] == level


def test_kubectl_approval_update_then_signing():
    obj = _masters_csr("example.com/ca")
    approve, approved = audit.csr_approve(obj, audit.human("bob"), AT)
    (event,) = approve.events(Random(0), AT)
    assert event["requestURI"] == "/apis/certificates.k8s.io/v1/certificatesigningrequests/evil/approval"
    assert event["objectRef"]["subresource"] == "approval"
    assert event["objectRef"]["uid"] == obj.uid
    assert event["objectRef"]["resourceVersion"] == str(obj.resource_version)
    condition = event["requestObject"]["status"]["conditions"][-1]
    assert (condition["type"], condition["reason"]) == ("Approved", "KubectlApprove")
    assert event["requestObject"]["spec"]["request"] == obj.request  # the whole CSR travels with the update

    status, signed = audit.csr_status(approved, audit.CONTROLLERS["kube-controller-manager"], AT, Random(0))
    (event,) = status.events(Random(0), AT)
    assert event["user"]["username"] == "system:kube-controller-manager"
    assert event["objectRef"]["subresource"] == "status"
    pem = base64.b64decode(event["requestObject"]["status"]["certificate"])
    cert = x509.load_pem_x509_certificate(pem)
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    requested = x509.load_der_x509_csr(obj.csr.der).public_key()
    assert cert.public_key().public_bytes(*spki) == requested.public_bytes(*spki)
    issued = [(a.rfc4514_attribute_name, a.value) for a in cert.subject]
    assert issued == [("O", "system:masters"), ("CN", "x")]
    assert signed.certificate == event["requestObject"]["status"]["certificate"]


def test_patch_approval_logs_the_patch_and_admission_can_refuse_the_approver():
    request, after = audit.csr_approve(_masters_csr("example.com/ca"), ALICE, AT, verb="patch",
                                       outcome="admission-denied")
    (event,) = request.events(Random(0), AT)
    assert event["verb"] == "patch" and "uid" not in event["objectRef"]
    assert set(event["requestObject"]) == {"status"}
    assert "user not permitted to approve requests with signerName" in event["responseStatus"]["message"]
    assert event["annotations"]["authorization.k8s.io/decision"] == "allow"
    assert after.conditions == ()  # nothing was stored


def test_kubelet_bootstrap_uses_generate_name_and_the_kubelet_signer():
    request, obj = audit.kubelet_bootstrap(Random(3), "ip-10-0-1-5", "abcdef", AT)
    (event,) = request.events(Random(0), AT)
    assert event["user"]["username"] == "system:bootstrap:abcdef"
    assert "system:bootstrappers" in event["user"]["groups"]
    assert "name" not in event["objectRef"]
    assert event["requestObject"]["metadata"] == {"generateName": "csr-", "creationTimestamp": None}
    assert event["responseObject"]["metadata"]["name"] == obj.name and re.fullmatch(r"csr-\w{5}", obj.name)
    assert event["requestObject"]["spec"]["signerName"] == audit.KUBELET_CLIENT_SIGNER
    assert obj.csr.subject.user == "system:node:ip-10-0-1-5" and obj.csr.subject.groups == ["system:nodes"]
    request, _ = audit.controller_approve(obj, "eks", AT)
    (event,) = request.events(Random(0), AT)
    assert event["user"]["username"] == "eks:certificate-controller"
    assert event["requestObject"]["status"]["conditions"][-1]["reason"] == "AutoApproved"


def test_system_masters_members_are_allowed_without_an_rbac_reason():
    obj = audit.new_csr(Random(0), audit.CONTROLLERS["aks"], name="x",
                        csr=make_csr(Subject.simple("y"), "ed25519"), signer_name="example.com/ca")
    (event,) = audit.csr_create(obj).events(Random(0), AT)
    assert event["annotations"] == {"authorization.k8s.io/decision": "allow",
                                    "authorization.k8s.io/reason": ""}
    (event,) = audit.csr_create(_masters_csr("example.com/ca")).events(Random(0), AT)
    reason = event["annotations"]["authorization.k8s.io/reason"]
    assert reason.startswith("RBAC: allowed by ClusterRoleBinding")


def test_other_resources_address_like_the_api_server():
    lease = audit.resource_request(Random(0), audit.node("n1"), "update", "leases",
                                   namespace="kube-node-lease", name="n1")
    (event,) = lease.events(Random(0), AT)
    assert event["requestURI"] == "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1"
    assert event["objectRef"]["apiGroup"] == "coordination.k8s.io"
    denied = audit.resource_request(Random(0), ALICE, "get", "secrets", namespace="prod", name="db",
                                    outcome="forbidden")
    (event,) = denied.events(Random(0), AT)
    assert event["requestURI"] == "/api/v1/namespaces/prod/secrets/db"
    assert event["objectRef"]["apiGroup"] == ""
    assert event["responseStatus"]["message"] == (
        'secrets "db" is forbidden: User "alice" cannot get resource "secrets" in API group "" '
        'in the namespace "prod"')
    with pytest.raises(ValueError, match="unknown resource"):
        audit.resource_request(Random(0), ALICE, "get", "widgets")


def test_same_seed_same_events():
    def run() -> list[dict]:
        rng = Random(9)
        obj = audit.new_csr(rng, ALICE, name="a", csr=make_csr(Subject.simple("a"), "ec-p256"),
                            style=PemStyle(newline="\r\n"))
        return audit.csr_create(obj).events(rng, AT, audit.STAGES)

    assert json.dumps(run()) == json.dumps(run())


# --- scenarios and the efficacy corpus ---

@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_scenarios_give_exactly_count_events_reproducibly(scenario):
    first = list(generate(scenario, 400, seed=4))
    assert len(first) == 400
    assert json.dumps(first) == json.dumps(list(generate(scenario, 400, seed=4)))
    assert json.dumps(first) != json.dumps(list(generate(scenario, 400, seed=5)))
    assert all(event["kind"] == "Event" and event["apiVersion"] == "audit.k8s.io/v1" for event in first)


def test_mixed_is_about_one_percent_csr_traffic():
    resources = collections.Counter(e["objectRef"]["resource"] for e in generate("mixed", 20_000, seed=1))
    share = resources["certificatesigningrequests"] / 20_000
    assert 0.005 < share < 0.02
    assert len(resources) >= 8


def test_csr_attacks_cover_creates_approvals_signing_and_refusals():
    events = list(generate("csr-attacks", 600, seed=2))
    seen = {(e["verb"], e["objectRef"].get("subresource", ""), e.get("responseStatus", {}).get("code"))
            for e in events}
    for expected in [("create", "", 201), ("create", "", 403), ("update", "status", 200)]:
        assert expected in seen
    assert {("update", "approval", 200), ("patch", "approval", 200)} & seen


def test_unknown_scenario_is_a_dac_error():
    with pytest.raises(DacError, match="unknown scenario 'nope'"):
        next(generate("nope", 1, 0))


def test_efficacy_corpus_covers_every_combination_with_true_labels():
    corpus = efficacy_corpus(seed=3, malicious=175, benign=175)
    malicious = [item for item in corpus if item.malicious]
    benign = [item for item in corpus if not item.malicious]
    assert len(malicious) == len(benign) == 175
    combos = {(i.encoding_family, i.string_type, i.key_type) for i in malicious}
    assert len(combos) == len(ENCODING_FAMILIES) * len(STRING_TYPES) * len(KEY_TYPES)
    assert {(i.encoding_family, i.string_type, i.key_type) for i in benign} == combos
    assert {i.shape for i in malicious} == set(MALICIOUS_SHAPES)
    assert {i.shape for i in benign} == set(BENIGN_SHAPES)
    for item in corpus:
        event = item.events[-1]
        assert event["stage"] == "ResponseComplete" and event["verb"] == "create"
        assert len({e["auditID"] for e in item.events}) == 1
    again = efficacy_corpus(seed=3, malicious=175, benign=175)
    assert json.dumps([i.events for i in corpus]) == json.dumps([i.events for i in again])
