"""Every scenario of every rule on a real Elasticsearch, held to its expectation and to the local engine.

The same documents go to both engines; the alerts must name the same rules and the same source
documents, and carry the same fields that both engines set. A rule the server cannot execute (ES|QL
or EQL on the integ-test-zip node) is skipped with the reason, or fails with --require-all-rules.
"""

from __future__ import annotations

import json

import pytest
from tests.repository import compile_repository_rules

from dac.engine.elasticsearch import ElasticsearchEngine
from dac.engine.local import LocalEngine
from dac.scenarios import Scenario, check_alerts, check_suppressed, scenarios

ALL = scenarios(compile_repository_rules())
COMPARED_FIELDS = (
    "kibana.alert.uuid",
    "kibana.alert.rule.rule_id",
    "kibana.alert.original_time",
    "kibana.alert.reason",
    "kibana.alert.ancestors",
)


def _key(alert: dict) -> tuple[str, str]:
    return alert["kibana.alert.rule.rule_id"], alert["kibana.alert.ancestors"][0]["id"]


@pytest.mark.parametrize("scenario", ALL, ids=[s.test_id for s in ALL])
def test_scenario_on_elasticsearch(scenario: Scenario, es_engine: ElasticsearchEngine, request) -> None:
    rule = scenario.rule.with_version(1)
    reason = es_engine.cannot_run(rule)
    if reason:
        if request.config.getoption("--require-all-rules"):
            pytest.fail(f"{reason} (--require-all-rules)")
        pytest.skip(reason)
    documents = scenario.documents()
    exceptions = scenario.rule.exception_items()
    remote = es_engine.run([rule], documents, exceptions=exceptions)[0]
    local = LocalEngine().run([rule], documents, exceptions=exceptions)[0]

    expect = scenario.spec["expect"]
    failures = check_alerts(remote.alerts, expect) + check_suppressed(remote.suppressed, expect)
    assert not failures, "Elasticsearch: " + "; ".join(failures)
    assert remote.suppressed == local.suppressed, "the engines disagree on suppressed alerts"

    remote_alerts = {_key(a): {f: a.get(f) for f in COMPARED_FIELDS} for a in remote.alerts}
    local_alerts = {_key(a): {f: a.get(f) for f in COMPARED_FIELDS} for a in local.alerts}
    assert remote_alerts == local_alerts, (
        "the engines disagree\nElasticsearch: "
        + json.dumps(remote_alerts, indent=1, sort_keys=True)
        + "\nlocal: "
        + json.dumps(local_alerts, indent=1, sort_keys=True)
    )
