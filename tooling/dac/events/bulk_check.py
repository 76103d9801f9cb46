"""The check of native audit lines that no rule can match, done for many lines at a time.

Nearly every line of a real audit log holds none of the rules' needles (dac.engine.needles). Of
those, ``dac run`` needs only what :func:`dac.events.k8s_audit.checked_time` gives: that the line
is a valid audit Event, and its ``@timestamp``. This gives the same verdicts without building the
event's dictionaries:

- simdjson parses the line: complete JSON validation (UTF-8, numbers, structure) in native code.
  Where it and orjson disagree it is the stricter: it refuses a number beyond a double's range
  and an integer beyond 64 bits; orjson refuses the first and reads the second as a float.
- msgspec reads just the members ``k8s_audit._validate`` checks into a Struct; unknown members
  are skipped, and of a repeated member the last counts, as in orjson's dictionary.
- ``datetime.fromisoformat`` reads both timestamps, the first parse ``_timestamp`` tries; a time
  that is not UTC, like any line either parser refuses, is left to the full path.

A line this check leaves (``None``) takes the full path (orjson, ``to_document``), which accepts
it or says what is wrong with it. So this never accepts a line the full path refuses and gives
the same time; tests/unit/test_bulk_check.py holds it to that on real and mutated lines.
Nesting is not bounded here: the reader sends lines with more brackets than its limit to the
full path first.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Literal

import msgspec
import simdjson


class _Object(msgspec.Struct, gc=False):
    """Any JSON object (its members are skipped)."""


class _User(msgspec.Struct, gc=False):
    username: str | None = None
    uid: str | None = None


class _Event(msgspec.Struct, gc=False):
    """What ``k8s_audit._validate`` checks of an audit Event. apiVersion: the versions the API
    server writes; any other ``audit.k8s.io/*`` takes the full path, which accepts it."""

    kind: Literal["Event"]
    apiVersion: Literal["audit.k8s.io/v1", "audit.k8s.io/v1beta1"]
    auditID: str
    requestReceivedTimestamp: str
    stageTimestamp: str
    user: _User | None = None
    impersonatedUser: _Object | None = None
    objectRef: _Object | None = None
    responseStatus: _Object | None = None
    annotations: _Object | None = None
    labels: _Object | None = None


_read_event = msgspec.json.Decoder(_Event).decode
# what a refusal raises: ValueError (simdjson's invalid JSON, msgspec's DecodeError, fromisoformat),
# RuntimeError (simdjson's depth and big-integer errors, msgspec's RecursionError)
_REFUSED = (ValueError, RuntimeError)
_parse = simdjson.Parser().parse
_from_iso = datetime.fromisoformat


def stage_times(lines: Sequence[bytes]) -> list[datetime | None]:
    """Per line, its event's ``stageTimestamp`` in UTC (not yet cut to milliseconds) when the
    line is a valid audit Event by this check; None when the full path must decide."""
    try:  # the common case: every line passes
        return [_stage_time(line) for line in lines]
    except _REFUSED:
        pass
    out: list[datetime | None] = []
    for line in lines:
        try:
            out.append(_stage_time(line))
        except _REFUSED:
            out.append(None)
    return out


def _stage_time(line: bytes) -> datetime:
    _parse(line)  # validation only; the document it returns is let go at once (simdjson reuses it)
    event = _read_event(line)
    if not event.auditID:
        raise ValueError("no auditID")
    received = _from_iso(event.requestReceivedTimestamp)
    stage = _from_iso(event.stageTimestamp)
    if received.tzinfo is not UTC or stage.tzinfo is not UTC:
        raise ValueError("not UTC")
    return stage
