"""The ES|QL syntax tree: plain dataclasses, one per expression kind and per command.

Every node keeps its 1-based position and its source text: ES|QL names an
unaliased ``EVAL``/``STATS`` column after the text of its expression, and
errors point at the node they are about.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Node:
    line: int
    column: int
    text: str


# ---- expressions -----------------------------------------------------------


@dataclass(frozen=True)
class Literal(Node):
    value: Any  # a list for the ``[1, 2]`` multi-value literals
    type: str  # null | integer | long | double | keyword | boolean


@dataclass(frozen=True)
class Attribute(Node):
    name: str


@dataclass(frozen=True)
class Star(Node):
    """The ``*`` of ``COUNT(*)``."""


@dataclass(frozen=True)
class Call(Node):
    name: str  # upper case
    args: tuple[Expr, ...]


@dataclass(frozen=True)
class Unary(Node):
    op: str  # "-" | "not"
    operand: Expr


@dataclass(frozen=True)
class Binary(Node):
    op: str  # + - * / % == != < <= > >= and or
    left: Expr
    right: Expr


@dataclass(frozen=True)
class In(Node):
    value: Expr
    items: tuple[Expr, ...]
    negated: bool


@dataclass(frozen=True)
class IsNull(Node):
    value: Expr
    negated: bool


@dataclass(frozen=True)
class Match(Node):
    """``LIKE`` / ``RLIKE`` with one pattern, or ``LIKE (p1, p2, …)``."""

    value: Expr
    kind: str  # like | rlike
    patterns: tuple[str, ...]
    negated: bool


@dataclass(frozen=True)
class Cast(Node):
    value: Expr
    type_name: str  # lower case, as written after ``::``


Expr = Literal | Attribute | Star | Call | Unary | Binary | In | IsNull | Match | Cast


# ---- commands --------------------------------------------------------------


@dataclass(frozen=True)
class Field(Node):
    """``name = expression`` in EVAL/STATS; ``name`` is the source text when there is no alias."""

    name: str
    expr: Expr
    aliased: bool


@dataclass(frozen=True)
class NamePattern(Node):
    """A KEEP/DROP/RENAME name; ``regex`` is set when it holds a ``*`` wildcard."""

    name: str
    regex: re.Pattern[str] | None = None


@dataclass(frozen=True)
class Order(Node):
    expr: Expr
    descending: bool
    nulls_first: bool


@dataclass(frozen=True)
class From(Node):
    indices: tuple[str, ...]
    metadata: tuple[str, ...]


@dataclass(frozen=True)
class Where(Node):
    condition: Expr


@dataclass(frozen=True)
class Eval(Node):
    fields: tuple[Field, ...]


@dataclass(frozen=True)
class Keep(Node):
    patterns: tuple[NamePattern, ...]


@dataclass(frozen=True)
class Drop(Node):
    patterns: tuple[NamePattern, ...]


@dataclass(frozen=True)
class Rename(Node):
    pairs: tuple[tuple[NamePattern, NamePattern], ...]  # (old, new)


@dataclass(frozen=True)
class Sort(Node):
    orders: tuple[Order, ...]


@dataclass(frozen=True)
class Limit(Node):
    count: int


@dataclass(frozen=True)
class Stats(Node):
    aggregates: tuple[Field, ...]
    groups: tuple[Field, ...]


@dataclass(frozen=True)
class MvExpand(Node):
    target: Attribute


Command = From | Where | Eval | Keep | Drop | Rename | Sort | Limit | Stats | MvExpand


@dataclass(frozen=True)
class EsqlQuery:
    """A parsed query: the FROM source plus the processing commands after it."""

    text: str
    source: From
    commands: tuple[Command, ...] = field(default_factory=tuple)

    @property
    def indices(self) -> list[str]:
        return list(self.source.indices)

    @property
    def metadata(self) -> list[str]:
        return list(self.source.metadata)


def walk(expr: Expr) -> list[Expr]:
    """``expr`` and every expression below it, parents first."""
    out: list[Expr] = []
    stack: list[Expr] = [expr]
    while stack:
        node = stack.pop()
        out.append(node)
        if isinstance(node, Call):
            stack.extend(reversed(node.args))
        elif isinstance(node, Unary):
            stack.append(node.operand)
        elif isinstance(node, Binary):
            stack.extend((node.right, node.left))
        elif isinstance(node, In):
            stack.extend(reversed(node.items))
            stack.append(node.value)
        elif isinstance(node, IsNull | Match | Cast):
            stack.append(node.value)
    return out
