"""The plan: what a deploy would do, worked out from the desired rules and Kibana's answer.

Pure (no HTTP): ``plan_space`` takes the rules the repository wants in a space and the rules
Kibana has there, and returns one item per rule, keyed by (kind, space, id). ``plan_exceptions``
does the same for the exception lists those rules reference and their items (kinds
``exception_list`` and ``exception_item``; an item's ``group`` is its list_id).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dac.deploy.ownership import (
    MANAGED_TAG,
    comparable_exception,
    content_hash,
    deployed_mark,
    drifted,
    owned_by,
    stamp,
    unstamped,
)
from dac.objectdiff import FieldChange, field_changes

RULE = "rule"
EXCEPTION_LIST = "exception_list"
EXCEPTION_ITEM = "exception_item"
SYMBOLS = {
    "create": "+",
    "update": "~",
    "delete": "-",
    "unchanged": "=",
    "drift": "!",
    "orphan": "?",
    "skip": "skip",
    "conflict": "x",
}
WRITES = frozenset({"create", "update", "delete"})
MASS_DELETE_RULES = 5  # deleting more than this many rules in a space needs --allow-mass-delete


@dataclass(frozen=True)
class DesiredRule:
    """One rule as this environment gets it: the build output with overrides and ownership marks."""

    body: dict[str, Any]
    source: str  # the rule file, for messages
    min_stack_version: str | None = None

    @property
    def rule_id(self) -> str:
        return self.body["rule_id"]

    @property
    def name(self) -> str:
        return self.body["name"]


@dataclass(frozen=True)
class PlanItem:
    kind: str
    space: str
    id: str
    name: str
    action: str
    changes: tuple[FieldChange, ...] = ()
    reason: str = ""
    desired: dict[str, Any] | None = field(default=None, repr=False, compare=False)
    current: dict[str, Any] | None = field(default=None, repr=False, compare=False)
    group: str = ""  # an exception item's list_id
    holds: int = 0  # an exception list's items in Kibana (deleting the list deletes them)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind, self.space, self.id)

    @property
    def symbol(self) -> str:
        return SYMBOLS[self.action]


@dataclass
class Plan:
    environment: str
    kibana: str
    stack_version: str
    repository: str
    items: list[PlanItem]
    errors: list[str] = field(default_factory=list)
    prune: bool = False  # --prune: items added in Kibana may go too, with --overwrite-drift

    def count(self, action: str, kinds: tuple[str, ...] = (RULE,)) -> int:
        return sum(1 for item in self.items if item.action == action and item.kind in kinds)

    @property
    def has_changes(self) -> bool:
        return any(item.action in WRITES or item.action == "drift" for item in self.items)


def desired_rules(
    built: Mapping[str, Mapping[str, Any]],
    rules: Sequence[Any],
    *,
    repository: str,
    environment: str,
    overrides: Mapping[str, Any],
) -> list[DesiredRule]:
    """The build output of the selected ``rules`` (CompiledRule) with the environment's overrides
    on top and this repository's ownership marks."""
    out = []
    for rule in rules:
        body = {**built[rule.rule.rule_id], **overrides}
        out.append(
            DesiredRule(
                stamp(body, repository, environment),
                str(rule.rule.path),
                rule.rule.data.get("min_stack_version"),
            )
        )
    return out


def plan_space(
    space: str,
    desired: Sequence[DesiredRule],
    current: Sequence[Mapping[str, Any]],
    *,
    repository: str,
    stack_version: str,
    prune: bool = False,
) -> list[PlanItem]:
    """One item per rule the repository wants in ``space`` or manages there."""
    by_rule_id = {rule["rule_id"]: rule for rule in current}
    items: list[PlanItem] = []
    for rule in sorted(desired, key=lambda r: (r.name, r.rule_id)):
        existing = by_rule_id.get(rule.rule_id)
        item = _rule_item(space, rule, existing, repository, stack_version)
        items.append(item)
    wanted = {rule.rule_id for rule in desired}
    leftovers = [rule for rule in current if rule["rule_id"] not in wanted and owned_by(rule, repository)]
    for rule in sorted(leftovers, key=lambda r: (r.get("name", ""), r["rule_id"])):
        name, rule_id, edited = rule.get("name", ""), rule["rule_id"], drifted(rule)
        if not prune:
            reason = "no longer in the repository for this environment (kept; --prune deletes it)"
            if edited:
                reason += "; edited in Kibana since the last deploy"
            items.append(PlanItem(RULE, space, rule_id, name, "orphan", reason=reason, current=dict(rule)))
        elif edited:
            reason = "removed from the repository, but edited in Kibana since the last deploy"
            items.append(PlanItem(RULE, space, rule_id, name, "drift", reason=reason, current=dict(rule)))
        else:
            items.append(PlanItem(RULE, space, rule_id, name, "delete", current=dict(rule)))
    return items


def _rule_item(
    space: str,
    rule: DesiredRule,
    existing: Mapping[str, Any] | None,
    repository: str,
    stack_version: str,
) -> PlanItem:
    def item(action: str, **extra: Any) -> PlanItem:
        current = dict(existing) if existing is not None else None
        return PlanItem(
            RULE, space, rule.rule_id, rule.name, action, desired=rule.body, current=current, **extra
        )

    if rule.min_stack_version and version_tuple(rule.min_stack_version) > version_tuple(stack_version):
        return item("skip", reason=f"needs stack {rule.min_stack_version}, the target runs {stack_version}")
    if existing is None:
        return item("create")
    if not owned_by(existing, repository):
        return _unmanaged_item(rule, existing, repository, item)
    ignore = frozenset({"meta"})
    if deployed_mark(existing)["content_hash"] == content_hash(rule.body):  # type: ignore[index]
        if not drifted(existing):
            return item("unchanged")
    elif not field_changes(existing, rule.body, ignore=ignore | {"version"}):
        # edited in Kibana, and the repository took the edit in (dac pull): only the mark is stale
        return item(
            "update",
            changes=tuple(field_changes(existing, rule.body, ignore=ignore)),
            reason="Kibana already holds this content; the deploy records it as deployed",
        )
    if drifted(existing):
        return item(
            "drift",
            changes=tuple(field_changes(existing, rule.body, ignore=ignore)),
            reason="edited in Kibana since the last deploy",
        )
    return item("update", changes=tuple(field_changes(existing, rule.body, ignore=ignore)))


def _unmanaged_item(rule: DesiredRule, existing: Mapping[str, Any], repository: str, item: Any) -> PlanItem:
    """A rule with this rule_id exists but this repository did not deploy it."""
    source = existing.get("rule_source") or {}
    if existing.get("immutable") or source.get("type") == "external":
        return item("conflict", reason="the rule_id belongs to an Elastic prebuilt rule in this space")
    mark = deployed_mark(existing)
    if mark is not None:
        return item(
            "conflict", reason=f"the rule is managed by another repository ({mark.get('repository')!r})"
        )
    differences = field_changes(
        unstamped(existing), unstamped(rule.body), ignore=frozenset({"meta", "version"})
    )
    if not differences:
        return item(
            "update",
            reason="adopt: same content, made in Kibana; this deploy marks it as managed",
            changes=tuple(field_changes(existing, rule.body, ignore=frozenset({"meta"}))),
        )
    return item(
        "conflict",
        changes=tuple(differences),
        reason=(
            "a rule with this rule_id was made in Kibana and differs from the repository; bring it in with "
            f"`dac pull --rule-id {rule.rule_id}` or delete it in Kibana"
        ),
    )


def deletes(item: PlanItem, *, prune: bool, overwrite_drift: bool) -> bool:
    """Whether applying the plan deletes ``item``: a planned delete, or (``--prune
    --overwrite-drift``) a drifted leftover: a rule or list edited in Kibana, an item added there."""
    if item.action == "delete":
        return True
    return overwrite_drift and prune and item.action == "drift" and item.desired is None


def mass_deletion_errors(
    items: Sequence[PlanItem], rules_in_space: Mapping[str, int], *, prune: bool = True,
    overwrite_drift: bool = False,
) -> list[str]:
    """Spaces where the plan deletes more than a few objects (rules, exception lists with their
    items, items), or most of the space's rules."""
    errors = []
    for space, total in rules_in_space.items():
        gone = [
            i for i in items if i.space == space and deletes(i, prune=prune, overwrite_drift=overwrite_drift)
        ]
        rules = sum(1 for i in gone if i.kind == RULE)
        exceptions = sum(1 + i.holds for i in gone if i.kind != RULE)
        if rules + exceptions > MASS_DELETE_RULES or (rules and rules * 2 > total):
            also = f" and {exceptions} exception lists and items" if exceptions else ""
            errors.append(
                f"space {space!r}: the plan deletes {rules} of its {total} rules{also}; "
                "pass --allow-mass-delete if that is intended"
            )
    return errors


def version_tuple(text: str) -> tuple[int, ...]:
    """``9.4.0`` → (9, 4, 0); pre-release suffixes (``9.5.0-SNAPSHOT``) are ignored."""
    parts = []
    for piece in text.split("-", 1)[0].split("."):
        parts.append(int(piece) if piece.isdigit() else 0)
    while len(parts) < 3:
        parts.append(0)
    return tuple(parts)


# --------------------------------------------------------------------------- exception lists and items


@dataclass(frozen=True)
class DesiredList:
    """One exception list as this environment gets it: the build's list and items, ownership-marked."""

    body: dict[str, Any]
    items: tuple[dict[str, Any], ...]

    @property
    def list_id(self) -> str:
        return self.body["list_id"]

    @property
    def namespace_type(self) -> str:
        return self.body.get("namespace_type", "single")


def desired_lists(
    built: Mapping[str, Mapping[str, Any]],
    rules: Sequence[DesiredRule],
    *,
    repository: str,
    environment: str,
) -> list[DesiredList]:
    """The build's exception lists (``build/exceptions/<list_id>.json``) the ``rules`` reference."""
    wanted = dict.fromkeys(ref["list_id"] for rule in rules for ref in rule.body.get("exceptions_list") or [])
    out = []
    for list_id in wanted:
        built_list = built[list_id]
        out.append(
            DesiredList(
                stamp(built_list["list"], repository, environment),
                tuple(stamp(item, repository, environment) for item in built_list["items"]),
            )
        )
    return out


def plan_exceptions(
    space: str,
    desired: Sequence[DesiredList],
    live_lists: Sequence[Mapping[str, Any]],
    live_items: Sequence[Mapping[str, Any]],
    *,
    repository: str,
    prune: bool = False,
) -> list[PlanItem]:
    """One item per exception list the rules of ``space`` reference or this repository manages there,
    and one per item of those lists. Items are keyed by item_id, unique per namespace in Kibana.

    - an item in a managed list that the repository does not have and did not deploy (added in the
      Kibana UI) is drift: kept unless ``--prune --overwrite-drift``; ``dac pull`` brings it in;
    - an item the repository deployed and removed is deleted with ``--prune`` (else kept, ``?``);
    - a managed list no rule of the repository references any more: deleted with ``--prune``.
    """
    lists = {(lst.get("namespace_type", "single"), lst["list_id"]): lst for lst in live_lists}
    items_by_list: dict[str, list[Mapping[str, Any]]] = {}
    for item in live_items:
        items_by_list.setdefault(item["list_id"], []).append(item)
    out: list[PlanItem] = []
    wanted = set()
    for lst in sorted(desired, key=lambda d: d.list_id):
        wanted.add((lst.namespace_type, lst.list_id))
        existing = lists.get((lst.namespace_type, lst.list_id))
        out.append(_exception_item(EXCEPTION_LIST, space, lst.list_id, lst.body, existing, repository))
        live = {i["item_id"]: i for i in items_by_list.get(lst.list_id, [])} if existing else {}
        for body in sorted(lst.items, key=lambda i: i["item_id"]):
            out.append(
                _exception_item(
                    EXCEPTION_ITEM, space, body["item_id"], body, live.pop(body["item_id"], None), repository,
                    group=lst.list_id,
                )
            )
        for item in sorted(live.values(), key=lambda i: i["item_id"]):
            out.append(_leftover(EXCEPTION_ITEM, space, item, repository, prune, group=lst.list_id))
    for key, lst in sorted(lists.items()):
        if key in wanted or not owned_by(lst, repository):
            continue
        children = items_by_list.get(lst["list_id"], [])
        out.append(_leftover(EXCEPTION_LIST, space, lst, repository, prune, children=children))
    return out


def _exception_item(
    kind: str,
    space: str,
    key: str,
    body: dict[str, Any],
    existing: Mapping[str, Any] | None,
    repository: str,
    *,
    group: str = "",
) -> PlanItem:
    def item(action: str, **extra: Any) -> PlanItem:
        current = dict(existing) if existing is not None else None
        name = body.get("name", key)
        return PlanItem(kind, space, key, name, action, desired=body, current=current, group=group, **extra)

    if existing is None:
        return item("create")
    changes = tuple(exception_changes(existing, body))
    if not owned_by(existing, repository):
        mark = deployed_mark(existing)
        if mark is not None:
            return item("conflict", reason=f"managed by another repository ({mark.get('repository')!r})")
        if not changes:
            return item("update", reason="adopt: same content, made in Kibana; marked as managed")
        if all(c.field in ("description", "meta") and not c.before for c in changes):
            # `dac pull` brought it in and added what Kibana lacked (owner, reason, a description)
            why = "adopt: pulled into the repository; marked as managed"
            return item("update", changes=changes, reason=why)
        if kind == EXCEPTION_LIST:
            return item("conflict", changes=changes, reason="a list with this list_id was made in Kibana")
        return item("drift", changes=changes, reason="an item with this item_id was made in Kibana")
    if deployed_mark(existing)["content_hash"] == content_hash(body):  # type: ignore[index]
        if not drifted(existing):
            return item("unchanged")
    elif not changes:
        return item("update", reason="Kibana already holds this content; the deploy records it as deployed")
    if drifted(existing):
        return item("drift", changes=changes, reason="edited in Kibana since the last deploy")
    return item("update", changes=changes)


def _leftover(
    kind: str,
    space: str,
    live: Mapping[str, Any],
    repository: str,
    prune: bool,
    *,
    group: str = "",
    children: Sequence[Mapping[str, Any]] = (),
) -> PlanItem:
    """A list or item in Kibana that the repository does not (or no longer) want."""
    key = live["list_id"] if kind == EXCEPTION_LIST else live["item_id"]

    def item(action: str, reason: str, changes: tuple[FieldChange, ...] = ()) -> PlanItem:
        return PlanItem(kind, space, key, live.get("name", key), action, reason=reason, current=dict(live),
                        group=group, changes=changes, holds=len(children))  # fmt: skip

    if not owned_by(live, repository):
        shown = ("entries", "os_types", "expire_time", "comments")
        added = tuple(c for c in exception_changes(live, {}) if c.field in shown)
        return item("drift", "added in Kibana to a managed list; --prune --overwrite-drift deletes it", added)
    strangers = [c["item_id"] for c in children if not owned_by(c, repository)]
    edited = drifted(live) or any(drifted(c) for c in children)
    if not prune:
        return item("orphan", "no longer in the repository for this environment (kept; --prune deletes it)")
    if strangers or edited:
        why = f"items added in Kibana: {', '.join(strangers)}" if strangers else "edited in Kibana"
        return item("drift", f"removed from the repository, but {why}")
    return item("delete", "")


def exception_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[FieldChange]:
    """The fields of an exception list or item that differ (Kibana's bookkeeping and marks aside)."""
    old, new = _unmarked(before), _unmarked(after)
    return [
        FieldChange(key, old.get(key), new.get(key))
        for key in sorted(old.keys() | new.keys())
        if old.get(key) != new.get(key)
    ]


def _unmarked(obj: Mapping[str, Any]) -> dict[str, Any]:
    out = comparable_exception(obj)
    tags = [t for t in out.pop("tags", []) if t != MANAGED_TAG]
    return {**out, "tags": tags} if tags else out
