"""A field a query reads, and where in the query text it is named."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldRef:
    name: str
    line: int | None = None  # 1-based, inside the query text
    column: int | None = None
