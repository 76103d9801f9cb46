"""The review report as terminal text, JSON, or Markdown for a pull-request comment.

Markdown stays within a size limit: GitHub refuses comments over 65,536 characters, and a job
summary over 1 MiB. Above the limit, rules lose their details one by one (each says so and
points to the job summary) and, past that, are only counted.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from dac.review.model import AlertRef, Behaviour, DiffReport, ItemChange, ListDiff, RuleDiff

MARKER = "<!-- dac-diff -->"
COMMENT_LIMIT = 65_536  # characters, GitHub's limit on an issue or pull-request comment body
SUMMARY_LIMIT = 1024 * 1024  # bytes, GitHub's limit on one step's $GITHUB_STEP_SUMMARY
MAX_ALERT_ROWS = 10  # gained and lost alerts listed per rule and direction (the JSON has all)
MAX_DIFF_LINES = 200  # lines per unified diff
MAX_VALUE = 120  # characters of a scalar shown in a field table
MAX_ITEMS = 50  # exception items detailed per list (the JSON has all)
STATUS_TITLES = {
    "added": "added",
    "removed": "removed",
    "modified": "modified",
    "renamed": "renamed/moved",
    "unchanged": "unchanged",
}


def to_json(report: DiffReport) -> str:
    return json.dumps(report.as_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


# --- Markdown -------------------------------------------------------------------------------


def to_markdown(report: DiffReport, limit: int = COMMENT_LIMIT, measure: str = "chars") -> str:
    """The whole review within ``limit`` (characters, or UTF-8 bytes with ``measure="bytes"``)."""

    def size(text: str) -> int:
        return len(text.encode("utf-8")) if measure == "bytes" else len(text)

    head = _md_header(report)
    reserve = 400  # room for the truncation note
    budget = limit - size(head) - reserve
    blocks: list[str] = []
    compacted = omitted = 0
    # exception lists first (a tuning change is what they are about), then the rules; each
    # block loses its details, then its place, when it does not fit
    candidates = [
        (heading + _md_list(lst), heading + _md_list(lst, compact=True))
        for heading, lst in zip(
            [EXCEPTIONS_HEADING] + [""] * (len(report.exceptions) - 1), report.exceptions, strict=False
        )
    ]
    for rule in (r for r in report.rules if r.noteworthy):
        candidates.append((_md_rule(rule, report), _md_rule(rule, report, compact=True)))
    for full, short in candidates:
        if size(full) <= budget:
            blocks.append(full)
            budget -= size(full)
        elif size(short) <= budget:
            blocks.append(short)
            budget -= size(short)
            compacted += 1
        else:
            omitted += 1
    tail = ""
    if compacted or omitted:
        noun = "rules and exception lists" if report.exceptions else "rules"
        parts = []
        if compacted:
            parts.append(f"{compacted} {noun} are shown without their details")
        if omitted:
            parts.append(f"{omitted} more {noun} are not shown")
        tail = (
            f"\n> **Truncated** to stay within {limit:,} {'bytes' if measure == 'bytes' else 'characters'}: "
            f"{' and '.join(parts)}. The job summary of this workflow run has the full review "
            "(`dac diff --format json` has everything).\n"
        )
    return head + "".join(blocks) + tail


def _md_header(report: DiffReport) -> str:
    base, head = report.base, report.head
    lines = [
        MARKER,
        "## Detection rule review",
        "",
        f"BASE {_md_side(base)} → HEAD {_md_side(head)}",
        "",
        "| added | removed | modified | renamed/moved | unchanged | flagged |",
        "|---:|---:|---:|---:|---:|---:|",
        "| "
        + " | ".join(str(report.count(s)) for s in STATUS_TITLES)
        + f" | {sum(1 for r in report.rules if r.flags)} |",
        "",
    ]
    for side, name in ((base, "BASE"), (head, "HEAD")):
        if side.problems:
            lines.append(f"**{name} does not build** ({len(side.problems)} problems):")
            lines.append("")
            lines.extend(f"- `{p}`" for p in side.problems[:20])
            if len(side.problems) > 20:
                lines.append(f"- … and {len(side.problems) - 20} more")
            lines.append("")
    if report.changed_files:
        lines.append("Shared files changed: " + ", ".join(f"`{f}`" for f in report.changed_files))
        lines.append("")
    if report.event_sources:
        sources = "; ".join(f"{s.detail}: {s.events:,}" for s in report.event_sources)
        lines.append(f"Behaviour over {report.events:,} events ({sources}).")
        lines.append("")
    lines.extend(f"> {note}" for note in report.notes)
    if report.notes:
        lines.append("")
    if not any(r.noteworthy for r in report.rules):
        lines.append("No rule changed.")
        lines.append("")
    return "\n".join(lines) + "\n"


EXCEPTIONS_HEADING = "### Exceptions\n\n"


def _md_list(lst: ListDiff, compact: bool = False) -> str:
    """One exception list: its items' changes, owners, flags and entry diffs."""
    flags = " ".join(f"`{f}`" for f in dict.fromkeys(f.id for f in lst.flags))
    summary = f"<b>{lst.status}</b> list `{lst.list_id}` ({lst.type}) · {_item_counts(lst)}"
    summary += f" · {flags}" if flags else ""
    where = lst.head_path or lst.base_path
    lines = ["<details>", f"<summary>{summary}</summary>", ""]
    lines.append(f"`{where}` · used by " + ", ".join(f"“{_escape(r)}”" for r in lst.rules))
    lines.append("")
    if compact:
        lines.extend(["_Details truncated: see the job summary of this run._", "", "</details>", ""])
        return "\n".join(lines) + "\n"
    for change in lst.fields:
        lines.append(f"- list `{change.field}`: {_md_value(change.before)} → {_md_value(change.after)}")
    if lst.fields:
        lines.append("")
    if lst.flags:
        lines.extend(f"- :warning: `{f.id}`: {_escape(f.message)}" for f in lst.flags)
        lines.append("")
    items = lst.items[:MAX_ITEMS]
    if items:
        lines.extend(
            [
                "| item | change | owner | reason | expires | newly suppresses |",
                "|---|---|---|---|---|---:|",
            ]
        )
        lines.extend(_md_item_row(i) for i in items)
        if len(lst.items) > MAX_ITEMS:
            lines.append(f"| … {len(lst.items) - MAX_ITEMS:,} more (`--format json` lists all) | | | | | |")
        lines.append("")
    for item in items:
        lines.extend(_md_fields(item.fields, f"`{item.item_id}`"))
    lines.extend(["</details>", ""])
    return "\n".join(lines) + "\n"


def _item_counts(lst: ListDiff) -> str:
    counts = {s: sum(1 for i in lst.items if i.status == s) for s in ("added", "modified", "removed")}
    shown = [f"{n} item{'s' if n != 1 else ''} {s}" for s, n in counts.items() if n]
    return ", ".join(shown) or "items unchanged"


def _md_item_row(item: ItemChange) -> str:
    suppresses = "—" if item.suppresses is None else _plural(item.suppresses, "alert")
    cells = [
        f"`{item.item_id}` {_escape(item.name)}",
        item.status,
        _escape(item.owner or ""),
        _escape(_short(item.reason or "")),
        (item.expires or "never")[:10],
        suppresses,
    ]
    return "| " + " | ".join(cells) + " |"


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _short(text: str) -> str:
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 1] + "…"


def _md_side(side: Any) -> str:
    if side.commit is None:
        return f"`{side.label}`"
    return f"`{side.commit[:12]}` ({side.label})" if side.label != side.commit else f"`{side.commit[:12]}`"


def _md_rule(rule: RuleDiff, report: DiffReport, compact: bool = False) -> str:
    flags = " ".join(f"`{f.id}`" for f in rule.flags)
    numbers = _md_numbers(rule.behaviour) if rule.behaviour else ""
    title = STATUS_TITLES[rule.status] + (", exceptions changed" if rule.exception_lists else "")
    summary = f"<b>{title}</b> {_escape(rule.name)}"
    summary += f" · {numbers}" if numbers else ""
    summary += f" · {flags}" if flags else ""
    lines = ["<details>", f"<summary>{summary}</summary>", ""]
    lines.append(_md_where(rule))
    lines.append("")
    if compact:
        lines.append("_Details truncated: see the job summary of this run._")
        lines.extend(["", "</details>", ""])
        return "\n".join(lines) + "\n"
    if rule.causes:
        lines.append("Changed by: " + ", ".join(f"`{c}`" for c in rule.causes))
        lines.append("")
    if rule.exception_lists:
        lines.append("Exception lists changed: " + ", ".join(f"`{x}`" for x in rule.exception_lists))
        lines.append("")
    if rule.flags:
        lines.extend(f"- :warning: `{f.id}`: {_escape(f.message)}" for f in rule.flags)
        lines.append("")
    lines.extend(_md_fields(rule.fields))
    if rule.behaviour:
        lines.extend(_md_behaviour(rule.behaviour))
    lines.extend(["</details>", ""])
    return "\n".join(lines) + "\n"


def _md_where(rule: RuleDiff) -> str:
    parts = [f"`{rule.rule_id}`"]
    if rule.moved:
        parts.append(f"`{rule.base_path}` → `{rule.head_path}`")
    else:
        parts.append(f"`{rule.head_path or rule.base_path}`")
    if rule.base_name and rule.base_name != rule.name:
        parts.append(f"was “{_escape(rule.base_name)}”")
    if rule.base_version is not None and rule.head_version is not None:
        parts.append(f"version {rule.base_version} → {rule.head_version}")
    elif rule.head_version is not None or rule.base_version is not None:
        parts.append(f"version {rule.head_version or rule.base_version}")
    return " · ".join(parts)


def _md_numbers(behaviour: Behaviour) -> str:
    if behaviour.skipped:
        return "not run"
    text = f"+{len(behaviour.only_head)} / -{len(behaviour.only_base)} alerts"
    if behaviour.newly_suppressed:
        text += f", {len(behaviour.newly_suppressed)} newly suppressed"
    if behaviour.reappeared:
        text += f", {len(behaviour.reappeared)} reappear"
    return text


def _md_behaviour(behaviour: Behaviour) -> list[str]:
    if behaviour.skipped:
        return [f"Alerts: not run ({_escape(behaviour.skipped)}).", ""]
    base = "—" if behaviour.base_alerts is None else f"{behaviour.base_alerts:,}"
    lines = [
        f"Alerts over {behaviour.events:,} events: BASE {base}, HEAD {behaviour.head_alerts:,}; "
        f"{behaviour.both:,} in both, **{len(behaviour.only_head):,} only at HEAD**, "
        f"**{len(behaviour.only_base):,} only at BASE**.",
        "",
    ]
    if behaviour.newly_suppressed or behaviour.reappeared:
        lines.insert(
            -1,
            f"Exceptions: **{len(behaviour.newly_suppressed):,} suppressed at HEAD, not at BASE**; "
            f"**{len(behaviour.reappeared):,} suppressed at BASE reappear at HEAD**.",
        )
        lines.insert(-2, "")
    suppressed = {(s.alert.index, s.alert.document_id) for s in behaviour.newly_suppressed}
    rows = [("gained", a) for a in behaviour.only_head[:MAX_ALERT_ROWS]]
    rows += [("lost", a) for a in behaviour.only_base if (a.index, a.document_id) not in suppressed][
        :MAX_ALERT_ROWS
    ]
    rows += [(f"suppressed by `{s.item_id}`", s.alert) for s in behaviour.newly_suppressed[:MAX_ALERT_ROWS]]
    rows += [(f"reappears (was `{s.item_id}`)", s.alert) for s in behaviour.reappeared[:MAX_ALERT_ROWS]]
    if rows:
        lines.extend(["| | document | user | verb | object | from |", "|---|---|---|---|---|---|"])
        lines.extend(_md_alert(kind, a) for kind, a in rows)
        lost = len(behaviour.only_base) - len(suppressed)
        listed = (len(behaviour.only_head), lost, len(behaviour.newly_suppressed), len(behaviour.reappeared))
        more = sum(max(0, n - MAX_ALERT_ROWS) for n in listed)
        if more:
            lines.append(f"| | … {more:,} more (`--format json` lists all) | | | | |")
        lines.append("")
    return lines


def _md_alert(kind: str, alert: AlertRef) -> str:
    cells = [
        kind,
        f"`{alert.document_id}`",
        *(_escape(v or "") for v in (alert.user, alert.verb, alert.object)),
        _escape(alert.origin),
    ]
    return "| " + " | ".join(cells) + " |"


def _text_fields(fields: Sequence[Any], indent: str, paint: Any) -> list[str]:
    """Changed fields as text: scalars before → after, long text as its diff lines, painted."""
    lines: list[str] = []
    for change in fields:
        if change.diff is None:
            lines.append(f"{indent}{change.field}: {_plain(change.before)} → {_plain(change.after)}")
            continue
        lines.append(f"{indent}{change.field}:")
        for line in _cap_lines(change.diff).splitlines():
            lines.append(f"{indent}  " + (paint(line, line[0]) if line[:1] in "+-" else line))
    return lines


def _md_fields(fields: Sequence[Any], owner: str = "") -> list[str]:
    """Changed fields: scalars as one BASE/HEAD table, long text as ```diff blocks (``owner`` prefixes
    each heading, e.g. an exception item's id)."""
    lines: list[str] = []
    scalars = [f for f in fields if f.diff is None]
    if scalars:
        lines.extend([f"{owner}:", ""] if owner else [])
        lines.extend(["| field | BASE | HEAD |", "|---|---|---|"])
        lines.extend(f"| `{f.field}` | {_md_value(f.before)} | {_md_value(f.after)} |" for f in scalars)
        lines.append("")
    for text_field in (f for f in fields if f.diff is not None):
        prefix = f"{owner} " if owner else ""
        block = _fence(_cap_lines(text_field.diff or ""), "diff")
        lines.extend([f"{prefix}`{text_field.field}`:", "", block, ""])
    return lines


def _md_value(value: Any) -> str:
    if value is None:
        return "_(absent)_"
    text = json.dumps(value, ensure_ascii=False, sort_keys=True) if not isinstance(value, str) else value
    if len(text) > MAX_VALUE:
        text = text[: MAX_VALUE - 1] + "…"
    return "`" + text.replace("`", "'").replace("|", "\\|").replace("\n", " ") + "`"


def _fence(text: str, language: str) -> str:
    fence = "```"
    while fence in text:
        fence += "`"
    return f"{fence}{language}\n{text}\n{fence}"


def _cap_lines(text: str) -> str:
    lines = text.splitlines()
    if len(lines) <= MAX_DIFF_LINES:
        return text
    return "\n".join([*lines[:MAX_DIFF_LINES], f"… {len(lines) - MAX_DIFF_LINES} more lines"])


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;").replace("\n", " ")


# --- terminal text --------------------------------------------------------------------------

_COLOURS = {
    "added": "32",
    "removed": "31",
    "modified": "33",
    "renamed": "36",
    "flag": "35",
    "+": "32",
    "-": "31",
}


def to_text(report: DiffReport, colour: bool = False) -> str:
    def paint(text: str, key: str) -> str:
        return f"\033[{_COLOURS[key]}m{text}\033[0m" if colour and key in _COLOURS else text

    base, head = report.base, report.head
    out = [
        f"BASE {base.commit[:12] if base.commit else base.label} ({base.label}) → HEAD "
        f"{head.commit[:12] + ' (' + head.label + ')' if head.commit else head.label}"
    ]
    out.append(", ".join(f"{report.count(s)} {STATUS_TITLES[s]}" for s in STATUS_TITLES))
    for side, name in ((base, "BASE"), (head, "HEAD")):
        if side.problems:
            out.append(f"{name} does not build ({len(side.problems)} problems)")
    if report.changed_files:
        out.append("shared files changed: " + ", ".join(report.changed_files))
    if report.event_sources:
        out.append(
            f"behaviour over {report.events:,} events: "
            + "; ".join(f"{s.name} {s.events:,}" for s in report.event_sources)
        )
    out.extend(f"note: {n}" for n in report.notes)
    for lst in report.exceptions:
        out.append("")
        out.append(
            f"{paint('EXCEPTIONS', 'modified')} list {lst.list_id} ({lst.type}, {lst.status}): "
            f"{_item_counts(lst)}; {lst.head_path or lst.base_path}; used by {', '.join(lst.rules)}"
        )
        out.extend(f"  list {c.field}: {_plain(c.before)} → {_plain(c.after)}" for c in lst.fields)
        out.extend(f"  {paint('flag', 'flag')} {f.id}: {f.message}" for f in lst.flags)
        for item in lst.items[:MAX_ITEMS]:
            suppresses = (
                "" if item.suppresses is None else f", newly suppresses {_plural(item.suppresses, 'alert')}"
            )
            out.append(
                f"  {item.status} item {item.item_id} “{item.name}” (owner {item.owner or '-'}, "
                f"expires {(item.expires or 'never')[:10]}{suppresses}): {item.reason or '-'}"
            )
            out.extend(_text_fields(item.fields, "    ", paint))
        if len(lst.items) > MAX_ITEMS:
            out.append(f"  … {len(lst.items) - MAX_ITEMS:,} more items")
    for rule in (r for r in report.rules if r.noteworthy):
        out.append("")
        out.append(
            f"{paint(rule.status.upper(), rule.status)} {rule.name}  ({_md_where(rule).replace('`', '')})"
        )
        if rule.causes:
            out.append(f"  changed by: {', '.join(rule.causes)}")
        if rule.exception_lists:
            out.append(f"  exception lists changed: {', '.join(rule.exception_lists)}")
        out.extend(f"  {paint('flag', 'flag')} {f.id}: {f.message}" for f in rule.flags)
        out.extend(_text_fields(rule.fields, "  ", paint))
        if rule.behaviour:
            b = rule.behaviour
            if b.skipped:
                out.append(f"  alerts: not run ({b.skipped})")
            else:
                base_count = "-" if b.base_alerts is None else f"{b.base_alerts:,}"
                out.append(
                    f"  alerts: BASE {base_count}, HEAD {b.head_alerts:,}, both {b.both:,}, "
                    f"only HEAD {len(b.only_head):,}, only BASE {len(b.only_base):,}"
                    + (
                        f"; suppressed at HEAD only {len(b.newly_suppressed):,}, "
                        f"reappear {len(b.reappeared):,}"
                        if b.newly_suppressed or b.reappeared
                        else ""
                    )
                )
                suppressed = {(s.alert.index, s.alert.document_id) for s in b.newly_suppressed}
                lost = [a for a in b.only_base if (a.index, a.document_id) not in suppressed]
                for kind, alerts in (("+", b.only_head), ("-", lost)):
                    for a in alerts[:MAX_ALERT_ROWS]:
                        out.append(
                            "    "
                            + paint(
                                f"{kind} {a.document_id} {a.user or '-'} {a.verb or '-'} "
                                f"{a.object or '-'} [{a.origin}]",
                                kind,
                            )
                        )
                    if len(alerts) > MAX_ALERT_ROWS:
                        out.append(f"    {kind} … {len(alerts) - MAX_ALERT_ROWS:,} more")
                exceptions = (("suppressed by", b.newly_suppressed), ("reappears, was", b.reappeared))
                for label, entries in exceptions:
                    for s in entries[:MAX_ALERT_ROWS]:
                        a = s.alert
                        out.append(
                            f"    {label} {s.item_id}: {a.document_id} {a.user or '-'} {a.verb or '-'} "
                            f"{a.object or '-'} [{a.origin}]"
                        )
                    if len(entries) > MAX_ALERT_ROWS:
                        out.append(f"    {label} … {len(entries) - MAX_ALERT_ROWS:,} more")
    if not any(r.noteworthy for r in report.rules):
        out.append("no rule changed")
    return "\n".join(out) + "\n"


def _plain(value: Any) -> str:
    if value is None:
        return "(absent)"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 1] + "…"
