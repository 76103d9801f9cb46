"""Reading event files: NDJSON of raw Kubernetes audit events or of indexed (ECS) documents.

A malformed line is reported as ``file:line: reason`` and skipped; every other
line is still read, so one bad line never hides the rest of a log.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dac.documents import SourceDocument
from dac.errors import EventError, Location
from dac.events.k8s_audit import to_document

INPUT_FORMATS = ("k8s-audit", "ecs")
DEFAULT_INDEX = "logs-kubernetes.audit_logs-default"


@dataclass
class ReadResult:
    documents: list[SourceDocument] = field(default_factory=list)
    errors: list[EventError] = field(default_factory=list)


def event_files(path: Path) -> list[Path]:
    """``path`` itself, or every ``*.json``/``*.ndjson``/``*.jsonl``/``*.log`` below it."""
    if path.is_dir():
        return sorted(
            p for p in path.rglob("*") if p.is_file() and p.suffix in (".json", ".ndjson", ".jsonl", ".log")
        )
    if not path.exists():
        raise EventError(f"no such file or folder: {path}")
    return [path]


def read_events(paths: list[Path], input_format: str) -> ReadResult:
    result = ReadResult()
    for path in paths:
        for file in event_files(path):
            for line_number, line in _lines(file, result):
                try:
                    result.documents.append(to_source_document(json.loads(line), input_format))
                except json.JSONDecodeError as exc:
                    result.errors.append(
                        EventError(
                            f"invalid JSON: {exc.msg} (column {exc.colno})", Location(str(file), line_number)
                        )
                    )
                except EventError as exc:
                    result.errors.append(exc.at(Location(str(file), line_number)))
    return result


def _lines(file: Path, result: ReadResult) -> Iterator[tuple[int, str]]:
    with file.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                result.errors.append(
                    EventError(
                        f"line is not UTF-8 (byte 0x{raw[exc.start]:02x})", Location(str(file), number)
                    )
                )
                continue
            if line.strip():
                yield number, line


def to_source_document(event: Any, input_format: str) -> SourceDocument:
    """One parsed line as the document Elasticsearch would hold, with a content-derived id."""
    if input_format == "k8s-audit":
        source = to_document(event)
    elif isinstance(event, dict):
        source = event
    else:
        raise EventError("expected a JSON object")
    return SourceDocument(index_name(source), document_id(source), source)


def document_id(source: dict[str, Any]) -> str:
    """A stable ``_id``: the same document always gets the same id (and ES overwrites duplicates)."""
    canonical = json.dumps(source, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:20]


def index_name(source: dict[str, Any]) -> str:
    stream = source.get("data_stream")
    if isinstance(stream, dict) and {"type", "dataset", "namespace"} <= stream.keys():
        return f"{stream['type']}-{stream['dataset']}-{stream['namespace']}"
    return DEFAULT_INDEX
