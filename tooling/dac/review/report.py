"""``dac diff`` end to end: both sides built, compared, run over the same events, reported."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dac.engine.local import LocalEngine
from dac.errors import DacError
from dac.review.behaviour import Pair, collect_events, compare_behaviour
from dac.review.compare import changed_shared_files, compare
from dac.review.exceptions import compare_exceptions
from dac.review.model import DiffReport, Flag, SideInfo
from dac.review.sides import WORKING_TREE, Git, Revision, Side, build_side


@dataclass(frozen=True)
class Options:
    base: str | None = None  # a revision; None: the merge base with origin/main (or main)
    head: str | None = None  # a revision; None: the working tree
    corpus_size: int = 10_000
    seed: int = 1
    events: Sequence[Path] = ()
    input_format: str = "auto"
    behaviour: bool = True


@dataclass
class Review:
    report: DiffReport
    problems: list[DacError]  # HEAD's build problems and unreadable events: the run fails


def review(project_root: Path, options: Options) -> Review:
    git = Git(project_root)
    head_revision = git.revision(options.head) if options.head else Revision(WORKING_TREE)
    base_revision = git.revision(options.base) if options.base else git.default_base(head_revision)
    with tempfile.TemporaryDirectory(prefix="dac-diff-") as scratch:
        base = build_side(git, base_revision, project_root, Path(scratch) / "base")
        head = build_side(git, head_revision, project_root, Path(scratch) / "head")
        report = DiffReport(_info(base), _info(head), changed_files=changed_shared_files(base, head))
        if head.problems:
            report.notes.append("HEAD does not build: its rules that failed show as removed until fixed")
        if base.problems:
            report.notes.append(
                "BASE does not build: only the rules that compiled there are compared, others show as added"
            )
        report.rules = compare(base, head)
        report.exceptions = compare_exceptions(base, head)
        _mark_tuned_rules(report, base, head)
        problems = list(head.problems)
        if options.behaviour:
            problems.extend(_behaviour(report, base, head, options))
    return Review(report, problems)


def _info(side: Side) -> SideInfo:
    return SideInfo(
        side.revision.label, side.revision.commit, len(side.rules), [str(p) for p in side.problems]
    )


def _mark_tuned_rules(report: DiffReport, base: Side, head: Side) -> None:
    """Name on each rule the changed exception lists it uses on either side."""
    changed = {lst.list_id for lst in report.exceptions}
    for rule in report.rules:
        used = {
            lst.list_id
            for side in (base, head)
            if rule.rule_id in side.rules
            for lst in side.rules[rule.rule_id].exception_lists
        }
        rule.exception_lists = sorted(used & changed)


def _behaviour(report: DiffReport, base: Side, head: Side, options: Options) -> list[DacError]:
    changed = [
        r
        for r in report.rules
        if r.status in ("added", "modified") or (r.exception_lists and r.status != "removed")
    ]
    if not changed:
        return []
    pairs: list[Pair] = [(base.rules.get(r.rule_id), head.rules.get(r.rule_id)) for r in changed]
    events = collect_events(pairs, options.corpus_size, options.seed, options.events, options.input_format)
    report.event_sources = events.sources
    report.notes.extend(events.notes)
    results = compare_behaviour(pairs, events, LocalEngine())
    for rule in changed:
        rule.behaviour = results[rule.rule_id]
        suppressed = {(s.alert.index, s.alert.document_id) for s in rule.behaviour.newly_suppressed}
        lost = [a for a in rule.behaviour.only_base if (a.index, a.document_id) not in suppressed]
        if lost:
            attacks = sum(1 for a in lost if a.origin.startswith("efficacy attack"))
            detail = f", {attacks} of them attacks from the efficacy corpus" if attacks else ""
            rule.flags.append(Flag("alerts-lost", f"{len(lost)} alerts at BASE are gone at HEAD{detail}"))
        if rule.behaviour.skipped:
            report.notes.append(f"{rule.name}: not run ({rule.behaviour.skipped})")
    _item_behaviour(report)
    report.notes.append(
        f"alerts counted over {events.count:,} events with max_signals lifted on both sides "
        "(Kibana caps each execution, not a corpus); BASE and HEAD rules both rendered by this dac"
    )
    return events.problems


def _item_behaviour(report: DiffReport) -> None:
    """Per changed item: the alerts it newly suppresses, and how many of them are attacks of the
    efficacy corpus. A changed item that suppresses alerts BASE raised is widened, whatever its
    entries look like (a match the query gained does not count: that is the query's change)."""
    newly: dict[tuple[str, str], int] = {}
    attacks: dict[tuple[str, str], int] = {}
    widened: dict[tuple[str, str], int] = {}
    for rule in report.rules:
        behaviour = rule.behaviour
        if behaviour is None:
            continue
        raised_at_base = {(a.index, a.document_id) for a in behaviour.only_base}
        for s in behaviour.newly_suppressed:
            key = (s.list_id, s.item_id)
            newly[key] = newly.get(key, 0) + 1
            if s.alert.origin.startswith("efficacy attack"):
                attacks[key] = attacks.get(key, 0) + 1
            if (s.alert.index, s.alert.document_id) in raised_at_base:
                widened[key] = widened.get(key, 0) + 1
    for lst in report.exceptions:
        for item in lst.items:
            key = (lst.list_id, item.item_id)
            if item.status == "removed":
                continue
            item.suppresses = newly.get(key, 0)
            detail = f"suppresses {_plural(item.suppresses, 'alert')} in the behavioural diff"
            if attacks.get(key):
                detail += f", {attacks[key]:,} of them attacks from the efficacy corpus"
            item.flags = [
                Flag(f.id, f"{item.item_id}: {detail}") if f.id == "exception-added" else f
                for f in item.flags
            ]
            if (
                item.status == "modified"
                and widened.get(key)
                and all(f.id != "exception-widened" for f in item.flags)
            ):
                item.flags.append(
                    Flag(
                        "exception-widened",
                        f"{item.item_id}: suppresses {_plural(widened[key], 'alert')} BASE raised",
                    )
                )


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"
