"""Compiling rules: load → check → render, collecting every problem with its place.

``compile_rules`` is the one pipeline behind ``dac validate``, ``dac build``,
``dac show`` and ``dac test``: it loads each YAML file, renders its query,
parses it, checks its fields against the index mapping, resolves ATT&CK ids,
renders the Kibana object, and finally runs the checks that span rules.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from functools import cache, partial
from importlib import resources
from pathlib import Path
from typing import Any

import fastjsonschema

from dac import source_map
from dac.attack import load_attack
from dac.errors import DacError, DacWarning, Location, QueryError, RuleError
from dac.exception_lists import EXPIRY_WARNING_DAYS, ExceptionList, kibana_shape_problem
from dac.limits import MAX_QUERY_CHARS, exceeded
from dac.loader import read_text
from dac.mapping import IndexMapping, known_mappings, mapping_for_index
from dac.query import ParsedQuery, parse_query
from dac.render.environment import Templates
from dac.rules import Rule, load_rule
from dac.schema.fast import checker

RULE_TEMPLATE = "kibana/rule.j2"
KIBANA_RULE_SCHEMA = "kibana_rule.schema.json"  # the Kibana create-API shape the template must produce
RULES_PER_WORKER = 200  # below this, starting processes costs more than it saves
RULES_PER_PIECE = 50  # rules a worker compiles per task (about a quarter of a second)

# Kibana's severity bands for risk_score (Elastic's detection-rules uses the same).
SEVERITY_BANDS = {"low": (0, 21), "medium": (22, 47), "high": (48, 73), "critical": (74, 100)}
_DURATION = re.compile(r"^(?:now-)?([1-9][0-9]*)([smhd])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass
class CompiledRule:
    """A rule that passed every check, with its rendered Kibana object (without ``version``)."""

    rule: Rule
    kibana: dict[str, Any]
    exception_lists: tuple[ExceptionList, ...] = field(default=())  # the lists exceptions_list names

    @property
    def content_hash(self) -> str:
        """SHA-256 of the rendered object: what the version lock watches."""
        body = json.dumps(self.kibana, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(body.encode("utf-8")).hexdigest()

    def with_version(self, version: int) -> dict[str, Any]:
        return {**self.kibana, "version": version}

    def exception_items(self) -> dict[str, list[dict[str, Any]]]:
        """list_id → Kibana item bodies of the lists this rule uses (the engines' ``exceptions``)."""
        return {lst.list_id: list(lst.items) for lst in self.exception_lists}


def duration_seconds(text: str) -> int:
    """``5m`` or ``now-5m`` in seconds."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"not a duration: {text!r}")
    return int(match.group(1)) * _SECONDS[match.group(2)]


def _kibana_shape() -> Callable[[Any], Any]:
    return checker(KIBANA_RULE_SCHEMA)


def _kibana_shape_problem(kibana: dict[str, Any]) -> str | None:
    """Why a rendered object does not fit Kibana's create API, or None (a template bug, not the rule's)."""
    try:
        _kibana_shape()(kibana)
    except fastjsonschema.JsonSchemaException as exc:
        return exc.message
    return None


@cache
def prebuilt_rule_ids() -> dict[str, str]:
    """Elastic prebuilt rule ids (rule_id → name) that a custom rule must never take."""
    raw = json.loads(resources.files("dac.data").joinpath("elastic_prebuilt_rules.json").read_text("utf-8"))
    return raw["rules"]


def compile_rules(
    paths: Iterable[Path],
    templates: Templates,
    exceptions_dir: Path | None = None,
    *,
    today: date | None = None,
    expiry_warning_days: int = EXPIRY_WARNING_DAYS,
) -> tuple[list[CompiledRule], list[DacError]]:
    """Compile every rule file; returns the rules that passed and all problems found.

    Large rule sets are split over the machine's cores (each rule compiles on its own);
    the checks that span rules run once all are loaded. Shared exception lists come from
    ``exceptions_dir``'s ``exceptions/`` folder (the detections folder; by default the one beside
    ``templates/``). Problems include warnings (:class:`~dac.errors.DacWarning`).
    """
    from dac.exception_lists import load_shared_lists

    shared, list_problems = load_shared_lists(exceptions_dir or templates.root.parent / "detections")
    paths = list(paths)
    workers = min(os.cpu_count() or 1, len(paths) // RULES_PER_WORKER)
    with _no_cycle_collection():
        if workers > 1:
            parts = _compile_in_workers(paths, templates, shared, workers)
        else:
            parts = [_compile_files(paths, templates, shared)]
    compiled = [rule for part in parts for rule in part[0]]
    loaded = [rule for part in parts for rule in part[1]]
    problems = [*list_problems, *(problem for part in parts for problem in part[2])]
    problems.extend(_cross_rule_problems(loaded))
    problems.extend(_exception_problems(compiled, loaded, shared, today, expiry_warning_days))
    from dac.exception_lists import dedupe

    return compiled, dedupe(problems)


def _exception_problems(
    compiled: list[CompiledRule], loaded: list[Rule], shared: Mapping[str, ExceptionList], today: date | None,
    warning_days: int,
) -> list[DacError]:
    """Checks over every list in use: expiry, ids and items repeated across lists; unused shared lists.

    A list named by a rule that failed to compile is not "unused": that rule's errors say why it
    is not built, and a warning that no rule uses the list would point away from them.
    """
    from dac.errors import DacWarning
    from dac.exception_lists import cross_list_problems

    used = {lst.list_id: lst for rule in compiled for lst in rule.exception_lists}
    problems = cross_list_problems(sorted(used.values(), key=lambda lst: lst.list_id), today, warning_days)
    named = {list_id for rule in loaded for list_id in _named_lists(rule)}
    for list_id, lst in sorted(shared.items()):
        if list_id not in used and list_id not in named:
            problems.append(DacWarning(f"no rule uses exception list {list_id!r}: it is not built",
                                       lst.positions.of(("list_id",))))
    return problems


def _named_lists(rule: Rule) -> list[str]:
    """The shared list ids ``rule`` names under ``exceptions.lists`` (whether or not it compiled)."""
    exceptions = rule.data.get("exceptions")
    lists = exceptions.get("lists") if isinstance(exceptions, dict) else None
    return [name for name in lists if isinstance(name, str)] if isinstance(lists, list) else []


Compiled = tuple[list[CompiledRule], list[Rule], list[DacError]]  # what one batch of files gives


@contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """No cyclic garbage collection while compiling, and none over the results afterwards.

    Compiling leaves about three objects of cyclic garbage per rule, but the collector's passes
    over the growing results cost a fifth of the time. Afterwards the results (millions of
    objects for thousands of rules) go straight to the oldest generation: left young, the first
    collection would walk them all at once (a tenth of a second per 1,000 rules). Cyclic
    garbage among them is collected with that generation, later.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if gc.get_freeze_count() == 0:  # only when nobody else keeps objects frozen
            gc.freeze()
            gc.unfreeze()  # everything joins the oldest generation, and the young ones start empty
        if enabled:
            gc.enable()


def _compile_in_workers(
    paths: list[Path], templates: Templates, shared: Mapping[str, ExceptionList], workers: int
) -> list[Compiled]:
    """Compile ``paths`` in ``workers`` forked processes that share this process's warm state.

    The first rule compiles here, so the workers inherit its caches (parsed templates and
    macros, the mapping, schemas, ATT&CK data); they inherit ``templates`` and ``shared`` too
    (fork copies them, nothing is pickled), and receive only lists of paths.
    """
    import multiprocessing  # here, not at the top: most commands compile a few rules in-process
    from concurrent.futures import ProcessPoolExecutor

    parts = [_compile_files(paths[:1], templates, shared)]
    rest = paths[1:]
    # Many small pieces: each worker takes the next as it finishes one, so they end together
    # whatever rules cost, and the results of one piece are read here while the next compile.
    pieces = max(4 * workers, len(rest) // RULES_PER_PIECE)
    chunks = [rest[i * len(rest) // pieces : (i + 1) * len(rest) // pieces] for i in range(pieces)]
    gc.freeze()  # the workers inherit the parent's objects: no collector pass need visit them
    try:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(
            workers, mp_context=context, initializer=_adopt, initargs=(templates, shared)
        ) as pool:
            parts += pool.map(_compile_in_worker, chunks)
    finally:
        gc.unfreeze()
    return parts


_worker_state: tuple[Templates, Mapping[str, ExceptionList]] | None = None  # set in each forked worker


def _adopt(templates: Templates, shared: Mapping[str, ExceptionList]) -> None:
    global _worker_state
    _worker_state = (templates, shared)
    gc.disable()  # as in the parent while it compiles: a worker lives for one compile_rules call


def _compile_in_worker(paths: list[Path]) -> Compiled:
    assert _worker_state is not None, "runs in a worker started by _compile_in_workers"
    return _compile_files(paths, *_worker_state)


def _compile_files(
    paths: list[Path], templates: Templates, shared: Mapping[str, ExceptionList] | None = None
) -> Compiled:
    compiled: list[CompiledRule] = []
    loaded: list[Rule] = []
    problems: list[DacError] = []
    for path in paths:
        rule, found = load_rule(path)
        problems.extend(found)
        if rule is None:
            continue
        loaded.append(rule)
        result, found = compile_rule(rule, templates, shared)
        problems.extend(found)
        if result is not None:
            compiled.append(result)
    return compiled, loaded, problems


def compile_rule(
    rule: Rule, templates: Templates, shared: Mapping[str, ExceptionList] | None = None
) -> tuple[CompiledRule | None, list[DacError]]:
    from dac.exception_lists import rule_lists

    problems: list[DacError] = []
    problems.extend(_metadata_problems(rule))
    threat = _threat(rule, problems)
    parsed = _query(rule, templates, problems)
    lists = rule_lists(rule, shared or {}, problems)
    mappings: list[IndexMapping] = []
    required_fields: list[dict[str, str]] = []
    if parsed is not None:
        problems.extend(_placed(p, rule, templates, parsed.text) for p in _catalogue_problems(rule, parsed))
        mappings = _mappings(rule, parsed, problems)
        found: list[DacError] = []
        required_fields = _required_fields(rule, parsed, mappings, found)
        problems.extend(
            _placed(p, rule, templates, parsed.text) if isinstance(p, QueryError) else p for p in found
        )
        problems.extend(_exception_checks(lists, parsed, mappings))
    warnings = [p for p in problems if isinstance(p, DacWarning)]
    problems = [p for p in problems if not isinstance(p, DacWarning)]
    context = {"rule": rule.data}
    texts = {}
    for key in ("note", "setup"):
        if key in rule.data:
            try:
                texts[key] = templates.render_string(rule.data[key], context, partial(rule.location, key))
            except RuleError as exc:
                problems.append(exc)
    if problems or parsed is None:
        return None, problems + warnings
    try:
        kibana = templates.render_file(
            RULE_TEMPLATE,
            {
                **context,
                "query": parsed.text,
                "threat": threat,
                "required_fields": required_fields,
                "note": texts.get("note"),
                "setup": texts.get("setup"),
                "exceptions_list": [lst.reference() for lst in lists],
                "version": None,
            },
            partial(Location, str(rule.path), 1, 1),
            native=True,
        )
    except RuleError as exc:
        return None, [exc, *warnings]
    refused = _kibana_shape_problem({**kibana, "version": 1}) if isinstance(kibana, dict) else "not a mapping"
    if refused:
        return None, [
            RuleError(
                f"templates/{RULE_TEMPLATE} rendered a rule Kibana would refuse: {refused}",
                Location(str(rule.path), 1, 1),
            )
        ]
    kibana.pop("version")
    for lst in lists:
        refused = kibana_shape_problem(lst)
        if refused:
            message = f"exception list {lst.list_id} rendered in a shape Kibana would refuse: {refused}"
            return None, [RuleError(message, Location(lst.path, 1, 1))]
    return CompiledRule(rule, kibana, tuple(lists)), warnings


def _exception_checks(
    lists: list[ExceptionList], parsed: ParsedQuery, mappings: list[IndexMapping]
) -> list[DacError]:
    """Entry fields against the index mapping; items the query makes unreachable (KQL rules)."""
    from dac.exception_lists import field_problems, never_match_problems

    if not lists:
        return []
    problems = field_problems(lists, mappings)
    if problems or parsed.language != "kuery" or not mappings:
        return problems
    from dac.query.kql import to_dsl

    return never_match_problems(lists, to_dsl(parsed.tree, mappings[0]), mappings)


def render_query_text(rule: Rule, templates: Templates) -> str:
    """The rule's query after Jinja: inline text, or a template under templates/queries/."""
    query = rule.data["query"]
    context = {"rule": rule.data}
    if isinstance(query, str):
        return templates.render_string(query, context, partial(rule.location, "query")).strip()
    context.update(query.get("vars", {}))
    where = partial(rule.location, "query", "template")
    return templates.render_file(query["template"], context, where).strip()


def _query(rule: Rule, templates: Templates, problems: list[DacError]) -> ParsedQuery | None:
    text = ""
    try:
        text = render_query_text(rule, templates)
        if not text:
            raise RuleError(
                "the query renders to nothing (Kibana would match every event)", rule.location("query")
            )
        if len(text) > MAX_QUERY_CHARS:
            limit = exceeded(f"the rendered query ({len(text):,} characters)", MAX_QUERY_CHARS, "characters",
                             "MAX_QUERY_CHARS")
            raise RuleError(limit, rule.location("query"))
        return parse_query(rule.language, text)
    except QueryError as exc:
        problems.append(_placed(exc, rule, templates, text))
    except RuleError as exc:
        problems.append(exc)
    return None


def _placed(exc: QueryError, rule: Rule, templates: Templates, rendered: str) -> QueryError:
    """The error at its token's place in the rule file, or in the query template (naming the rule).

    Falls back to the query's own place when the token cannot be found (see dac.source_map);
    the message keeps the position inside the rendered query either way.
    """
    if exc.location is None and exc.query_line is not None and rendered:
        query = rule.data["query"]
        column = exc.query_column or 1
        if isinstance(query, str):
            exc.location = source_map.in_rule(rule, rendered, exc.query_line, column)
        else:
            text = read_text(templates.root / query["template"])
            found = source_map.in_template(
                text, templates.display(query["template"]), rendered, exc.query_line, column
            )
            if found is not None:
                exc.location = found
                exc.message += f" (rendered for {rule.location('query', 'template')})"
    return exc.at(rule.location("query"))


def _catalogue_problems(rule: Rule, parsed: ParsedQuery) -> list[QueryError]:
    """Functions the query language does not have, or not yet at the rule's min_stack_version."""
    if parsed.language == "esql":
        from dac.query.esql import catalogue

        return catalogue.check(parsed.tree, rule.data.get("min_stack_version"))
    if parsed.language == "eql":
        from dac.query import eql_query

        return eql_query.unknown_functions(parsed.tree)
    return []  # KQL has no functions, and no KQL syntax differs between 9.x versions


def _metadata_problems(rule: Rule) -> list[DacError]:
    problems: list[DacError] = []
    low, high = SEVERITY_BANDS[rule.data["severity"]]
    score = rule.data["risk_score"]
    if not low <= score <= high:
        problems.append(
            RuleError(
                f"risk_score {score} does not fit severity {rule.data['severity']!r} ({low}-{high})",
                rule.location("risk_score"),
            )
        )
    interval = duration_seconds(rule.data["interval"])
    lookback = duration_seconds(rule.data["from"])
    if lookback < interval:
        problems.append(
            RuleError(
                f"from {rule.data['from']!r} looks back less than the interval {rule.data['interval']!r}: "
                "events between runs would never be searched",
                rule.location("from"),
            )
        )
    outcomes = [scenario["expect"]["alerts"] > 0 for scenario in rule.tests]
    if not (any(outcomes) and not all(outcomes)):
        problems.append(
            RuleError(
                "tests need at least one scenario that raises alerts and one that must stay silent",
                rule.location("tests"),
            )
        )
    return problems


def _threat(rule: Rule, problems: list[DacError]) -> list[dict[str, Any]]:
    """Kibana's ``threat`` block from ATT&CK ids, names and references filled in from ATT&CK data."""
    attack = load_attack()
    blocks = []
    for i, entry in enumerate(rule.data.get("threat", [])):
        tactic = attack.tactics.get(entry["tactic"])
        if tactic is None:
            problems.append(
                RuleError(
                    f"unknown ATT&CK tactic {entry['tactic']} (ATT&CK v{attack.version})",
                    rule.location("threat", i, "tactic"),
                )
            )
            continue
        techniques: dict[str, dict[str, Any]] = {}
        for j, technique_id in enumerate(entry.get("techniques", [])):
            data_path = ("threat", i, "techniques", j)
            technique = attack.techniques.get(technique_id)
            if technique is None:
                problems.append(
                    RuleError(
                        f"unknown ATT&CK technique {technique_id} (ATT&CK v{attack.version})",
                        rule.location(*data_path),
                    )
                )
                continue
            if technique.deprecated:
                problems.append(
                    RuleError(f"ATT&CK technique {technique_id} is deprecated", rule.location(*data_path))
                )
                continue
            if tactic.id not in technique.tactics:
                belongs = ", ".join(f"{t} {attack.tactics[t].name}" for t in technique.tactics)
                problems.append(
                    RuleError(
                        f"{technique_id} {technique.name} is not a technique of {tactic.id} {tactic.name} "
                        f"(it belongs to {belongs})",
                        rule.location(*data_path),
                    )
                )
                continue
            parent_id = technique.parent or technique.id
            parent = attack.techniques[parent_id]
            block = techniques.setdefault(
                parent_id, {"id": parent.id, "name": parent.name, "reference": parent.reference}
            )
            if technique.parent:
                block.setdefault("subtechnique", []).append(
                    {"id": technique.id, "name": technique.name, "reference": technique.reference}
                )
        blocks.append(
            {
                "framework": "MITRE ATT&CK",
                "tactic": {"id": tactic.id, "name": tactic.name, "reference": tactic.reference},
                "technique": list(techniques.values()),
            }
        )
    return blocks


def _mappings(rule: Rule, parsed: ParsedQuery, problems: list[DacError]) -> list[IndexMapping]:
    """The field mapping behind each index pattern the rule reads."""
    if parsed.indices is not None:
        patterns: list[tuple[str, tuple[str | int, ...]]] = [(p, ("query",)) for p in parsed.indices]
    else:
        patterns = [(p, ("index", i)) for i, p in enumerate(rule.data["index"])]
    found = []
    for pattern, data_path in patterns:
        mapping = mapping_for_index(pattern)
        if mapping is None:
            known = ", ".join(p for m in known_mappings() for p in m.index_patterns)
            problems.append(
                RuleError(
                    f"no field mapping is known for index pattern {pattern!r} (known: {known}); "
                    "add the data stream's mapping under tooling/dac/data/mappings/",
                    rule.location(*data_path),
                )
            )
        elif mapping not in found:
            found.append(mapping)
    return found


def _required_fields(
    rule: Rule, parsed: ParsedQuery, mappings: list[IndexMapping], problems: list[DacError]
) -> list[dict[str, str]]:
    """Every field the query reads must be mapped; their types become ``required_fields``."""
    if not mappings:
        return []
    types: dict[str, str] = {}
    named = Counter(ref.name for ref in parsed.fields)
    reported: set[str] = set()
    for ref in parsed.fields:
        if ref.name in reported:
            continue
        specs = [
            s
            for m in mappings
            for s in (m.matching_fields(ref.name) if "*" in ref.name else [m.field(ref.name)])
            if s is not None
        ]
        if not specs:
            source = ", ".join(f"{m.package} integration {m.package_version}" for m in mappings)
            reason = (
                "it is an object, not a field"
                if any(ref.name in m.objects for m in mappings)
                else ("the index does not map it, so a query on it never matches")
            )
            times = f" (named {named[ref.name]} times, first here)" if named[ref.name] > 1 else ""
            problems.append(
                QueryError(
                    f"field {ref.name!r} is not searchable in {_names(mappings)} ({source}): {reason}{times}",
                    ref.line,
                    ref.column,
                )
            )
            reported.add(ref.name)
            continue
        for spec in specs:
            types[spec.name] = spec.type
    declared = rule.data.get("required_fields")
    if declared is None:
        return [{"name": name, "type": kind} for name, kind in sorted(types.items())]
    for i, entry in enumerate(declared):
        actual = next((s for m in mappings if (s := m.field(entry["name"]))), None)
        if actual is None or actual.type != entry["type"]:
            got = "unmapped" if actual is None else actual.type
            problems.append(
                RuleError(
                    f"required field {entry['name']!r} is declared {entry['type']!r}, the mapping says {got}",
                    rule.location("required_fields", i),
                )
            )
    return declared


def _names(mappings: list[IndexMapping]) -> str:
    return ", ".join(m.name for m in mappings)


def _cross_rule_problems(rules: list[Rule]) -> list[DacError]:
    problems: list[DacError] = []
    prebuilt = prebuilt_rule_ids()
    seen: dict[tuple[str, str], Rule] = {}
    for rule in rules:
        if rule.rule_id in prebuilt:
            problems.append(
                RuleError(
                    f"rule_id {rule.rule_id} belongs to Elastic's prebuilt rule {prebuilt[rule.rule_id]!r}: "
                    "Kibana would import this as an immutable prebuilt rule; generate a new UUID",
                    rule.location("rule_id"),
                )
            )
        for key in ("rule_id", "name"):
            value = rule.data[key]
            first = seen.setdefault((key, value), rule)
            if first is not rule:
                problems.append(
                    RuleError(
                        f"duplicate {key} {value!r} (also in {first.location(key)})", rule.location(key)
                    )
                )
    return problems
