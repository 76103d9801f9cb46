"""Audit records as users have them: the API server's own log, or a managed cluster's cloud envelope.

Each format is turned into what the matching Elastic Agent input hands the Kubernetes
integration's ingest pipeline, then :func:`dac.events.k8s_audit.to_document` runs the pipeline:

============  ==========================================================  =====================
format        record (one per line)                                       Agent input
============  ==========================================================  =====================
``native``    ``audit.k8s.io/v1`` ``Event``                               filestream (ndjson)
``gke``       Cloud Logging ``LogEntry``, ``protoPayload`` an AuditLog    ``gcp-pubsub``
``aks``       diagnostic setting record, category ``kube-audit`` (or      ``azure-eventhub``
              ``kube-audit-admin``), the Event as a JSON string in
              ``properties.log``; ``{"records": [...]}`` holds several
``eks``       CloudWatch Logs subscription payload, ``messageType``       ``aws-cloudwatch``
              ``DATA_MESSAGE``, one Event per ``logEvents[].message``
``ecs``       a document as Elasticsearch stores it (already converted)   -
============  ==========================================================  =====================

``auto`` recognises each record by its shape, so a folder may mix formats.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from dac.documents import DEFAULT_INDEX, SeenEvents, index_name, source_time
from dac.errors import EventError
from dac.events.k8s_audit import TIME_ONLY, Collected, Members, checked_time, parse_rfc3339, to_document

FORMATS = ("native", "gke", "aks", "eks", "ecs")
ALIASES = {"k8s-audit": "native"}  # the name --input used before the cloud formats
INPUT_CHOICES = ("auto", *FORMATS, *ALIASES)
AKS_CATEGORIES = ("kube-audit", "kube-audit-admin")
# properties.* and record members the integration copies to kubernetes.audit.aks_metadata.*
# (upstream pipeline test test-kube-audit.log-expected.json).
_AKS_RECORD_FIELDS = {
    "category": "category",
    "operationName": "operation_name",
    "resourceId": "resource_id",
    "serviceBuild": "service_build",
    "time": "time",
}
_AKS_PROPERTY_FIELDS = {"containerID": "container_id", "pod": "pod", "stream": "stream"}


def detect(record: Any) -> str | None:
    """Which format one parsed record is in, by its shape; None when it is none of them."""
    if type(record) is not dict:
        return None
    if record.get("kind") == "Event" and "auditID" in record:
        return "native"
    if "protoPayload" in record:
        return "gke"
    if record.get("category") in AKS_CATEGORIES or isinstance(record.get("records"), list):
        return "aks"
    if "messageType" in record and "logEvents" in record:
        return "eks"
    if "@timestamp" in record:
        return "ecs"
    return None


Build = Callable[[Members | None], dict[str, Any]]
"""Makes an event's document: whole (None), or partial from those raw members (members_read)."""


def convert(record: Any, content: bytes, input_format: str) -> Iterator[tuple[bytes, dict[str, Any]]]:
    """Each event in ``record`` as (its content, for the document id; the document's ``_source``)."""
    for event_content, build in builders(record, content, input_format):
        yield event_content, build(None)


def seen_events(record: Any, content: bytes, input_format: str) -> list[SeenEvents]:
    """Each event in ``record``, checked as :func:`builders` checks it, as a :class:`SeenEvents`
    of one (its time, no document): for records that no rule can match. Most of them are the API
    server's own format, which is served first."""
    fmt = ALIASES.get(input_format, input_format)
    if fmt == "auto":
        fmt = detect(record) or "native"
    if fmt == "native":
        moment = checked_time(record)
        return [SeenEvents(moment, moment, DEFAULT_INDEX, [content])]
    seen = []
    for event_content, build in builders(record, content, fmt):
        fields = build(TIME_ONLY)
        moment = source_time(fields)
        if moment is None:
            raise EventError(f"document has no valid @timestamp ({fields.get('@timestamp')!r})")
        seen.append(SeenEvents(moment, moment, index_name(fields), [event_content]))
    return seen


def builders(record: Any, content: bytes, input_format: str) -> Iterator[tuple[bytes, Build]]:
    """Each event in ``record`` as (its content; a function making its document), checked eagerly
    enough that a malformed envelope fails here, and a malformed event when its document is built."""
    fmt = ALIASES.get(input_format, input_format)
    if fmt == "auto":
        fmt = detect(record) or "native"  # native's checks say best what is missing
    if fmt == "native":
        yield content, lambda members: to_document(record, members=members)
    elif fmt == "ecs":
        document = ecs_document(record)
        yield content, lambda members: document
    elif fmt == "gke":
        collected = Collected("gcp-pubsub", content.decode("utf-8"))
        yield content, lambda members: to_document(record, collected=collected, members=members)
    elif fmt == "aks":
        yield from _aks(record, content)
    elif fmt == "eks":
        yield from _eks(record)
    else:
        raise EventError(f"unknown input format {input_format!r}")


def ecs_document(record: Any) -> dict[str, Any]:
    """An indexed document, checked for what every rule needs: a valid ``@timestamp``."""
    if type(record) is not dict:
        raise EventError(f"expected a JSON object, got {type(record).__name__}")
    value = record.get("@timestamp")
    if not isinstance(value, str) or parse_rfc3339(value.replace("Z", "+00:00")) is None:
        raise EventError(f"document has no valid @timestamp ({value!r})")
    return record


def _aks(record: Any, content: bytes) -> Iterator[tuple[bytes, Build]]:
    if type(record) is not dict:
        raise EventError(f"AKS record must be a JSON object, got {type(record).__name__}")
    if "records" in record:  # an Event Hub message; the azure-eventhub input splits it
        for number, item in enumerate(record["records"]):
            try:
                yield from _aks(item, orjson.dumps(item))
            except EventError as exc:
                raise EventError(f"records[{number}]: {exc.message}") from None
        return
    category = record.get("category")
    if category not in AKS_CATEGORIES:
        raise EventError(f"AKS record category is {category!r}, expected one of {', '.join(AKS_CATEGORIES)}")
    properties = record.get("properties")
    log = properties.get("log") if isinstance(properties, Mapping) else None
    if not isinstance(log, str):
        raise EventError("AKS record has no properties.log string holding the audit Event")
    try:
        event = orjson.loads(log)
    except orjson.JSONDecodeError as exc:
        raise EventError(f"AKS properties.log is not JSON: {exc}") from None
    metadata = {target: record[source] for source, target in _AKS_RECORD_FIELDS.items() if source in record}
    for source, target in _AKS_PROPERTY_FIELDS.items():
        if source in properties:
            metadata[target] = properties[source]
    time = record.get("time")
    moment = parse_rfc3339(time) if isinstance(time, str) else None
    if moment is None:
        raise EventError(f"AKS record time {time!r} is not an RFC 3339 timestamp")
    collected = Collected("azure-eventhub", content.decode("utf-8"), moment, metadata)
    yield content, lambda members: to_document(event, collected=collected, members=members)


def _eks(record: Any) -> Iterator[tuple[bytes, Build]]:
    """A CloudWatch Logs subscription payload (AWS docs: "Using CloudWatch Logs subscription filters")."""
    if type(record) is not dict:
        raise EventError(f"CloudWatch Logs payload must be a JSON object, got {type(record).__name__}")
    kind = record.get("messageType")
    if kind == "CONTROL_MESSAGE":  # CloudWatch's reachability check: carries no log events
        return
    if kind != "DATA_MESSAGE":
        raise EventError(f"CloudWatch Logs messageType is {kind!r}, expected 'DATA_MESSAGE'")
    events = record.get("logEvents")
    if not isinstance(events, list):
        raise EventError("CloudWatch Logs payload has no logEvents list")
    for number, item in enumerate(events):
        message = item.get("message") if isinstance(item, Mapping) else None
        if not isinstance(message, str):
            raise EventError(f"logEvents[{number}] has no message string")
        try:
            event = orjson.loads(message)
        except orjson.JSONDecodeError as exc:
            raise EventError(f"logEvents[{number}].message is not JSON: {exc}") from None
        millis = item.get("timestamp")
        moment = (
            datetime.fromtimestamp(millis / 1000, UTC) if type(millis) is int and millis >= 0 else None
        )
        collected = Collected("aws-cloudwatch", message, moment)

        def build(members: Members | None, event: Any = event, collected: Collected = collected,
                  number: int = number) -> dict[str, Any]:
            try:
                return to_document(event, collected=collected, members=members)
            except EventError as exc:
                raise EventError(f"logEvents[{number}]: {exc.message}") from None

        yield message.encode("utf-8"), build
