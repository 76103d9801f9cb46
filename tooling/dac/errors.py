"""One exception hierarchy for everything a user can get wrong.

Every error carries the place it points at, so the CLI can print
``path:line:column: message`` and exit non-zero instead of a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Location:
    """A place in a file; ``line`` and ``column`` are 1-based and optional."""

    path: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        parts = [self.path]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)


class DacError(Exception):
    """Base of all expected failures; ``str()`` is the one-line report."""

    def __init__(self, message: str, location: Location | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.location = location

    def at(self, location: Location) -> DacError:
        """The same error, placed at ``location`` when it has no place yet."""
        if self.location is None:
            self.location = location
        return self

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message


class RuleError(DacError):
    """A rule file is malformed or fails validation."""


class DacWarning(DacError):
    """Worth a reviewer's attention but not wrong: printed as ``file:line:col: warning: ...``, exit 0."""

    def __str__(self) -> str:
        text = f"warning: {self.message}"
        return f"{self.location}: {text}" if self.location else text


def split_warnings(problems: list[DacError]) -> tuple[list[DacError], list[DacError]]:
    """``(errors, warnings)`` of a list of problems."""
    warnings = [p for p in problems if isinstance(p, DacWarning)]
    return [p for p in problems if not isinstance(p, DacWarning)], warnings


class QueryError(DacError):
    """A query does not parse or cannot be executed.

    ``query_line``/``query_column`` locate the problem inside the query text
    (1-based); the caller adds the file position of the query itself.
    """

    def __init__(
        self,
        message: str,
        query_line: int | None = None,
        query_column: int | None = None,
        location: Location | None = None,
    ) -> None:
        super().__init__(message, location)
        self.query_line = query_line
        self.query_column = query_column

    def __str__(self) -> str:
        where = ""
        if self.query_line is not None:
            where = f" (query line {self.query_line}, column {self.query_column})"
        text = f"{self.message}{where}"
        return f"{self.location}: {text}" if self.location else text


class UnsupportedQueryError(QueryError):
    """A query construct the local engine does not implement (never guessed at)."""


class EventError(DacError):
    """An input event line is malformed."""


class BackendError(DacError):
    """A server (Elasticsearch, Kibana) is missing or answered something unusable."""
