"""``dac status``: every rule this repository manages in an environment, and how its runs went.

Kibana reports a rule's last run in ``execution_summary.last_execution`` (``status``:
succeeded, partial failure, failed, running; ``message``; ``date``); it is absent until the
first run (common/api/detection_engine/rule_monitoring/model/execution_summary.schema.yaml).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from dac.deploy.ownership import drifted, owned_by
from dac.deploy.targets import Environment
from dac.kibana.client import KibanaClient


@dataclass(frozen=True)
class RuleStatus:
    space: str
    rule_id: str
    name: str
    enabled: bool
    status: str  # the last execution's status, or "never ran"
    message: str
    last_run: str | None  # ISO time of the last execution
    drifted: bool


def rule_statuses(client: KibanaClient, environment: Environment) -> list[RuleStatus]:
    found = []
    for space in environment.spaces:
        for rule in client.find_rules(space):
            if not owned_by(rule, environment.repository):
                continue
            last = ((rule.get("execution_summary") or {}).get("last_execution")) or {}
            found.append(
                RuleStatus(
                    space=space,
                    rule_id=rule["rule_id"],
                    name=rule.get("name", ""),
                    enabled=bool(rule.get("enabled")),
                    status=last.get("status", "never ran"),
                    message=last.get("message", ""),
                    last_run=last.get("date"),
                    drifted=drifted(rule),
                )
            )
    return sorted(found, key=lambda s: (s.space, s.name, s.rule_id))


def age(moment: str | None, now: datetime) -> str:
    """How long ago ``moment`` was, in the largest sensible unit."""
    if not moment:
        return "-"
    try:
        then = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    except ValueError:
        return moment
    seconds = max(0, int((now - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def status_rows(statuses: Sequence[RuleStatus], now: datetime | None = None) -> list[tuple[str, ...]]:
    now = now or datetime.now(UTC)
    return [
        (
            s.space,
            s.name + (" (drifted)" if s.drifted else ""),
            "enabled" if s.enabled else "disabled",
            s.status,
            age(s.last_run, now),
            s.message.replace("\n", " ")[:160],
        )
        for s in statuses
    ]


def status_dicts(statuses: Sequence[RuleStatus]) -> list[dict[str, object]]:
    return [asdict(s) for s in statuses]
