"""Reading event files: NDJSON audit records (any :mod:`dac.events.formats` format), plain or gzipped.

A malformed line is reported as ``file:line: reason`` and skipped; every other
line is still read, so one bad line never hides the rest of a log. A folder is
read in time order (rotated logs first, the live ``audit.log`` last), and every
file it holds that is not read is reported with the reason, never dropped silently.
Documents are produced one at a time, so memory does not grow with the input.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from dac.documents import SourceDocument, no_cycle_collection
from dac.errors import EventError, Location
from dac.events.formats import INPUT_CHOICES, convert

INPUT_FORMATS = INPUT_CHOICES
DEFAULT_INDEX = "logs-kubernetes.audit_logs-default"
EVENT_FILE_SUFFIXES = (".json", ".ndjson", ".jsonl", ".log")
# audit.log, audit.log.3 (logrotate), audit-2026-11-20T10-00-00.000.log (the API server's
# --audit-log-maxbackup rotation), each optionally .gz
_EVENT_FILE = re.compile(r"\.(json|ndjson|jsonl|log)(\.\d+)?(\.gz)?$")
_ROTATED_AT = re.compile(r"(\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d(?:\.\d+)?)")
_GZIP_MAGIC = b"\x1f\x8b"
_BLOCK = 1 << 20


@dataclass
class ReadResult:
    documents: list[SourceDocument] = field(default_factory=list)
    errors: list[EventError] = field(default_factory=list)


@dataclass
class ReadStats:
    """What reading found, for the summary: files read and skipped, events, bytes."""

    files: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    events: int = 0
    errors: int = 0
    total_bytes: int = 0  # on disk, of every file to read (compressed size for .gz)
    bytes_done: int = 0  # of files finished
    current_bytes: Callable[[], int] = lambda: 0  # position in the file being read


def event_files(path: Path, skipped: list[tuple[Path, str]] | None = None) -> list[Path]:
    """``path`` itself, or the event files below it in time order; the rest goes to ``skipped``."""
    if path.is_dir():
        found = []
        for candidate in sorted(path.rglob("*")):
            if not candidate.is_file():
                continue
            if not _EVENT_FILE.search(candidate.name):
                reason = "not an event file name (.json, .ndjson, .jsonl, .log, rotated or .gz)"
            elif candidate.stat().st_size == 0:
                reason = "empty"
            else:
                found.append(candidate)
                continue
            if skipped is not None:
                skipped.append((candidate, reason))
        return sorted(found, key=_time_order)
    if not path.exists():
        raise EventError(f"no such file or folder: {path}")
    return [path]


def _time_order(path: Path) -> tuple[Any, ...]:
    """Oldest first: timestamped backups by their time, then ``.N`` by descending N, then live files."""
    stamped = _ROTATED_AT.search(path.name)
    if stamped:
        return (0, datetime.strptime(stamped.group(1).split(".")[0], "%Y-%m-%dT%H-%M-%S"), str(path))
    numbered = re.search(r"\.(\d+)(\.gz)?$", path.name)
    if numbered:
        return (1, -int(numbered.group(1)), str(path))
    return (2, str(path))


def read_events(paths: list[Path], input_format: str) -> ReadResult:
    """Every document and every error, held in memory (for small inputs and tests)."""
    result = ReadResult()
    with no_cycle_collection():
        result.documents.extend(iter_documents(paths, input_format, result.errors.append))
    return result


def iter_documents(
    paths: list[Path],
    input_format: str,
    on_error: Callable[[EventError], None],
    stats: ReadStats | None = None,
) -> Iterator[SourceDocument]:
    """The documents of every file, one at a time; each problem goes to ``on_error``, located."""
    stats = stats if stats is not None else ReadStats()
    for path in paths:
        for file in event_files(path, stats.skipped):
            stats.files.append(file)
            stats.total_bytes += file.stat().st_size
    for file in stats.files:
        yield from _file_documents(file, input_format, on_error, stats)
        stats.bytes_done += file.stat().st_size
        stats.current_bytes = lambda: 0


def _file_documents(
    file: Path, input_format: str, on_error: Callable[[EventError], None], stats: ReadStats
) -> Iterator[SourceDocument]:
    name = str(file)
    for number, line in _lines(file, on_error, stats):
        try:
            record = orjson.loads(line)
            for content, source in convert(record, line, input_format):
                stats.events += 1
                yield SourceDocument(index_name(source), document_id(content), source)
        except orjson.JSONDecodeError as exc:
            stats.errors += 1
            on_error(_json_error(exc, line, Location(name, number)))
        except EventError as exc:
            stats.errors += 1
            on_error(exc.at(Location(name, number)))
        except RecursionError:
            stats.errors += 1
            on_error(EventError("event nested too deeply to convert (Python's recursion limit)",
                                Location(name, number)))


def _json_error(exc: orjson.JSONDecodeError, line: bytes, where: Location) -> EventError:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as bad:
        return EventError(f"invalid UTF-8 at byte {bad.start} of the line (column {bad.start + 1})", where)
    return EventError(f"invalid JSON: {exc}", where)


OnError = Callable[[EventError], None]


def _lines(file: Path, on_error: OnError, stats: ReadStats) -> Iterator[tuple[int, bytes]]:
    """Numbered non-blank lines of a plain or gzipped file (gzip recognised by its magic bytes)."""
    with file.open("rb") as handle:
        stats.current_bytes = handle.tell
        head = handle.read(2)
        handle.seek(0)
        blocks = _gunzip(handle, file, on_error) if head == _GZIP_MAGIC else _blocks(handle)
        first = True
        number = 0
        rest = b""
        for block in blocks:
            if first:
                first = False
                if b"\x00" in block[:4096]:
                    on_error(EventError("binary file, not NDJSON text: not read", Location(str(file))))
                    return
            block = rest + block
            lines = block.split(b"\n")
            rest = lines.pop()
            for raw in lines:
                number += 1
                line = raw.strip()
                if line:
                    yield number, line
        number += 1
        line = rest.strip()
        if line:
            yield number, line


def _blocks(handle: Any) -> Iterator[bytes]:
    while block := handle.read(_BLOCK):
        yield block


def _gunzip(handle: Any, file: Path, on_error: Callable[[EventError], None]) -> Iterator[bytes]:
    """Decompressed blocks of every gzip member (rotated logs may be concatenated members)."""
    inflater = zlib.decompressobj(wbits=31)
    pending = False  # inside a member that has not ended yet
    carry = b""
    try:
        while chunk := carry + handle.read(_BLOCK):
            carry = b""
            while chunk:
                pending = True
                out = inflater.decompress(chunk)
                if out:
                    yield out
                if not inflater.eof:
                    break
                pending = False
                chunk = inflater.unused_data
                inflater = zlib.decompressobj(wbits=31)
                if len(chunk) < 2:
                    carry, chunk = chunk, b""
                elif chunk[:2] != _GZIP_MAGIC:
                    on_error(EventError("data after the gzip stream: not read", Location(str(file))))
                    return
    except zlib.error as exc:
        on_error(EventError(f"corrupt gzip data: {exc}", Location(str(file))))
        return
    if pending:
        on_error(EventError("gzip stream is truncated: the rest of the file is missing", Location(str(file))))


def to_source_document(event: Any, input_format: str, line: bytes | None = None) -> SourceDocument:
    """One event as the document Elasticsearch would hold, with an id derived from its content."""
    content = line if line is not None else orjson.dumps(event, option=orjson.OPT_SORT_KEYS)
    fmt = "native" if input_format == "k8s-audit" else input_format
    converted = list(convert(event, content, fmt))
    if len(converted) != 1:
        raise EventError(f"expected one event, the record holds {len(converted)}")
    content, source = converted[0]
    return SourceDocument(index_name(source), document_id(content), source)


def document_id(content: bytes) -> str:
    """A stable ``_id``: the same event always gets the same id (and ES overwrites duplicates)."""
    return hashlib.sha256(content).hexdigest()[:20]


def index_name(source: dict[str, Any]) -> str:
    stream = source.get("data_stream")
    if isinstance(stream, dict) and {"type", "dataset", "namespace"} <= stream.keys():
        return f"{stream['type']}-{stream['dataset']}-{stream['namespace']}"
    return DEFAULT_INDEX
