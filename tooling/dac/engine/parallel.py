"""The streaming half of a replay spread over worker processes, one per core.

Plain files are cut into byte ranges at line boundaries; gzipped files are inflated by the parent
into temporary files of about the same size (a few in flight at most); each worker reads its
range, converts each event only as far as the rules read (LazyDocument), selects and confirms
hits (Replay.feed), and sends back just the hits, the time span and its located errors. The
parent puts the pieces back in input order, so the outcome is the same as a single process's
(tests/unit/test_parallel.py). Workers are forked: they inherit the compiled rules and the
exception lists, and note on each hit the items that match it; the parent applies them per
execution, as a single process does.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from dac.documents import no_cycle_collection
from dac.engine.base import KibanaRule
from dac.engine.replay import BATCH, Kept, Replay
from dac.errors import EventError, Location
from dac.events.k8s_audit import Members
from dac.events.reader import (
    ReadStats,
    file_documents,
    gunzip_to_files,
    is_gzip,
    range_blocks,
)

RANGE_BYTES = 8 << 20


@dataclass(frozen=True)
class Piece:
    """Bytes ``[start, end)`` of plain ``file`` (end None: to the end), or ``text``: a piece of a
    gzipped file's text, inflated by the parent into a temporary file (zlib cannot start
    mid-stream), which the worker reads and deletes."""

    file: Path
    start: int
    end: int | None
    number: int  # position of this piece among its file's pieces
    text: Path | None = None


@dataclass
class PieceResult:
    piece: Piece
    events: int = 0
    lines: int = 0  # newlines in the piece, to number the next piece's lines
    first: datetime | None = None
    last: datetime | None = None
    kept: list[list[Kept]] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)  # per rule, selecting and confirming
    errors: list[tuple[int | None, int | None, str]] = field(default_factory=list)  # line, column, message
    binary: bool = False


def pieces(files: Sequence[Path], on_error: Callable[[EventError], None] = lambda e: None,
           scratch: Path | None = None) -> Iterator[Piece]:
    """Every file cut at line boundaries into pieces of about RANGE_BYTES, produced as needed; a
    gzipped file's pieces are inflated into ``scratch``."""
    for file in files:
        if is_gzip(file):
            if scratch is None:
                raise ValueError("a gzipped file needs a scratch folder")
            for number, text in enumerate(gunzip_to_files(file, on_error, RANGE_BYTES, scratch)):
                yield Piece(file, 0, None, number, text)
            continue
        size = file.stat().st_size
        if size <= RANGE_BYTES:
            yield Piece(file, 0, None, 0)
            continue
        start, number = 0, 0
        with file.open("rb") as handle:
            while start < size:
                end = _line_start_after(handle, min(start + RANGE_BYTES, size), size)
                yield Piece(file, start, end if end < size else None, number)
                start, number = end, number + 1


_WORK: dict[str, Any] = {}


def _work(piece: Piece) -> PieceResult:
    rules, input_format, members = _WORK["rules"], _WORK["format"], _WORK["members"]
    needles = _WORK["needles"]
    result = PieceResult(piece)

    def on_error(error: EventError) -> None:
        where = error.location
        if error.message.startswith("binary file"):
            result.binary = True
        result.errors.append((where.line if where else None, where.column if where else None, error.message))

    replay = Replay(rules, _WORK["compiled"], _WORK["exceptions"])
    stats = ReadStats()
    if piece.text is not None:
        chunks = range_blocks(piece.text, on_error, stats, beginning=piece.number == 0)
    else:
        chunks = range_blocks(piece.file, on_error, stats, piece.start, piece.end)
    documents = file_documents(piece.file, chunks, input_format, on_error, stats, members, lazy=True,
                               needles=needles)
    batch: list[Any] = []
    with no_cycle_collection():
        for document in documents:
            batch.append(document)
            if len(batch) == BATCH:
                replay.feed(batch)
                batch = []
        replay.feed(batch)
    result.events = stats.events
    result.first, result.last = replay.first, replay.last
    result.kept = [state.kept for state in replay.rules]
    result.seconds = [state.seconds for state in replay.rules]
    result.lines = stats.newlines
    if piece.text is not None:
        piece.text.unlink(missing_ok=True)
    return result


def _line_start_after(handle: Any, position: int, size: int) -> int:
    """Where the line after the one holding byte ``position`` starts (``size`` at the end),
    found block by block: a line of any length is never read whole."""
    handle.seek(position)
    while block := handle.read(1 << 20):
        cut = block.find(b"\n")
        if cut >= 0:
            return min(position + cut + 1, size)
        position += len(block)
    return size


def workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def feed_in_parallel(
    replay: Replay,
    rules: Sequence[KibanaRule],
    files: Sequence[Path],
    input_format: str,
    members: Members | None,
    on_error: Callable[[EventError], None],
    stats: ReadStats,
    progress: Callable[[], None] = lambda: None,
    processes: int | None = None,
) -> None:
    """Run the streaming half of ``replay`` over ``files`` on ``processes`` workers."""
    # compiled once here; forked workers inherit it
    _WORK.update(rules=rules, format=input_format, members=members, needles=replay.needles,
                 compiled=[state.compiled for state in replay.rules], exceptions=replay.exceptions)
    count = processes or workers()
    context = multiprocessing.get_context("fork")
    line_offset: dict[Path, int] = {}
    binary: set[Path] = set()
    with tempfile.TemporaryDirectory(prefix="dac-run-") as scratch, context.Pool(count) as pool:
        for result in _in_order(pool, pieces(files, on_error, Path(scratch)), 2 * count):
            piece = result.piece
            if piece.number == 0 and result.binary:
                binary.add(piece.file)
            elif piece.file in binary:
                continue  # the file's first piece said it is binary; the rest is noise
            offset = line_offset.get(piece.file, 0)
            line_offset[piece.file] = offset + result.lines
            for line, column, message in result.errors:
                location = Location(str(piece.file), None if line is None else line + offset, column)
                on_error(EventError(message, location))
                stats.errors += 1
            _absorb(replay, result)
            stats.events += result.events
            if piece.text is None:
                stats.bytes_done += (piece.end or piece.file.stat().st_size) - piece.start
            progress()


def _in_order(pool: Any, work: Iterator[Piece], ahead: int) -> Iterator[PieceResult]:
    """Results in input order, with at most ``ahead`` pieces in flight (memory stays bounded,
    unlike Pool.imap, which takes its whole input at once)."""
    pending: deque[Any] = deque()
    for piece in work:
        pending.append(pool.apply_async(_work, (piece,)))
        if len(pending) >= ahead:
            yield pending.popleft().get()
    while pending:
        yield pending.popleft().get()


def _absorb(replay: Replay, result: PieceResult) -> None:
    """Add a piece's hits to ``replay`` as if its documents had been fed here, in order."""
    for low, high in ((result.first, result.first), (result.last, result.last)):
        if low is not None:
            replay.first = low if replay.first is None or low < replay.first else replay.first
        if high is not None:
            replay.last = high if replay.last is None or high > replay.last else replay.last
    for state, seconds in zip(replay.rules, result.seconds, strict=True):
        state.seconds += seconds
    for state, kept in zip(replay.rules, result.kept, strict=True):
        for moment, position, document, row, matching in kept:
            state.kept.append((moment, replay.sequence + position, document, row, matching))
            replay.alerts_so_far += 1
    replay.sequence += result.events
