"""The check of native audit lines that no rule can match, done for many lines at a time.

Nearly every line of a real audit log holds none of the rules' needles (dac.engine.needles). Of
those, ``dac run`` needs only what :func:`dac.events.k8s_audit.checked_time` gives: that the line
is a valid audit Event, and its ``@timestamp``. This gives the same verdicts without building the
event's dictionaries, in native code (``linescan.c``), a batch of lines per call:

- The scanner leaves to the full path every line that holds a needle or an escape that could hide
  one, more brackets than ``MAX_EVENT_NESTING``, invalid UTF-8 (orjson refuses it), or a number
  that may overflow a double (orjson refuses those too).
- A JSON validator (RFC 8259, as strict as orjson or stricter) reads the rest and the members
  ``k8s_audit._validate`` checks: of a repeated member the last counts, as in orjson's
  dictionary; a member it cannot vouch for (an escaped timestamp, an apiVersion the API server
  does not write) sends the line to the full path.
- ``datetime.fromisoformat`` reads both timestamps, the first parse ``_timestamp`` tries; a time
  it refuses or that is not UTC is left to the full path.

The full path (orjson, ``to_document``) accepts a line left to it or says what is wrong with it.
So this never accepts a line the full path refuses, and gives the same time:
tests/fuzz/test_fuzz_bulk_check.py holds it to that on mutated real lines.
"""

from __future__ import annotations

from datetime import UTC, datetime

from dac.engine.needles import harmless_escapes
from dac.events._linescan import quiet_events
from dac.limits import MAX_EVENT_NESTING

_from_iso = datetime.fromisoformat


def quiet_times(lines: list[bytes], needles: tuple[bytes, ...]) -> tuple[list[int], list[datetime]]:
    """The positions of the lines that must take the full path, in order, and for the others (no
    rule can match them, and they pass the check) the ``stageTimestamp`` of their audit Events
    (UTC, not yet cut to milliseconds), in order."""
    full, received, stages = quiet_events(lines, needles, harmless_escapes(needles), MAX_EVENT_NESTING)
    times = _utc_times(received, stages)
    if None not in times:
        return full, times  # type: ignore[return-value]
    skipped = set(full)
    quiet = [n for n in range(len(lines)) if n not in skipped]
    full = sorted(full + [n for n, moment in zip(quiet, times, strict=True) if moment is None])
    return full, [moment for moment in times if moment is not None]


def _utc_times(received: list[str], stages: list[str]) -> list[datetime | None]:
    """The stage times, where both times of an event are UTC times ``fromisoformat`` reads."""
    try:  # the common case, every time fine, in loops that run in native code
        stage_times = list(map(_from_iso, stages))
        if {t.tzinfo for t in stage_times} | {t.tzinfo for t in map(_from_iso, received)} <= {UTC}:
            return stage_times  # type: ignore[return-value]
    except ValueError:
        pass
    return [_utc_time(first, second) for first, second in zip(received, stages, strict=True)]


def _utc_time(received: str, stage: str) -> datetime | None:
    try:
        first, second = _from_iso(received), _from_iso(stage)
    except ValueError:
        return None
    return second if first.tzinfo is UTC and second.tzinfo is UTC else None
