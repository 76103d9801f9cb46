"""The one interface every rule engine implements.

An engine takes rendered Kibana rule objects (the exact JSON ``dac build``
writes) and source documents, executes each rule the way Kibana's detection
engine does, and returns Kibana-shaped alert documents. The local engine does
it in-process; the Elasticsearch engine does it on a real cluster. Tests hold
the two to the same answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from dac.documents import SourceDocument

KibanaRule = dict[str, Any]
"""A rendered rule: the body Kibana's ``POST /api/detection_engine/rules`` takes."""


@dataclass
class RuleOutcome:
    """What one rule produced in one run."""

    rule_id: str
    name: str
    alerts: list[dict[str, Any]] = field(default_factory=list)
    skipped: str | None = None  # why the engine could not execute the rule, if it could not
    seconds: float = 0.0
    matched: int = 0  # distinct documents the rule matched in its windows (alerts or not)
    executions: int = 1
    capped_executions: int = 0  # executions that stopped at max_signals with more to alert on

    @property
    def capped(self) -> bool:
        return self.capped_executions > 0


class Engine(Protocol):
    """Executes rules over documents. ``now=None`` means: the window covers every document."""

    name: str

    def run(
        self,
        rules: Sequence[KibanaRule],
        documents: Sequence[SourceDocument],
        now: datetime | None = None,
    ) -> list[RuleOutcome]: ...
