"""The audit-event conversion and the event reader on mutated real events and arbitrary bytes.

A raw audit event either becomes the document the integration would index, or is refused with
an EventError; an event file is read line by line, each bad line a ``file:line`` error while
the rest is still read. Never another exception, never a hang.
"""

from __future__ import annotations

import copy
import json
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from dac.errors import EventError
from dac.events.generate import generate
from dac.events.k8s_audit import to_document
from dac.events.reader import read_events
from tests.fuzz.strategies import json_values
from tests.fuzz.support import fuzz, time_limit


@cache
def real_events() -> list[dict[str, Any]]:
    return list(generate("mixed", 30, 9)) + list(generate("csr-attacks", 10, 9))


@pytest.fixture(scope="module", autouse=True)
def warm_caches() -> None:
    """Fill the caches before the first example, so that no example pays for them (deadline)."""
    real_events()
    to_document(real_events()[0])


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path to a member of ``value`` (dict keys and list indices)."""
    found = [prefix]
    if isinstance(value, dict):
        for key, inner in value.items():
            found += _paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            found += _paths(inner, (*prefix, i))
    return found


@st.composite
def mutated_events(draw: st.DrawFn) -> Any:
    """A real audit event with a few members replaced by arbitrary JSON, removed, or made dotted keys."""
    event = copy.deepcopy(draw(st.sampled_from(real_events())))
    for _ in range(draw(st.integers(1, 4))):
        paths = [p for p in _paths(event) if p]
        if not paths:
            break
        path = paths[draw(st.integers(0, len(paths) - 1))]
        parent = event
        for part in path[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["replace", "delete", "dotted"]))
        if action == "replace":
            parent[path[-1]] = draw(json_values(max_leaves=6))
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict) and isinstance(parent[path[-1]], dict) and parent[path[-1]]:
            inner = parent.pop(path[-1])
            key = next(iter(inner))
            parent[f"{path[-1]}.{key}"] = inner[key]
    return event


def _convert(event: Any) -> None:
    before = json.dumps(event, sort_keys=True, default=str)
    with time_limit():
        try:
            document = to_document(event)
        except EventError:
            return
    assert isinstance(document, dict) and "@timestamp" in document
    json.dumps(document)  # the document is plain JSON
    assert json.dumps(event, sort_keys=True, default=str) == before, "to_document changed its input"


@fuzz(max_examples=200)
@given(mutated_events())
def test_audit_conversion_of_mutated_events(event: Any) -> None:
    _convert(event)


@fuzz(max_examples=100)
@given(st.one_of(json_values(), st.dictionaries(st.sampled_from(
    ["kind", "apiVersion", "auditID", "stageTimestamp", "requestReceivedTimestamp", "user", "annotations",
     "objectRef", "sourceIPs", "verb", "responseStatus", "requestObject"]), json_values(6))))
@example({"kind": "Event", "apiVersion": "audit.k8s.io/v1", "auditID": "x", "labels": {},
          "annotations": {"a": 1}, "stageTimestamp": "2026-03-01T00:00:00Z",
          "requestReceivedTimestamp": "2026-03-01T00:00:00+00:00"})
def test_audit_conversion_of_arbitrary_json(event: Any) -> None:
    _convert(event)


@cache
def scratch() -> Path:
    return Path(tempfile.mkdtemp(prefix="dac-fuzz-reader-")) / "events.ndjson"


def _line(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


LINES = st.one_of(
    mutated_events().map(_line),
    st.sampled_from(real_events()).map(_line),
    json_values(max_leaves=6).map(_line),
    st.binary(max_size=40).filter(lambda b: b"\n" not in b),
    st.sampled_from([b"", b"   ", b"{", b"[]", b"null", b'{"a":1}\r', b"\xef\xbb\xbf{}", b"\xff\xfe", b"\x00",
                     b'"\\ud800"', b"1e999", b"\x1f\x8b\x08\x00"]),
)


@fuzz(max_examples=100)
@given(st.lists(LINES, max_size=12), st.sampled_from(["k8s-audit", "ecs"]))
def test_reader_reads_every_line_or_locates_its_problem(lines: list[bytes], input_format: str) -> None:
    path = scratch()
    path.write_bytes(b"\n".join(lines))
    with time_limit():
        result = read_events([path], input_format)
    nonblank = sum(1 for line in b"\n".join(lines).split(b"\n") if line.strip())
    assert len(result.documents) + len(result.errors) <= max(nonblank, 1)
    for error in result.errors:  # file:line, or the file alone for a problem of the whole file
        assert isinstance(error, EventError)
        assert error.location is not None and error.location.path == str(path), error
        assert error.location.line is None or error.location.line >= 1, error
        assert "\n" not in str(error), f"error is not one line: {str(error)!r}"
    for document in result.documents:
        json.dumps(document.source)
