"""The rule model: a YAML file checked against the rule JSON Schema.

A :class:`Rule` is the file's data (with schema defaults filled in) plus the
positions of its values, so every later stage can point back into the file.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import fastjsonschema

from dac.errors import Location, RuleError
from dac.loader import DataPath, Positions, load_yaml
from dac.schema.fast import checker

if TYPE_CHECKING:
    import jsonschema

SCHEMA_FILE = "rule.schema.json"


@cache
def rule_schema() -> dict[str, Any]:
    return json.loads(resources.files("dac.schema").joinpath(SCHEMA_FILE).read_text("utf-8"))


def _fast_check() -> Callable[[Any], Any]:
    return checker(SCHEMA_FILE)


def _passes(data: Any) -> bool:
    """The schema check of a valid rule, in compiled code (20x faster than jsonschema).

    Only when it fails does jsonschema walk the rule again, to name and place each problem.
    """
    try:
        _fast_check()(data)
    except fastjsonschema.JsonSchemaException:
        return False
    return True


@cache
def _validator() -> jsonschema.Draft202012Validator:
    import jsonschema  # only a failing rule needs it: importing it costs a tenth of a second

    return jsonschema.Draft202012Validator(rule_schema())


@dataclass(frozen=True)
class Rule:
    path: Path
    data: dict[str, Any]
    positions: Positions

    @property
    def rule_id(self) -> str:
        return self.data["rule_id"]

    @property
    def name(self) -> str:
        return self.data["name"]

    @property
    def language(self) -> str:
        return self.data["language"]

    @property
    def tests(self) -> list[dict[str, Any]]:
        return self.data["tests"]

    def location(self, *data_path: str | int, key: bool = False) -> Location:
        """Where ``data_path`` (e.g. ``"tests", 0, "name"``) stands in the file."""
        return self.positions.of(data_path, key=key)


def load_rule(path: Path) -> tuple[Rule | None, list[RuleError]]:
    """Load and schema-check one rule file; every schema problem is reported, located."""
    try:
        loaded = load_yaml(path)
    except RuleError as exc:
        return None, [exc]
    if not isinstance(loaded.data, dict):
        return None, [
            RuleError("expected a rule (a YAML mapping) at the top level", Location(str(path), 1, 1))
        ]
    problems = (
        [] if _passes(loaded.data) else located_schema_problems(_validator(), loaded.data, loaded.positions)
    )
    if problems:
        return None, problems
    data = dict(loaded.data)
    for key, spec in rule_schema()["properties"].items():
        if "default" in spec:
            data.setdefault(key, spec["default"])
    return Rule(path, data, loaded.positions), []


def located_schema_problems(
    validator: jsonschema.Validator, data: Any, positions: Positions
) -> list[RuleError]:
    """Every schema problem of ``data``, as located sentences in file order."""
    problems = [p for error in validator.iter_errors(data) for p in _schema_problems(error, positions)]
    problems.sort(key=lambda e: (e.location.line or 0, e.location.column or 0) if e.location else (0, 0))
    return problems


def _schema_problems(error: jsonschema.ValidationError, positions: Positions) -> list[RuleError]:
    """Turn a jsonschema error into located, human sentences: one per unknown field."""
    branch = _chosen_branch(error)
    if branch is not None:
        return [p for sub in branch for p in _schema_problems(sub, positions)]
    if error.validator != "additionalProperties":
        return [_schema_problem(error, positions)]
    path: DataPath = tuple(error.absolute_path)
    where = f" in {'.'.join(str(p) for p in path)}" if path else ""
    allowed = list(error.schema.get("properties", {}))
    problems = []
    for key in sorted(set(error.instance) - set(allowed)):
        hint = difflib.get_close_matches(key, allowed, n=1)
        suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
        problems.append(
            RuleError(f"unknown field {key!r}{where}{suggestion}", positions.of((*path, key), key=True))
        )
    return problems


def _chosen_branch(error: jsonschema.ValidationError) -> list[jsonschema.ValidationError] | None:
    """For a ``oneOf`` of objects told apart by their ``type`` (exception entries): the errors of
    the branch the value's own ``type`` picks, instead of "not valid under any of the given schemas"."""
    if error.validator != "oneOf" or not isinstance(error.instance, dict) or not error.context:
        return None
    branches: dict[int, list[jsonschema.ValidationError]] = {}
    for sub in error.context:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    chosen = [errors for errors in branches.values()
              if not any(list(e.relative_path) == ["type"] for e in errors)]
    return chosen[0] if len(chosen) == 1 else None


def _schema_problem(error: jsonschema.ValidationError, positions: Positions) -> RuleError:
    """Turn a jsonschema error into one located, human sentence."""
    path: DataPath = tuple(error.absolute_path)
    field = ".".join(str(p) for p in path) or "rule"
    if error.validator == "required":
        missing = error.message.split("'")[1]
        where = f" in {field}" if path else ""
        return RuleError(f"missing required field {missing!r}{where}", positions.of(path))
    if error.validator == "type":
        expected = error.validator_value
        return RuleError(
            f"{field}: expected {_a(expected)}, got {_json_type(error.instance)}", positions.of(path)
        )
    if error.validator == "enum":
        options = ", ".join(json.dumps(v) for v in error.validator_value)
        return RuleError(f"{field}: {json.dumps(error.instance)} is not one of {options}", positions.of(path))
    if error.validator == "minItems":  # jsonschema's own message repeats the whole list
        return RuleError(
            f"{field}: expected at least {error.validator_value} items, got {len(error.instance)}",
            positions.of(path),
        )
    if error.validator == "const":
        return RuleError(f"{field}: must be {json.dumps(error.validator_value)}", positions.of(path))
    if error.validator == "not" and isinstance(error.instance, dict):
        return RuleError(
            f"{field}: a field here does not go with type {error.instance.get('type')!r}", positions.of(path)
        )
    if error.validator == "oneOf" and path and path[-1] == "query":
        return RuleError(
            "query: expected query text or {template: queries/NAME.j2, vars: {...}}", positions.of(path)
        )
    alternatives = _required_alternatives(error)
    if alternatives:  # oneOf: [{required: [a]}, {required: [b]}]: both given, or neither
        return RuleError(f"{field}: give exactly one of {' or '.join(alternatives)}", positions.of(path))
    if error.validator == "oneOf" and isinstance(error.instance, dict) and "type" in error.instance:
        return RuleError(
            f"{field}: type {error.instance.get('type')!r} is not an entry type here "
            "(match, match_any, exists, wildcard, nested; inside nested: match, match_any, exists)",
            positions.of(path),
        )
    return RuleError(f"{field}: {error.message}", positions.of(path))


def _required_alternatives(error: jsonschema.ValidationError) -> list[str]:
    """The keys of a ``oneOf`` whose branches each only require one key (deploy.yml's url/url_env)."""
    if error.validator != "oneOf" or not isinstance(error.validator_value, list):
        return []
    keys = []
    for branch in error.validator_value:
        if not (isinstance(branch, dict) and set(branch) == {"required"} and len(branch["required"]) == 1):
            return []
        keys.append(branch["required"][0])
    return keys


def _a(kind: Any) -> str:
    kinds = kind if isinstance(kind, list) else [kind]
    return " or ".join(("an " if k[0] in "aeiou" else "a ") + k for k in kinds)


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return {dict: "a mapping", list: "a list", str: "a string", int: "an integer", float: "a number"}.get(
        type(value), type(value).__name__
    )
