"""Reading event files: NDJSON audit records (any :mod:`dac.events.formats` format), plain or gzipped.

A malformed line is reported as ``file:line: reason`` and skipped; every other
line is still read, so one bad line never hides the rest of a log. A folder is
read in time order (rotated logs first, the live ``audit.log`` last), and every
file it holds that is not read is reported with the reason, never dropped silently.
Documents are produced one at a time, so memory does not grow with the input: gzip is inflated
in blocks, and a line longer than ``dac.limits.MAX_LINE_BYTES`` is reported and discarded, not held.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from zlib_ng import zlib_ng as zlib  # zlib's API, inflating about twice as fast (gzipped logs)

from dac import limits
from dac.documents import (
    DEFAULT_INDEX,
    LazyDocument,
    SeenEvents,
    SourceDocument,
    document_id,
    index_name,
    no_cycle_collection,
)
from dac.engine.needles import line_cannot_match
from dac.errors import EventError, Location
from dac.events._linescan import newlines as _newlines
from dac.events.bulk_check import check_block, millis_moment
from dac.events.formats import ALIASES, INPUT_CHOICES, Build, builders, convert, seen_events
from dac.events.k8s_audit import Members

INPUT_FORMATS = INPUT_CHOICES
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
    newlines: int = 0  # read by range_blocks (so the next piece of a file is numbered on)


def event_files(path: Path, skipped: list[tuple[Path, str]] | None = None) -> list[Path]:
    """``path`` itself, or the event files below it in time order; the rest goes to ``skipped``."""
    if path.is_dir():
        found = []
        for candidate in sorted(path.rglob("*")):
            reason = _skip_reason(candidate)
            if reason is None:
                found.append(candidate)
                continue
            if reason == _WALKED:
                continue
            if skipped is not None:
                skipped.append((candidate, reason))
        return sorted(found, key=_time_order)
    if not path.exists():
        raise EventError(f"no such file or folder: {path}")
    return [path]


_WALKED = "folder"


def _skip_reason(entry: Path) -> str | None:
    """Why a folder entry is not read, or None; _WALKED for a real sub-folder (rglob walks it).

    Only stat is called: a FIFO is never opened (that would block). Python 3.11's rglob does not
    descend into a symbolic link to a folder, so such a link is named, not followed.
    """
    if entry.is_symlink():
        if not entry.exists():
            return "dangling link"
        if entry.is_dir():
            return "symbolic link to a folder: not followed"
    elif entry.is_dir():
        return _WALKED
    if not entry.is_file():
        return "not a regular file"
    if not _EVENT_FILE.search(entry.name):
        return ("not an event file name (.json, .ndjson, .jsonl or .log, optionally rotated, then "
                "optionally .gz: audit.log, audit.log.1, audit.log.gz)")
    if entry.stat().st_size == 0:
        return "empty"
    return None


def _time_order(path: Path) -> tuple[Any, ...]:
    """Oldest first: timestamped backups by their time, then ``.N`` by descending N, then live files."""
    stamped = _ROTATED_AT.search(path.name)
    if stamped:
        return (0, datetime.strptime(stamped.group(1).split(".")[0], "%Y-%m-%dT%H-%M-%S"), str(path))
    numbered = re.search(r"\.(\d+)(\.gz)?$", path.name)
    if numbered:
        return (1, -int(numbered.group(1)), str(path))
    return (2, str(path))


def read_events(paths: list[Path], input_format: str, stats: ReadStats | None = None) -> ReadResult:
    """Every document and every error, held in memory (for small inputs and tests); the files
    read and skipped go to ``stats``."""
    result = ReadResult()
    with no_cycle_collection():
        result.documents.extend(iter_documents(paths, input_format, result.errors.append, stats))
    return result


def iter_documents(
    paths: list[Path],
    input_format: str,
    on_error: Callable[[EventError], None],
    stats: ReadStats | None = None,
    members: Members | None = None,
    lazy: bool = False,
) -> Iterator[Any]:
    """The documents of every file, one at a time; each problem goes to ``on_error``, located.

    ``lazy``: :class:`LazyDocument` s whose ``fields`` convert only the raw ``members`` (all when
    None) and whose whole source is built when asked for; otherwise plain SourceDocuments.
    """
    stats = stats if stats is not None else ReadStats()
    for file in collect_files(paths, stats):
        yield from file_documents(file, range_blocks(file, on_error, stats), input_format, on_error,
                                  stats, members, lazy)
        stats.bytes_done += file.stat().st_size
        stats.current_bytes = lambda: 0


def collect_files(paths: list[Path], stats: ReadStats) -> list[Path]:
    """The event files to read, in order, counted in ``stats``; the others go to ``stats.skipped``."""
    for path in paths:
        for file in event_files(path, stats.skipped):
            stats.files.append(file)
            stats.total_bytes += file.stat().st_size
    return stats.files


def file_documents(
    file: Path,
    chunks: Iterable[Block | Batch],
    input_format: str,
    on_error: Callable[[EventError], None],
    stats: ReadStats,
    members: Members | None = None,
    lazy: bool = False,
    needles: tuple[bytes, ...] | None = None,
) -> Iterator[Any]:
    """The documents of the lines of ``file`` in ``chunks`` (from :func:`range_blocks`).

    ``needles`` (lazy only; dac.engine.needles): a line holding none of them (nor an escape that
    could hide one) cannot match any rule; it is still parsed and checked, but yields only a
    :class:`SeenEvents`, its time. That is nearly every line of a real log, so native audit lines
    are checked a block at a time (dac.events.bulk_check), each run of them one SeenEvents.
    """
    name = str(file)
    fmt = ALIASES.get(input_format, input_format)
    no_match = line_cannot_match(needles) if lazy else None
    bulk = no_match is not None and fmt in ("native", "auto")
    for chunk in chunks:
        if bulk:
            block = chunk if type(chunk) is Block else Block.of(chunk)  # type: ignore[arg-type]
            yield from _block_documents(name, block, fmt, on_error, stats, members, needles, no_match)  # type: ignore[arg-type]
            continue
        for number, line in (chunk.batch() if type(chunk) is Block else chunk):
            yield from _line_documents(name, number, line, input_format, on_error, stats, members, lazy,
                                       no_match)


def _line_documents(
    name: str,
    number: int,
    line: bytes,
    input_format: str,
    on_error: Callable[[EventError], None],
    stats: ReadStats,
    members: Members | None,
    lazy: bool,
    no_match: Callable[[bytes], bool] | None,
) -> Iterator[Any]:
    """The documents of one line (the full path: orjson, then each event's checks); a line
    ``no_match`` clears yields SeenEvents."""
    try:
        record = orjson.loads(line)
        if line.count(b"{") + line.count(b"[") > limits.MAX_EVENT_NESTING and _too_deep(record):
            raise EventError(f"event nested deeper than {limits.MAX_EVENT_NESTING} levels: not read")
        if no_match is not None and no_match(line):
            for seen in seen_events(record, line, input_format):
                stats.events += 1
                yield seen
            return
        for content, build in builders(record, line, input_format):
            if lazy:
                fields = build(members)
                whole = _whole(build, fields, members)
                yield LazyDocument(index_name(fields), content, fields, whole, document_id, (name, number))
            else:
                source = build(None)
                yield SourceDocument(index_name(source), document_id(content), source)
            stats.events += 1
    except orjson.JSONDecodeError as exc:
        stats.errors += 1
        on_error(_json_error(exc, line, Location(name, number)))
    except EventError as exc:
        stats.errors += 1
        on_error(exc.at(Location(name, number)))


def _block_documents(
    name: str,
    block: Block,
    input_format: str,
    on_error: Callable[[EventError], None],
    stats: ReadStats,
    members: Members | None,
    needles: tuple[bytes, ...],
    no_match: Callable[[bytes], bool],
) -> Iterator[Any]:
    """The documents of a block of lines: each run of lines that hold no needle and pass the bulk
    check as one SeenEvents, the others by the full path, in line order."""
    data = block.data
    for part in check_block(data, needles):
        if len(part) == 5:
            count, earliest, latest, start, end = part  # type: ignore[misc]
            stats.events += count
            yield SeenEvents(millis_moment(earliest), millis_moment(latest), DEFAULT_INDEX,
                             RunLines(data, start, end, count))
        else:
            index, start, end = part  # type: ignore[misc]
            yield from _line_documents(name, block.number + index, data[start:end], input_format, on_error,
                                       stats, members, True, no_match)


def _whole(build: Build, fields: dict[str, Any], members: Members | None) -> Callable[[], Any]:
    if members is None:
        return lambda: fields  # already the whole document
    return lambda: build(None)


def _too_deep(record: Any) -> bool:
    """Whether ``record`` nests deeper than MAX_EVENT_NESTING (asked only when its line has more brackets)."""
    stack = [(record, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limits.MAX_EVENT_NESTING:
            return True
        if type(node) is dict:
            stack.extend((child, depth + 1) for child in node.values() if type(child) in (dict, list))
        elif type(node) is list:
            stack.extend((child, depth + 1) for child in node if type(child) in (dict, list))
    return False


def _json_error(exc: orjson.JSONDecodeError, line: bytes, where: Location) -> EventError:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as bad:
        return EventError(f"invalid UTF-8 at byte {bad.start} of the line (column {bad.start + 1})", where)
    return EventError(f"invalid JSON: {exc}", where)


OnError = Callable[[EventError], None]


Batch = list[tuple[int, bytes]]
"""Numbered non-blank lines, in order."""


@dataclass(frozen=True)
class Block:
    """Whole lines of a file, ``data`` without its last newline; the first is line ``number``.
    Read from the file in one piece, they are checked in one native call (``check_block``)
    instead of being split into a bytes object per line first."""

    data: bytes
    number: int

    @classmethod
    def of(cls, batch: Batch) -> Block:
        """The lines of ``batch`` as a block, a blank line for each number it skips."""
        first = batch[0][0]
        lines = [b""] * (batch[-1][0] - first + 1)
        for number, line in batch:
            lines[number - first] = line
        return cls(b"\n".join(lines), first)

    def batch(self) -> Batch:
        """The numbered non-blank lines, stripped."""
        return [(number, line) for number, raw in enumerate(self.data.split(b"\n"), self.number)
                if (line := raw.strip())]


class RunLines:
    """The contents of a run of events (``SeenEvents.contents``): the stripped non-blank lines of
    ``data[start:end]``, split only when asked for (``dac diff`` hashes them into ids)."""

    __slots__ = ("count", "data", "end", "start")

    def __init__(self, data: bytes, start: int, end: int, count: int) -> None:
        self.data, self.start, self.end, self.count = data, start, end, count

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[bytes]:
        return (line for raw in self.data[self.start:self.end].split(b"\n") if (line := raw.strip()))


def range_lines(file: Path, on_error: OnError, stats: ReadStats | None = None, start: int = 0,
                end: int | None = None) -> Iterator[tuple[int, bytes]]:
    """Numbered non-blank lines of bytes ``[start, end)`` of a plain file, or of a whole gzipped one
    (see :func:`range_blocks`)."""
    for chunk in range_blocks(file, on_error, stats, start, end):
        yield from (chunk.batch() if type(chunk) is Block else chunk)


def range_blocks(file: Path, on_error: OnError, stats: ReadStats | None = None, start: int = 0,
                 end: int | None = None, beginning: bool | None = None) -> Iterator[Block | Batch]:
    """The lines of bytes ``[start, end)`` of a plain file (``start`` at a line's beginning;
    numbers count from 1 there), or of a whole gzipped one, a block's worth at a time: as a
    :class:`Block` of whole lines, or, around a line longer than MAX_LINE_BYTES (reported once
    the lines before it have been handed out, so that problems are reported in line order), and
    for the file's unfinished last line, as a :data:`Batch` of numbered lines.
    ``beginning``: whether these are the file's first bytes, checked for binary data and for a
    JSON document over several lines (default: ``start`` is 0)."""
    with file.open("rb") as handle:
        if stats is not None:
            stats.current_bytes = handle.tell
        head = handle.read(2)
        handle.seek(start)
        if head == _GZIP_MAGIC:
            blocks = _gunzip(handle, file, on_error)
        else:
            blocks = read_blocks(handle, None if end is None else end - start)
        first = start == 0 if beginning is None else beginning
        number = 0
        rest = bytearray()  # the unfinished last line of the blocks so far
        skipping = False  # inside a line longer than MAX_LINE_BYTES: discarded up to its newline
        for block in blocks:
            if first:
                first = False
                if b"\x00" in block[:4096]:
                    on_error(EventError("binary file, not NDJSON text: not read", Location(str(file))))
                    return
                if block.lstrip()[:2] in (b"{\n", b"[\n", b"{\r", b"[\r"):
                    on_error(EventError("a JSON document over several lines, not NDJSON (one record per "
                                        "line): not read", Location(str(file))))
                    return
            cut = block.rfind(b"\n")
            tail = block[cut + 1:]
            if cut >= 0:
                whole: bytes | None  # the lines this block ends
                if skipping:  # the first ends the skipped line: counted, not read
                    skipped_end = block.find(b"\n")
                    whole = block[skipped_end + 1:cut] if skipped_end < cut else None
                    number += 1
                    skipping = False
                elif rest:
                    whole = b"".join((rest, memoryview(block)[:cut]))  # one copy
                    rest = bytearray()
                else:
                    whole = block[:cut]
                if whole is not None:
                    if len(whole) <= limits.MAX_LINE_BYTES:  # then none of its lines is too long
                        yield Block(whole, number + 1)
                        number += _newlines(whole) + 1
                    else:
                        lines = whole.split(b"\n")
                        yield from _numbered(file, lines, number, on_error)
                        number += len(lines)
            if skipping:
                continue
            if len(rest) + len(tail) > limits.MAX_LINE_BYTES:
                on_error(too_long(file, number + 1))
                rest = bytearray()
                skipping = True
            else:
                rest += tail
        if stats is not None:
            stats.newlines += number
        number += 1
        line = bytes(rest).strip()
        if line and not skipping:
            yield [(number, line)]


def _numbered(file: Path, lines: list[bytes], before: int, on_error: OnError) -> Iterator[Batch]:
    """The non-blank ``lines`` (after line ``before``) numbered, in batches that stop at a line
    too long, which is reported between them."""
    if max(map(len, lines)) <= limits.MAX_LINE_BYTES:
        batch = [(number, line) for number, raw in enumerate(lines, before + 1) if (line := raw.strip())]
        if batch:
            yield batch
        return
    batch = []
    for number, raw in enumerate(lines, before + 1):
        if len(raw) > limits.MAX_LINE_BYTES:
            if batch:
                yield batch
                batch = []
            on_error(too_long(file, number))
        elif line := raw.strip():
            batch.append((number, line))
    if batch:
        yield batch


def too_long(file: Path, number: int) -> EventError:
    """The error of a line longer than MAX_LINE_BYTES, which is skipped, not read."""
    limit = limits.MAX_LINE_BYTES
    return EventError(f"line longer than {limit:,} bytes (dac.limits.MAX_LINE_BYTES): skipped",
                      Location(str(file), number))


def gunzip_to_files(file: Path, on_error: OnError, size: int, folder: Path) -> Iterator[Path]:
    """The decompressed text of a gzipped file, written into files in ``folder`` of about ``size``
    bytes each, every one ending with a whole line, so that a worker reads each as it reads a
    plain file. (Handing the pieces over as bytes copied each about five times into fresh memory:
    the page faults made a gzipped log cost a third more time than the plain one.) An unfinished
    line longer than MAX_LINE_BYTES is reported and left out, so no file holds more of it; a
    finished one is left to the worker's reader, which reports it as for a plain file."""
    with file.open("rb") as handle:
        count = 0  # files made
        path = folder / "0.log"
        out = path.open("wb")
        written = tail = newlines = 0  # bytes in this file, of them after its last newline; newlines in all
        skipping = False  # inside a line longer than MAX_LINE_BYTES: discarded up to its newline
        try:
            for block in _gunzip(handle, file, on_error):
                if skipping:
                    cut = block.find(b"\n")
                    if cut < 0:
                        continue
                    block = block[cut:]  # the newline stays: the skipped line still counts
                    skipping = False
                while written + len(block) >= size:
                    cut = block.find(b"\n", max(0, size - written - 1)) + 1
                    if not cut:
                        break
                    out.write(block[:cut])  # the file ends with the line that ends here
                    newlines += _newlines(memoryview(block)[:cut])
                    out.close()
                    yield path
                    count += 1
                    path = folder / f"{count}.log"
                    out = path.open("wb")
                    written = tail = 0
                    block = block[cut:]
                out.write(block)
                written += len(block)
                newlines += _newlines(block)
                last = block.rfind(b"\n")
                tail = tail + len(block) if last < 0 else len(block) - last - 1
                if tail > limits.MAX_LINE_BYTES:
                    on_error(too_long(file, newlines + 1))
                    written -= tail
                    out.truncate(written)
                    out.seek(written)
                    tail, skipping = 0, True
            out.close()
            if written:
                yield path
        finally:
            out.close()


def is_gzip(file: Path) -> bool:
    with file.open("rb") as handle:
        return handle.read(2) == _GZIP_MAGIC


def text_bytes(file: Path) -> int:
    """About how many bytes of text ``file`` holds: its size, or for gzip the size its trailer
    records (ISIZE: the last member's length modulo 4 GiB, RFC 1952), if that is larger."""
    size = file.stat().st_size
    if size < 18 or not is_gzip(file):
        return size
    with file.open("rb") as handle:
        handle.seek(-4, 2)
        return max(size, int.from_bytes(handle.read(4), "little"))


def read_blocks(handle: Any, size: int | None = None) -> Iterator[bytes]:
    while size is None or size > 0:
        block = handle.read(_BLOCK if size is None else min(_BLOCK, size))
        if not block:
            return
        if size is not None:
            size -= len(block)
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
                while True:  # at most _BLOCK bytes out per call: a gzip bomb is inflated in steps
                    out = inflater.decompress(chunk, _BLOCK)
                    if out:
                        yield out
                    chunk = inflater.unconsumed_tail
                    if inflater.eof or (not chunk and len(out) < _BLOCK):
                        break
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
