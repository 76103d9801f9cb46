"""Raw audit Event -> indexed document, checked against what the integration does.

Expected values follow elastic/integrations packages/kubernetes/data_stream/audit_logs/
agent/stream/stream.yml.hbs (Agent side) and elasticsearch/ingest_pipeline/default.yml
(the ingest pipeline); the comments name the processor each value comes from.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from dac.documents import values_at
from dac.errors import EventError
from dac.events.k8s_audit import INTEGRATION_PACKAGE_VERSION, to_document
from dac.mapping import load_mapping

CSR_PEM_B64 = (
    "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0KTUlJQ1Z6Q0NBVDhDQVFBd0VqRVFNQTRHQTFVRUF3d0haWFpsTFdOeQot"
    "LS0tLUVORCBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0K"
)
ADMIN_REASON = (
    'RBAC: allowed by ClusterRoleBinding "kubeadm:cluster-admins" of ClusterRole "cluster-admin" '
    'to Group "kubeadm:cluster-admins"'
)
ADMIN = {
    "username": "kubernetes-admin",
    "groups": ["kubeadm:cluster-admins", "system:authenticated"],
    "extra": {"authentication.kubernetes.io/credential-id": ["X509SHA256=3b1c0e6bb0f2d7e9"]},
}
CSR_REF = {
    "resource": "certificatesigningrequests",
    "name": "eve-csr",
    "apiGroup": "certificates.k8s.io",
    "apiVersion": "v1",
}
CSR_SPEC = {
    "request": CSR_PEM_B64,
    "signerName": "kubernetes.io/kube-apiserver-client",
    "expirationSeconds": 86400,
    "usages": ["client auth"],
}
KUBECTL = "kubectl/v1.31.0 (linux/amd64) kubernetes/9edcffc"

# kubectl create -f csr.yaml, first line: the audit filter runs before authorization and request
# decoding, so this stage has neither annotations nor request/response objects.
CSR_CREATE_RECEIVED: dict[str, Any] = {
    "kind": "Event",
    "apiVersion": "audit.k8s.io/v1",
    "level": "RequestResponse",
    "auditID": "0b5c2f2e-6a8e-4b8e-9d6c-0c3f1b7f9a11",
    "stage": "RequestReceived",
    "requestURI": "/apis/certificates.k8s.io/v1/certificatesigningrequests?fieldManager=kubectl-create",
    "verb": "create",
    "user": ADMIN,
    "sourceIPs": ["172.18.0.1"],
    "userAgent": KUBECTL,
    "objectRef": CSR_REF,
    "requestReceivedTimestamp": "2025-03-04T06:22:18.819232Z",
    "stageTimestamp": "2025-03-04T06:22:18.819232Z",
}
CSR_CREATE_COMPLETE: dict[str, Any] = {
    **CSR_CREATE_RECEIVED,
    "stage": "ResponseComplete",
    "responseStatus": {"metadata": {}, "code": 201},
    "requestObject": {
        "kind": "CertificateSigningRequest",
        "apiVersion": "certificates.k8s.io/v1",
        "metadata": {"name": "eve-csr"},
        "spec": CSR_SPEC,
        "status": {},
    },
    "responseObject": {
        "kind": "CertificateSigningRequest",
        "apiVersion": "certificates.k8s.io/v1",
        "metadata": {
            "name": "eve-csr",
            "uid": "9d1f5a53-3c4e-4a0e-8f4e-2b2d8c1e7a10",
            "resourceVersion": "48213",
        },
        "spec": {**CSR_SPEC, "username": "kubernetes-admin", "groups": ADMIN["groups"]},
        "status": {},
    },
    "stageTimestamp": "2025-03-04T06:22:18.822532Z",
    "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ADMIN_REASON},
}
APPROVED = {
    "type": "Approved",
    "status": "True",
    "reason": "KubectlApprove",
    "message": "This CSR was approved by kubectl certificate approve.",
    "lastUpdateTime": "2025-03-04T06:23:01Z",
    "lastTransitionTime": None,
}
# kubectl certificate approve eve-csr: an update of the "approval" subresource.
CSR_APPROVE: dict[str, Any] = {
    "kind": "Event",
    "apiVersion": "audit.k8s.io/v1",
    "level": "RequestResponse",
    "auditID": "c3f0e2a4-1d7b-4e55-b8f0-77a4e0d0c2b3",
    "stage": "ResponseComplete",
    "requestURI": "/apis/certificates.k8s.io/v1/certificatesigningrequests/eve-csr/approval",
    "verb": "update",
    "user": ADMIN,
    "sourceIPs": ["172.18.0.1", "10.0.0.7", "172.18.0.1"],
    "userAgent": KUBECTL,
    "objectRef": {**CSR_REF, "subresource": "approval"},
    "responseStatus": {"metadata": {}, "code": 200},
    "requestObject": {
        "kind": "CertificateSigningRequest",
        "apiVersion": "certificates.k8s.io/v1",
        "metadata": {"name": "eve-csr", "resourceVersion": "48213"},
        "spec": CSR_SPEC,
        "status": {"conditions": [APPROVED]},
    },
    "requestReceivedTimestamp": "2025-03-04T06:23:01.101010Z",
    "stageTimestamp": "2025-03-04T06:23:01.107999Z",
    "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ADMIN_REASON},
}
# A service account trying to approve: denied by RBAC, logged at Metadata level.
FORBIDDEN: dict[str, Any] = {
    "kind": "Event",
    "apiVersion": "audit.k8s.io/v1",
    "level": "Metadata",
    "auditID": "7e4a9b1c-2f3d-4c5e-8a9b-0c1d2e3f4a5b",
    "stage": "ResponseComplete",
    "requestURI": "/apis/certificates.k8s.io/v1/certificatesigningrequests/eve-csr/approval",
    "verb": "update",
    "user": {
        "username": "system:serviceaccount:default:builder",
        "uid": "5c0b6e4e-8b1f-4a8e-9d4b-3f2a1c0e9d8f",
        "groups": ["system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"],
        "extra": {"authentication.kubernetes.io/pod-name": ["builder-7d9f8"]},
    },
    "sourceIPs": ["10.244.0.12"],
    "userAgent": "python-requests/2.32.3",
    "objectRef": {**CSR_REF, "subresource": "approval"},
    "responseStatus": {
        "metadata": {},
        "status": "Failure",
        "message": 'certificatesigningrequests.certificates.k8s.io "eve-csr" is forbidden: User '
        '"system:serviceaccount:default:builder" cannot update resource '
        '"certificatesigningrequests/approval" in API group "certificates.k8s.io" at the cluster scope',
        "reason": "Forbidden",
        "details": {"name": "eve-csr", "group": "certificates.k8s.io", "kind": "certificatesigningrequests"},
        "code": 403,
    },
    "requestReceivedTimestamp": "2025-03-04T07:00:00.000100Z",
    "stageTimestamp": "2025-03-04T07:00:00.001999Z",
    "annotations": {"authorization.k8s.io/decision": "forbid", "authorization.k8s.io/reason": ""},
}
# kubectl get pods from an IPv6 client, timestamps written with a UTC offset.
POD_LIST: dict[str, Any] = {
    "kind": "Event",
    "apiVersion": "audit.k8s.io/v1",
    "level": "Metadata",
    "auditID": "f00dfeed-0000-4000-8000-000000000001",
    "stage": "ResponseComplete",
    "requestURI": "/api/v1/namespaces/default/pods?limit=500",
    "verb": "list",
    "user": {"username": "kubernetes-admin", "groups": ["system:authenticated"]},
    "sourceIPs": ["2001:db8::1"],
    "userAgent": KUBECTL,
    "objectRef": {"resource": "pods", "namespace": "default", "apiGroup": "", "apiVersion": "v1"},
    "responseStatus": {"metadata": {}, "code": 200},
    "requestReceivedTimestamp": "2025-03-04T08:15:30.999999+02:00",
    "stageTimestamp": "2025-03-04T08:15:31.000999+02:00",
    "annotations": {
        "authorization.k8s.io/decision": "allow",
        "authorization.k8s.io/reason": ADMIN_REASON,
        "pod-security.kubernetes.io/audit-violations": "would violate PodSecurity \"restricted:latest\"",
    },
}
REALISTIC = [CSR_CREATE_RECEIVED, CSR_CREATE_COMPLETE, CSR_APPROVE, FORBIDDEN, POD_LIST]
COMMON = {
    # Agent / Fleet, before the pipeline.
    "data_stream": {"dataset": "kubernetes.audit_logs", "namespace": "default", "type": "logs"},
    "ecs": {"version": "8.0.0"},
}


def test_csr_create_response_complete_field_by_field():
    assert to_document(CSR_CREATE_COMPLETE) == {
        **COMMON,
        "@timestamp": "2025-03-04T06:22:18.822Z",  # stageTimestamp, millisecond precision
        "event": {
            "dataset": "kubernetes.audit_logs",
            "kind": "event",  # set event.kind
            "action": "create",  # set event.action copy_from verb
            # no event.outcome: the Agent already renamed authorization.k8s.io/decision
        },
        "kubernetes": {
            "audit": {
                "kind": "Event",
                "apiVersion": "audit.k8s.io/v1",
                "level": "RequestResponse",
                "auditID": "0b5c2f2e-6a8e-4b8e-9d6c-0c3f1b7f9a11",
                "stage": "ResponseComplete",
                "requestURI": CSR_CREATE_COMPLETE["requestURI"],
                "verb": "create",
                "user": ADMIN,
                "sourceIPs": ["172.18.0.1"],
                "userAgent": KUBECTL,
                "objectRef": CSR_REF,
                "responseStatus": {"code": 201},  # metadata {} dropped by script_to_drop_empty_values
                # drop_fields removes only .metadata; status {} goes with the drop-empty script
                "requestObject": {
                    "kind": "CertificateSigningRequest",
                    "apiVersion": "certificates.k8s.io/v1",
                    "spec": CSR_SPEC,
                },
                "responseObject": {
                    "kind": "CertificateSigningRequest",
                    "apiVersion": "certificates.k8s.io/v1",
                    "spec": {**CSR_SPEC, "username": "kubernetes-admin", "groups": ADMIN["groups"]},
                },
                "requestReceivedTimestamp": "2025-03-04T06:22:18.819232Z",
                "stageTimestamp": "2025-03-04T06:22:18.822532Z",
                # dedot_annotations (Agent) and the pipeline's annotation script
                "annotations": {
                    "authorization_k8s_io/decision": "allow",
                    "authorization_k8s_io/reason": ADMIN_REASON,
                },
            }
        },
        "user": {"name": "kubernetes-admin"},  # no uid in a client-certificate user
        "user_agent": {"original": KUBECTL},
        "source": {"ip": ["172.18.0.1"]},  # convert type ip
        "client": {"ip": ["172.18.0.1"]},
        "orchestrator": {
            "type": "kubernetes",
            "api_version": "audit.k8s.io/v1",  # the pipeline copies the *audit* apiVersion
            "resource": {"type": "certificatesigningrequests", "name": "eve-csr"},
        },
        "related": {"user": ["kubernetes-admin"], "ip": ["172.18.0.1"]},
    }


def test_csr_create_request_received():
    doc = to_document(CSR_CREATE_RECEIVED)
    audit = doc["kubernetes"]["audit"]
    assert audit["stage"] == "RequestReceived"
    assert {"annotations", "responseStatus", "requestObject", "responseObject"}.isdisjoint(audit)
    assert doc["event"] == {"dataset": "kubernetes.audit_logs", "kind": "event", "action": "create"}
    assert doc["@timestamp"] == "2025-03-04T06:22:18.819Z"
    # Two stages of one request share the auditID: it cannot serve as a document id.
    assert audit["auditID"] == to_document(CSR_CREATE_COMPLETE)["kubernetes"]["audit"]["auditID"]


def test_csr_approval_subresource():
    doc = to_document(CSR_APPROVE)
    audit = doc["kubernetes"]["audit"]
    assert audit["objectRef"]["subresource"] == "approval"
    assert doc["event"]["action"] == "update"
    assert "metadata" not in audit["requestObject"]
    # lastTransitionTime: null is removed inside the list item (script_to_drop_empty_values).
    assert audit["requestObject"]["status"]["conditions"] == [
        {key: value for key, value in APPROVED.items() if value is not None}
    ]
    assert values_at(doc, "kubernetes.audit.requestObject.status.conditions.type") == ["Approved"]
    assert doc["source"]["ip"] == ["172.18.0.1", "10.0.0.7", "172.18.0.1"]
    assert doc["related"]["ip"] == ["172.18.0.1", "10.0.0.7"]  # append allow_duplicates: false


def test_forbidden_by_authorization_field_by_field():
    doc = to_document(FORBIDDEN)
    audit = doc["kubernetes"]["audit"]
    assert audit["annotations"] == {"authorization_k8s_io/decision": "forbid"}  # reason "" dropped
    expected_status = {k: v for k, v in FORBIDDEN["responseStatus"].items() if k != "metadata"}
    assert audit["responseStatus"] == expected_status
    assert "outcome" not in doc["event"]
    assert doc["user"] == {"name": "system:serviceaccount:default:builder", "id": FORBIDDEN["user"]["uid"]}
    assert doc["related"] == {
        "user": [FORBIDDEN["user"]["uid"], "system:serviceaccount:default:builder"],  # uid first
        "ip": ["10.244.0.12"],
    }
    assert doc["user_agent"] == {"original": "python-requests/2.32.3"}
    assert doc["@timestamp"] == "2025-03-04T07:00:00.001Z"


def test_pod_list():
    doc = to_document(POD_LIST, namespace="prod")
    audit = doc["kubernetes"]["audit"]
    assert doc["data_stream"]["namespace"] == "prod"
    assert doc["@timestamp"] == "2025-03-04T06:15:31.000Z"  # +02:00 converted to UTC
    assert audit["stageTimestamp"] == "2025-03-04T08:15:31.000999+02:00"  # stored as written
    assert audit["objectRef"] == {"resource": "pods", "namespace": "default", "apiVersion": "v1"}
    assert doc["orchestrator"] == {
        "type": "kubernetes",
        "api_version": "audit.k8s.io/v1",
        "namespace": "default",
        "resource": {"type": "pods"},
    }
    assert doc["source"] == {"ip": ["2001:db8::1"]}
    assert audit["annotations"]["pod-security_kubernetes_io/audit-violations"].startswith("would violate")


@pytest.mark.parametrize("event", REALISTIC, ids=lambda event: f"{event['verb']}-{event['stage']}")
def test_input_is_not_modified(event):
    before = copy.deepcopy(event)
    doc = to_document(event)
    doc["kubernetes"]["audit"]["user"]["groups"].append("mutated")
    assert event == before


def test_values_the_pipeline_ignores():
    event = {**POD_LIST, "sourceIPs": ["10.0.0.1", "not-an-ip"], "verb": "", "userAgent": ""}
    doc = to_document(event)
    # convert (ignore_failure) sets nothing when one entry is not an IP; so no client/related ip.
    assert {"source", "client", "user_agent"}.isdisjoint(doc)
    assert "ip" not in doc["related"]
    assert "action" not in doc["event"]  # set ignore_empty_value
    assert doc["kubernetes"]["audit"]["sourceIPs"] == ["10.0.0.1", "not-an-ip"]  # still in _source


def test_single_string_source_ip():
    doc = to_document({**POD_LIST, "sourceIPs": "10.1.1.1", "user": {"username": "", "uid": "u1"}})
    assert doc["source"] == {"ip": "10.1.1.1"}
    assert doc["related"] == {"user": ["u1"]}  # foreach over source.ip runs only for lists
    assert doc["user"] == {"id": "u1"}


def test_processor_failure_goes_through_on_failure():
    # rename_labels fails when both labels and annotations exist (RenameProcessor: target exists).
    doc = to_document({**POD_LIST, "labels": {"team": "a"}})
    assert doc["event"]["kind"] == "pipeline_error"
    assert doc["tags"] == ["preserve_original_event"]
    assert doc["error"]["message"] == [
        "Processor 'rename' with tag 'rename_labels' failed with message "
        "'field [kubernetes.audit.annotations] already exists"
    ]
    # Processors after the failure never ran, the drop-empty script included.
    assert {"user", "source", "orchestrator"}.isdisjoint(doc)
    assert doc["kubernetes"]["audit"]["responseStatus"] == {"metadata": {}, "code": 200}


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ([POD_LIST], "audit event must be a JSON object, got list"),
        ({**POD_LIST, "kind": "Pod"}, "not a Kubernetes audit Event: kind is 'Pod', expected 'Event'"),
        ({k: v for k, v in POD_LIST.items() if k != "kind"}, "kind is None"),
        ({**POD_LIST, "apiVersion": "v1"}, "apiVersion 'v1' is not audit.k8s.io/*"),
        ({k: v for k, v in POD_LIST.items() if k != "auditID"}, "audit Event has no auditID"),
        ({**POD_LIST, "auditID": ""}, "audit Event has no auditID"),
        ({k: v for k, v in POD_LIST.items() if k != "stageTimestamp"}, "audit Event has no stageTimestamp"),
        ({**POD_LIST, "requestReceivedTimestamp": 5}, "audit Event has no requestReceivedTimestamp"),
        ({**POD_LIST, "stageTimestamp": "yesterday"}, "stageTimestamp 'yesterday' is not an RFC 3339"),
        ({**POD_LIST, "stageTimestamp": "2025-03-04T08:15:31"}, "is not an RFC 3339 timestamp"),
        ({**POD_LIST, "annotations": ["a"]}, "field 'annotations' must be an object"),
        ({**POD_LIST, "user": "admin"}, "field 'user' must be an object"),
        ({**POD_LIST, "user": {"username": 7}}, "field 'user.username' must be a string"),
        # in no UTC instant Python can hold: an error, not an OverflowError
        ({**POD_LIST, "requestReceivedTimestamp": "0001-01-01T00:00:00+01:00"},
         "is not an RFC 3339 timestamp"),
        ({**POD_LIST, "stageTimestamp": "9999-12-31T23:59:59-01:00"}, "is not an RFC 3339 timestamp"),
    ],
)
def test_bad_input_is_a_one_line_event_error(event, message):
    with pytest.raises(EventError) as caught:
        to_document(event)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


# Parts of _source the package deliberately leaves unmapped (dynamic: false keeps them in _source only),
# and the dynamic objects whose leaves ES maps at index time (kubernetes.audit.user is dynamic: true).
UNMAPPED_BY_DESIGN = (
    "kubernetes.audit.requestObject.",
    "kubernetes.audit.responseObject.",
    "kubernetes.audit.responseStatus.details.",
    "kubernetes.audit.user.extra.",
)


def _leaf_paths(node: Any, prefix: str = "") -> set[str]:
    if isinstance(node, dict):
        return {path for key, value in node.items() for path in _leaf_paths(value, f"{prefix}{key}.")}
    if isinstance(node, list):
        return {path for item in node for path in _leaf_paths(item, prefix)}
    return {prefix[:-1]}


@pytest.mark.parametrize("event", REALISTIC, ids=lambda event: f"{event['verb']}-{event['stage']}")
def test_every_written_field_is_mapped_or_deliberately_unmapped(event):
    mapping = load_mapping("kubernetes.audit_logs")
    doc = to_document(event)
    unmapped = {path for path in _leaf_paths(doc) if mapping.field(path) is None}
    assert {path for path in unmapped if not path.startswith(UNMAPPED_BY_DESIGN)} == set()
    for path in unmapped:
        assert values_at(doc, path), path  # unmapped data stays readable in _source


def test_unmapped_csr_request_stays_in_source():
    mapping = load_mapping("kubernetes.audit_logs")
    doc = to_document(CSR_CREATE_COMPLETE)
    assert mapping.field("kubernetes.audit.requestObject.spec.request") is None
    assert values_at(doc, "kubernetes.audit.requestObject.spec.request") == [CSR_PEM_B64]


def test_package_version_comes_from_the_mapping():
    assert load_mapping("kubernetes.audit_logs").package_version == INTEGRATION_PACKAGE_VERSION
