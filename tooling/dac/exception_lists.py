"""Exceptions as code: the exception lists that tune rules, in Kibana's shape, and their checks.

Two places hold items (see README "Exceptions"):

* a rule's own items, ``exceptions.items`` in the rule file: its **rule_default** list, which
  only that rule uses (list_id ``<rule_id>-exceptions``);
* shared lists, one file each under ``detections/exceptions/`` (``exception_list.schema.json``),
  type **detection**, named by list_id in the ``exceptions.lists`` of every rule they tune.

Each list is rendered into the bodies of Kibana's create-exception-list and
create-exception-list-item APIs (``ExceptionList.body`` / ``.items``); rules reference the lists
in ``exceptions_list``. The engines apply the items through :mod:`dac.query.exception_filter`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import fastjsonschema

from dac.errors import DacError, DacWarning, Location, RuleError
from dac.loader import DataPath, Positions, exception_list_files, load_yaml
from dac.mapping import IndexMapping
from dac.rules import Rule, located_schema_problems, rule_schema
from dac.schema.fast import checker

if TYPE_CHECKING:
    import jsonschema

LIST_SCHEMA_FILE = "exception_list.schema.json"
KIBANA_SCHEMA_FILE = "kibana_exception.schema.json"
EXPIRY_WARNING_DAYS = 14  # an item expiring sooner is a warning (dac validate --expiry-warning-days)
# What `dac pull` writes for an item made in Kibana that has no owner, reason or description: valid
# (so the repository can describe what runs), and a warning on every validate/build until replaced.
PULL_PLACEHOLDER = "UNKNOWN"
NAMESPACE = "single"  # rule_default lists live in the rule's space


@dataclass(frozen=True)
class ExceptionList:
    """One exception list: Kibana's list body, its item bodies, and where they were written."""

    body: dict[str, Any]
    items: tuple[dict[str, Any], ...]
    positions: Positions
    items_path: DataPath  # where the item list sits in its file

    @property
    def list_id(self) -> str:
        return self.body["list_id"]

    @property
    def path(self) -> str:
        return self.positions.path

    def reference(self) -> dict[str, str]:
        """The rule's ``exceptions_list`` entry. ``id`` is the list's saved-object id, which only
        Kibana knows: ``rules/_import`` replaces it by the id of the list with this list_id
        (check_rule_exception_references.ts); a deployer calling the rules API must do the same."""
        return {
            "id": self.list_id,
            "list_id": self.list_id,
            "type": self.body["type"],
            "namespace_type": self.body["namespace_type"],
        }

    def location(self, index: int, *rest: str | int) -> Location:
        """Where item ``index`` (or a value inside it) stands in its file."""
        return self.positions.of((*self.items_path, index, *rest))

    def kibana(self) -> dict[str, Any]:
        """The build output of the list: ``{"list": ..., "items": [...]}`` (items by item_id)."""
        return {"list": self.body, "items": sorted(self.items, key=lambda i: i["item_id"])}


# --------------------------------------------------------------------------- loading


@cache
def list_schema() -> dict[str, Any]:
    """The shared-list schema; its items are defined once, in rule.schema.json."""
    return json.loads(resources.files("dac.schema").joinpath(LIST_SCHEMA_FILE).read_text("utf-8"))


@cache
def _list_validator() -> jsonschema.Draft202012Validator:
    """The list schema, its references into rule.schema.json served from the package (never fetched)."""
    import jsonschema  # imported when a shared list is read: a tenth of a second otherwise spent
    from referencing import Registry, Resource

    rule = rule_schema()
    registry: Registry = Registry().with_resource(rule["$id"], Resource.from_contents(rule))
    return jsonschema.Draft202012Validator(list_schema(), registry=registry)


def _kibana_shape() -> Callable[[Any], Any]:
    return checker(KIBANA_SCHEMA_FILE)


def load_shared_lists(detections: Path) -> tuple[dict[str, ExceptionList], list[DacError]]:
    """Every shared list under ``detections/exceptions/``, by list_id, and the problems found."""
    lists: dict[str, ExceptionList] = {}
    problems: list[DacError] = []
    for path in exception_list_files(detections):
        try:
            loaded = load_yaml(path)
        except RuleError as exc:
            problems.append(exc)
            continue
        if not isinstance(loaded.data, dict):
            problems.append(
                RuleError("expected an exception list (a YAML mapping)", Location(str(path), 1, 1))
            )
            continue
        found = located_schema_problems(_list_validator(), loaded.data, loaded.positions)
        if found:
            problems.extend(found)
            continue
        data = loaded.data
        namespace = data.get("namespace_type", "single")
        body = {
            "list_id": data["list_id"],
            "type": "detection",
            "namespace_type": namespace,
            "name": data["name"],
            "description": data["description"],
            "tags": list(data.get("tags", [])),
        }
        items = tuple(kibana_item(item, data["list_id"], namespace) for item in data["items"])
        exception_list = ExceptionList(body, items, loaded.positions, ("items",))
        first = lists.setdefault(exception_list.list_id, exception_list)
        if first is not exception_list:
            problems.append(
                RuleError(
                    f"duplicate list_id {exception_list.list_id!r} (also in {first.path})",
                    loaded.positions.of(("list_id",)),
                )
            )
    return lists, problems


def rule_default_list(rule: Rule) -> ExceptionList | None:
    """The rule's own items as its rule_default list (Kibana creates none for a new rule)."""
    items = rule.data.get("exceptions", {}).get("items")
    if not items:
        return None
    list_id = f"{rule.rule_id}-exceptions"
    body = {
        "list_id": list_id,
        "type": "rule_default",
        "namespace_type": NAMESPACE,
        "name": f"{rule.name} (rule exceptions)",
        "description": f"The rule_default exception list of rule {rule.rule_id}, kept as code.",
        "tags": [],
    }
    return ExceptionList(
        body,
        tuple(kibana_item(i, list_id, NAMESPACE) for i in items),
        rule.positions,
        ("exceptions", "items"),
    )


def kibana_item(data: Mapping[str, Any], list_id: str, namespace: str) -> dict[str, Any]:
    """One item as Kibana's create-exception-list-item body.

    ``owner`` and ``reason`` travel in ``meta`` (a free object the item schema keeps);
    ``expires`` becomes ``expire_time``; ``comments`` become ``[{comment}]``.
    """
    item: dict[str, Any] = {
        "item_id": data["item_id"],
        "list_id": list_id,
        "type": "simple",
        "namespace_type": namespace,
        "name": data["name"],
        "description": data["description"],
        "entries": [dict(entry) for entry in data["entries"]],
        "os_types": list(data.get("os_types", [])),
        "tags": list(data.get("tags", [])),
        "comments": [{"comment": text} for text in data.get("comments", [])],
        "meta": {"owner": data["owner"], "reason": data["reason"]},
    }
    if "expires" in data:
        item["expire_time"] = expire_time(data["expires"])
    return item


def expire_time(text: str) -> str:
    """``2027-05-31`` (midnight UTC) or a date-time, as Kibana's ``expire_time`` (ISO, ms, Z)."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def kibana_shape_problem(exception_list: ExceptionList) -> str | None:
    """Why the rendered list would not fit Kibana's create APIs, or None (a bug in this module)."""
    try:
        _kibana_shape()(exception_list.kibana())
    except fastjsonschema.JsonSchemaException as exc:
        return exc.message
    return None


def items_by_list(lists: Iterable[ExceptionList]) -> dict[str, list[dict[str, Any]]]:
    """list_id → item bodies: what the engines take as ``exceptions``."""
    return {lst.list_id: list(lst.items) for lst in lists}


# --------------------------------------------------------------------------- checks per rule


def rule_lists(
    rule: Rule, shared: Mapping[str, ExceptionList], problems: list[DacError]
) -> list[ExceptionList]:
    """The lists ``rule`` uses, shared ones in the order named, its own last; unknown ids reported."""
    found = []
    for i, list_id in enumerate(rule.data.get("exceptions", {}).get("lists", [])):
        if list_id in shared:
            found.append(shared[list_id])
        else:
            known = ", ".join(sorted(shared)) or "none"
            problems.append(
                RuleError(
                    f"no shared exception list {list_id!r} under detections/exceptions/ (known: {known})",
                    rule.location("exceptions", "lists", i),
                )
            )
    own = rule_default_list(rule)
    if own is not None:
        found.append(own)
    return found


def field_problems(lists: Iterable[ExceptionList], mappings: list[IndexMapping]) -> list[DacError]:
    """Every entry field must be searchable in the rule's index, as the query's fields must."""
    if not mappings:
        return []
    names = ", ".join(m.name for m in mappings)
    source = ", ".join(f"{m.package} integration {m.package_version}" for m in mappings)
    problems: list[DacError] = []
    for lst in lists:
        for i, item in enumerate(lst.items):
            for j, entry in enumerate(item["entries"]):
                if entry["type"] == "nested":
                    if not any(entry["field"] in m.nested for m in mappings):
                        problems.append(
                            RuleError(
                                f"exception field {entry['field']!r} is not a nested field in {names} "
                                f"({source}): a nested entry needs a field mapped as type nested",
                                lst.location(i, "entries", j, "field"),
                            )
                        )
                        continue
                    for k, inner in enumerate(entry["entries"]):
                        full = f"{entry['field']}.{inner['field']}"
                        problem = _field_problem(full, mappings, names, source, nested=entry["field"])
                        if problem:
                            problems.append(
                                RuleError(problem, lst.location(i, "entries", j, "entries", k, "field"))
                            )
                    continue
                problem = _field_problem(entry["field"], mappings, names, source, nested=None)
                if problem:
                    problems.append(RuleError(problem, lst.location(i, "entries", j, "field")))
    return problems


def _field_problem(
    name: str, mappings: list[IndexMapping], names: str, source: str, nested: str | None
) -> str | None:
    specs = [s for m in mappings if (s := m.field(name)) is not None]
    if not specs:
        reason = (
            "it is an object, not a field"
            if any(name in m.objects for m in mappings)
            else "the index does not map it, so the exception never matches"
        )
        return f"exception field {name!r} is not searchable in {names} ({source}): {reason}"
    inside = specs[0].nested_path
    if nested is None and inside is not None:
        return (
            f"exception field {name!r} lies inside nested field {inside!r}: only a nested entry "
            f"(type: nested, field: {inside}) can match it"
        )
    return None


def never_match_problems(
    lists: Iterable[ExceptionList], query_dsl: Mapping[str, Any] | None, mappings: list[IndexMapping]
) -> list[DacError]:
    """Warnings for items that cannot match any document the query alerts on.

    The analysis (README "Exceptions"): from the query's DSL it collects the fields the query
    pins to exact values (a conjunct ``F: v`` or ``F: (a or b)``) and the exact values it rules
    out (a conjunct ``not F: v``); an item entry on such a field is evaluated, with the DSL
    evaluator, on a document holding each value the query allows. An item none of whose
    possible values passes can never suppress an alert. It assumes one value per field, as
    audit events have; it is not a solver, so it proves only these simple contradictions. Items
    with ``os_types`` on an index mapping neither OS field never match either.
    """
    if not mappings:
        return []
    from dac.query.dsl import compile_query
    from dac.query.exception_filter import OS_FIELDS, entry_clause

    mapping = mappings[0]
    allowed, refused = pinned_values(query_dsl) if query_dsl is not None else ({}, {})
    problems: list[DacError] = []
    for lst in lists:
        for i, item in enumerate(lst.items):
            if item["os_types"] and not any(m.field(f) for m in mappings for f in OS_FIELDS):
                problems.append(
                    DacWarning(
                        f"exception item {item['item_id']!r} never matches: os_types adds a condition on "
                        f"{' or '.join(OS_FIELDS)}, which {mapping.name} does not map",
                        lst.location(i, "os_types"),
                    )
                )
                continue
            for j, entry in enumerate(item["entries"]):
                field = entry["field"]
                if entry["type"] == "nested" or (field not in allowed and field not in refused):
                    continue
                matches = compile_query(entry_clause(entry), mapping)
                refused_here = refused.get(field, set())
                candidates = allowed.get(field)
                if candidates is None:  # only refused values known: can the entry hold with another value?
                    if entry["operator"] == "included" and entry["type"] in ("match", "match_any"):
                        values = [entry["value"]] if entry["type"] == "match" else entry["value"]
                        if set(values) <= refused_here:
                            problems.append(
                                _never(
                                    item,
                                    field,
                                    f"the query excludes {_show(values)}",
                                    lst.location(i, "entries", j),
                                )
                            )
                            break
                    continue
                possible = [v for v in candidates if v not in refused_here and matches({field: v})]
                if not possible:
                    problems.append(
                        _never(
                            item,
                            field,
                            f"the rule only alerts when it is {_show(candidates)}",
                            lst.location(i, "entries", j),
                        )
                    )
                    break
    return problems


def _never(item: Mapping[str, Any], field: str, why: str, where: Location) -> DacWarning:
    return DacWarning(
        f"exception item {item['item_id']!r} can never match an alert of this rule: {why} on {field}", where
    )


def _show(values: Iterable[str]) -> str:
    return " or ".join(json.dumps(v) for v in sorted(values))


def pinned_values(dsl: Mapping[str, Any]) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """``(allowed, refused)``: per field, the exact values some conjunct of the query requires one
    of, and the exact values a negated conjunct rules out. Only necessary conditions are kept."""
    allowed: dict[str, set[str]] = {}
    refused: dict[str, set[str]] = {}

    def conjunct(clause: Any) -> None:
        equal = _equality(clause)
        if equal is not None:
            field, values = equal
            allowed[field] = allowed[field] & values if field in allowed else set(values)
            return
        body = clause.get("bool") if isinstance(clause, Mapping) and len(clause) == 1 else None
        if not isinstance(body, Mapping):
            return
        # a should beside filter/must is optional (or one more condition): nothing necessary is taken from it
        for part in [*_listed(body.get("filter")), *_listed(body.get("must"))]:
            conjunct(part)
        for part in _listed(body.get("must_not")):
            for field, values in _disjuncts(part):  # not (A or B) is not A and not B
                refused.setdefault(field, set()).update(values)

    conjunct(dsl)
    return allowed, refused


def _listed(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _disjuncts(clause: Any) -> list[tuple[str, set[str]]]:
    """The equalities among the alternatives of ``clause`` (itself, or the parts of a should-only bool)."""
    equal = _equality(clause)
    if equal is not None:
        return [equal]
    body = clause.get("bool") if isinstance(clause, Mapping) and len(clause) == 1 else None
    if not isinstance(body, Mapping) or any(body.get(k) for k in ("filter", "must", "must_not")):
        return []
    return [found for part in _listed(body.get("should")) for found in _disjuncts(part)]


def _equality(clause: Any) -> tuple[str, set[str]] | None:
    """``(field, values)`` when ``clause`` means "field equals one of values" (terms or phrases,
    possibly OR-ed in a should-only bool), else None."""
    if not isinstance(clause, Mapping) or len(clause) != 1:
        return None
    kind, body = next(iter(clause.items()))
    if kind in ("term", "match_phrase") and isinstance(body, Mapping) and len(body) == 1:
        field, spec = next(iter(body.items()))
        value = spec.get("value", spec.get("query")) if isinstance(spec, Mapping) else spec
        if isinstance(spec, Mapping) and spec.get("case_insensitive"):
            return None
        return (field, {str(value)}) if isinstance(value, str) else None
    if kind == "bool" and isinstance(body, Mapping):
        should = _listed(body.get("should"))
        if not should or any(body.get(k) for k in ("filter", "must", "must_not")):
            return None
        if body.get("minimum_should_match", 1) not in (1, "1"):
            return None
        parts = [_equality(part) for part in should]
        found = [p for p in parts if p is not None]
        if len(found) != len(parts) or len({field for field, _ in found}) != 1:
            return None
        return found[0][0], set().union(*(values for _, values in found))
    return None


# --------------------------------------------------------------------------- checks across lists


def cross_list_problems(
    lists: Iterable[ExceptionList],
    today: date | datetime | None = None,
    warning_days: int = EXPIRY_WARNING_DAYS,
) -> list[DacError]:
    """Expired and expiring items; an item_id used twice; the same item in two lists."""
    now = _moment(today)
    problems: list[DacError] = []
    ids: dict[str, tuple[ExceptionList, int]] = {}
    contents: dict[str, tuple[ExceptionList, int]] = {}
    for lst in lists:
        for i, item in enumerate(lst.items):
            first = ids.setdefault(item["item_id"], (lst, i))
            if first != (lst, i):
                problems.append(
                    RuleError(
                        f"duplicate item_id {item['item_id']!r} (also in list {first[0].list_id} at "
                        f"{first[0].location(first[1], 'item_id')}): Kibana keeps item_ids unique",
                        lst.location(i, "item_id"),
                    )
                )
            key = json.dumps([item["entries"], sorted(item["os_types"])], sort_keys=True)
            same = contents.setdefault(key, (lst, i))
            if same[0] is not lst:
                problems.append(
                    RuleError(
                        f"exception item {item['item_id']!r} repeats item "
                        f"{same[0].items[same[1]]['item_id']!r} of list {same[0].list_id} "
                        f"({same[0].location(same[1])}): keep it in one list",
                        lst.location(i, "entries"),
                    )
                )
            if "expire_time" in item:
                ends = datetime.fromisoformat(item["expire_time"].replace("Z", "+00:00"))
                if ends <= now:
                    problems.append(
                        RuleError(
                            f"exception item {item['item_id']!r} expired on {item['expire_time']}: Kibana "
                            "no longer applies it; renew it (new expires, reason) or delete it",
                            lst.location(i, "expires"),
                        )
                    )
                elif ends <= now + timedelta(days=warning_days):
                    days = (ends.date() - now.date()).days
                    problems.append(
                        DacWarning(
                            f"exception item {item['item_id']!r} expires in {days} days "
                            f"({item['expire_time']}); owner: {item['meta']['owner']}",
                            lst.location(i, "expires"),
                        )
                    )
            texts = {"owner": item["meta"]["owner"], "reason": item["meta"]["reason"],
                     "description": item["description"]}  # fmt: skip
            for key, text in texts.items():
                if text.startswith(PULL_PLACEHOLDER):
                    problems.append(
                        DacWarning(
                            f"exception item {item['item_id']!r}: {key} is the placeholder `dac pull` "
                            "wrote for an item made in Kibana; replace it with the real one",
                            lst.location(i, key),
                        )
                    )
    return problems


def _moment(today: date | datetime | None) -> datetime:
    if today is None:
        return datetime.now(UTC)
    if isinstance(today, datetime):
        return today if today.tzinfo else today.replace(tzinfo=UTC)
    return datetime(today.year, today.month, today.day, tzinfo=UTC)


def dedupe(problems: Iterable[DacError]) -> list[DacError]:
    """The same problem once (a shared list is checked for every rule that uses it)."""
    seen: set[str] = set()
    kept = []
    for problem in problems:
        if str(problem) not in seen:
            seen.add(str(problem))
            kept.append(problem)
    return kept
