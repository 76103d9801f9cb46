"""``dac pull``: custom rules that live in Kibana, written as rule files in our format.

Kibana's rule object is turned back into the rule file's fields (ATT&CK blocks become ids,
Kibana's own and filled-in fields are dropped, this tool's ownership marks removed) and then
checked the only way that counts: the file is compiled like any rule and must render exactly
the object Kibana holds. A field our format cannot express is an error naming it, never dropped.

- A rule the repository already has (same rule_id): only the top-level keys whose rendered value
  differs are rewritten in its file; everything else, templates, comments and tests included,
  stays byte for byte. Pulling a rule edited in the Kibana UI brings exactly that edit in.
- A new rule: a new file in ``detections/<domain>/`` with the schema modeline and literal
  queries; it still needs test scenarios before ``dac build`` accepts it, and the file says so.
The version lock records Kibana's version of each pulled rule, so the next build renders the
very object Kibana has.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dac.compile import CompiledRule, compile_rule
from dac.deploy.ownership import comparable, unstamped
from dac.errors import DacError
from dac.files import write_atomic
from dac.lock import LockEntry, VersionLock
from dac.objectdiff import field_changes
from dac.project import Project
from dac.render.environment import Templates
from dac.rules import Rule, load_rule

# The rule file's keys that Kibana's object carries under the same name, in the order files use.
FILE_KEYS = (
    "rule_id", "name", "description", "type", "language", "index", "query", "severity", "risk_score",
    "interval", "from", "max_signals", "enabled", "author", "license", "tags", "references",
    "false_positives", "threat", "related_integrations", "required_fields", "note", "setup",
    "threshold", "new_terms_fields", "history_window_start",
)  # fmt: skip
JINJA_TEXT_KEYS = ("query", "note", "setup")  # rendered through Jinja: literal text is escaped
FIXED = {"to": "now"}  # the template writes these; another value cannot be expressed
SCHEMA_PATH = "tooling/dac/schema/rule.schema.json"
_JINJA = re.compile(r"\{[{%#]")
_CHECK_TESTS = (
    "tests:\n"
    "  - {name: pull check alerts, events: [{raw: {}}], expect: {alerts: 1}}\n"
    "  - {name: pull check silent, events: [{raw: {}}], expect: {alerts: 0}}\n"
)


@dataclass(frozen=True)
class Pulled:
    rule_id: str
    name: str
    path: Path
    state: str  # "created", "updated", "unchanged"
    fields: tuple[str, ...] = ()  # the top-level keys written


def is_custom(rule: Mapping[str, Any]) -> bool:
    source = rule.get("rule_source") or {}
    return source.get("type", "internal") == "internal" and not rule.get("immutable")


def pull_rules(
    kibana_rules: Sequence[Mapping[str, Any]],
    compiled: Sequence[CompiledRule],
    project: Project,
    overrides: Mapping[str, Any],
) -> list[Pulled]:
    """Write each rule into the repository; all problems are raised together, nothing half-written."""
    templates = Templates(project.templates)
    existing = {c.rule.rule_id: c for c in compiled}
    lock = VersionLock.load(project.lock)
    plans: list[tuple[Mapping[str, Any], Path, str, CompiledRule]] = []
    problems: list[str] = []
    for rule in kibana_rules:
        have = existing.get(rule["rule_id"])
        try:
            target = _target(rule)
            for key, value in overrides.items():  # undo the environment's overrides: the file's value stays
                if have is not None and target.get(key) == value and key in have.kibana:
                    target[key] = have.kibana[key]
            data = rule_data(target)
            if have is not None:
                path, text = have.rule.path, _edit_file(have, target, data)
            else:
                path = _new_path(project, data, {c.rule.path for c in compiled})
                text = new_file_text({k: v for k, v in data.items() if k != "required_fields"}, path, project)
            try:
                checked = _check(text, path, target, templates)
            except DacError:
                if "required_fields" not in data:
                    raise
                # the fields Kibana lists are not the ones the query reads: declare them
                text = replace_key(text, "required_fields", data["required_fields"])
                checked = _check(text, path, target, templates)
        except DacError as exc:
            problems.append(f"{rule.get('name')} ({rule['rule_id']}): {exc.message}")
            continue
        plans.append((rule, path, text, checked))
    if problems:
        raise DacError("cannot pull: " + "; ".join(problems))
    results = []
    entries = dict(lock.entries)
    for rule, path, text, checked in plans:
        before = path.read_text("utf-8") if path.exists() else None
        state = "unchanged" if before == text else ("updated" if before is not None else "created")
        if state != "unchanged":
            write_atomic(path, text)
        version = int(rule.get("version", 1))
        locked = entries.get(rule["rule_id"])
        if locked is not None and locked.sha256 != checked.content_hash:
            version = max(version, locked.version + 1)  # new content, new version, as `dac build` does
        entries[rule["rule_id"]] = LockEntry(rule["name"], version, checked.content_hash)
        written = tuple(_changed_keys(before, text)) if before is not None else ()
        results.append(Pulled(rule["rule_id"], rule["name"], path, state, written))
    VersionLock(lock.path, entries).write()
    return results


def _target(rule: Mapping[str, Any]) -> dict[str, Any]:
    """The Kibana object as the repository's build would render it (marks and Kibana's fields gone)."""
    plain = unstamped(rule)
    if plain.get("meta"):
        raise DacError("field 'meta' (other than this tool's mark) cannot be expressed in a rule file")
    return {**comparable(plain), "version": rule.get("version", 1)}


def rule_data(target: Mapping[str, Any]) -> dict[str, Any]:
    """The rule file's fields for ``target``; an inexpressible field is a DacError naming it."""
    extra = sorted(k for k in target if k not in FILE_KEYS and k not in FIXED and k != "version")
    if extra:
        raise DacError(f"field {', '.join(repr(k) for k in extra)} cannot be expressed in a rule file")
    for key, value in FIXED.items():
        if target.get(key, value) != value:
            raise DacError(f"field {key!r} is {target[key]!r}; rule files always render {value!r}")
    data = {key: target[key] for key in FILE_KEYS if key in target}
    if "threat" in data:
        data["threat"] = [_threat_ids(block) for block in data["threat"]]
    for key in JINJA_TEXT_KEYS:
        if isinstance(data.get(key), str) and _JINJA.search(data[key]):
            data[key] = "{% raw %}" + data[key] + "{% endraw %}"
    return data


def _threat_ids(block: Mapping[str, Any]) -> dict[str, Any]:
    techniques = []
    for technique in block.get("technique") or []:
        subs = [s["id"] for s in technique.get("subtechnique") or []]
        techniques.extend(subs or [technique["id"]])
    entry: dict[str, Any] = {"tactic": block["tactic"]["id"]}
    if techniques:
        entry["techniques"] = techniques
    return entry


def _check(text: str, path: Path, target: Mapping[str, Any], templates: Templates) -> CompiledRule:
    """Compile ``text`` as a rule and require it to render exactly ``target``."""
    if not re.search(r"^tests:", text, re.M):
        text += _CHECK_TESTS  # only for this check: the scenarios are the author's to write
    with tempfile.TemporaryDirectory() as scratch:
        probe = Path(scratch) / path.name
        probe.write_text(text, "utf-8")
        rule, problems = load_rule(probe)
        compiled = None
        if rule is not None:
            rule = Rule(path, rule.data, rule.positions)
            compiled, problems = compile_rule(rule, templates)  # type: ignore[assignment]
    if compiled is None:
        raise DacError("the pulled rule does not compile: " + "; ".join(p.message for p in problems))
    rendered = compiled.with_version(int(target.get("version", 1)))
    differences = field_changes(target, rendered)
    if differences:
        names = ", ".join(repr(c.field) for c in differences)
        raise DacError(f"field {names} cannot be expressed in a rule file as Kibana holds it")
    return compiled


def _edit_file(have: CompiledRule, target: Mapping[str, Any], data: Mapping[str, Any]) -> str:
    """The rule's file with only the keys whose rendered value differs from Kibana's rewritten."""
    changed = {c.field for c in field_changes(have.kibana, target, ignore=frozenset({"version"}))}
    if "required_fields" not in have.rule.data and "query" in changed:
        changed.discard("required_fields")  # derived from the query: the rebuild works it out
    text = have.rule.positions.text
    for key in (k for k in FILE_KEYS if k in changed):
        text = replace_key(text, key, data.get(key))
    return text


def replace_key(text: str, key: str, value: Any) -> str:
    """``text`` with the top-level ``key`` block replaced by ``value`` (removed when None), in place."""
    lines = text.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if re.match(r"[A-Za-z_][A-Za-z0-9_]*:", line)]
    mine = next((i for i in starts if lines[i].startswith(f"{key}:")), None)
    block = [] if value is None else dump_fields({key: value}).splitlines(keepends=True)
    if mine is None:
        before = next((i for i in starts if lines[i].startswith("tests:")), len(lines))
        return "".join(lines[:before] + block + lines[before:])
    end = next((i for i in starts if i > mine), len(lines))
    while end - 1 > mine and (not lines[end - 1].strip() or lines[end - 1].lstrip().startswith("#")):
        end -= 1  # blank lines and comments before the next key belong to it
    return "".join(lines[:mine] + block + lines[end:])


def _changed_keys(before: str, after: str) -> list[str]:
    old = yaml.safe_load(before) or {}
    new = yaml.safe_load(after) or {}
    return [k for k in new.keys() | old.keys() if old.get(k) != new.get(k)]


def _new_path(project: Project, data: Mapping[str, Any], taken: set[Path]) -> Path:
    domain = next(
        (t.split(":", 1)[1].strip() for t in data.get("tags", []) if t.lower().startswith("domain:")),
        "custom",
    )
    folder = project.detections / _slug(domain)
    stem = _slug(data["name"])[:80] or data["rule_id"]
    path = folder / f"{stem}.yml"
    n = 2
    while path in taken or (path.exists() and data["rule_id"] not in path.read_text("utf-8")):
        path = folder / f"{stem}_{n}.yml"
        n += 1
    return path


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def new_file_text(data: Mapping[str, Any], path: Path, project: Project) -> str:
    root = project.detections.resolve().parent
    depth = len(path.resolve().parent.relative_to(root).parts)
    schema = "../" * depth + SCHEMA_PATH
    return (
        f"# yaml-language-server: $schema={schema}\n"
        + dump_fields(data)
        + "# Pulled from Kibana by `dac pull`. Add test scenarios (at least one that alerts and one\n"
        "# that stays silent) under `tests:`; `dac validate` refuses the rule until then.\n"
    )


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump_fields(data: Mapping[str, Any]) -> str:
    """Top-level keys in the given order; multi-line text as literal blocks (queries stay literal)."""
    out = []
    for key, value in data.items():
        if key == "query" and isinstance(value, str) and "\n" not in value:
            value = value + "\n"  # a block literal keeps a query readable; the renderer strips it
        out.append(yaml.dump({key: value}, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100))
    return "".join(out)
