"""Every resource limit dac puts on repository input, in one place.

A rule repository arrives through pull requests and CI validates it before anyone has read
it, so no input may cost unbounded time or memory. Each limit is far above anything a real
rule needs (the shipped rules are under 12 KB, nest 6 levels deep, render queries under
4,000 characters) and each breach is a located error that names the limit, through
:func:`exceeded`.
"""

from __future__ import annotations

# Size of one rule, template or data file (YAML, Jinja, JSON) read from the repository.
MAX_FILE_BYTES = 1_000_000

# Nesting depth of one YAML or JSON document (mappings and lists inside each other).
# libyaml itself stops at 1,000 levels; Python recursion would fail long before that.
MAX_NESTING_DEPTH = 64

# Characters of one rendered query (after Jinja). Kibana and Elasticsearch accept more, but a
# query this long is a runaway template, not a detection.
MAX_QUERY_CHARS = 100_000

# Characters one template render may produce (queries, notes, the Kibana object, docs pages).
MAX_RENDER_CHARS = 1_000_000

# Memory one template render may add to the process (address space, Linux), 1 GiB.
MAX_RENDER_MEMORY_BYTES = 1 << 30

# Seconds one template render may run (measured by an interval timer; see render/sandbox.py).
MAX_RENDER_SECONDS = 5.0

# The largest integer a template may use as a repeat count, exponent, range length or
# filter width: bounds the memory of `'x' * n`, `n ** m`, `range(n)`, `center(n)`...
MAX_TEMPLATE_INT = 100_000

# Bytes of one line of an event file (NDJSON). A real audit event is a few KiB; a longer line
# is reported and skipped without being held in memory, so a small gzip of one endless line
# cannot exhaust memory.
MAX_LINE_BYTES = 16 << 20

# Nesting levels of one event. Far above real audit events: conversion, matching and alert output
# recurse once per level, and Python's stack allows about 1,000.
MAX_EVENT_NESTING = 200

# Problems printed by one command; the rest are counted in a closing `… and N more` line.
MAX_PROBLEMS_PRINTED = 200


def exceeded(what: str, limit: int | float, unit: str, name: str) -> str:
    """The message of a breached limit: what, the limit and its name here."""
    amount = f"{limit:,} {unit}" if unit else f"{limit:,}"
    return f"{what} exceeds the limit of {amount} (dac.limits.{name})"
