"""Rule test scenarios: the ``tests:`` of a rule file, expanded into documents and checked.

Each scenario lists events (compact specs or raw audit events) and the alerts
it expects. ``dac test``, pytest and the integration suite all run scenarios
through here, against whichever engine they hold.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

from dac.compile import CompiledRule
from dac.documents import SourceDocument, values_at
from dac.engine.base import Engine, RuleOutcome, Suppression
from dac.errors import DacError, EventError
from dac.events.reader import to_source_document
from dac.events.specs import expand_events


@dataclass(frozen=True)
class Scenario:
    rule: CompiledRule
    index: int

    @property
    def spec(self) -> dict[str, Any]:
        return self.rule.rule.tests[self.index]

    @property
    def name(self) -> str:
        return self.spec["name"]

    @property
    def test_id(self) -> str:
        return f"{self.rule.rule.path.stem}::{self.name}"

    @property
    def seed(self) -> int:
        """A seed of its own per scenario, stable across runs and machines."""
        digest = hashlib.sha256(f"{self.rule.rule.rule_id}/{self.name}".encode()).digest()
        return int.from_bytes(digest[:8], "big")

    def documents(self) -> list[SourceDocument]:
        """The scenario's events as indexed documents (raw audit events → integration documents)."""
        try:
            events = expand_events(self.spec["events"], seed=self.seed)
            return [to_source_document(event, "k8s-audit") for event in events]
        except EventError as exc:
            raise exc.at(self.rule.rule.location("tests", self.index, "events")) from None


@dataclass
class ScenarioResult:
    scenario: Scenario
    expected: int
    outcome: RuleOutcome
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: DacError | None = None  # the scenario could not run (its events, or the rule on the engine)

    @property
    def passed(self) -> bool:
        return not self.failures and self.outcome.skipped is None and self.error is None


def errored(scenario: Scenario, error: DacError) -> ScenarioResult:
    """A scenario that could not run, its error placed in the rule file (the query, if not its events)."""
    rule = scenario.rule
    outcome = RuleOutcome(rule.rule.rule_id, rule.rule.name)
    located = error.at(rule.rule.location("query"))
    return ScenarioResult(scenario, scenario.spec["expect"]["alerts"], outcome, error=located)


def scenarios(rules: list[CompiledRule]) -> list[Scenario]:
    return [Scenario(rule, i) for rule in rules for i in range(len(rule.rule.tests))]


def run_scenario(scenario: Scenario, engine: Engine, version: int = 1) -> ScenarioResult:
    started = time.perf_counter()
    documents = scenario.documents()
    rule = scenario.rule
    outcome = engine.run([rule.with_version(version)], documents, exceptions=rule.exception_items())[0]
    expect = scenario.spec["expect"]
    result = ScenarioResult(scenario, expect["alerts"], outcome, seconds=time.perf_counter() - started)
    result.failures = check_alerts(outcome.alerts, expect) + check_suppressed(outcome.suppressed, expect)
    return result


def check_suppressed(suppressed: list[Suppression], expect: dict[str, Any]) -> list[str]:
    """``suppressed_by``: an item (by item_id or name) that must have suppressed an alert."""
    wanted = expect.get("suppressed_by")
    if wanted is None or any(wanted in (s.item_id, s.item_name) for s in suppressed):
        return []
    got = ", ".join(sorted({s.item_id for s in suppressed})) or "none"
    return [f"expected an alert suppressed by exception item {wanted!r}; suppressed by: {got}"]


def check_alerts(alerts: list[dict[str, Any]], expect: dict[str, Any]) -> list[str]:
    """What differs between the alerts and the expectation, one sentence each."""
    failures = []
    if len(alerts) != expect["alerts"]:
        failures.append(f"expected {expect['alerts']} alerts, got {len(alerts)}")
    for name, wanted in expect.get("fields", {}).items():
        for n, alert in enumerate(alerts, start=1):
            got = values_at(alert, name)
            if wanted not in got and got != wanted:
                failures.append(f"alert {n}: {name} is {got!r}, expected {wanted!r}")
    return failures
