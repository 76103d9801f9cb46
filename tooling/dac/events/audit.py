"""Raw Kubernetes audit events (``audit.k8s.io/v1`` ``Event``) as a real API server writes them.

What goes into an event depends on how far the request got, following
``staging/src/k8s.io/apiserver/pkg/audit/request.go`` and the handler chain
(authentication → audit → authorization → decode → admission → validation → storage):

* stage ``RequestReceived`` is written before authorization and before the body is read: no
  ``responseStatus``, no ``requestObject``, no annotations, and ``objectRef`` holds only what the
  URL says (no name on ``create``);
* a request *authorization* denies (403, ``authorization.k8s.io/decision: forbid``) never had its
  body decoded: no ``requestObject`` and no name taken from the body;
* a request *admission* or validation rejects (403 or 422) was decoded: it carries
  ``requestObject`` (at level Request and above) and decision ``allow``;
* ``LogRequestObject`` completes ``objectRef`` from the decoded object (name, uid,
  resourceVersion); a patch body is logged as is and completes nothing;
* at level RequestResponse the response body is logged too, a ``Status`` object on errors.

Timestamps are ``metav1.MicroTime`` (RFC 3339, six fractional digits, UTC). Every random choice
comes from the ``random.Random`` passed in, so a seed reproduces the events.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from random import Random
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from dac.events.csr import Csr, PemStyle, Subject, make_csr, private_key

STAGES = ("RequestReceived", "ResponseComplete")
LEVELS = ("Metadata", "Request", "RequestResponse")
OUTCOMES = ("allowed", "forbidden", "admission-denied", "invalid")
CSR_RESOURCE = "certificatesigningrequests"

CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client"
KUBELET_CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
KUBELET_SERVING_SIGNER = "kubernetes.io/kubelet-serving"

_K8S = "v1.33.1 (linux/amd64) kubernetes/8adc0f0"
USER_AGENTS = {
    "kubectl": f"kubectl/{_K8S}",
    "client-go": "csr-tool/v0.0.0 (linux/amd64) kubernetes/$Format",
    "python": "OpenAPI-Generator/33.1.0/python",
    "curl": "curl/8.5.0",
    "kubelet": f"kubelet/{_K8S}",
}

# Kinds and API groups of the resources the generator knows how to address.
RESOURCES: dict[str, tuple[str, str, bool]] = {  # resource: (kind, group/version, namespaced)
    "pods": ("Pod", "v1", True),
    "configmaps": ("ConfigMap", "v1", True),
    "secrets": ("Secret", "v1", True),
    "services": ("Service", "v1", True),
    "events": ("Event", "v1", True),
    "serviceaccounts": ("ServiceAccount", "v1", True),
    "nodes": ("Node", "v1", False),
    "namespaces": ("Namespace", "v1", False),
    "leases": ("Lease", "coordination.k8s.io/v1", True),
    "deployments": ("Deployment", "apps/v1", True),
    "endpointslices": ("EndpointSlice", "discovery.k8s.io/v1", True),
    "clusterrolebindings": ("ClusterRoleBinding", "rbac.authorization.k8s.io/v1", False),
    CSR_RESOURCE: ("CertificateSigningRequest", "certificates.k8s.io/v1", False),
}


# --- small helpers ---------------------------------------------------------------------------

def _stable_uuid(text: str) -> str:
    return _format_uuid(int.from_bytes(hashlib.sha256(text.encode()).digest()[:16]))


def _format_uuid(bits: int) -> str:
    # version 4, RFC 4122 variant
    bits = (bits & ~(0xF000 << 64) | (0x4000 << 64)) & ~(0xC000 << 48) | (0x8000 << 48)
    text = f"{bits:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def random_uuid(rng: Random) -> str:
    return _format_uuid(rng.getrandbits(128))


def micro_time(moment: datetime) -> str:
    """``metav1.MicroTime`` as JSON: RFC 3339 in UTC with six fractional digits."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return moment.isoformat(timespec="microseconds")[:-6] + "Z"  # drop "+00:00"


# Go's encoding/json, which the API server's log backend writes with, escapes these for HTML
# (its default); they occur only inside strings, so a textual replace is exact.
_GO_HTML_ESCAPES = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028",
                                  "\u2029": "\\u2029"})


def log_line(event: dict[str, Any]) -> str:
    """An audit event as the API server's log file holds it: compact JSON in the event's own
    member order, UTF-8, with Go's HTML escapes (``"requestURI":"/api/v1/pods?limit=500\\u0026..."``)."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).translate(_GO_HTML_ESCAPES)


def rfc3339(moment: datetime) -> str:
    """``metav1.Time`` as JSON: RFC 3339 in UTC, whole seconds."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # apimachinery util/rand alphanums (no vowels, no 0/1/3)


def generated_name(rng: Random, prefix: str) -> str:
    """A name as ``metadata.generateName`` makes it: prefix plus five random characters."""
    return prefix + "".join(rng.choice(_NAME_CHARS) for _ in range(5))


def _group_version(resource: str) -> tuple[str, str]:
    return _GROUP_VERSIONS[resource]


_GROUP_VERSIONS = {  # resource: (group, version), asked for several times per event
    resource: (group_version.rpartition("/")[0], group_version.rpartition("/")[2])
    for resource, (_, group_version, _) in RESOURCES.items()
}


# --- who sends requests ----------------------------------------------------------------------

@dataclass(frozen=True)
class Requester:
    """The authenticated user of a request, and the client it uses."""

    username: str
    groups: tuple[str, ...] = ("system:authenticated",)
    user_agent: str = USER_AGENTS["kubectl"]
    source_ip: str = "10.0.0.10"
    uid: str = ""
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()
    binding: str = ""  # the RBAC binding that allows it, e.g. 'ClusterRoleBinding "x" of ClusterRole "y"'

    @functools.cached_property
    def allow_reason(self) -> str:
        """``authorization.k8s.io/reason`` of an allowed request.

        Members of system:masters are allowed by the privileged-group authorizer, which gives no
        reason; everyone else by RBAC.
        """
        if "system:masters" in self.groups or not self.binding:
            return ""
        return f"RBAC: allowed by {self.binding}"

    def user_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"username": self.username}
        if self.uid:
            info["uid"] = self.uid
        info["groups"] = list(self.groups)
        if self.extra:
            info["extra"] = {key: list(values) for key, values in self.extra}
        return info


def human(username: str, *, groups: Sequence[str] = (), user_agent: str = USER_AGENTS["kubectl"],
          source_ip: str = "10.0.0.10") -> Requester:
    """A person or tool authenticated by certificate or OIDC, allowed by a ClusterRoleBinding."""
    return Requester(username, (*groups, "system:authenticated"), user_agent, source_ip,
                     binding=f'ClusterRoleBinding "{username}-csr" of ClusterRole "csr-manager" '
                             f'to User "{username}"')


def node(name: str, source_ip: str = "10.0.1.5") -> Requester:
    """A kubelet using its node client certificate."""
    return Requester(f"system:node:{name}", ("system:nodes", "system:authenticated"), USER_AGENTS["kubelet"],
                     source_ip, binding='ClusterRoleBinding "system:node" of ClusterRole "system:node" '
                                        'to Group "system:nodes"')


def bootstrap(token_id: str, source_ip: str = "10.0.1.5") -> Requester:
    """A kubelet on its first start, authenticated by a kubeadm bootstrap token."""
    return Requester(
        f"system:bootstrap:{token_id}",
        ("system:bootstrappers", "system:bootstrappers:kubeadm:default-node-token", "system:authenticated"),
        USER_AGENTS["kubelet"], source_ip,
        binding='ClusterRoleBinding "kubeadm:kubelet-bootstrap" of ClusterRole "system:node-bootstrapper" '
                'to Group "system:bootstrappers:kubeadm:default-node-token"',
    )


def service_account(namespace: str, name: str, *, user_agent: str, source_ip: str = "10.0.0.2",
                    binding: str = "") -> Requester:
    return Requester(
        f"system:serviceaccount:{namespace}:{name}",
        ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"),
        user_agent, source_ip, uid=_stable_uuid(f"sa/{namespace}/{name}"), binding=binding,
    )


_KCM = f"kube-controller-manager/{_K8S}"
CONTROLLERS: dict[str, Requester] = {
    # kube-controller-manager with its own credentials, and with --use-service-account-credentials
    "kube-controller-manager": Requester(
        "system:kube-controller-manager", ("system:authenticated",), f"{_KCM}/certificate-controller",
        "10.0.0.2", binding='ClusterRoleBinding "system:kube-controller-manager" of ClusterRole '
                            '"system:kube-controller-manager" to User "system:kube-controller-manager"'),
    "certificate-controller": service_account(
        "kube-system", "certificate-controller",
        user_agent=f"{_KCM}/system:serviceaccount:kube-system:certificate-controller",
        binding='ClusterRoleBinding "system:controller:certificate-controller" of ClusterRole '
                '"system:controller:certificate-controller" '
                'to ServiceAccount "certificate-controller/kube-system"'),
    "eks": Requester("eks:certificate-controller", ("system:authenticated",),
                     "eks-certificates-controller/v0.0.0 (linux/amd64) kubernetes/$Format", "172.16.0.10",
                     binding='ClusterRoleBinding "eks:certificate-controller" of ClusterRole '
                             '"eks:certificate-controller" to User "eks:certificate-controller"'),
    "aks": Requester("aksService", ("system:masters", "system:authenticated"),
                     "approver/v0.0.0 (linux/amd64) kubernetes/$Format", "172.31.51.172"),
    "gke": Requester("system:gcp-controller-manager", ("system:authenticated",),
                     "gcp-controller-manager/v0.0.0 (linux/amd64) kubernetes/$Format", "172.16.0.2",
                     binding='ClusterRoleBinding "system:gcp-controller-manager" of ClusterRole '
                             '"system:gcp-controller-manager" to User "system:gcp-controller-manager"'),
}


# --- the generic request ---------------------------------------------------------------------

@dataclass(slots=True)
class ApiRequest:
    """One API request and what the server did with it; ``events`` turns it into audit events."""

    requester: Requester
    verb: str
    resource: str
    namespace: str = ""
    name: str = ""  # the name in the URL
    subresource: str = ""
    query: str = ""
    request_object: Any = None  # the decoded body (None: no body)
    response_object: Any = None  # the stored object returned on success
    patch: bool = False  # the body is a patch: logged as sent, completes nothing in objectRef
    outcome: str = "allowed"
    level: str = "Metadata"
    denial: str = ""  # why admission or validation rejected it

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {self.outcome!r} (expected one of {', '.join(OUTCOMES)})")
        if self.level not in LEVELS:
            raise ValueError(f"unknown level {self.level!r} (expected one of {', '.join(LEVELS)})")

    @property
    def request_uri(self) -> str:
        group, version = _group_version(self.resource)
        path = f"/apis/{group}/{version}" if group else f"/api/{version}"
        if self.namespace:
            path += f"/namespaces/{self.namespace}"
        path += f"/{self.resource}"
        if self.name:
            path += f"/{self.name}"
        if self.subresource:
            path += f"/{self.subresource}"
        return f"{path}?{self.query}" if self.query else path

    def _object_ref(self, decoded: bool) -> dict[str, Any]:
        group, version = _group_version(self.resource)
        name, uid, resource_version = self.name, "", ""
        if decoded and not self.patch and isinstance(self.request_object, dict):
            meta = self.request_object.get("metadata", {})
            name = name or meta.get("name", "")
            uid = meta.get("uid", "")
            resource_version = meta.get("resourceVersion", "")
        ref: dict[str, Any] = {"resource": self.resource}
        if self.namespace:
            ref["namespace"] = self.namespace
        if name:
            ref["name"] = name
        if uid:
            ref["uid"] = uid
        ref["apiGroup"] = group
        ref["apiVersion"] = version
        if resource_version:
            ref["resourceVersion"] = resource_version
        if self.subresource:
            ref["subresource"] = self.subresource
        return ref

    def _status(self) -> dict[str, Any]:
        """The response status (``metav1.Status``) the server sent."""
        if self.outcome == "allowed":
            return {"metadata": {}, "code": 201 if self.verb == "create" else 200}
        group, _ = _group_version(self.resource)
        qualified = f"{self.resource}.{group}" if group else self.resource
        name = self.name
        if not name and self.outcome != "forbidden" and not self.patch:  # only a decoded body names it
            name = (self.request_object or {}).get("metadata", {}).get("name", "")
        details: dict[str, Any] = {"name": name} if name else {}
        if group:
            details["group"] = group
        if self.outcome == "invalid":
            kind = RESOURCES[self.resource][0]
            field, why = self.denial.split(": ", 1) if ": " in self.denial else ("metadata", self.denial)
            details["kind"] = kind
            details["causes"] = [{"reason": "FieldValueInvalid", "message": why, "field": field}]
            subject = f'{kind}.{group} "{name}"' if group else f'{kind} "{name}"'
            return {"metadata": {}, "status": "Failure", "message": f"{subject} is invalid: {self.denial}",
                    "reason": "Invalid", "details": details, "code": 422}
        details["kind"] = self.resource
        target = f'{qualified} "{name}"' if name else qualified
        if self.outcome == "forbidden":
            resource = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
            scope = f'in the namespace "{self.namespace}"' if self.namespace else "at the cluster scope"
            why = (f'User "{self.requester.username}" cannot {self.verb} resource "{resource}" '
                   f'in API group "{group}" {scope}')
        else:
            why = self.denial
        return {"metadata": {}, "status": "Failure", "message": f"{target} is forbidden: {why}",
                "reason": "Forbidden", "details": details, "code": 403}

    def events(self, rng: Random, received: datetime, stages: Sequence[str] = ("ResponseComplete",)
               ) -> list[dict[str, Any]]:
        """The audit events of this request at ``stages``, all with one ``auditID``."""
        audit_id = random_uuid(rng)
        uri = self.request_uri
        received_text = micro_time(received)
        requester = self.requester
        out = []
        for stage in stages:
            if stage not in STAGES:
                raise ValueError(f"unknown stage {stage!r} (expected one of {', '.join(STAGES)})")
            complete = stage == "ResponseComplete"
            # the API server takes a few ms to answer, a fraction of one to log the arrival
            elapsed = 1_000 + int(rng.random() * 39_000) if complete else 20 + int(rng.random() * 380)
            decoded = complete and self.outcome != "forbidden" and self.request_object is not None
            event: dict[str, Any] = {
                "kind": "Event",
                "apiVersion": "audit.k8s.io/v1",
                "level": self.level,
                "auditID": audit_id,
                "stage": stage,
                "requestURI": uri,
                "verb": self.verb,
                "user": requester.user_info(),
                "sourceIPs": [requester.source_ip],
                "userAgent": requester.user_agent,
                "objectRef": self._object_ref(decoded),
            }
            if complete:
                status = self._status()
                event["responseStatus"] = status
                if decoded and self.level != "Metadata":
                    event["requestObject"] = self.request_object
                if self.level == "RequestResponse":
                    if self.outcome == "allowed":
                        if self.response_object is not None:
                            event["responseObject"] = self.response_object
                    else:
                        event["responseObject"] = {"kind": "Status", "apiVersion": "v1", **status}
            event["requestReceivedTimestamp"] = received_text
            event["stageTimestamp"] = micro_time(received + timedelta(microseconds=elapsed))
            if complete:
                allowed = self.outcome != "forbidden"
                event["annotations"] = {
                    "authorization.k8s.io/decision": "allow" if allowed else "forbid",
                    "authorization.k8s.io/reason": requester.allow_reason if allowed else "",
                }
            out.append(event)
        return out


def resource_request(rng: Random, requester: Requester, verb: str, resource: str, *, namespace: str = "",
                     name: str = "", subresource: str = "", outcome: str = "allowed",
                     level: str = "Metadata", denial: str = "") -> ApiRequest:
    """Any request on an ordinary resource (pods, configmaps, leases, …), with a minimal body."""
    if resource not in RESOURCES:
        raise ValueError(f"unknown resource {resource!r} (expected one of {', '.join(RESOURCES)})")
    kind, api_version, namespaced = RESOURCES[resource]
    if namespaced and not namespace:
        namespace = "default"
    if not namespaced:
        namespace = ""
    body = None
    if verb in ("create", "update", "patch"):
        meta: dict[str, Any] = {"name": name or generated_name(rng, f"{resource[:-1]}-")}
        if namespace:
            meta["namespace"] = namespace
        if verb == "update":
            meta["uid"] = random_uuid(rng)
            meta["resourceVersion"] = str(rng.randint(10_000, 99_999_999))
        body = {"kind": kind, "apiVersion": api_version, "metadata": meta}
        if verb == "patch":
            body = {"metadata": {"labels": {"touched-by": requester.username.rsplit(":", 1)[-1]}}}
    url_name = name if verb != "create" else ""
    # what client-go's informers ask for: the first list from the cache, then a watch with bookmarks
    queries = {"list": "limit=500&resourceVersion=0", "watch": "allowWatchBookmarks=true&watch=true"}
    query = queries.get(verb, "")
    return ApiRequest(requester, verb, resource, namespace, url_name, subresource, query,
                      request_object=body, patch=verb == "patch", outcome=outcome, level=level,
                      denial=denial or "denied by the cluster's admission policy")


# --- CertificateSigningRequests --------------------------------------------------------------

@dataclass(frozen=True)
class CsrObject:
    """A CertificateSigningRequest as the API server stores it."""

    name: str
    request: str  # spec.request: base64 of the PEM bytes
    requester: Requester
    signer_name: str = CLIENT_SIGNER
    usages: tuple[str, ...] = ("client auth",)
    expiration_seconds: int | None = None
    csr: Csr | None = None  # what the request was made from, when known (to sign it)
    generate_name: str = ""  # metadata.generateName the client sent, if it let the server name it
    uid: str = ""
    resource_version: int = 1
    created: datetime = datetime(2025, 1, 1, tzinfo=UTC)
    conditions: tuple[dict[str, Any], ...] = ()
    certificate: str = ""

    def spec(self, stored: bool) -> dict[str, Any]:
        spec: dict[str, Any] = {"request": self.request, "signerName": self.signer_name}
        if self.expiration_seconds is not None:
            spec["expirationSeconds"] = self.expiration_seconds
        spec["usages"] = list(self.usages)
        if stored:  # the API server fills in who asked
            spec["username"] = self.requester.username
            if self.requester.uid:
                spec["uid"] = self.requester.uid
            spec["groups"] = list(self.requester.groups)
            if self.requester.extra:
                spec["extra"] = {key: list(values) for key, values in self.requester.extra}
        return spec

    def as_sent(self) -> dict[str, Any]:
        """The body of the create request, re-encoded as the audit log shows it."""
        meta: dict[str, Any] = (
            {"generateName": self.generate_name} if self.generate_name else {"name": self.name})
        meta["creationTimestamp"] = None
        return {"kind": "CertificateSigningRequest", "apiVersion": "certificates.k8s.io/v1", "metadata": meta,
                "spec": self.spec(stored=False), "status": {}}

    def as_stored(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": self.name}
        if self.generate_name:
            meta["generateName"] = self.generate_name
        meta |= {"uid": self.uid, "resourceVersion": str(self.resource_version),
                 "creationTimestamp": rfc3339(self.created)}
        status: dict[str, Any] = {}
        if self.conditions:
            status["conditions"] = [dict(c) for c in self.conditions]
        if self.certificate:
            status["certificate"] = self.certificate
        return {"kind": "CertificateSigningRequest", "apiVersion": "certificates.k8s.io/v1", "metadata": meta,
                "spec": self.spec(stored=True), "status": status}


def new_csr(rng: Random, requester: Requester, *, name: str = "", csr: Csr | None = None, request: str = "",
            signer_name: str = CLIENT_SIGNER, usages: Sequence[str] = ("client auth",),
            expiration_seconds: int | None = None, generate_name: str = "",
            created: datetime = datetime(2025, 1, 1, tzinfo=UTC), style: PemStyle | None = None) -> CsrObject:
    """A CSR about to be created; give ``csr`` (encoded with ``style``) or a raw ``request``."""
    if csr is not None and not request:
        request = csr.request(style)
    elif csr is not None or not request:
        raise ValueError("give exactly one of a CSR to encode and a raw spec.request")
    if generate_name:
        name = generated_name(rng, generate_name)
    elif not name:
        raise ValueError("a CSR needs a name or a generateName prefix")
    return CsrObject(name, request, requester, signer_name, tuple(usages),
                     expiration_seconds, csr, generate_name, uid=random_uuid(rng),
                     resource_version=rng.randint(100_000, 9_999_999), created=created)


def _client_query(requester: Requester, verb: str) -> str:
    if requester.user_agent.startswith("kubectl/"):
        return f"fieldManager=kubectl-{verb}&fieldValidation=Strict" if verb != "update" else ""
    return ""


def subject_restriction(obj: CsrObject) -> str:
    """Why the CertificateSubjectRestriction admission plugin (on by default) refuses ``obj``, or "".

    kubernetes plugin/pkg/admission/certificates/subjectrestriction/admission.go: a CSR for the
    kube-apiserver-client signer must not ask for the system:masters group.
    """
    if obj.signer_name != CLIENT_SIGNER or obj.csr is None:
        return ""
    if "system:masters" in obj.csr.subject.groups:
        return f"use of {CLIENT_SIGNER} signer with system:masters group is not allowed"
    return ""


def csr_create(obj: CsrObject, *, outcome: str | None = None, level: str = "RequestResponse",
               denial: str = "") -> ApiRequest:
    """``create`` of a CSR. ``outcome=None``: what a default API server does (admission may refuse)."""
    restriction = subject_restriction(obj)
    if outcome is None:
        outcome = "admission-denied" if restriction else "allowed"
    if outcome == "admission-denied" and not denial:
        denial = restriction or "denied by the cluster's admission policy"
    if outcome == "invalid" and not denial:
        denial = "spec.request: Invalid value: \"<request>\": PEM block type must be CERTIFICATE REQUEST"
    stored = obj.as_stored()
    stored["metadata"]["managedFields"] = [{
        "manager": _field_manager(obj.requester),
        "operation": "Update",
        "apiVersion": "certificates.k8s.io/v1",
        "time": rfc3339(obj.created),
        "fieldsType": "FieldsV1",
        "fieldsV1": {"f:spec": {f"f:{field}": {} for field in obj.as_sent()["spec"]}},
    }]
    return ApiRequest(obj.requester, "create", CSR_RESOURCE, query=_client_query(obj.requester, "create"),
                      request_object=obj.as_sent(), response_object=stored, outcome=outcome, level=level,
                      denial=denial)


def _field_manager(requester: Requester) -> str:
    if requester.user_agent.startswith("kubectl/"):
        return "kubectl-create"
    return requester.user_agent.split("/", 1)[0]


APPROVAL_REASONS = {
    "kubectl": ("KubectlApprove", "This CSR was approved by kubectl certificate approve."),
    "kubectl-deny": ("KubectlDeny", "This CSR was denied by kubectl certificate deny."),
    "controller": ("AutoApproved", "Auto approving kubelet client certificate after SubjectAccessReview."),
    "serving": ("AutoApproved", "Auto approving kubelet serving certificate after SubjectAccessReview."),
}


def with_condition(obj: CsrObject, at: datetime, condition: str, reason: str, message: str) -> CsrObject:
    entry = {"type": condition, "status": "True", "reason": reason, "message": message,
             "lastUpdateTime": rfc3339(at), "lastTransitionTime": rfc3339(at)}
    return replace(obj, conditions=(*obj.conditions, entry), resource_version=obj.resource_version + 1)


def csr_approve(obj: CsrObject, approver: Requester, at: datetime, *, condition: str = "Approved",
                reason: str = "", message: str = "", verb: str = "update", outcome: str = "allowed",
                level: str = "RequestResponse", denial: str = "") -> tuple[ApiRequest, CsrObject]:
    """An ``update`` (or ``patch``) of the ``approval`` subresource adding an Approved/Denied condition.

    Returns the request and the CSR as stored afterwards. An approver without ``approve`` on the
    signer is refused by the CertificateApproval admission plugin (403 with decision allow).
    """
    if condition not in ("Approved", "Denied"):
        raise ValueError(f"approval condition must be Approved or Denied, not {condition!r}")
    if verb not in ("update", "patch"):
        raise ValueError(f"approval verb must be update or patch, not {verb!r}")
    defaults = APPROVAL_REASONS["kubectl" if condition == "Approved" else "kubectl-deny"]
    reason, message = reason or defaults[0], message or defaults[1]
    after = with_condition(obj, at, condition, reason, message)
    if verb == "update":
        body = obj.as_stored()
        body["status"]["conditions"] = [*body["status"].get("conditions", []), {
            "type": condition, "status": "True", "reason": reason, "message": message,
            "lastUpdateTime": rfc3339(at)}]
        query = ""
    else:
        body = {"status": {"conditions": [{"type": condition, "status": "True", "reason": reason,
                                           "message": message}]}}
        query = "fieldManager=kubectl-patch" if approver.user_agent.startswith("kubectl/") else ""
    if outcome == "admission-denied" and not denial:
        denial = f'user not permitted to approve requests with signerName "{obj.signer_name}"'
    request = ApiRequest(approver, verb, CSR_RESOURCE, name=obj.name, subresource="approval", query=query,
                         request_object=body, response_object=after.as_stored(), patch=verb == "patch",
                         outcome=outcome, level=level, denial=denial)
    return request, (after if outcome == "allowed" else obj)


@functools.cache
def _cluster_ca() -> tuple[x509.Certificate, Any]:
    key = private_key("ec-p256", seed=-1)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes")])
    start = datetime(2024, 1, 1, tzinfo=UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(start).not_valid_after(start + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256(), ecdsa_deterministic=True))
    return cert, key


def issue_certificate(obj: CsrObject, at: datetime, rng: Random) -> str:
    """``status.certificate``: base64 of a PEM certificate the cluster CA issues for ``obj``.

    The signer copies the subject through Go's ``pkix.Name``, which re-encodes every value as a
    PrintableString or UTF8String; cryptography's default encoding matches that closely enough.
    """
    if obj.csr is None:
        raise ValueError(f"cannot sign CSR {obj.name!r}: it was given only as a raw spec.request")
    ca, ca_key = _cluster_ca()
    csr = x509.load_der_x509_csr(obj.csr.der)
    attributes = [x509.NameAttribute(_NAME_OIDS[a.name], a.value)
                  for rdn in obj.csr.subject.rdns for a in rdn]
    lifetime = timedelta(seconds=obj.expiration_seconds or 365 * 86400)
    serving = "server auth" in obj.usages
    usage = ExtendedKeyUsageOID.SERVER_AUTH if serving else ExtendedKeyUsageOID.CLIENT_AUTH
    cert = (x509.CertificateBuilder().subject_name(x509.Name(attributes)).issuer_name(ca.subject)
            .public_key(csr.public_key()).serial_number(rng.getrandbits(127) + 1)
            .not_valid_before(at - timedelta(minutes=5)).not_valid_after(at + lifetime)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .sign(ca_key, hashes.SHA256(), ecdsa_deterministic=True))
    return base64.b64encode(cert.public_bytes(serialization.Encoding.PEM)).decode("ascii")


_NAME_OIDS = {"C": NameOID.COUNTRY_NAME, "ST": NameOID.STATE_OR_PROVINCE_NAME, "L": NameOID.LOCALITY_NAME,
              "O": NameOID.ORGANIZATION_NAME, "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
              "CN": NameOID.COMMON_NAME}


def csr_status(obj: CsrObject, signer: Requester, at: datetime, rng: Random, *, outcome: str = "allowed",
               level: str = "RequestResponse") -> tuple[ApiRequest, CsrObject]:
    """The signer's ``update`` of the ``status`` subresource that stores the issued certificate."""
    body = obj.as_stored()
    certificate = issue_certificate(obj, at, rng)
    body["status"]["certificate"] = certificate
    after = replace(obj, certificate=certificate, resource_version=obj.resource_version + 1)
    request = ApiRequest(signer, "update", CSR_RESOURCE, name=obj.name, subresource="status",
                         request_object=body, response_object=after.as_stored(), outcome=outcome, level=level,
                         denial="denied by the cluster's admission policy")
    return request, (after if outcome == "allowed" else obj)


# --- benign cluster traffic ------------------------------------------------------------------

KUBELET_CLIENT_USAGES = ("digital signature", "client auth")
KUBELET_SERVING_USAGES = ("digital signature", "server auth")


def kubelet_csr(node_name: str, key_type: str = "ec-p256", key_seed: int = 0,
                dns_names: tuple[str, ...] = ()) -> Csr:
    """The request a kubelet makes for its node identity: CN=system:node:<name>, O=system:nodes."""
    return make_csr(Subject.simple(f"system:node:{node_name}", ("system:nodes",)), key_type,
                    key_seed=key_seed, dns_names=dns_names)


def kubelet_bootstrap(rng: Random, node_name: str, token_id: str, at: datetime, *,
                      csr: Csr | None = None, style: PemStyle | None = None) -> tuple[ApiRequest, CsrObject]:
    """TLS bootstrap: ``system:bootstrap:<token-id>`` asks for the node's first client certificate."""
    obj = new_csr(rng, bootstrap(token_id), csr=csr or kubelet_csr(node_name), style=style,
                  signer_name=KUBELET_CLIENT_SIGNER, usages=KUBELET_CLIENT_USAGES, generate_name="csr-",
                  created=at)
    return csr_create(obj), obj


def node_renewal(rng: Random, node_name: str, at: datetime, *, serving: bool = False,
                 csr: Csr | None = None, style: PemStyle | None = None) -> tuple[ApiRequest, CsrObject]:
    """A kubelet, as ``system:node:<name>``, renewing its client (or serving) certificate."""
    if csr is None:
        dns = (node_name, f"{node_name}.ec2.internal") if serving else ()
        csr = kubelet_csr(node_name, dns_names=dns)
    obj = new_csr(rng, node(node_name), csr=csr, style=style,
                  signer_name=KUBELET_SERVING_SIGNER if serving else KUBELET_CLIENT_SIGNER,
                  usages=KUBELET_SERVING_USAGES if serving else KUBELET_CLIENT_USAGES, generate_name="csr-",
                  created=at)
    return csr_create(obj), obj


def controller_approve(obj: CsrObject, controller: str, at: datetime) -> tuple[ApiRequest, CsrObject]:
    """An automatic approval by a cluster controller (see ``CONTROLLERS``)."""
    if controller not in CONTROLLERS:
        raise ValueError(f"unknown controller {controller!r} (expected one of {', '.join(CONTROLLERS)})")
    serving = obj.signer_name == KUBELET_SERVING_SIGNER
    reason, message = APPROVAL_REASONS["serving" if serving else "controller"]
    return csr_approve(obj, CONTROLLERS[controller], at, reason=reason, message=message)
