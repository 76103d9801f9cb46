"""BASE against HEAD, rule by rule: classification by rule_id, field diffs, causes, flags.

Reads compiled rules (the rendered Kibana objects and the rule files they came from), never
renders anything itself; the field diff is ``dac.objectdiff``, shared with the deploy plan.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any

import jinja2
from jinja2 import meta

from dac.compile import CompiledRule
from dac.objectdiff import field_changes
from dac.query import parse_query
from dac.review.model import FieldDiff, Flag, RuleDiff
from dac.review.sides import Side

SEVERITY_ORDER = ("low", "medium", "high", "critical")
_DATA_REFERENCE = re.compile(r"\bdata\s*(?:\.\s*(\w+)|\[\s*[\"'](\w+)[\"']\s*\])")
_RULE_TEMPLATE = "kibana/rule.j2"


def compare(base: Side, head: Side) -> list[RuleDiff]:
    """One entry per rule_id on either side, ordered by status then name."""
    changed_files = changed_shared_files(base, head)
    diffs = []
    for rule_id in sorted(base.rules.keys() | head.rules.keys()):
        old, new = base.rules.get(rule_id), head.rules.get(rule_id)
        if new is None:
            assert old is not None
            diff = RuleDiff(
                rule_id,
                old.rule.name,
                "removed",
                base_path=base.relative(old.rule.path),
                base_name=old.rule.name,
                base_version=base.version_of(rule_id),
            )
            if base.lock is not None and rule_id in base.lock.entries:
                diff.flags.append(
                    Flag(
                        "deployed-rule-removed",
                        (
                            f"deployed from BASE (version {base.lock.entries[rule_id].version}): a deploy "
                            "leaves it in Kibana unless told to prune rules the repository no longer has"
                        ),
                    )
                )
        elif old is None:
            diff = RuleDiff(
                rule_id,
                new.rule.name,
                "added",
                head_path=head.relative(new.rule.path),
                head_version=head.version_of(rule_id),
            )
            _version_flag(diff, None, new, base, head)
        else:
            diff = _modified(old, new, base, head, changed_files)
        diffs.append(diff)
    order = {"added": 0, "modified": 1, "renamed": 2, "removed": 3, "unchanged": 4}
    return sorted(diffs, key=lambda d: (order[d.status], d.name, d.rule_id))


def changed_shared_files(base: Side, head: Side) -> list[str]:
    """Files under templates/ whose content differs between the sides (added and removed too)."""
    names = {n for n in base.files.keys() | head.files.keys() if n.startswith("templates/")}
    return sorted(n for n in names if base.files.get(n) != head.files.get(n))


def _modified(
    old: CompiledRule, new: CompiledRule, base: Side, head: Side, changed_files: list[str]
) -> RuleDiff:
    rule_id = new.rule.rule_id
    base_path, head_path = base.relative(old.rule.path), head.relative(new.rule.path)
    changes = field_changes(old.kibana, new.kibana)
    status = "modified" if changes else ("renamed" if base_path != head_path else "unchanged")
    diff = RuleDiff(
        rule_id,
        new.rule.name,
        status,
        base_path=base_path,
        head_path=head_path,
        base_name=old.rule.name,
        base_version=base.version_of(rule_id),
        head_version=head.version_of(rule_id),
        fields=[
            FieldDiff(c.field, c.before, c.after, c.unified_diff("BASE", "HEAD") if c.is_text else None)
            for c in changes
        ],
    )
    if changes:
        own = _without_tests(old.rule.data) != _without_tests(new.rule.data)  # a test edit renders nothing
        diff.causes = ([head_path] if own else []) + _shared_causes(old, new, base, head, changed_files)
        _version_flag(diff, old, new, base, head)
        diff.flags.extend(_content_flags(old, new))
    diff.flags.extend(_test_flags(old, new))
    return diff


def _without_tests(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != "tests"}


def _version_flag(
    diff: RuleDiff, old: CompiledRule | None, new: CompiledRule, base: Side, head: Side
) -> None:
    assert head.lock is not None
    entry = head.lock.entries.get(new.rule.rule_id)
    before = base.lock.entries.get(new.rule.rule_id) if base.lock is not None and old is not None else None
    if entry is None:
        diff.flags.append(
            Flag(
                "missing-version-bump",
                "not in the version lock: run `dac build` and commit detections/version.lock.json",
            )
        )
    elif not head.lock.is_current(new) or (before is not None and entry.version <= before.version):
        locked = f"version {entry.version}" + (
            ", as at BASE" if before and entry.version <= before.version else ""
        )
        diff.flags.append(
            Flag(
                "missing-version-bump",
                f"the rendered rule changed but the lock still says "
                f"{locked}: run `dac build` and commit the lock",
            )
        )


def _content_flags(old: CompiledRule, new: CompiledRule) -> list[Flag]:
    flags = []
    a, b = old.kibana, new.kibana
    if a["severity"] != b["severity"]:
        raised = SEVERITY_ORDER.index(b["severity"]) > SEVERITY_ORDER.index(a["severity"])
        flags.append(
            Flag(
                "severity-raised" if raised else "severity-lowered",
                f"severity {a['severity']} → {b['severity']}",
            )
        )
    if a["risk_score"] != b["risk_score"]:
        raised = b["risk_score"] > a["risk_score"]
        flags.append(
            Flag(
                "risk-raised" if raised else "risk-lowered",
                f"risk_score {a['risk_score']} → {b['risk_score']}",
            )
        )
    if a.get("enabled") != b.get("enabled"):
        flags.append(Flag("enabled-flipped", f"enabled {a.get('enabled')} → {b.get('enabled')}"))
    before, after = index_patterns(old), index_patterns(new)
    if before != after:
        wider = [p for p in after if not _covered(p, before)]
        narrower = [p for p in before if not _covered(p, after)]
        if wider:
            flags.append(Flag("index-widened", "now also reads " + ", ".join(f"`{p}`" for p in wider)))
        if narrower:
            flags.append(Flag("index-narrowed", "no longer reads " + ", ".join(f"`{p}`" for p in narrower)))
    if a.get("threat") != b.get("threat"):
        flags.append(Flag("attack-changed", f"ATT&CK {_attack_ids(a)} → {_attack_ids(b)}"))
    old_stack, new_stack = old.rule.data.get("min_stack_version"), new.rule.data.get("min_stack_version")
    if old_stack and new_stack and _version_tuple(new_stack) > _version_tuple(old_stack):
        flags.append(Flag("min-stack-raised", f"min_stack_version {old_stack} → {new_stack}"))
    return flags


def _test_flags(old: CompiledRule, new: CompiledRule) -> list[Flag]:
    """Scenarios removed (by name), or a same-named scenario whose expectation was loosened."""
    before = {t["name"]: t for t in old.rule.tests}
    after = {t["name"]: t for t in new.rule.tests}
    flags = []
    gone = [name for name in before if name not in after]
    if gone or len(after) < len(before):
        names = ", ".join(f"“{n}”" for n in gone)
        flags.append(
            Flag(
                "tests-removed",
                f"{len(before)} → {len(after)} scenarios" + (f"; removed {names}" if names else ""),
            )
        )
    for name, scenario in before.items():
        if name not in after:
            continue
        reasons = _loosened(scenario, after[name])
        if reasons:
            flags.append(Flag("tests-weakened", f"“{name}”: " + "; ".join(reasons)))
    return flags


def _loosened(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    reasons = []
    old_fields, new_fields = old["expect"].get("fields", {}), new["expect"].get("fields", {})
    for key, value in old_fields.items():
        if key not in new_fields:
            reasons.append(f"no longer checks {key}")
        elif new_fields[key] != value:
            reasons.append(f"expects {key} {new_fields[key]!r} instead of {value!r}")
    if old["expect"]["alerts"] != new["expect"]["alerts"] and old["events"] == new["events"]:
        reasons.append(
            f"expects {new['expect']['alerts']} alerts instead of {old['expect']['alerts']} "
            "from the same events"
        )
    return reasons


def index_patterns(rule: CompiledRule) -> list[str]:
    """The index patterns a rule reads: ``index``, or the FROM of an ES|QL query."""
    if "index" in rule.kibana:
        return list(rule.kibana["index"])
    parsed = parse_query(rule.kibana["language"], rule.kibana["query"])
    return list(parsed.indices or [])


def _covered(pattern: str, patterns: list[str]) -> bool:
    return any(pattern == p or fnmatch.fnmatchcase(pattern, p) for p in patterns)


def _attack_ids(kibana: dict[str, Any]) -> str:
    ids = []
    for block in kibana.get("threat", []):
        ids.append(block["tactic"]["id"])
        for technique in block.get("technique", []):
            ids.append(technique["id"])
            ids.extend(s["id"] for s in technique.get("subtechnique", []))
    return ", ".join(ids) or "none"


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", str(text)))


def _shared_causes(
    old: CompiledRule, new: CompiledRule, base: Side, head: Side, changed_files: list[str]
) -> list[str]:
    """The changed shared files either version of the rule reads (templates, macros, data)."""
    if not changed_files:
        return []
    read: set[str] = set()
    for side, rule in ((base, old), (head, new)):
        if side.templates is not None:
            read |= files_read(rule, side.templates.text)
    return [f for f in changed_files if f in read or "templates/*" in read]


def files_read(rule: CompiledRule, env: jinja2.Environment) -> set[str]:
    """Every ``templates/…`` file rendering this rule reads, as Jinja's own parser sees it.

    Templates named at run time (a variable ``include``) cannot be known: then every template
    counts (``templates/*``).
    """
    data = rule.rule.data
    query = data["query"]
    texts = [data.get("note") or "", data.get("setup") or ""]
    pending = [_RULE_TEMPLATE]
    if isinstance(query, str):
        texts.append(query)
    else:
        pending.append(query["template"])
    read: set[str] = set()
    for text in texts:
        pending.extend(_referenced(env, text, read))
    while pending:
        name = pending.pop()
        if f"templates/{name}" in read:
            continue
        read.add(f"templates/{name}")
        try:
            text = env.loader.get_source(env, name)[0] if env.loader else ""
        except jinja2.TemplateNotFound:
            continue
        texts.append(text)
        pending.extend(_referenced(env, text, read))
    for text in texts:
        for match in _DATA_REFERENCE.finditer(text):
            stem = match.group(1) or match.group(2)
            read.update({f"templates/data/{stem}.yml", f"templates/data/{stem}.yaml"})
    return read


def _referenced(env: jinja2.Environment, text: str, read: set[str]) -> list[str]:
    try:
        names = list(meta.find_referenced_templates(env.parse(text)))
    except jinja2.TemplateSyntaxError:
        return []
    if any(n is None for n in names):
        read.add("templates/*")
    return [n for n in names if n is not None]
