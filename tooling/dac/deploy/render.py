"""Plans and deploy results as text (read like ``terraform plan``) and as JSON (stable, for CI).

JSON (``--format json``), one object:
``{"environment", "kibana", "stack_version", "repository",
   "items": [{"kind", "space", "id", "name", "action", "reason", "list_id",
              "changes": [{"field", "before", "after"}]}],
   "counts": {action: n}, "exception_counts": {action: n}, "errors": [text],
   "apply": {"done": [[kind, space, id]], "failed": [{"kind", "space", "id", "name", "reason"}]},
   "requests": {"reads", "writes", "retries": [text]},
   "health": [{"space", "id", "name", "status", "message"}]}``
``kind`` is ``rule``, ``exception_list`` (``id`` = list_id) or ``exception_item`` (``id`` = item_id,
``list_id`` = its list; ``list_id`` is null for the other kinds). ``action`` is one of create,
update, delete, unchanged, drift, orphan, skip, conflict. ``counts`` counts rules,
``exception_counts`` lists and items. ``apply`` and ``health`` are there only for ``dac deploy``.
New keys may be added; none will change meaning.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from dac.deploy.apply import ApplyResult, Health
from dac.deploy.plan import EXCEPTION_ITEM, EXCEPTION_LIST, RULE, SYMBOLS, Plan, PlanItem
from dac.kibana.client import Traffic
from dac.objectdiff import FieldChange

COUNT_ORDER = ("create", "update", "delete", "unchanged", "drift", "orphan", "skip", "conflict")
COUNT_WORDS = {
    "create": "to create",
    "update": "to update",
    "delete": "to delete",
    "unchanged": "unchanged",
    "drift": "drifted",
    "orphan": "kept (not in the repository)",
    "skip": "skipped",
    "conflict": "in conflict",
}


def plan_text(plan: Plan, env_args: str) -> str:
    """``env_args``: how the commands it suggests name the target (``--env NAME``, or nothing)."""
    lines = [
        f"Kibana {plan.kibana} (stack {plan.stack_version}), environment {plan.environment}, "
        f"repository {plan.repository!r}"
    ]
    for space in dict.fromkeys(item.space for item in plan.items):
        lines.append(f"space {space}:")
        for item in (i for i in plan.items if i.space == space and i.kind == RULE):
            lines.extend(_item_lines(item, env_args))
        exceptions = [i for i in plan.items if i.space == space and i.kind != RULE]
        if exceptions:
            lines.append("  exceptions:")
        for lst in (i for i in exceptions if i.kind == EXCEPTION_LIST):
            lines.extend("  " + line for line in _item_lines(lst, env_args, "list "))
            for item in (i for i in exceptions if i.kind == EXCEPTION_ITEM and i.group == lst.id):
                lines.extend("    " + line for line in _item_lines(item, env_args, "item "))
    lines.append(count_line(plan))
    if any(i.kind != RULE for i in plan.items):
        lines.append(count_line(plan, "Exceptions", (EXCEPTION_LIST, EXCEPTION_ITEM)))
    lines.extend(f"error: {error}" for error in plan.errors)
    return "\n".join(lines) + "\n"


def count_line(plan: Plan, label: str = "Plan", kinds: tuple[str, ...] = (RULE,)) -> str:
    parts = [
        f"{plan.count(a, kinds)} {COUNT_WORDS[a]}"
        for a in COUNT_ORDER
        if plan.count(a, kinds) or a in ("create", "update", "delete")
    ]
    return f"{label}: " + ", ".join(parts) + "."


def _item_lines(item: PlanItem, env_args: str, label: str = "") -> list[str]:
    head = f"  {SYMBOLS[item.action]} {label}{item.name} ({item.id})"
    if item.reason:
        head += f": {item.reason}"
    lines = [head]
    if item.action == "drift":
        lines.append("      Kibana → repository:")
    lines.extend(_change_lines(item.changes))
    if item.action == "drift" and item.kind != RULE:
        list_id = item.group or item.id  # a rule's own list is <rule_id>-exceptions
        rule = list_id.removesuffix("-exceptions") if list_id.endswith("-exceptions") else "<a rule using it>"
        pull = " ".join(f"dac pull {env_args} --space {item.space} --rule-id {rule}".split())
        lines.append(
            f"      keep it: `{pull}`; "
            "overwrite or delete it: add --overwrite-drift (deleting also needs --prune)"
        )
    elif item.action == "drift":
        pull = " ".join(f"dac pull {env_args} --space {item.space} --rule-id {item.id}".split())
        deploy_hint = " ".join(f"dac deploy {env_args}".split())
        if item.desired is None:
            lines.append(
                f"      keep the edit: `{pull}`; delete it anyway: `{deploy_hint} --prune --overwrite-drift`"
            )
        else:
            lines.append(f"      keep the edit: `{pull}`; overwrite it: `{deploy_hint} --overwrite-drift`")
    return lines


def _change_lines(changes: Sequence[FieldChange]) -> list[str]:
    lines = []
    for change in changes:
        if change.is_text:
            lines.append(f"      {change.field}:")
            lines.extend(f"        {line}" for line in change.unified_diff().splitlines())
        else:
            lines.append(f"      {change.field}: {_value(change.before)} → {_value(change.after)}")
    return lines


def _value(value: Any) -> str:
    return "(absent)" if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)


def apply_text(result: ApplyResult, traffic: Traffic) -> str:
    lines = [f"retried: {r}" for r in traffic.retries]
    for item, reason in result.failed:
        lines.append(
            f"NOT APPLIED {SYMBOLS[item.action]} {item.name} ({item.id}) in space {item.space}: {reason}"
        )
    written = [i for i in result.done if i.action != "unchanged"]
    created = sum(1 for i in written if i.action == "create")
    deleted = sum(1 for i in written if i.desired is None)
    lines.append(
        f"Applied: {created} created, {len(written) - created - deleted} updated, {deleted} deleted; "
        f"{len(result.failed)} not in their intended state "
        f"({traffic.reads} read and {traffic.writes} write requests)."
    )
    return "\n".join(lines) + "\n"


def health_text(health: Sequence[Health]) -> str:
    lines = []
    for h in health:
        mark = {"succeeded": "ok", "partial failure": "warning", "unknown": "UNKNOWN"}.get(h.status, "FAILED")
        message = f": {h.message}" if h.message else ""
        lines.append(
            f"health {mark} {h.item.name} ({h.item.id}) in space {h.item.space}: {h.status}{message}"
        )
    return "\n".join(lines) + ("\n" if lines else "")


def plan_json(
    plan: Plan,
    result: ApplyResult | None = None,
    traffic: Traffic | None = None,
    health: Sequence[Health] | None = None,
) -> str:
    body: dict[str, Any] = {
        "environment": plan.environment,
        "kibana": plan.kibana,
        "stack_version": plan.stack_version,
        "repository": plan.repository,
        "items": [
            {
                "kind": i.kind,
                "space": i.space,
                "id": i.id,
                "name": i.name,
                "action": i.action,
                "reason": i.reason,
                "list_id": i.group or None,
                "changes": [{"field": c.field, "before": c.before, "after": c.after} for c in i.changes],
            }
            for i in plan.items
        ],
        "counts": {a: plan.count(a) for a in COUNT_ORDER},
        "exception_counts": {a: plan.count(a, (EXCEPTION_LIST, EXCEPTION_ITEM)) for a in COUNT_ORDER},
        "errors": list(plan.errors),
    }
    if result is not None:
        body["apply"] = {
            "done": [list(i.key) for i in result.done],
            "failed": [
                {"kind": i.kind, "space": i.space, "id": i.id, "name": i.name, "reason": reason}
                for i, reason in result.failed
            ],
        }
    if traffic is not None:
        body["requests"] = {"reads": traffic.reads, "writes": traffic.writes, "retries": traffic.retries}
    if health is not None:
        body["health"] = [
            {
                "space": h.item.space,
                "id": h.item.id,
                "name": h.item.name,
                "status": h.status,
                "message": h.message,
            }
            for h in health
        ]
    return json.dumps(body, indent=2, ensure_ascii=False, sort_keys=False)
