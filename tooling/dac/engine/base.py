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


ExceptionLists = dict[str, list[dict[str, Any]]]
"""list_id → exception item bodies (Kibana's shape, as ``dac build`` writes them)."""


@dataclass(frozen=True)
class Suppression:
    """A document the rule matched that an exception item kept from alerting."""

    index: str
    document_id: str
    list_id: str
    item_id: str
    item_name: str


@dataclass
class RuleOutcome:
    """What one rule produced in one run."""

    rule_id: str
    name: str
    alerts: list[dict[str, Any]] = field(default_factory=list)
    skipped: str | None = None  # why the engine could not execute the rule, if it could not
    suppressed: list[Suppression] = field(default_factory=list)  # alerts exception items suppressed
    seconds: float = 0.0
    matched: int = 0  # distinct documents the rule matched in its windows (alerts or not)
    executions: int = 1
    capped_executions: int = 0  # executions that stopped at max_signals with more to alert on

    @property
    def capped(self) -> bool:
        return self.capped_executions > 0


class Engine(Protocol):
    """Executes rules over documents. ``now=None`` means: the window covers every document.

    ``exceptions`` holds the items of the lists the rules name in ``exceptions_list``, applied as
    Kibana does (:mod:`dac.query.exception_filter`); None applies no exceptions.
    """

    name: str

    def run(
        self,
        rules: Sequence[KibanaRule],
        documents: Sequence[SourceDocument],
        now: datetime | None = None,
        exceptions: ExceptionLists | None = None,
    ) -> list[RuleOutcome]: ...
