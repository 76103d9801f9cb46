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

Exceptions come along: the items of a rule's ``rule_default`` list become the file's
``exceptions.items``, a ``detection`` list becomes ``detections/exceptions/<list_id>.yml`` (named in
``exceptions.lists``). ``meta.owner``/``meta.reason`` become ``owner``/``reason``; an item made in
Kibana has neither, so pull writes values starting with ``UNKNOWN`` that say so, and validation
warns about them until a person replaces them (see ``exception_lists.PULL_PLACEHOLDER``). A
value-list entry (type ``list``) cannot be expressed: an error naming the item.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import yaml

from dac.compile import CompiledRule, compile_rule
from dac.deploy.ownership import MANAGED_TAG, META_KEY, comparable, unstamped
from dac.errors import DacError
from dac.exception_lists import PULL_PLACEHOLDER, load_shared_lists
from dac.files import write_atomic
from dac.loader import EXCEPTIONS_DIR
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
LIST_SCHEMA_PATH = "tooling/dac/schema/exception_list.schema.json"
ITEM_KEYS = ("item_id", "name", "description", "owner", "reason", "expires", "os_types", "tags", "comments",
             "entries")  # fmt: skip
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
    exceptions: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Pulled]:
    """Write each rule into the repository; all problems are raised together, nothing half-written.

    ``exceptions``: the rules' exception lists as Kibana holds them, by list_id: ``{"list": <list or
    None>, "items": [...]}``."""
    templates = Templates(project.templates)
    existing = {c.rule.rule_id: c for c in compiled}
    lock = VersionLock.load(project.lock)
    plans: list[tuple[Mapping[str, Any], Path, str, CompiledRule]] = []
    problems: list[str] = []
    list_files: dict[Path, str] = {}
    for rule in kibana_rules:
        have = existing.get(rule["rule_id"])
        try:
            target = _target(rule)
            for key, value in overrides.items():  # undo the environment's overrides: the file's value stays
                if have is not None and target.get(key) == value and key in have.kibana:
                    target[key] = have.kibana[key]
            data = rule_data(target)
            rule_exceptions, shared = exceptions_data(target, exceptions or {}, project)
            if rule_exceptions:
                data["exceptions"] = rule_exceptions
            list_files.update(shared)
            if have is not None:
                path, text = have.rule.path, _edit_file(have, target, data)
            else:
                path = _new_path(project, data, {c.rule.path for c in compiled})
                text = new_file_text({k: v for k, v in data.items() if k != "required_fields"}, path, project)
            try:
                checked = _check(text, path, target, templates, project, list_files)
            except DacError:
                if "required_fields" not in data:
                    raise
                # the fields Kibana lists are not the ones the query reads: declare them
                text = replace_key(text, "required_fields", data["required_fields"])
                checked = _check(text, path, target, templates, project, list_files)
        except DacError as exc:
            problems.append(f"{rule.get('name')} ({rule['rule_id']}): {exc.message}")
            continue
        plans.append((rule, path, text, checked))
    if problems:
        raise DacError("cannot pull: " + "; ".join(problems))
    results = []
    for path, text in list_files.items():
        before = path.read_text("utf-8") if path.exists() else None
        state = "unchanged" if before == text else ("updated" if before is not None else "created")
        if state != "unchanged":
            write_atomic(path, text)
        results.append(Pulled(path.stem, path.stem, path, state, ("items",) if state != "unchanged" else ()))
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
    """The Kibana object as the repository's build would render it (marks and Kibana's fields gone;
    each exception reference's ``id`` is the list_id, as the build writes it)."""
    plain = unstamped(rule)
    if plain.get("meta"):
        raise DacError("field 'meta' (other than this tool's mark) cannot be expressed in a rule file")
    target = {**comparable(plain), "version": rule.get("version", 1)}
    if target.get("exceptions_list"):
        target["exceptions_list"] = [{**ref, "id": ref["list_id"]} for ref in rule["exceptions_list"]]
    return target


def exceptions_data(
    target: Mapping[str, Any], exceptions: Mapping[str, Mapping[str, Any]], project: Project
) -> tuple[dict[str, Any], dict[Path, str]]:
    """The rule file's ``exceptions`` and the shared list files for the rule's ``exceptions_list``."""
    out: dict[str, Any] = {}
    files: dict[Path, str] = {}
    for ref in target.get("exceptions_list") or []:
        found = exceptions.get(ref["list_id"]) or {"list": None, "items": []}
        items = [file_item(item) for item in sorted(found["items"], key=_created)]
        if ref.get("type") == "rule_default":
            if ref["list_id"] != f"{target['rule_id']}-exceptions":
                raise DacError(
                    f"rule_default exception list {ref['list_id']!r}: rule files name a rule's own list "
                    f"{target['rule_id']}-exceptions; this list_id cannot be expressed"
                )
            if items:
                out["items"] = items
            continue
        if ref.get("type") != "detection" or found["list"] is None:
            raise DacError(f"exception list {ref['list_id']!r} ({ref.get('type')}) cannot be pulled")
        out.setdefault("lists", []).append(ref["list_id"])
        path = project.detections / EXCEPTIONS_DIR / f"{ref['list_id']}.yml"
        files[path] = shared_list_text(found["list"], items)
    return out, files


def _created(item: Mapping[str, Any]) -> tuple[str, str]:
    return (str(item.get("created_at", "")), str(item.get("item_id")))


def file_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """One Kibana exception item as a rule file's item (the reverse of ``exception_lists.kibana_item``)."""
    name = f"exception item {item.get('item_id')!r} ({item.get('name')})"
    if _uses_value_list(item.get("entries") or []):
        raise DacError(f"{name} uses a value list (entry type 'list'), which rule files cannot express")
    if item.get("type", "simple") != "simple":
        raise DacError(f"{name} has type {item.get('type')!r}; rule files hold simple items only")
    meta = {k: v for k, v in (item.get("meta") or {}).items() if k != META_KEY}
    extra = sorted(set(meta) - {"owner", "reason"})
    if extra:
        raise DacError(f"{name}: meta field {', '.join(repr(k) for k in extra)} cannot be expressed")
    by = item.get("created_by") or "someone"
    data: dict[str, Any] = {
        "item_id": item["item_id"],
        "name": item["name"],
        "description": item.get("description") or f"{PULL_PLACEHOLDER}: made in Kibana by {by} without one",
        "owner": meta.get("owner") or f"{PULL_PLACEHOLDER}: made in Kibana by {by}; name who answers for it",
        "reason": meta.get("reason")
        or f"{PULL_PLACEHOLDER}: made in Kibana on {item.get('created_at', '?')}; say why it exists",
    }
    if item.get("expire_time"):
        data["expires"] = _expires(item["expire_time"])
    if item.get("os_types"):
        data["os_types"] = list(item["os_types"])
    tags = [t for t in item.get("tags") or [] if t != MANAGED_TAG]
    if tags:
        data["tags"] = tags
    comments = [c["comment"] for c in item.get("comments") or []]
    if comments:
        data["comments"] = comments
    data["entries"] = [dict(entry) for entry in item["entries"]]
    return {key: data[key] for key in ITEM_KEYS if key in data}


def _uses_value_list(entries: Sequence[Mapping[str, Any]]) -> bool:
    return any(e.get("type") == "list" or _uses_value_list(e.get("entries") or []) for e in entries)


def _expires(expire_time: str) -> str | date:
    """``expire_time`` as the file writes it: the date alone (an unquoted YAML date, which the loader
    reads back as text) when it is midnight UTC."""
    if expire_time.endswith("T00:00:00.000Z"):
        return date.fromisoformat(expire_time[:10])
    return expire_time


def shared_list_text(live: Mapping[str, Any], items: list[dict[str, Any]]) -> str:
    data: dict[str, Any] = {
        "list_id": live["list_id"],
        "name": live["name"],
        "description": live["description"],
    }
    if live.get("namespace_type", "single") != "single":
        data["namespace_type"] = live["namespace_type"]
    tags = [t for t in live.get("tags") or [] if t != MANAGED_TAG]
    if tags:
        data["tags"] = tags
    data["items"] = items
    return f"# yaml-language-server: $schema=../../{LIST_SCHEMA_PATH}\n" + dump_fields(data)


def rule_data(target: Mapping[str, Any]) -> dict[str, Any]:
    """The rule file's fields for ``target``; an inexpressible field is a DacError naming it."""
    extra = sorted(
        k for k in target if k not in FILE_KEYS and k not in FIXED and k not in ("version", "exceptions_list")
    )
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


def _check(
    text: str,
    path: Path,
    target: Mapping[str, Any],
    templates: Templates,
    project: Project,
    list_files: Mapping[Path, str],
) -> CompiledRule:
    """Compile ``text`` as a rule and require it to render exactly ``target`` (the shared lists are the
    repository's, with the pulled ones in place of theirs)."""
    if not re.search(r"^tests:", text, re.M):
        text += _CHECK_TESTS  # only for this check: the scenarios are the author's to write
    with tempfile.TemporaryDirectory() as scratch:
        probe = Path(scratch) / path.name
        probe.write_text(text, "utf-8")
        folder = Path(scratch) / "detections" / EXCEPTIONS_DIR
        folder.mkdir(parents=True)
        for existing in sorted((project.detections / EXCEPTIONS_DIR).glob("*.y*ml")):
            (folder / existing.name).write_bytes(existing.read_bytes())
        for pulled, content in list_files.items():
            (folder / pulled.name).write_text(content, "utf-8")
        shared, list_problems = load_shared_lists(folder.parent)
        if list_problems:
            raise DacError(
                "the pulled exception lists do not load: " + "; ".join(p.message for p in list_problems)
            )
        rule, problems = load_rule(probe)
        compiled = None
        if rule is not None:
            rule = Rule(path, rule.data, rule.positions)
            compiled, problems = compile_rule(rule, templates, shared)  # type: ignore[assignment]
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
    if _plain(data.get("exceptions")) != _plain(have.rule.data.get("exceptions")):
        text = replace_key(text, "exceptions", data.get("exceptions"))
    return text


def _plain(value: Any) -> Any:
    """``value`` as the file's loader reads it (dates are text)."""
    return orjson.loads(orjson.dumps(value, default=str))


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
