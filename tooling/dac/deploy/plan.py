"""The plan: what a deploy would do, worked out from the desired rules and Kibana's answer.

Pure (no HTTP): ``plan_space`` takes the rules the repository wants in a space and the rules
Kibana has there, and returns one item per rule, keyed by (kind, space, id) so that other
resource kinds (exception lists) can join the same plan.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dac.deploy.ownership import content_hash, deployed_mark, drifted, owned_by, stamp, unstamped
from dac.objectdiff import FieldChange, field_changes

RULE = "rule"
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

    def count(self, action: str) -> int:
        return sum(1 for item in self.items if item.action == action)

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


def mass_deletion_errors(items: Sequence[PlanItem], rules_in_space: Mapping[str, int]) -> list[str]:
    """Spaces where the plan deletes more than a few rules, or most of the space."""
    errors = []
    for space, total in rules_in_space.items():
        deletes = sum(1 for i in items if i.space == space and i.action == "delete")
        if deletes > MASS_DELETE_RULES or (deletes and deletes * 2 > total):
            errors.append(
                f"space {space!r}: the plan deletes {deletes} of its {total} rules; "
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
