"""Reading event files: NDJSON of raw Kubernetes audit events or of indexed (ECS) documents.

A malformed line is reported as ``file:line: reason`` and skipped; every other
line is still read, so one bad line never hides the rest of a log.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from dac.documents import SourceDocument, no_cycle_collection
from dac.errors import EventError, Location
from dac.events.k8s_audit import to_document

INPUT_FORMATS = ("k8s-audit", "ecs")
DEFAULT_INDEX = "logs-kubernetes.audit_logs-default"
EVENT_FILE_SUFFIXES = (".json", ".ndjson", ".jsonl", ".log")


@dataclass
class ReadResult:
    documents: list[SourceDocument] = field(default_factory=list)
    errors: list[EventError] = field(default_factory=list)


def event_files(path: Path) -> list[Path]:
    """``path`` itself, or every NDJSON-looking file below it."""
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in EVENT_FILE_SUFFIXES)
    if not path.exists():
        raise EventError(f"no such file or folder: {path}")
    return [path]


def read_events(paths: list[Path], input_format: str) -> ReadResult:
    result = ReadResult()
    with no_cycle_collection():
        _read_into(result, paths, input_format)
    return result


def _read_into(result: ReadResult, paths: list[Path], input_format: str) -> None:
    for path in paths:
        for file in event_files(path):
            for number, line in _lines(file):
                try:
                    result.documents.append(to_source_document(orjson.loads(line), input_format, line))
                except orjson.JSONDecodeError as exc:
                    result.errors.append(EventError(f"invalid JSON: {exc}", Location(str(file), number)))
                except EventError as exc:
                    result.errors.append(exc.at(Location(str(file), number)))


def _lines(file: Path) -> Iterator[tuple[int, bytes]]:
    with file.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            line = raw.strip()
            if line:
                yield number, line


def to_source_document(event: Any, input_format: str, line: bytes | None = None) -> SourceDocument:
    """One event as the document Elasticsearch would hold, with an id derived from its content."""
    if input_format == "k8s-audit":
        source = to_document(event)
    elif isinstance(event, dict):
        source = event
    else:
        raise EventError("expected a JSON object")
    content = line if line is not None else orjson.dumps(event, option=orjson.OPT_SORT_KEYS)
    return SourceDocument(index_name(source), document_id(content), source)


def document_id(content: bytes) -> str:
    """A stable ``_id``: the same event always gets the same id (and ES overwrites duplicates)."""
    return hashlib.sha256(content).hexdigest()[:20]


def index_name(source: dict[str, Any]) -> str:
    stream = source.get("data_stream")
    if isinstance(stream, dict) and {"type", "dataset", "namespace"} <= stream.keys():
        return f"{stream['type']}-{stream['dataset']}-{stream['namespace']}"
    return DEFAULT_INDEX
