"""The rendered rule object is checked against Kibana's create-API shape after every render."""

from __future__ import annotations

import json
from importlib import resources

import jsonschema

from tests.fixtures.project import NON_SYSTEM, FixtureProject


def test_repository_rules_fit_the_kibana_shape(repository_rules) -> None:
    schema = json.loads(resources.files("dac.schema").joinpath("kibana_rule.schema.json").read_text("utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    for rule in repository_rules:
        assert not list(validator.iter_errors(rule.with_version(1))), rule.rule.name


def test_a_template_that_adds_an_unknown_key_is_refused(project: FixtureProject) -> None:
    template = project.root / "templates" / "kibana" / "rule.j2"
    text = template.read_text("utf-8").replace('"to": "now",', '"to": "now", "too": "typo",')
    template.write_text(text, "utf-8")
    project.copy_rule(NON_SYSTEM)
    run = project.dac("validate")
    assert run.code == 1
    assert run.problems == [
        "detections/rule.yml:1:1: templates/kibana/rule.j2 rendered a rule Kibana would refuse: "
        "data must not contain {'too'} properties"
    ]


def test_a_template_that_drops_enabled_is_refused(project: FixtureProject) -> None:
    template = project.root / "templates" / "kibana" / "rule.j2"
    text = template.read_text("utf-8").replace('"enabled": rule.enabled,', "")
    template.write_text(text, "utf-8")
    project.copy_rule(NON_SYSTEM)
    run = project.dac("validate")
    assert run.code == 1
    assert "must contain" in run.problems[0] and "enabled" in run.problems[0]
