"""The schemas' compiled checks written by ``make`` (dac.schema.fast): used only when current,
and giving the same verdicts as compiling the schema at run time."""

from __future__ import annotations

import copy
import json
from importlib import resources

import fastjsonschema
import pytest

from dac.compile import compile_rules
from dac.loader import rule_files
from dac.render.environment import Templates
from dac.schema import fast
from tests.repository import PROJECT


@pytest.fixture(scope="module")
def samples() -> dict[str, list[object]]:
    """Per schema: the shipped rules' objects, valid, and broken copies of each."""
    compiled, problems = compile_rules(rule_files(PROJECT.detections), Templates(PROJECT.templates))
    assert not problems
    valid = {
        "rule.schema.json": [c.rule.data for c in compiled],
        "kibana_rule.schema.json": [c.with_version(1) for c in compiled],
        "kibana_exception.schema.json": [lst.kibana() for c in compiled for lst in c.exception_lists],
    }
    out: dict[str, list[object]] = {}
    for name, objects in valid.items():
        assert objects, f"no sample for {name}"
        broken = []
        for obj in objects:
            for key in list(obj)[:6]:
                wrong = copy.deepcopy(obj)
                wrong[key] = {"not": ["what", "the", "schema", "wants"]}
                broken.append(wrong)
                missing = copy.deepcopy(obj)
                del missing[key]
                broken.append(missing)
        out[name] = [*objects, *broken, [], "text", None]
    return out


def _verdict(check, obj: object) -> str:
    try:
        check(obj)
    except fastjsonschema.JsonSchemaException as exc:
        return f"invalid: {exc.message}"
    return "valid"


@pytest.mark.parametrize("name", fast.FAST_SCHEMAS)
def test_the_generated_check_agrees_with_the_schema_compiled_now(name, samples) -> None:
    text = resources.files("dac.schema").joinpath(name).read_text("utf-8")
    now = fastjsonschema.compile(json.loads(text))
    generated = fast.checker(name)
    assert generated.__module__.startswith("dac.schema._generated."), "make did not write the checks"
    verdicts = [(_verdict(generated, obj), _verdict(now, obj)) for obj in samples[name]]
    assert all(a == b for a, b in verdicts)
    assert {a.split(":")[0] for a, _ in verdicts} == {"valid", "invalid"}


def test_a_stale_generated_check_is_not_used(monkeypatch) -> None:
    """After a schema edit (another stamp) the schema is compiled at run time, not read stale."""
    monkeypatch.setattr(fast, "_stamp", lambda text: "another schema")
    check = fast.checker.__wrapped__("rule.schema.json")
    assert not (check.__module__ or "").startswith("dac.schema._generated.")
