"""The check of native audit lines that no rule can match, done for many lines at a time.

Nearly every line of a real audit log holds none of the rules' needles (dac.engine.needles). Of
those, ``dac run`` needs only what :func:`dac.events.k8s_audit.checked_time` gives: that the line
is a valid audit Event, and its ``@timestamp``. This gives the same verdicts without building the
event's dictionaries, in native code (``linescan.c``), a block of lines per call:

- The scanner leaves to the full path every line that holds a needle or an escape that could hide
  one, more brackets than ``MAX_EVENT_NESTING``, invalid UTF-8 (orjson refuses it), or a number
  that may overflow a double (orjson refuses those too).
- A JSON validator (RFC 8259, as strict as orjson or stricter) reads the rest and the members
  ``k8s_audit._validate`` checks: of a repeated member the last counts, as in orjson's
  dictionary; a member it cannot vouch for (an escaped timestamp, an apiVersion the API server
  does not write) sends the line to the full path.
- Both timestamps are read in native code too, when they are in the API server's own form
  (``2025-06-01T12:00:00.123456Z``, of which ``fromisoformat``, the first parse ``_timestamp``
  tries, gives the same UTC time); any other form is left to the full path.

The full path (orjson, ``to_document``) accepts a line left to it or says what is wrong with it.
So this never accepts a line the full path refuses, and gives the same time:
tests/fuzz/test_fuzz_bulk_check.py holds it to that on mutated real lines.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dac.engine.needles import harmless_escapes
from dac.events._linescan import quiet_block
from dac.limits import MAX_EVENT_NESTING

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Full = tuple[int, int, int]
"""A line that takes the full path: its index among the block's lines (``data.split(b"\\n")``),
and where it starts and ends in the block (stripped of white space)."""

Quiet = tuple[int, int, int, int, int]
"""A run of lines no rule can match that pass the check: how many (blank lines between them not
counted), the earliest and latest ``stageTimestamp`` of their audit Events in microseconds since
1970 (UTC, not yet cut to milliseconds: see :func:`millis_moment`), and where the run starts and
ends in the block."""


def check_block(data: bytes, needles: tuple[bytes, ...]) -> list[Full | Quiet]:
    """The lines of ``data``, a block of whole lines, in order: each one that takes the full path,
    and the runs of the others between them (blank lines are skipped)."""
    return quiet_block(data, needles, harmless_escapes(needles), MAX_EVENT_NESTING)  # type: ignore[no-any-return]


def moment(micros: int) -> datetime:
    """The UTC time ``micros`` microseconds after 1970 (from :func:`check_block`)."""
    return _EPOCH + timedelta(microseconds=micros)


def millis_moment(micros: int) -> datetime:
    """:func:`moment` cut to whole milliseconds, as an event's ``@timestamp`` is
    (k8s_audit.cut_to_millis: the earliest of many times, cut, is the earliest of them cut)."""
    return moment(micros - micros % 1000)
