"""Native audit Events wrapped the way managed clusters deliver them (the inverse of dac.events.formats).

``dac generate --format`` and ``dac efficacy --log-format`` use these so every format has scenario
and corpus coverage. Shapes:

- ``aks``: an Azure diagnostic-settings record of category ``kube-audit``, the Event as a JSON
  string in ``properties.log`` (Azure Monitor "AKS resource logs"; the integration's
  test-kube-audit.log has the same members).
- ``eks``: a CloudWatch Logs subscription ``DATA_MESSAGE`` whose ``logEvents[].message`` are the
  Events, as EKS control-plane logging writes them to the log group ``/aws/eks/<cluster>/cluster``.
- ``gke``: a Cloud Logging ``LogEntry`` whose ``protoPayload`` is a ``google.cloud.audit.AuditLog``
  (GKE audit logging): ``methodName`` ``io.k8s.<group>.<version>.<resource>[.<subresource>].<verb>``,
  ``resourceName``, ``authenticationInfo.principalEmail``, ``requestMetadata``, the request and
  response objects, ``status`` as a google.rpc code, the audit annotations as ``labels``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from dac.events.audit import log_line

ENVELOPES = ("native", "gke", "aks", "eks")
CLUSTER = "demo"
AKS_RESOURCE_ID = (
    "/SUBSCRIPTIONS/00000000-0000-0000-0000-000000000000/RESOURCEGROUPS/DEMO/PROVIDERS/"
    "MICROSOFT.CONTAINERSERVICE/MANAGEDCLUSTERS/DEMO"
)
EKS_EVENTS_PER_MESSAGE = 10
GCP_PROJECT = "demo-project"
# HTTP status -> google.rpc.Code, as Cloud Audit Logs reports Kubernetes API results
_RPC_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 409: 6, 422: 3, 429: 8, 500: 13, 503: 14}


def wrap(events: Iterable[dict[str, Any]], envelope: str) -> Iterator[dict[str, Any]]:
    """The records a user of ``envelope`` would have for ``events``."""
    if envelope == "native":
        yield from events
    elif envelope == "aks":
        yield from (aks_record(event) for event in events)
    elif envelope == "gke":
        yield from (gke_entry(event) for event in events)
    elif envelope == "eks":
        batch: list[dict[str, Any]] = []
        for event in events:
            batch.append(event)
            if len(batch) == EKS_EVENTS_PER_MESSAGE:
                yield eks_message(batch)
                batch = []
        if batch:
            yield eks_message(batch)
    else:
        raise ValueError(f"unknown envelope {envelope!r}")


def aks_record(event: dict[str, Any]) -> dict[str, Any]:
    return {
        "category": "kube-audit",
        "operationName": "Microsoft.ContainerService/managedClusters/diagnosticLogs/Read",
        "properties": {
            "log": log_line(event),
            "containerID": "a64cba7fefbf5020788dc29d9247157585bbb64826bf7209623ca7bb49b15fe7",
            "pod": "kube-apiserver-869d7bb754-kkg69",
            "stream": "stdout",
        },
        "resourceId": AKS_RESOURCE_ID,
        "serviceBuild": "na",
        "time": event["stageTimestamp"],
    }


def eks_message(events: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "messageType": "DATA_MESSAGE",
        "owner": "111122223333",
        "logGroup": f"/aws/eks/{CLUSTER}/cluster",
        "logStream": "kube-apiserver-audit-0123456789abcdef0123456789abcdef",
        "subscriptionFilters": ["audit-to-firehose"],
        "logEvents": [
            {
                "id": str(int(_millis(event["stageTimestamp"])) * 1000 + n),
                "timestamp": _millis(event["stageTimestamp"]),
                "message": log_line(event),
            }
            for n, event in enumerate(events)
        ],
    }


def _millis(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def gke_entry(event: dict[str, Any]) -> dict[str, Any]:
    ref = event.get("objectRef") or {}
    group = ref.get("apiGroup") or "core"
    version = ref.get("apiVersion", "v1")
    path = [part for part in (ref.get("resource"), ref.get("subresource")) if part]
    method = ".".join(["io.k8s", group.replace(".k8s.io", "") if group != "core" else "core", version,
                       *path, event["verb"]])
    resource_parts = [f"{group}/{version}" if group != "core" else version]
    if ref.get("namespace"):
        resource_parts += ["namespaces", ref["namespace"]]
    resource_parts += [p for p in (ref.get("resource"), ref.get("name"), ref.get("subresource")) if p]
    resource_name = "/".join(resource_parts)
    code = (event.get("responseStatus") or {}).get("code", 200)
    status: dict[str, Any] = {"code": 0 if code < 400 else _RPC_CODES.get(code, 2)}
    if code >= 400:
        status["message"] = (event.get("responseStatus") or {}).get("message", "")
    annotations = event.get("annotations") or {}
    payload: dict[str, Any] = {
        "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
        "authenticationInfo": {"principalEmail": (event.get("user") or {}).get("username", "")},
        "authorizationInfo": [{
            "granted": annotations.get("authorization.k8s.io/decision") == "allow",
            "permission": method.rsplit(".", 1)[0] + "." + event["verb"],
            "resource": resource_name,
        }],
        "methodName": method,
        "requestMetadata": {
            "callerIp": (event.get("sourceIPs") or [""])[0],
            "callerSuppliedUserAgent": event.get("userAgent", ""),
        },
        "resourceName": resource_name,
        "serviceName": "k8s.io",
        "status": status,
    }
    if "requestObject" in event:
        payload["request"] = event["requestObject"]
    if "responseObject" in event:
        payload["response"] = event["responseObject"]
    return {
        "protoPayload": payload,
        "insertId": event["auditID"],
        "resource": {
            "type": "k8s_cluster",
            "labels": {"cluster_name": CLUSTER, "location": "us-central1", "project_id": GCP_PROJECT},
        },
        "timestamp": event["stageTimestamp"],
        "labels": annotations,
        "logName": f"projects/{GCP_PROJECT}/logs/cloudaudit.googleapis.com%2Factivity",
        "operation": {
            "id": event["auditID"],
            "producer": "k8s.io",
            "first": event.get("stage") != "ResponseComplete",
            "last": event.get("stage") == "ResponseComplete",
        },
        "receiveTimestamp": event["requestReceivedTimestamp"],
    }
