"""The review report: plain data, the one thing the text, JSON and Markdown outputs read.

``DiffReport.as_dict()`` is the stable JSON shape of ``dac diff --format json``, described
by ``tooling/dac/schema/diff.schema.json`` (a test validates every report against it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

SCHEMA_VERSION = 1
STATUSES = ("added", "removed", "modified", "renamed", "unchanged")

# Review flags: id → what it means. ``--fail-on`` takes these ids.
FLAGS = {
    "missing-version-bump": "the rendered rule changed but the version lock does not bump its version",
    "severity-raised": "severity raised",
    "severity-lowered": "severity lowered",
    "risk-raised": "risk_score raised",
    "risk-lowered": "risk_score lowered",
    "enabled-flipped": "the rule is switched on or off",
    "index-widened": "the rule reads index patterns it did not read before",
    "index-narrowed": "the rule no longer reads index patterns it read before",
    "attack-changed": "the ATT&CK mapping changed",
    "min-stack-raised": "min_stack_version raised: older stacks can no longer run the rule",
    "deployed-rule-removed": "a rule that is deployed was removed",
    "tests-removed": "test scenarios removed",
    "tests-weakened": "a test scenario's expectation was loosened",
    "alerts-lost": "the rule no longer alerts on events it alerted on before",
}


@dataclass(frozen=True)
class Flag:
    id: str  # a key of FLAGS
    message: str


@dataclass(frozen=True)
class FieldDiff:
    """One field of the rendered Kibana object that differs; text fields carry a unified diff."""

    field: str
    before: Any
    after: Any
    diff: str | None = None


@dataclass(frozen=True)
class AlertRef:
    """One alert gained or lost: the source document and what identifies the request."""

    document_id: str
    index: str
    origin: str  # which input the event came from: a scenario, the generated corpus, a file…
    timestamp: str | None = None
    user: str | None = None
    verb: str | None = None
    object: str | None = None


@dataclass
class Behaviour:
    """Both versions of a rule over the same events (``base_alerts`` None for an added rule)."""

    events: int
    base_alerts: int | None
    head_alerts: int
    both: int
    only_base: list[AlertRef] = field(default_factory=list)
    only_head: list[AlertRef] = field(default_factory=list)
    skipped: str | None = None  # why the local engine could not run the rule


@dataclass
class RuleDiff:
    rule_id: str
    name: str  # HEAD's name (BASE's for a removed rule)
    status: str  # one of STATUSES
    base_path: str | None = None
    head_path: str | None = None
    base_name: str | None = None
    base_version: int | None = None
    head_version: int | None = None
    fields: list[FieldDiff] = field(default_factory=list)
    flags: list[Flag] = field(default_factory=list)
    causes: list[str] = field(default_factory=list)  # files whose change changed the rendered rule
    behaviour: Behaviour | None = None

    @property
    def moved(self) -> bool:
        return bool(self.base_path and self.head_path and self.base_path != self.head_path)

    @property
    def noteworthy(self) -> bool:
        return self.status != "unchanged" or bool(self.flags)


@dataclass(frozen=True)
class SideInfo:
    label: str
    commit: str | None  # None: the working tree
    rules: int
    problems: list[str] = field(default_factory=list)  # ``file:line:col: message``: the side does not build


@dataclass(frozen=True)
class EventSource:
    name: str  # scenarios | generated | efficacy | events
    events: int
    detail: str


@dataclass
class DiffReport:
    base: SideInfo
    head: SideInfo
    rules: list[RuleDiff] = field(default_factory=list)
    changed_files: list[str] = field(default_factory=list)
    event_sources: list[EventSource] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # anything capped, skipped or assumed

    def count(self, status: str) -> int:
        return sum(1 for r in self.rules if r.status == status)

    @property
    def flag_ids(self) -> set[str]:
        return {f.id for r in self.rules for f in r.flags}

    @property
    def events(self) -> int:
        return sum(s.events for s in self.event_sources)

    def as_dict(self) -> dict[str, Any]:
        body = asdict(self)
        body["schema_version"] = SCHEMA_VERSION
        body["counts"] = {status: self.count(status) for status in STATUSES}
        for rule, data in zip(self.rules, body["rules"], strict=True):
            data["moved"] = rule.moved
        return body
