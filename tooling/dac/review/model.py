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
    "alerts-lost": (
        "the rule no longer alerts on events it alerted on before (alerts an exception now suppresses "
        "are not counted: they are listed with the item)"
    ),
    "exception-added": "an exception item was added to a list rules use: it suppresses the alerts it matches",
    "exception-widened": (
        "an exception item now matches more: entries dropped or accepting more values, or it suppresses "
        "alerts BASE raised"
    ),
    "exception-expiry-extended": "an exception item expires later than before, or no longer expires",
}
EXCEPTION_FLAGS = ("exception-added", "exception-widened", "exception-expiry-extended")


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


@dataclass(frozen=True)
class SuppressedAlert:
    """An alert an exception item suppresses on one side and not on the other."""

    alert: AlertRef
    list_id: str
    item_id: str
    item_name: str


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
    # Alerts an item suppresses at HEAD but not at BASE (the item is HEAD's) …
    newly_suppressed: list[SuppressedAlert] = field(default_factory=list)
    # … and alerts BASE suppressed that HEAD raises: an item removed or narrowed (BASE's item).
    reappeared: list[SuppressedAlert] = field(default_factory=list)


@dataclass
class ItemChange:
    """One exception item added, changed or removed, keyed by item_id.

    ``owner``, ``reason`` and ``expires`` are HEAD's (BASE's for a removed item); ``fields`` is
    the field diff of the Kibana item bodies, ``entries`` shown as one readable line per entry.
    """

    item_id: str
    status: str  # added | modified | removed
    name: str
    owner: str | None
    reason: str | None
    expires: str | None
    fields: list[FieldDiff] = field(default_factory=list)
    flags: list[Flag] = field(default_factory=list)
    suppresses: int | None = None  # alerts the behavioural diff saw this item newly suppress


@dataclass
class ListDiff:
    """An exception list whose body or items differ between the sides."""

    list_id: str
    type: str  # rule_default (a rule's own items) | detection (a shared list)
    status: str  # added | removed | modified
    name: str
    base_path: str | None = None
    head_path: str | None = None
    rules: list[str] = field(default_factory=list)  # names of the rules using it, on either side
    fields: list[FieldDiff] = field(default_factory=list)  # of the list body
    items: list[ItemChange] = field(default_factory=list)

    @property
    def flags(self) -> list[Flag]:
        return [f for item in self.items for f in item.flags]


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
    exception_lists: list[str] = field(default_factory=list)  # changed lists it uses (list_id)

    @property
    def moved(self) -> bool:
        return bool(self.base_path and self.head_path and self.base_path != self.head_path)

    @property
    def noteworthy(self) -> bool:
        return self.status != "unchanged" or bool(self.flags) or bool(self.exception_lists)


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
    exceptions: list[ListDiff] = field(default_factory=list)  # exception lists that changed

    def count(self, status: str) -> int:
        return sum(1 for r in self.rules if r.status == status)

    @property
    def flag_ids(self) -> set[str]:
        return {f.id for r in self.rules for f in r.flags} | {
            f.id for lst in self.exceptions for f in lst.flags
        }

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
