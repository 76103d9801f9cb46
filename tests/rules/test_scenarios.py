"""Every scenario of every rule, on the local engine: one pytest test per scenario."""

from __future__ import annotations

import pytest

from dac.engine.local import LocalEngine
from dac.lock import VersionLock
from dac.scenarios import Scenario, run_scenario, scenarios
from tests.repository import PROJECT, compile_repository_rules

ALL = scenarios(compile_repository_rules())


@pytest.mark.parametrize("scenario", ALL, ids=[s.test_id for s in ALL])
def test_scenario(scenario: Scenario) -> None:
    version = VersionLock.load(PROJECT.lock).version_of(scenario.rule)
    result = run_scenario(scenario, LocalEngine(), version)
    assert result.outcome.skipped is None, result.outcome.skipped
    assert not result.failures, "; ".join(result.failures)


def test_every_rule_has_firing_and_silent_scenarios() -> None:
    for rule in {s.rule.rule.rule_id: s.rule for s in ALL}.values():
        counts = [t["expect"]["alerts"] for t in rule.rule.tests]
        assert any(counts) and not all(counts), rule.rule.name


@pytest.mark.parametrize("envelope", ["gke", "aks", "eks"])
@pytest.mark.parametrize("scenario", ALL, ids=[s.test_id for s in ALL])
def test_scenario_in_every_managed_cluster_format(scenario: Scenario, envelope: str) -> None:
    """The scenario's events as GKE, AKS and EKS deliver them raise as many alerts as natively."""
    import orjson

    from dac.documents import SourceDocument
    from dac.events.envelopes import wrap
    from dac.events.formats import convert
    from dac.events.reader import document_id, index_name
    from dac.events.specs import expand_events

    events = expand_events(scenario.spec["events"], seed=scenario.seed)
    documents = [
        SourceDocument(index_name(source), document_id(content), source)
        for record in wrap(events, envelope)
        for content, source in convert(record, orjson.dumps(record), envelope)
    ]
    version = VersionLock.load(PROJECT.lock).version_of(scenario.rule)
    rule, exceptions = scenario.rule.with_version(version), scenario.rule.exception_items()
    outcome = LocalEngine().run([rule], documents, exceptions=exceptions)[0]
    assert outcome.skipped is None, outcome.skipped
    assert len(outcome.alerts) == scenario.spec["expect"]["alerts"]
