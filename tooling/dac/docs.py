"""Documentation pages rendered from the rules themselves (``dac docs``), so they never drift."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from dac.compile import CompiledRule
from dac.errors import DacError, Location
from dac.files import write_atomic
from dac.lock import VersionLock
from dac.project import Project
from dac.render.environment import Templates

PAGE_TEMPLATE = "docs/rule.md.j2"


def render_pages(rules: list[CompiledRule], templates: Templates, lock: VersionLock) -> dict[str, str]:
    """File name → Markdown page, one per rule."""
    root = templates.root.resolve().parent  # the repository: templates/ sits at its top
    pages = {}
    for rule in rules:
        context = {
            "rule": rule.rule.data,
            "kibana": rule.kibana,
            "version": lock.version_of(rule),
            "source": rule.rule.path.resolve().relative_to(root).as_posix(),
            "exception_lists": [lst.kibana() for lst in rule.exception_lists],
        }
        text = templates.render_file(PAGE_TEMPLATE, context, partial(Location, str(rule.rule.path), 1, 1))
        pages[f"{rule.rule.path.stem}.md"] = text.rstrip() + "\n"
    return pages


def stale_pages(pages: dict[str, str], out: Path) -> list[DacError]:
    """Pages that are missing or differ from what the rules render (for ``dac docs --check``)."""
    stale = []
    for name, text in sorted(pages.items()):
        path = out / name
        if not path.exists() or path.read_text("utf-8") != text:
            stale.append(DacError("page is out of date: run `dac docs` and commit it", Location(str(path))))
    return stale


def write_pages(pages: dict[str, str], out: Path) -> None:
    for name, text in sorted(pages.items()):
        write_atomic(out / name, text)


def regenerate(project: Project, rules: list[CompiledRule], lock: VersionLock) -> Path:
    """Write ``docs/rules/*.md`` beside ``detections/`` (``dac build`` does, so no page goes stale)."""
    out = project.root / "docs" / "rules"
    write_pages(render_pages(rules, Templates(project.templates), lock), out)
    return out
