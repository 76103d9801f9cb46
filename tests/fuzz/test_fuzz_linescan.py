"""The native line scanner (dac/events/linescan.c) against its specification, written here in
plain Python: the same lines sent to the full path, on mutated real lines and arbitrary bytes."""

from __future__ import annotations

import json
from functools import cache

from dac.events._linescan import full_path_lines
from hypothesis import example, given
from hypothesis import strategies as st

from dac.engine.needles import harmless_escapes
from dac.events.generate import generate
from tests.fuzz.strategies import spliced
from tests.fuzz.support import fuzz, time_limit

NEEDLES = (b"certificatesigningrequests", b"system:masters")
MAX_OPENING = 200
INTEGER_DIGITS, EXPONENT_DIGITS = 155, 3  # numbers that may overflow a double


def needs_full_path(line: bytes, needles: tuple[bytes, ...], harmless: tuple[bytes, ...],
                    max_opening: int) -> bool:
    """The specification of linescan.c."""
    if any(needle in line for needle in needles):
        return True
    if line.count(b"\\u") != sum(line.count(escape) for escape in harmless):
        return True  # a \u that begins no harmless escape
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return True
    if line.count(b"{") + line.count(b"[") > max_opening:
        return True
    return _large_number_outside_strings(line)


def _large_number_outside_strings(line: bytes) -> bool:
    in_string, i = False, 0
    while i < len(line):
        c = line[i]
        if in_string:
            if c == ord('"'):
                in_string = False
            elif c == ord("\\") and i + 1 < len(line) and line[i + 1] < 0x80:
                i += 1  # the escaped character
        elif c == ord('"'):
            in_string = True
        elif c == ord("-") or (chr(c).isdigit() and c < 0x80):
            j = i + 1 if c == ord("-") else i
            start = j
            while j < len(line) and 0x30 <= line[j] <= 0x39:
                j += 1
            digits = j - start
            if j < len(line) and line[j] == ord("."):
                j += 1
                while j < len(line) and 0x30 <= line[j] <= 0x39:
                    j += 1
            exponent = 0
            if j < len(line) and line[j] in b"eE":
                j += 1
                if j < len(line) and line[j] in b"+-":
                    j += 1
                begin = j
                while j < len(line) and 0x30 <= line[j] <= 0x39:
                    j += 1
                exponent = j - begin
            if digits >= INTEGER_DIGITS or exponent >= EXPONENT_DIGITS:
                return True
            i = j
            continue
        i += 1
    return False


@cache
def real_lines() -> list[bytes]:
    events = list(generate("mixed", 30, 6)) + list(generate("csr-attacks", 10, 6))
    return [json.dumps(e, separators=(",", ":")).encode() for e in events]


FRAGMENTS = (b"1e999", b"-1E+400", b"2.5e-100", b"1" * 160, b"1" * 154, b"9" * 200 + b".5", b"\\u0026",
             b"\\u003c", b"\\u0063", b"\\\\u0026", b"\\", b"\\u00", b'"', b'\\"', b"\xff", b"\xc3\xa9",
             b"\xe2\x80\xa8", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xf0\x9f\x98\x80", b"\xc0\xaf",
             b"[" * 120, b"{" * 120, b"certificatesigningrequests", b"system:masters", b"e123", b"-")


@st.composite
def lines(draw: st.DrawFn) -> bytes:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=300))
    return draw(spliced(real_lines(), FRAGMENTS, (0, 4)))


@fuzz(max_examples=400)
@given(st.lists(lines(), min_size=1, max_size=8), st.sampled_from([NEEDLES, (b"\xe2\x80\xa8x",), (b"&",)]))
@example([b'{"a":"\\\\u0063"}', b'{"n":1e999}', b'"1e999"', b"\\"], NEEDLES)
@example([b"-", b"1" * 155, b'{"a":"\\"1e999"}', b"\xe0\x80\x80", b"\xed\x9f\xbf"], NEEDLES)
def test_the_scanner_follows_its_specification(batch: list[bytes], needles: tuple[bytes, ...]) -> None:
    harmless = harmless_escapes(needles)
    with time_limit():
        found = full_path_lines(batch, needles, harmless, MAX_OPENING)
    expected = [n for n, line in enumerate(batch) if needs_full_path(line, needles, harmless, MAX_OPENING)]
    assert found == expected


def test_the_scanner_refuses_what_it_cannot_read() -> None:
    import pytest

    with pytest.raises(TypeError):
        full_path_lines(["text"], NEEDLES, (), 200)
    with pytest.raises(TypeError):
        full_path_lines([b"x"], (b"",), (), 200)
    assert full_path_lines([], NEEDLES, (), 200) == []
