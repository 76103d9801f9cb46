"""Exception lists BASE against HEAD: lists and items added, changed, removed, and the rules
they tune.

Reads the lists each side's compiled rules use (the bodies ``dac build`` writes to
``build/exceptions/``), never the YAML: items are matched by ``item_id`` and compared with
``dac.objectdiff.field_changes``, the same field diff rules get. An item change does not change
the rule object (by design, see README "Exceptions"), so the rules a changed list tunes are
named here and get a behavioural run of their own.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dac.exception_lists import ExceptionList
from dac.objectdiff import field_changes
from dac.review.model import FieldDiff, Flag, ItemChange, ListDiff
from dac.review.sides import Side

# Item fields Kibana sets itself, or that repeat the list's identity.
_ITEM_IGNORED = frozenset({"list_id", "namespace_type", "type"})


def side_lists(side: Side) -> dict[str, tuple[ExceptionList, list[str]]]:
    """list_id → (the list, names of the rules using it) for every list a rule of the side uses."""
    found: dict[str, tuple[ExceptionList, list[str]]] = {}
    for compiled in sorted(side.rules.values(), key=lambda c: c.rule.name):
        for exception_list in compiled.exception_lists:
            found.setdefault(exception_list.list_id, (exception_list, []))[1].append(compiled.rule.name)
    return found


def compare_exceptions(base: Side, head: Side) -> list[ListDiff]:
    """Every list whose body or items differ, ordered by list_id."""
    before, after = side_lists(base), side_lists(head)
    diffs = []
    for list_id in sorted(before.keys() | after.keys()):
        old, new = before.get(list_id), after.get(list_id)
        if old is not None and new is not None and old[0].kibana() == new[0].kibana():
            continue
        current = new or old
        assert current is not None
        body = current[0].body
        users = sorted(set((old[1] if old else []) + (new[1] if new else [])))
        diff = ListDiff(
            list_id,
            body["type"],
            "added" if old is None else "removed" if new is None else "modified",
            body["name"],
            base_path=_path(base, old[0]) if old else None,
            head_path=_path(head, new[0]) if new else None,
            rules=users,
        )
        if old is not None and new is not None:
            diff.fields = [
                _field(c.field, c.before, c.after) for c in field_changes(old[0].body, new[0].body)
            ]
        diff.items = compare_items(old[0].items if old else (), new[0].items if new else ())
        diffs.append(diff)
    return diffs


def compare_items(old: Sequence[dict[str, Any]], new: Sequence[dict[str, Any]]) -> list[ItemChange]:
    """Items added, changed and removed by item_id, with their field diff and flags."""
    before = {i["item_id"]: i for i in old}
    after = {i["item_id"]: i for i in new}
    changes = []
    for item_id in sorted(before.keys() | after.keys()):
        a, b = before.get(item_id), after.get(item_id)
        if a == b:
            continue
        shown = b if b is not None else a
        assert shown is not None
        meta = shown.get("meta") or {}
        change = ItemChange(
            item_id,
            "added" if a is None else "removed" if b is None else "modified",
            shown["name"],
            meta.get("owner"),
            meta.get("reason"),
            shown.get("expire_time"),
        )
        if a is None or b is None:
            change.fields = [_field("entries", a and a["entries"], b and b["entries"])]
        if a is None:
            change.flags.append(Flag("exception-added", f"{item_id}: suppresses every alert it matches"))
        elif b is not None:
            change.fields = [_field(c.field, c.before, c.after) for c in field_changes(a, b, _ITEM_IGNORED)]
            if widened(a, b):
                change.flags.append(Flag("exception-widened", f"{item_id}: {widened(a, b)}"))
            extended = _expiry_extended(a, b)
            if extended:
                change.flags.append(Flag("exception-expiry-extended", f"{item_id}: {extended}"))
        changes.append(change)
    return changes


def entry_lines(entries: list[Mapping[str, Any]] | None, indent: str = "") -> list[str]:
    """Entries as one readable line each: ``field operator type value``; nested ones indented."""
    lines = []
    for entry in entries or []:
        if entry["type"] == "nested":
            lines.append(f"{indent}{entry['field']} nested:")
            lines.extend(entry_lines(entry["entries"], indent + "  "))
            continue
        value = entry.get("value")
        shown = "" if value is None else " " + json.dumps(value, ensure_ascii=False)
        lines.append(f"{indent}{entry['field']} {entry['operator']} {entry['type']}{shown}")
    return lines


def widened(old: Mapping[str, Any], new: Mapping[str, Any]) -> str | None:
    """Why the HEAD item matches at least what BASE's did and more, or None.

    An item ANDs its entries, so HEAD is wider when every HEAD entry is implied by a BASE entry
    (the same entry, or an ``included`` ``match``/``match_any`` whose values HEAD extends) and
    the items differ; dropping OS types widens too. Anything else (a changed value, a new entry)
    is not provably wider; the behavioural diff still shows what it suppresses.
    """
    a, b = list(old["entries"]), list(new["entries"])
    if a == b:
        os_before, os_after = set(old.get("os_types") or []), set(new.get("os_types") or [])
        if os_before and (not os_after or os_after > os_before):
            return "its OS types were widened or dropped"
        return None
    if all(any(_implies(x, y) for x in a) for y in b):
        if len(b) < len(a):
            return f"{len(a) - len(b)} of its {len(a)} entries dropped"
        return "an entry accepts more values"
    return None


def _implies(narrow: Mapping[str, Any], wide: Mapping[str, Any]) -> bool:
    if narrow == wide:
        return True
    if narrow.get("field") != wide.get("field") or {narrow.get("operator"), wide.get("operator")} != {
        "included"
    }:
        return False
    if narrow["type"] in ("match", "match_any") and wide["type"] in ("match", "match_any"):
        return set(_values(narrow)) <= set(_values(wide))
    return wide["type"] == "exists" and narrow["type"] != "nested"


def _values(entry: Mapping[str, Any]) -> list[str]:
    value = entry["value"]
    return list(value) if isinstance(value, list) else [value]


def _expiry_extended(old: Mapping[str, Any], new: Mapping[str, Any]) -> str | None:
    before, after = old.get("expire_time"), new.get("expire_time")
    if before and not after:
        return f"expired {before[:10]}, now never expires"
    if before and after and after > before:  # ISO instants in UTC, "…Z": text order is time order
        return f"expires {after[:10]} instead of {before[:10]}"
    return None


def _field(name: str, before: Any, after: Any) -> FieldDiff:
    """An item or list field; entries and long texts as a unified diff of readable lines."""
    if name == "entries":
        lines = (entry_lines(before), entry_lines(after))
    elif name in ("description", "meta", "comments"):
        lines = (_text_lines(before), _text_lines(after))
    else:
        return FieldDiff(name, before, after)
    diff = difflib.unified_diff(*lines, fromfile="BASE", tofile="HEAD", lineterm="", n=max(len(lines[0]), 3))
    return FieldDiff(name, before, after, "\n".join(list(diff)[2:]))


def _text_lines(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return value.splitlines()
    if isinstance(value, dict):
        return [f"{k}: {v}" for k, v in sorted(value.items())]
    if isinstance(value, list):
        return [str(v.get("comment", v)) if isinstance(v, dict) else str(v) for v in value]
    return [str(value)]


def _path(side: Side, exception_list: ExceptionList) -> str:
    try:
        return side.relative(Path(exception_list.path))
    except ValueError:  # not in the scratch copy: shown as the loader named it
        return exception_list.path
