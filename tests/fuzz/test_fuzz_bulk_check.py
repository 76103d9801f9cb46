"""The bulk check of lines no rule can match against the full path, on mutated real lines.

``bulk_check.check_block`` may leave any line to the full path, but a time it gives must be
the one the full path gives (orjson, then ``k8s_audit.checked_time``), and the full path must
accept that line. The mutations aim at where the native check (scanner and JSON validator), orjson and
``fromisoformat`` could disagree: numbers beyond a double or 64 bits, invalid UTF-8, repeated
members, members of the wrong type, timestamps in every spelling, nesting and escapes.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import orjson
from hypothesis import example, given
from hypothesis import strategies as st

from dac.errors import EventError
from dac.events.bulk_check import check_block, millis_moment
from dac.events.generate import generate
from dac.events.k8s_audit import checked_time
from tests.fuzz.strategies import json_values, spliced
from tests.fuzz.support import fuzz, time_limit

CHECKED = ("kind", "apiVersion", "auditID", "requestReceivedTimestamp", "stageTimestamp", "user",
           "impersonatedUser", "objectRef", "responseStatus", "annotations", "labels")

# spellings of a time: RFC 3339 and not, UTC and not, micro- and nanoseconds, impossible dates
TIMES = ("2025-06-01T12:00:00.123456Z", "2025-06-01T12:00:00.1234567Z", "2025-06-01T12:00:00.9999999Z",
         "2025-06-01T12:00:00Z", "2025-06-01T12:00Z", "2025-06-01 12:00:00Z", "2025-06-01t12:00:00z",
         "2025-06-01T12:00:00+01:00", "2025-06-01T12:00:00-00:00", "2025-06-01T12:00:00+0100",
         "2025-06-01T23:59:60Z", "2025-06-01T24:00:00Z", "2025-02-30T12:00:00Z", "20250601T120000Z",
         "2025-06-01T12:00:00.Z", "2025-06-01T12:00:00,5Z", "0001-01-01T00:00:00+01:00",
         "9999-12-31T23:59:59-01:00", "2025-06-01T12:00:00", "2025-06-01", "")

# byte strings spliced into a line's text
FRAGMENTS = (b"1e999", b"-1e999", b"1E400", b"1" * 400, b"123456789012345678901234567890", b"1e-400",
             b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xc0\x80", b"\xf4\x90\x80\x80", b"\\u0026", b"\\u0063",
             b"\\ud800", b"\\u0000", b"\\\\u0026", b"[" * 250 + b"]" * 250, b"{}", b"[]", b"null", b",",
             b"\"", b"\\", b"\t", b"NaN", b"Infinity", b"-0", b"01", b"1.", b".5", b"\x00", b" ")


NEEDLES = (b"no rule's needle",)


@cache
def real_lines() -> list[bytes]:
    events = list(generate("mixed", 40, 5)) + list(generate("csr-attacks", 10, 5))
    return [json.dumps(e, separators=(",", ":")).encode() for e in events] + [
        json.dumps(e).encode() for e in events[:10]]


def full_path(line: bytes) -> Any:
    """The time the full path gives the line's event, or None when it refuses the line."""
    try:
        return checked_time(orjson.loads(line))
    except (orjson.JSONDecodeError, EventError, RecursionError):
        return None


def assert_agrees(line: bytes) -> Any:
    """The time the bulk check gives the line (None: left to the full path), after checking it.
    The reader splits at newlines, so a line never holds one; an edit that wrote one is undone."""
    line = line.replace(b"\n", b" ")
    with time_limit():
        fast = quiet_time(line)
    if fast is not None:
        expected = full_path(line)
        assert expected is not None, f"the bulk check accepts a line the full path refuses: {line[:300]!r}"
        assert millis_moment(fast).isoformat() == expected.isoformat(), line[:300]  # same instant and zone
    return fast


def quiet_time(line: bytes) -> int | None:
    """The stage time the bulk check gives a line (a block of one line), or None: the full path."""
    parts = check_block(line, NEEDLES)
    assert len(parts) <= 1  # one line: taken by the full path, or a run of one, or blank
    if not parts or len(parts[0]) == 3:
        return None
    count, earliest, latest, _, _ = parts[0]
    assert count == 1 and earliest == latest
    return earliest


def test_every_real_line_passes_the_bulk_check() -> None:
    lines = real_lines()
    parts = check_block(b"\n".join(lines), NEEDLES)
    assert [part[0] for part in parts] == [len(lines)]  # one run of them all
    assert [millis_moment(quiet_time(line)) for line in lines] == [full_path(line) for line in lines]


@st.composite
def member_replaced(draw: st.DrawFn) -> bytes:
    """A real event with checked members replaced (by any JSON, or a time spelling), removed or
    repeated (the repeat written after the original, with another value)."""
    event = json.loads(draw(st.sampled_from(real_lines())))
    text_members: list[str] = []
    for _ in range(draw(st.integers(1, 3))):
        name = draw(st.sampled_from(CHECKED))
        action = draw(st.sampled_from(("time", "value", "remove", "repeat", "user")))
        if action == "time":
            event[name] = draw(st.sampled_from(TIMES))
        elif action == "value":
            event[name] = draw(json_values())
        elif action == "remove":
            event.pop(name, None)
        elif action == "user":
            event["user"] = {draw(st.sampled_from(("username", "uid"))): draw(json_values())}
        else:
            value = draw(st.one_of(st.sampled_from(TIMES), json_values()))
            text_members.append(f"{json.dumps(name)}:{json.dumps(value)}")
    text = json.dumps(event, separators=(",", ":"))
    if text_members and text.endswith("}") and len(text) > 2:
        text = text[:-1] + "," + ",".join(text_members) + "}"
    return text.encode()


@fuzz(max_examples=400)
@given(member_replaced())
@example(b'{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"a","requestReceivedTimestamp":'
         b'"2025-06-01T12:00:00.000001Z","stageTimestamp":"2025-06-01T12:00:00.000001Z",'
         b'"stageTimestamp":"2025-06-01T12:00:00.9999999Z"}')
def test_a_member_replaced_is_judged_as_the_full_path_does(line: bytes) -> None:
    assert_agrees(line)


@fuzz(max_examples=400)
@given(st.deferred(lambda: spliced(real_lines(), FRAGMENTS, (1, 3))))
@example(b'{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"a","requestReceivedTimestamp":'
         b'"2025-06-01T12:00:00.000001Z","stageTimestamp":"2025-06-01T12:00:00.000001Z","n":1e999}')
@example(b'{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"a","requestReceivedTimestamp":'
         b'"2025-06-01T12:00:00.000001Z","stageTimestamp":"2025-06-01T12:00:00.000001Z","s":"\xff"}')
@example(b"1" * 400 + b'{"kind":"Event"}')  # a number before the object
@example(b"[" * 2000 + b"]" * 2000)
def test_spliced_bytes_are_judged_as_the_full_path_does(line: bytes) -> None:
    assert_agrees(line)


@st.composite
def byte_edits(draw: st.DrawFn) -> bytes:
    """A real line with a few single bytes deleted, inserted or replaced, mostly JSON's own
    (quotes, brackets, commas, colons, escapes, digits, signs, white space)."""
    line = bytearray(draw(st.sampled_from(real_lines())))
    json_bytes = list(b'"{}[],:\\0123456789-+.eEtrufalsn \t\r/')
    alphabet = st.one_of(st.sampled_from(json_bytes), st.integers(0, 255))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(line) - 1))
        action = draw(st.sampled_from(("delete", "insert", "replace")))
        if action == "delete":
            del line[at]
        elif action == "insert":
            line.insert(at, draw(alphabet))
        else:
            line[at] = draw(alphabet)
    return bytes(line)


@fuzz(max_examples=600)
@given(byte_edits())
@example(b'{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"a","requestReceivedTimestamp":'
         b'"2025-06-01T12:00:00.000001Z","stageTimestamp":"2025-06-01T12:00:00.000001Z",}')
@example(b'{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"a","requestReceivedTimestamp":'
         b'"2025-06-01T12:00:00.000001Z","stageTimestamp":"2025-06-01T12:00:00.000001Z","n":01}')
def test_single_byte_edits_are_judged_as_the_full_path_does(line: bytes) -> None:
    assert_agrees(line)


@st.composite
def written_times(draw: st.DrawFn) -> tuple[str, bool]:
    """A time written from parts that may each be out of range (year 0, month 13, February 29 of a
    common year, hour 24, second 60…), with any fraction length and zone; and whether it is in the
    API server's own form with a real date and time, which the native check must read itself."""
    year = draw(st.sampled_from((0, 1, 1900, 1970, 2000, 2024, 2025, 2100, 9999)))
    month, day = draw(st.integers(0, 13)), draw(st.integers(0, 32))
    hour, minute, second = draw(st.integers(0, 25)), draw(st.integers(0, 61)), draw(st.integers(0, 61))
    digits = draw(st.integers(0, 9))
    fraction = "".join(draw(st.sampled_from("0123456789")) for _ in range(digits))
    separator = draw(st.sampled_from("TTTt "))
    zone = draw(st.sampled_from(("Z", "Z", "Z", "z", "+00:00", "-00:00", "+01:00", "")))
    text = f"{year:04d}-{month:02d}-{day:02d}{separator}{hour:02d}:{minute:02d}:{second:02d}"
    text += (f".{fraction}" if digits else "") + zone
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    days = (31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
    real = year >= 1 and 1 <= month <= 12 and 1 <= day <= days[month - 1] and hour < 24 and minute < 60
    own_form = separator == "T" and zone == "Z" and digits <= 6 and second < 60
    return text, real and own_form


@fuzz(max_examples=600)
@given(written_times(), st.sampled_from(("requestReceivedTimestamp", "stageTimestamp")))
@example(("2024-02-29T23:59:59.5Z", True), "stageTimestamp")
@example(("2100-02-29T00:00:00Z", False), "stageTimestamp")
@example(("0001-01-01T00:00:00.000001Z", True), "requestReceivedTimestamp")
def test_times_in_every_spelling_are_read_as_the_full_path_reads_them(written: tuple[str, bool],
                                                                       member: str) -> None:
    text, own_form = written
    event = json.loads(real_lines()[0])
    event[member] = text
    fast = assert_agrees(json.dumps(event, separators=(",", ":")).encode())
    assert (fast is not None) == own_form, text  # its own form it reads; any other it leaves
