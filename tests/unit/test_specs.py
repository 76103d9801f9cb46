"""Compact event specs → raw audit events, and the errors bad specs give."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta

import pytest
from cryptography import x509
from cryptography.x509.name import _ASN1Type

from dac.errors import EventError
from dac.events import specs as specs_module
from dac.events.specs import BASE_TIME, KINDS, expand_events


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _der(event: dict) -> bytes:
    pem = base64.b64decode(event["requestObject"]["spec"]["request"]).decode("latin-1")
    body = pem.split("REQUEST-----", 1)[1].split("-----END")[0]
    return base64.b64decode("".join("".join(line.split()) for line in body.splitlines() if ":" not in line))


def test_the_documented_example_expands_to_a_create_approve_and_bootstrap():
    events = expand_events([
        {"csr_create": {"user": "alice", "subject": {"CN": "x", "O": ["system:masters"]}, "key": "ec-p256",
                        "pem": {"line_width": 64, "newline": "crlf"}, "signer": "example.com/ca",
                        "stages": ["RequestReceived", "ResponseComplete"], "name": "evil-csr"}},
        {"csr_approve": {"user": "bob", "csr": "evil-csr"}},
        {"kubelet_bootstrap": {"node": "ip-10-0-1-5"}},
        {"raw": {"kind": "Event", "verb": "get"}},
    ], seed=1)
    assert [(e.get("stage"), e["verb"]) for e in events] == [
        ("RequestReceived", "create"), ("ResponseComplete", "create"), ("ResponseComplete", "update"),
        ("ResponseComplete", "create"), (None, "get")]
    create, approve = events[1], events[2]
    assert "\r\n" in base64.b64decode(create["requestObject"]["spec"]["request"]).decode()
    assert create["user"]["username"] == "alice" and approve["user"]["username"] == "bob"
    assert approve["objectRef"]["name"] == "evil-csr"
    assert approve["requestObject"]["spec"]["request"] == create["requestObject"]["spec"]["request"]
    assert events[3]["user"]["username"].startswith("system:bootstrap:")
    assert events[4] == {"kind": "Event", "verb": "get"}


def test_requests_are_spaced_by_delay_from_the_base_time():
    events = expand_events([{"other_request": {}}, {"other_request": {"delay": 30}},
                            {"other_request": {"delay": 0.5}}], seed=0)
    times = [_time(e["requestReceivedTimestamp"]) for e in events]
    assert times == [BASE_TIME + timedelta(seconds=s) for s in (1, 31, 31.5)]


def test_same_seed_same_events_and_raw_is_copied():
    raw = {"kind": "Event", "objectRef": {"resource": "pods"}}
    spec = [{"csr_create": {"key": "ed25519"}}, {"csr_approve": {}}, {"csr_status": {}}, {"raw": raw}]
    first = expand_events(spec, seed=3)
    assert json.dumps(first) == json.dumps(expand_events(spec, seed=3))
    first[-1]["objectRef"]["resource"] = "changed"
    assert raw["objectRef"]["resource"] == "pods"


def test_subject_order_multi_valued_rdns_and_per_attribute_string_types():
    (event,) = expand_events([{"csr_create": {
        "subject": [{"O": "system:masters"}, [{"CN": "a"}, {"OU": "b"}], {"CN": "last"}],
        "string_type": {"O": "bmp", "CN": "printable"}, "key": "ed25519", "signer": "example.com/ca",
        "pem": {"line_width": 0, "gap": " ", "headers": {"Comment": "x"}, "before": "hi", "after": "bye"}}}],
        seed=0)
    parsed = x509.load_der_x509_csr(_der(event))
    assert [[(a.rfc4514_attribute_name, a.value, a._type) for a in rdn] for rdn in parsed.subject.rdns] == [
        [("O", "system:masters", _ASN1Type.BMPString)],
        [("CN", "a", _ASN1Type.PrintableString), ("OU", "b", _ASN1Type.UTF8String)],
        [("CN", "last", _ASN1Type.PrintableString)],
    ]


def test_default_outcome_follows_subject_restriction_and_refused_csrs_cannot_be_approved():
    events = expand_events([{"csr_create": {"subject": {"O": ["system:masters"], "CN": "x"}}}], seed=0)
    assert events[0]["responseStatus"]["code"] == 403
    with pytest.raises(EventError, match=r"events\[1\]\.csr_approve\.csr: no CSR was created"):
        expand_events([{"csr_create": {"subject": {"O": ["system:masters"]}}}, {"csr_approve": {}}], seed=0)


def test_kinds_cover_the_csr_life_cycle_and_other_traffic():
    events = expand_events([
        {"node_renewal": {"node": "n1", "serving": True}},
        {"controller_approve": {"controller": "gke"}},
        {"csr_status": {"controller": "certificate-controller"}},
        {"csr_create": {"request": "QUJD", "outcome": "invalid", "name": "broken"}},
        {"other_request": {"resource": "secrets", "verb": "get", "namespace": "prod", "name": "db",
                           "user": "mallory", "outcome": "forbidden"}},
    ], seed=2)
    renewal, approval, status, invalid, secret = events
    assert renewal["requestObject"]["spec"]["signerName"] == "kubernetes.io/kubelet-serving"
    assert approval["user"]["username"] == "system:gcp-controller-manager"
    assert status["user"]["username"] == "system:serviceaccount:kube-system:certificate-controller"
    assert status["objectRef"]["name"] == renewal["responseObject"]["metadata"]["name"]
    assert invalid["responseStatus"]["code"] == 422 and invalid["requestObject"]["spec"]["request"] == "QUJD"
    assert secret["annotations"]["authorization.k8s.io/decision"] == "forbid"


@pytest.mark.parametrize(("spec", "message"), [
    ({"csr_create": {"subjct": {}}}, "events[0].csr_create: unknown key 'subjct' (expected one of delay,"),
    ({"csr_creat": {}}, "events[0]: unknown kind 'csr_creat' (expected one of csr_create,"),
    ({"csr_create": {"key": "rsa-1024"}}, "events[0].csr_create.key: 'rsa-1024' is not one of rsa-2048,"),
    ({"csr_create": {"stages": "RequestReceived"}},
     "events[0].csr_create.stages: expected a list of strings, got a string ('RequestReceived')"),
    ({"csr_create": {"delay": "soon"}},
     "events[0].csr_create.delay: expected a number, got a string ('soon')"),
    ({"csr_create": {"pem": {"line_width": True}}},
     "events[0].csr_create.pem.line_width: expected an integer, got a boolean"),
    ({"csr_create": {"pem": {"width": 3}}}, "events[0].csr_create.pem: unknown key 'width'"),
    ({"csr_create": {"pem": {"indent": "x"}}},
     "events[0].csr_create.pem: indent may hold only spaces and tabs"),
    ({"csr_create": {"subject": {"CN": "a_b"}, "string_type": "printable"}},
     "events[0].csr_create.subject: 'a_b' has characters a PrintableString cannot hold"),
    ({"csr_create": {"subject": {"CN": 5}}}, "events[0].csr_create.subject: CN: expected a string"),
    ({"csr_create": {"request": "QUJD", "key": "ed25519"}},
     "events[0].csr_create.key: cannot be combined with a literal 'request'"),
    ({"other_request": {"resource": "widgets"}}, "events[0].other_request.resource: 'widgets' is not one of"),
    ({"raw": [1]}, "events[0].raw: expected a complete audit event (a mapping), got a list"),
    ({"a": {}, "b": {}}, "events[0]: expected a mapping with one key"),
    ({"csr_approve": {"csr": "ghost"}}, "events[0].csr_approve.csr: no CSR named 'ghost'"),
])
def test_bad_specs_name_the_item_and_key(spec, message):
    with pytest.raises(EventError) as caught:
        expand_events([spec], seed=0)
    assert str(caught.value).startswith(message)


def test_unknown_csr_name_lists_the_created_ones():
    expected = r"events\[1\]\.csr_status\.csr: no CSR named 'ghost' .*created: a\)"
    with pytest.raises(EventError, match=expected):
        expand_events([{"csr_create": {"name": "a"}}, {"csr_status": {"csr": "ghost"}}], seed=0)


def test_specs_must_be_a_list():
    with pytest.raises(EventError, match="events: expected a list"):
        expand_events({"csr_create": {}}, seed=0)  # type: ignore[arg-type]


def test_every_key_is_documented():
    doc = specs_module.__doc__
    for kind, keys in KINDS.items():
        assert f"**{kind}**" in doc, kind
        for key in keys:
            assert f"``{key}``" in doc, (kind, key)
