"""The reader's bulk path (lines no rule can match, checked a batch at a time) against its full
path, line by line: the same events in the same order, the same located errors in line order."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from dac.events._linescan import full_path_lines

from dac import limits
from dac.documents import LazyDocument, SeenEvents
from dac.engine.needles import harmless_escapes, line_cannot_match
from dac.events import reader
from dac.events.envelopes import gke_entry
from dac.events.generate import generate
from dac.events.reader import Block, ReadStats, file_documents, range_blocks

NEEDLES = (b"certificatesigningrequests",)


def _event(**changes: Any) -> dict[str, Any]:
    (event,) = generate("mixed", 1, seed=2)
    return {**event, **changes}


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _lines() -> list[str]:
    """Every kind of line the bulk path must hand on, or judge as the full path does."""
    plain = _event()
    stamp = plain["stageTimestamp"]
    csr = next(e for e in generate("csr-attacks", 5, seed=2)
               if "certificatesigningrequests" in e["requestURI"])
    return [
        _compact(plain),
        json.dumps(plain),  # spaces between tokens
        "",  # blank: skipped, counted
        _compact(csr),  # holds the needle: a LazyDocument
        _compact(_event(requestURI="/api/v1/pods?limit=500&resourceVersion=0")).replace("&", "\\u0026"),
        _compact(csr).replace("certificatesigningrequests", "\\u0063ertificatesigningrequests"),
        '{"kind":"Event",',  # invalid JSON
        _compact(_event(stageTimestamp=stamp.replace("Z", "+01:00"))),  # valid, not UTC: full path
        _compact(_event(stageTimestamp=stamp[:-1] + "123Z")),  # nanoseconds: full path cuts them
        _compact(_event(extra=[[]] * 250)),  # many brackets, shallow: valid
        _compact(_event(extra=json.loads("[" * 205 + "]" * 205))),  # too deep
        _compact(_event(extra=1e300)).replace("1e+300", "1e999"),  # beyond a double: invalid
        _compact(_event(extra=10**30)),  # beyond 64 bits: orjson reads it as a float
        _compact(_event(user={"username": 7})),  # a member of the wrong type
        _compact(_event(auditID="")),
        _compact(plain)[:-1] + ',"stageTimestamp":"not a time"}',  # the last of a repeated member counts
        _compact(gke_entry(plain)),  # auto: another format, by the full path
        "x" * 20_000,  # longer than the limit set below: skipped, reported in line order
        _compact(_event(kind="Pod")),
        _compact(plain),
    ]


def _write(path: Path, lines: list[str], invalid_utf8: bool = True) -> Path:
    data = "\n".join(lines).encode()
    if invalid_utf8:
        data += b"\n" + _compact(_event(extra="x")).encode().replace(b'"extra":"x"', b'"extra":"\xff"')
    path.write_bytes(data + b"\n")
    return path


def _expanded(documents: list[Any]) -> list[tuple[str, bytes]]:
    out = []
    for document in documents:
        if isinstance(document, SeenEvents):
            out.extend(("seen", content) for content in document.contents)
        else:
            assert isinstance(document, LazyDocument)
            out.append(("document", document._content))
    return out


def _read(path: Path, bulk: bool, monkeypatch: pytest.MonkeyPatch,
          line_limit: int = 10_000) -> tuple[list[Any], list[str], ReadStats]:
    monkeypatch.setattr(limits, "MAX_LINE_BYTES", line_limit)
    errors: list[str] = []
    stats = ReadStats()
    chunks: Any = range_blocks(path, lambda e: errors.append(str(e)), stats)
    if not bulk:  # the full path, a line at a time
        lines = (line for chunk in chunks for line in (chunk.batch() if isinstance(chunk, Block) else chunk))
        chunks = ([line] for line in lines)
        monkeypatch.setattr(reader, "_block_documents", _line_by_line)
    documents = list(file_documents(path, chunks, "auto", lambda e: errors.append(str(e)), stats,
                                    lazy=True, needles=NEEDLES))
    return documents, errors, stats


def _line_by_line(name, block, fmt, on_error, stats, members, needles, no_match):
    for number, line in block.batch():
        yield from reader._line_documents(name, number, line, fmt, on_error, stats, members, True, no_match)


def test_the_bulk_path_reads_as_the_full_path_does(tmp_path, monkeypatch) -> None:
    path = _write(tmp_path / "audit.log", _lines())
    bulk, bulk_errors, bulk_stats = _read(path, True, monkeypatch)
    full, full_errors, full_stats = _read(path, False, monkeypatch)
    assert _expanded(bulk) == _expanded(full)
    assert bulk_errors == full_errors
    assert (bulk_stats.events, bulk_stats.errors) == (full_stats.events, full_stats.errors)
    assert [e.split(": ", 1)[0].rsplit(":", 1)[1] for e in bulk_errors] == [
        "7", "11", "12", "14", "15", "16", "18", "19", "21"]  # line order; 18: too long
    # the runs: their time span is their lines' own, and consecutive checked lines are one run
    runs = [d for d in bulk if isinstance(d, SeenEvents)]
    singles = {d.contents[0]: d for d in full if isinstance(d, SeenEvents)}
    for run in runs:
        assert run.first == min(singles[c].first for c in run.contents)
        assert run.last == max(singles[c].last for c in run.contents)
    assert len(runs[0]) == 2  # lines 1 and 2


def test_blocks_of_whole_lines_read_as_the_full_path_does(tmp_path, monkeypatch) -> None:
    # no line too long: the reader hands out blocks of whole lines, each checked in one call
    lines = [line for line in _lines() if len(line) < 10_000] * 3
    path = _write(tmp_path / "audit.log", lines)
    assert all(isinstance(chunk, Block) for chunk in range_blocks(path, print))
    bulk, bulk_errors, bulk_stats = _read(path, True, monkeypatch, limits.MAX_LINE_BYTES)
    full, full_errors, full_stats = _read(path, False, monkeypatch, limits.MAX_LINE_BYTES)
    runs = [d for d in bulk if isinstance(d, SeenEvents)]
    assert len(runs) < len([d for d in full if isinstance(d, SeenEvents)])  # consecutive lines: one run
    assert _expanded(bulk) == _expanded(full)
    assert bulk_errors == full_errors
    assert (bulk_stats.events, bulk_stats.errors) == (full_stats.events, full_stats.errors)


def test_an_escape_of_a_character_no_needle_holds_hides_nothing() -> None:
    harmless = b'{"requestURI":"/api/v1/pods?limit=500\\u0026resourceVersion=0\\u003c\\u003e"}'
    hiding = b'{"requestURI":"/apis/\\u0063ertificatesigningrequests"}'
    mixed = harmless[:-1] + b',"x":"\\u0041"}'
    lines = [harmless, hiding, mixed, b'{"a":"\\\\u0026"}']
    cannot_match = line_cannot_match(NEEDLES)
    assert [cannot_match(line) for line in lines] == [True, False, False, True]
    assert full_path_lines(lines, NEEDLES, harmless_escapes(NEEDLES), 200) == [1, 2]
    # a needle that holds "&": its escape may hide it
    assert not line_cannot_match((b"a&b",))(harmless)
    assert full_path_lines([harmless], (b"a&b",), harmless_escapes((b"a&b",)), 200) == [0]


def test_the_scanner_and_the_line_test_agree_on_needles() -> None:
    lines = [json.dumps(e).encode() for e in generate("mixed", 300, seed=4)]
    lines += [json.dumps(e).encode() for e in generate("csr-attacks", 20, seed=4)]
    lines[5] = lines[5].replace(b"/api/", b"/api\\u002f")
    cannot_match = line_cannot_match(NEEDLES)
    expected = [n for n, line in enumerate(lines) if not cannot_match(line)]
    assert len(expected) > 20
    assert full_path_lines(lines, NEEDLES, harmless_escapes(NEEDLES), 200) == expected
