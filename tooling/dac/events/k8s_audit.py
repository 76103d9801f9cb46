"""Raw Kubernetes audit events -> the documents Elastic's Kubernetes integration indexes.

The API server's log backend writes one ``audit.k8s.io/v1`` ``Event`` per line.
Elastic Agent reads that file with the ``audit_logs`` data stream's filestream
stream (``agent/stream/stream.yml.hbs``), which already reshapes the event,
and Elasticsearch then runs the data stream's ingest pipeline
(``elasticsearch/ingest_pipeline/default.yml``; it calls no other pipeline).
:func:`to_document` replays both, in order, so rules see the same ``_source``
a real cluster stores. Sources (``elastic/integrations``, revisions in the
mapping file's ``_meta.sources``): ``packages/kubernetes/data_stream/audit_logs/...``.

==========================================  =====================================================
Step (where)                                Effect on the document
==========================================  =====================================================
ndjson parser, target ``kubernetes_audit``  the event, as-is, under ``kubernetes.audit``; no
+ rename (Agent stream)                     ``message``, so the pipeline's ``json`` step is skipped
drop_fields (Agent stream)                  ``requestObject.metadata`` and ``responseObject.metadata``
                                            removed (only ``metadata``; the pipeline repeats it)
dedot script (Agent stream)                 annotation keys: ``.`` -> ``_``, e.g.
                                            ``annotations.authorization_k8s_io/decision``
``event.kind`` (pipeline)                   ``event``
``event.action`` (pipeline)                 copy of ``verb``
renames (pipeline)                          GKE-shaped keys (``insertId``, ``receiveTimestamp``,
                                            ``timestamp``, ``protoPayload.status.code``,
                                            ``labels``) onto audit names; absent in audit Events
annotation script (pipeline)                dedots again; sets ``event.outcome`` only for the key
                                            ``authorization.k8s.io/decision`` *with dots*, which
                                            the Agent already renamed: file-collected events get
                                            **no** ``event.outcome``
``user.name`` / ``user.id`` (pipeline)      copies of ``user.username`` / ``user.uid``
``user_agent.original`` (pipeline)          copy of ``userAgent``
``source.ip`` / ``client.ip`` (pipeline)    ``sourceIPs`` if every entry is an IP, else neither
``orchestrator.*`` (pipeline)               ``type: kubernetes``; ``api_version`` = the *audit*
                                            ``apiVersion``; ``resource.type/name``, ``namespace``
                                            from ``objectRef``
``related.user`` / ``related.ip``           ``uid``, ``username``; every ``source.ip`` (deduplicated)
drop-empty script (pipeline)                removes ``null``, ``""``, ``{}`` and ``[]`` everywhere
on_failure (pipeline)                       ``event.kind: pipeline_error``, tag
                                            ``preserve_original_event``, ``error.message``
Agent / Fleet                               ``data_stream.*``, ``event.dataset``,
                                            ``ecs.version: 8.0.0``
``@timestamp``                              ``stageTimestamp`` to the millisecond (see below)
==========================================  =====================================================

Left out because they describe the collecting Agent and host rather than the
event: ``agent.*``, ``host.*``, ``input.type``, ``log.file.*``, ``log.offset``,
``elastic_agent.*``, ``cloud.provider`` (set only for cloud inputs),
``event.ingested`` and ``event.agent_id_status`` (Fleet's final pipeline).
``@timestamp`` is not taken from the event by the integration at all: Agent
stamps the time it read the line. The closest reproducible value is the time
the API server wrote it, ``stageTimestamp``, at Agent's millisecond precision.
"""

from __future__ import annotations

import copy
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from dac.errors import EventError
from dac.mapping import load_mapping

DATASET = "kubernetes.audit_logs"
MAPPING_NAME = DATASET
# What libbeat writes as ecs.version; see the package's data_stream/audit_logs/sample_event.json.
AGENT_ECS_VERSION = "8.0.0"


def _package_version() -> str:
    version = load_mapping(MAPPING_NAME).package_version
    if not isinstance(version, str):
        raise EventError(f"mapping {MAPPING_NAME!r} has no _meta.package_version")
    return version


INTEGRATION_PACKAGE_VERSION = _package_version()

_DECISION_KEY = "authorization.k8s.io/decision"
# The pipeline's rename processors: (tag, source, target), paths inside kubernetes.audit.
_RENAMES = tuple(
    (tag, source.split("."), target.split("."))
    for tag, source, target in (
        ("rename_audit_id", "insertId", "auditID"),
        ("rename_requestReceivedTimestamp", "receiveTimestamp", "requestReceivedTimestamp"),
        ("rename_stageTimestamp", "timestamp", "stageTimestamp"),
        ("rename_responseStatusCode", "protoPayload.status.code", "responseStatus.code"),
        ("rename_labels", "labels", "annotations"),
    )
)
# Members the pipeline's scripts and null-safe paths read as objects (``labels`` becomes annotations).
_OBJECT_MEMBERS = ("user", "impersonatedUser", "objectRef", "responseStatus", "annotations", "labels")


class _ProcessorFailure(Exception):
    """A pipeline processor threw; carries what ``_ingest.on_failure_*`` would hold."""

    def __init__(self, processor: str, tag: str, message: str) -> None:
        super().__init__(message)
        self.processor = processor
        self.tag = tag
        self.message = message


@dataclass(frozen=True)
class Collected:
    """How a cloud input handed the event to the pipeline (absent: Agent's filestream read it).

    Cloud inputs (``gcp-pubsub``, ``azure-eventhub``, ``aws-cloudwatch``) pass the record as
    ``message``; the pipeline renames it to ``event.original`` and parses it into
    ``kubernetes.audit``. No Agent-side processor runs, so the pipeline's own annotation script
    sees the dotted keys and sets ``event.outcome``.
    """

    input_type: str  # the Agent input, which sets cloud.provider (pipeline "Cloud fields"); or "message"
    original: str  # the message the input delivered, kept as event.original
    timestamp: datetime | None = None  # the input's @timestamp, when the record carries it
    aks_metadata: dict[str, Any] | None = None


CLOUD_PROVIDERS = {"gcp-pubsub": "gcp", "azure-eventhub": "azure", "aws-cloudwatch": "aws"}


# Raw members every conversion reads, whatever the rules look at: validation, @timestamp, and the
# pipeline's renames (whose collisions send the document down on_failure).
_ALWAYS_READ = frozenset({
    "kind", "apiVersion", "auditID", "requestReceivedTimestamp", "stageTimestamp",
    "insertId", "receiveTimestamp", "timestamp", "protoPayload", "labels",
})
# Document fields outside kubernetes.audit.* and the raw members they are made from (_pipeline).
_DERIVED_FROM = {
    "user": ("user",), "related.user": ("user",), "source": ("sourceIPs",), "client": ("sourceIPs",),
    "related.ip": ("sourceIPs",), "user_agent": ("userAgent",), "event.action": ("verb",),
    "event.outcome": ("annotations",), "orchestrator": ("apiVersion", "objectRef", "resource"),
    "@timestamp": (), "event.kind": (), "event.dataset": (), "data_stream": (), "ecs": (), "cloud": (),
}


_DERIVED = "@derived"  # marks Members whose fields include some outside kubernetes.audit.* and @timestamp
_RENAME_SOURCES = ("insertId", "receiveTimestamp", "timestamp", "protoPayload", "labels")
Members = dict[str, "tuple[frozenset[str], tuple[str, ...]] | None"]
TIME_ONLY: Members = {}  # to_document(members=TIME_ONLY): validate, then only @timestamp
"""Raw top-level members to convert: the whole member (None), or only the sub-paths named."""


# Document fields whose string values the conversion copies unchanged from the raw record, so
# that a value in the document is a value in the line (dac.engine.needles relies on it). Not:
# constants the pipeline or Agent add (event.kind, event.dataset, data_stream.*, ecs.version,
# cloud.provider, orchestrator.type), values it computes (event.outcome from the decision,
# @timestamp, error.message, tags).
_COPIED = ("kubernetes.audit.", "user.name", "user.id", "user_agent.original", "event.action",
           "related.user", "related.ip", "source.ip", "client.ip", "event.original",
           "orchestrator.api_version", "orchestrator.namespace", "orchestrator.resource.",
           "orchestrator.cluster.")


def copied_verbatim(name: str) -> bool:
    """Whether every value of document field ``name`` appears, as written, in the raw record."""
    return name in _COPIED or any(name.startswith(prefix) for prefix in _COPIED if prefix.endswith("."))


def members_read(fields: set[str] | None) -> Members | None:
    """The raw members (and sub-paths) that decide the values of document ``fields`` (None: all).

    Converting only these gives the same values at ``fields`` as converting the whole event: every
    pipeline step works within one member's subtree (drop-empty included, which removes a value
    according to that value alone) or derives a field from the members in ``_DERIVED_FROM``, which
    are then kept whole, as are annotations (two dedot passes rename their keys).
    """
    if fields is None:
        return None
    members: dict[str, set[str] | None] = {member: None for member in _ALWAYS_READ}

    def whole(member: str) -> None:
        members[member] = None

    for name in fields:
        if name.startswith("kubernetes.audit."):
            parts = name.split(".", 3)
            member = parts[2]
            if len(parts) == 3 or member in ("annotations", "labels"):
                whole(member)
            elif member not in members:
                members[member] = {parts[3]}
            elif members[member] is not None:
                members[member].add(parts[3])  # type: ignore[union-attr]
            continue
        for prefix, sources in _DERIVED_FROM.items():
            if name == prefix or name.startswith(prefix + "."):
                for member in sources:
                    whole(member)
                if prefix != "@timestamp":
                    members[_DERIVED] = None  # the pipeline's other outputs are read too
                break
        else:
            return None  # e.g. event.original, tags, error.message: read the whole event
    return {member: None if rests is None else _sub_paths(rests) for member, rests in members.items()}


def _sub_paths(rests: set[str]) -> tuple[frozenset[str], tuple[str, ...]]:
    """Every key that is or holds a path read (``a``, ``a.b`` for ``a.b.c``), and the paths."""
    prefixes = set()
    for rest in rests:
        parts = rest.split(".")
        prefixes.update(".".join(parts[:n]) for n in range(1, len(parts) + 1))
    return frozenset(prefixes), tuple(rests)


def _project(event: Mapping[str, Any], members: Members) -> dict[str, Any]:
    """The members of ``event`` that ``members`` names, objects cut down to the sub-paths named."""
    out: dict[str, Any] = {}
    for key, value in event.items():
        if key not in members:
            continue
        paths = members[key]
        if paths is None or type(value) is not dict:
            out[key] = value
            continue
        # keep a sub-key that is, holds or lies under a path read (dotted keys included)
        prefixes, rests = paths
        out[key] = {
            sub: inner
            for sub, inner in value.items()
            if sub in prefixes or ("." in sub and any(sub.startswith(rest + ".") for rest in rests))
        }
    return out


def to_document(
    event: Mapping[str, Any],
    namespace: str = "default",
    collected: Collected | None = None,
    members: Members | None = None,
) -> dict[str, Any]:
    """The ``_source`` the integration stores for one raw audit ``Event`` (input is not modified).

    ``members`` (see :func:`members_read`) converts only those raw members, after validating
    the whole event: a partial document, exact at the fields the members decide.
    """
    stage_time = _validate(event) if collected is None else _validate_cloud(event)
    if members is TIME_ONLY:  # checked, and no rule can match it: only its time is wanted
        moment = collected.timestamp if collected is not None and collected.timestamp else stage_time
        return {"@timestamp": _event_millis(event, moment, collected)}
    if members is not None:
        event = _project(event, members)
        if collected is None and _DERIVED not in members and not any(k in event for k in _RENAME_SOURCES):
            return _audit_fields(event, stage_time)
    if collected is None:
        audit = _agent_stream(event)
    else:
        audit = _drop_object_metadata(dict(event))  # the pipeline's two remove processors
        if collected.aks_metadata is not None:
            audit["aks_metadata"] = collected.aks_metadata
    moment = collected.timestamp if collected is not None and collected.timestamp else stage_time
    doc: dict[str, Any] = {
        "@timestamp": _event_millis(event, moment, collected),
        "data_stream": {"dataset": DATASET, "namespace": namespace, "type": "logs"},
        "ecs": {"version": AGENT_ECS_VERSION},
        "event": {"dataset": DATASET},
        "kubernetes": {"audit": audit},
    }
    if collected is not None:
        doc["event"]["original"] = collected.original
        if collected.input_type in CLOUD_PROVIDERS:
            doc["cloud"] = {"provider": CLOUD_PROVIDERS[collected.input_type]}
    try:
        _pipeline(doc, audit)
    except _ProcessorFailure as failure:
        doc = copy.deepcopy(doc)  # no drop-empty step runs; do not hand back the caller's objects
        _on_failure(doc, failure)
        return doc
    return _drop_empty(doc)


def _audit_fields(event: Mapping[str, Any], stage_time: datetime) -> dict[str, Any]:
    """``@timestamp`` and ``kubernetes.audit`` of a file-collected event with no GKE-shaped member.

    With no rename source present no pipeline processor can fail, and within kubernetes.audit the
    pipeline only dedots annotation keys again; every other step writes outside it. So these
    values equal the whole conversion's, at a fraction of its cost (tests/unit/test_lazy.py).
    """
    audit = _agent_stream(event)
    annotations = audit.get("annotations")
    if annotations is not None:
        audit["annotations"] = {key.replace(".", "_"): value for key, value in annotations.items()}
    cleaned = _drop_empty({"kubernetes": {"audit": audit}})
    document = {"@timestamp": _event_millis(event, stage_time, None)}
    if cleaned is not _EMPTY:
        document.update(cleaned)
    return document


def checked_time(event: Any) -> datetime:
    """A native audit event checked as :func:`to_document` checks it, and the ``@timestamp`` its
    document would hold (``stageTimestamp`` in UTC, cut to milliseconds), without building the
    document: for the many events that no rule can match."""
    return cut_to_millis(_validate(event))


def cut_to_millis(moment: datetime) -> datetime:
    """``moment`` cut to whole milliseconds, as an event's ``@timestamp`` is (monotonic: the
    earliest of many times, cut, is the earliest of them cut)."""
    below = moment.microsecond % 1000
    return moment - _MICROSECOND * below if below else moment


_MICROSECOND = timedelta(microseconds=1)


def _validate(event: Any) -> datetime:
    """Reject what is not an audit Event; return its ``stageTimestamp`` in UTC.

    It runs on every event read, so it is written for speed: ``type(x) is dict`` before the
    general Mapping test, one ``get`` per member.
    """
    if type(event) is not dict and not isinstance(event, Mapping):
        raise EventError(f"audit event must be a JSON object, got {type(event).__name__}")
    get = event.get
    if get("kind") != "Event":
        raise EventError(f"not a Kubernetes audit Event: kind is {get('kind')!r}, expected 'Event'")
    api_version = get("apiVersion")
    if type(api_version) is not str or not api_version.startswith("audit.k8s.io/"):
        raise EventError(f"not a Kubernetes audit Event: apiVersion {api_version!r} is not audit.k8s.io/*")
    audit_id = get("auditID")
    if type(audit_id) is not str or not audit_id:
        raise EventError("audit Event has no auditID")
    _timestamp(event, "requestReceivedTimestamp")
    stage_time = _timestamp(event, "stageTimestamp")
    for member in _OBJECT_MEMBERS:
        value = get(member)
        if value is not None and type(value) is not dict and not isinstance(value, Mapping):
            raise EventError(f"audit Event field {member!r} must be an object")
    user = get("user")
    if user:
        for member in ("username", "uid"):
            if member in user and not isinstance(user[member], _STRING_OR_NULL):
                raise EventError(f"audit Event field 'user.{member}' must be a string")
    return stage_time


_STRING_OR_NULL = (str, type(None))


_CANONICAL_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3,}Z")


def _event_millis(event: Mapping[str, Any], moment: datetime, collected: Collected | None) -> str:
    """``format_millis(moment)``; read straight off a file-collected event's ``stageTimestamp``
    when it is already UTC with at least millisecond digits (the API server's own form)."""
    if collected is None:
        text = event.get("stageTimestamp")
        if type(text) is str and len(text) >= 24 and _CANONICAL_UTC.fullmatch(text):
            return f"{text[:23]}Z"
    return format_millis(moment)


def format_millis(moment: datetime) -> str:
    """An ISO 8601 UTC time at millisecond precision, as Elasticsearch prints a ``date``."""
    return f"{moment.isoformat(timespec='milliseconds')[:23]}Z"


def _validate_cloud(event: Any) -> datetime:
    """A record a cloud input delivered: an audit Event, or a GKE Cloud Logging AuditLog entry."""
    if not _is_object(event):
        raise EventError(f"audit record must be a JSON object, got {type(event).__name__}")
    if "protoPayload" in event:
        payload = event["protoPayload"]
        if not _is_object(payload) or not str(payload.get("@type", "")).endswith("AuditLog"):
            raise EventError("GKE log entry: protoPayload is not a google.cloud.audit.AuditLog")
        for member in ("resource", "labels", "operation"):
            value = event.get(member)
            if value is not None and not _is_object(value):
                raise EventError(f"GKE log entry field {member!r} must be an object")
        return _timestamp(event, "timestamp", "GKE log entry")
    return _validate(event)


def _timestamp(event: Mapping[str, Any], name: str, what: str = "audit Event") -> datetime:
    value = event.get(name)
    if not isinstance(value, str):
        raise EventError(f"{what} has no {name}")
    try:  # the API server's own form first: it is nearly every event's
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is UTC:
            return parsed
    except ValueError:
        pass
    parsed = parse_rfc3339(value)
    if parsed is None:
        raise EventError(f"{what} {name} {value!r} is not an RFC 3339 timestamp")
    return parsed


def parse_rfc3339(value: str) -> datetime | None:
    """An RFC 3339 time in UTC; nanosecond fractions (GKE, AKS) are cut to microseconds."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        parsed = None
        dot = value.find(".")
        if dot != -1:
            end = dot + 1
            while end < len(value) and value[end].isdigit():
                end += 1
            try:
                parsed = datetime.fromisoformat(value[: min(end, dot + 7)] + value[end:])
            except ValueError:
                return None
    if parsed is None or parsed.tzinfo is None:
        return None
    try:
        return parsed if parsed.tzinfo is UTC else parsed.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00: before the first instant Python has
        return None


def _drop_object_metadata(audit: dict[str, Any]) -> dict[str, Any]:
    """Without ``requestObject.metadata`` and ``responseObject.metadata`` (Agent's drop_fields and,
    again, the pipeline's remove processors with ignore_missing)."""
    for member in ("responseObject", "requestObject"):
        value = audit.get(member)
        if _is_object(value) and "metadata" in value:
            audit[member] = {k: v for k, v in value.items() if k != "metadata"}
    return audit


def _agent_stream(event: Mapping[str, Any]) -> dict[str, Any]:
    """``kubernetes.audit`` after the Agent stream's processors (stream.yml.hbs)."""
    audit = _drop_object_metadata(dict(event))
    annotations = audit.get("annotations")
    if _is_object(annotations):
        # The dedot script's event.Rename refuses to overwrite an existing key.
        dedotted = dict(annotations)
        for key in annotations:
            target = key.replace(".", "_")
            if target != key and target not in dedotted:
                dedotted[target] = dedotted.pop(key)
        audit["annotations"] = dedotted
    return audit


def _pipeline(doc: dict[str, Any], audit: dict[str, Any]) -> None:
    """The processors of ingest_pipeline/default.yml that apply to file-collected events, in order."""
    event = doc["event"]
    event["kind"] = "event"
    _copy(audit.get("verb"), event, "action")
    for tag, source, target in _RENAMES:
        _rename(audit, source, target, tag)

    annotations = audit.get("annotations")
    if annotations is not None:
        updated = {}
        for key, value in annotations.items():
            updated[key.replace(".", "_")] = value
            if key == _DECISION_KEY:
                if value == "allow":
                    event["outcome"] = "success"
                elif value == "forbid":
                    event["outcome"] = "failure"
        audit["annotations"] = updated

    user = audit.get("user")
    if _is_object(user):
        user_fields: dict[str, Any] = {}
        _copy(user.get("username"), user_fields, "name")
        _copy(user.get("uid"), user_fields, "id")
        if user_fields:
            doc["user"] = user_fields
    user_agent = audit.get("userAgent")
    if user_agent is not None and user_agent != "":
        doc["user_agent"] = {"original": user_agent}
    source_ips = audit.get("sourceIPs")
    if source_ips is not None and _all_ips(source_ips):
        doc["source"] = {"ip": source_ips}
        doc["client"] = {"ip": source_ips}

    orchestrator: dict[str, Any] = {"type": "kubernetes"}
    _copy(audit.get("apiVersion"), orchestrator, "api_version")
    object_ref = audit.get("objectRef")
    if _is_object(object_ref):
        _copy(object_ref.get("resource"), orchestrator, "resource.type")
        _copy(object_ref.get("namespace"), orchestrator, "namespace")
        _copy(object_ref.get("name"), orchestrator, "resource.name")
    # GKE-shaped fields; never present in audit.k8s.io Events, kept so the replay stays whole.
    proto_payload = audit.get("protoPayload")
    if _is_object(proto_payload) and "resource.name" not in orchestrator:
        _copy(proto_payload.get("resourceName"), orchestrator, "resource.name")
    resource = audit.get("resource")
    if _is_object(resource):
        _copy(resource.get("type"), orchestrator, "resource.type")
        labels = resource.get("labels")
        if _is_object(labels):
            _copy(labels.get("cluster_name"), orchestrator, "cluster.name")
            _copy(labels.get("project_id"), orchestrator, "cluster.id")
    doc["orchestrator"] = _expand(orchestrator)

    related_users: list[Any] = []
    for member in ("uid", "username"):
        value = user.get(member) if _is_object(user) else None
        if value is not None and value not in related_users:
            related_users.append(value)
    related: dict[str, Any] = {}
    if related_users:
        related["user"] = related_users
    if "source" in doc and isinstance(source_ips, list):
        related["ip"] = list(dict.fromkeys(str(ip) for ip in source_ips))
    if related:
        doc["related"] = related


def _copy(value: Any, target: dict[str, Any], key: str) -> None:
    """``set`` with ``copy_from`` and ``ignore_empty_value``: skip null and ``""``."""
    if value is not None and value != "":
        target[key] = value


def _expand(flat: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in flat.items():
        head, _, tail = key.partition(".")
        if tail:
            out.setdefault(head, {})[tail] = value
        else:
            out[head] = value
    return out


def _all_ips(value: Any) -> bool:
    """Whether the ``convert`` processor (type ``ip``) accepts ``value`` (a string or a list)."""
    values = value if isinstance(value, list) else [value]
    return all(type(item) is str and _is_ip(item) for item in values)


@lru_cache(maxsize=4096)
def _is_ip(text: str) -> bool:
    """ConvertProcessor's ``ip`` check; clients repeat, so answers are cached."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _rename(audit: dict[str, Any], source_parts: list[str], target_parts: list[str], tag: str) -> None:
    """``rename`` with ``ignore_missing``; fails when the target already exists (RenameProcessor)."""
    if source_parts[0] not in audit:
        return
    parent = _walk(audit, source_parts[:-1])
    if parent is None or source_parts[-1] not in parent:
        return
    target_parent = _walk(audit, target_parts[:-1])
    if target_parent is not None and target_parts[-1] in target_parent:
        target = ".".join(target_parts)
        raise _ProcessorFailure("rename", tag, f"field [kubernetes.audit.{target}] already exists")
    value = _pop(audit, source_parts)
    node = audit
    for part in target_parts[:-1]:
        child = node.get(part)
        node[part] = dict(child) if _is_object(child) else {}
        node = node[part]
    node[target_parts[-1]] = value


def _walk(node: Mapping[str, Any], parts: list[str]) -> Mapping[str, Any] | None:
    for part in parts:
        child = node.get(part)
        if not _is_object(child):
            return None
        node = child
    return node


def _pop(node: dict[str, Any], parts: list[str]) -> Any:
    """Remove a nested key, copying the objects on the way so the caller's event stays intact."""
    if len(parts) == 1:
        return node.pop(parts[0])
    child = dict(node[parts[0]])
    node[parts[0]] = child
    return _pop(child, parts[1:])


def _on_failure(doc: dict[str, Any], failure: _ProcessorFailure) -> None:
    """The pipeline's on_failure block; the document keeps what ran before the failure."""
    doc["event"]["kind"] = "pipeline_error"
    doc["tags"] = ["preserve_original_event"]
    doc["error"] = {
        "message": [
            f"Processor '{failure.processor}' with tag '{failure.tag}' "
            f"failed with message '{failure.message}"
        ]
    }


_EMPTY = object()


def _drop_empty(value: Any) -> Any:
    """A copy without ``null``, ``""``, ``{}`` or ``[]`` at any depth (script_to_drop_empty_values).

    This runs on every event, so the loops test types inline instead of calling a helper per value.
    """
    if type(value) is list:
        items = []
        for item in value:
            kind = type(item)
            if kind is str:
                if item:
                    items.append(item)
            elif kind is dict or kind is list or (item is not None and isinstance(item, Mapping)):
                item = _drop_empty(item)
                if item is not _EMPTY:
                    items.append(item)
            elif item is not None:
                items.append(item)
        return items or _EMPTY
    cleaned = {}
    for key, item in value.items():
        kind = type(item)
        if kind is str:
            if item:
                cleaned[key] = item
        elif kind is dict or kind is list or (item is not None and isinstance(item, Mapping)):
            item = _drop_empty(item)
            if item is not _EMPTY:
                cleaned[key] = item
        elif item is not None:
            cleaned[key] = item
    return cleaned or _EMPTY


def _is_object(value: Any) -> bool:
    return type(value) is dict or isinstance(value, Mapping)
