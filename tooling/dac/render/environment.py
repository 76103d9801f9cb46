"""The ``templates/`` folder as Jinja environments, with shared data and located errors.

Two environments share one loader, the same filters and the same data:
``text`` renders queries and Markdown; ``native`` renders the Kibana rule
object as a Python structure (jinja2.nativetypes), which ``json`` then
serialises, so no template ever assembles JSON text. Both are strict:
an undefined name is an error, and nothing is auto-escaped.
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Callable
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import jinja2
from jinja2.nativetypes import NativeEnvironment

from dac.errors import DacError, Location, RuleError
from dac.loader import load_yaml
from dac.render.filters import FILTERS

INLINE = "<template>"
Where = Callable[[], Location]  # where the template text came from; asked only to report a problem
_JINJA_SYNTAX = re.compile(r"\{[{%#]")


class Templates:
    """Jinja over ``root`` (the repository's ``templates/``)."""

    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise DacError(f"templates folder not found: {root}")
        self.root = root
        options: dict[str, Any] = {
            "loader": jinja2.FileSystemLoader(root),
            "undefined": jinja2.StrictUndefined,
            "autoescape": False,
            "keep_trailing_newline": False,
            "extensions": ["jinja2.ext.do"],
        }
        self.text = jinja2.Environment(**options)
        self.native = NativeEnvironment(**options)
        for env in (self.text, self.native):
            env.filters.update(FILTERS)
            env.globals["data"] = self.data

    @cached_property
    def data(self) -> dict[str, Any]:
        """Every ``templates/data/*.yml`` by file stem: facts several templates share."""
        folder = self.root / "data"
        return {p.stem: load_yaml(p).data for p in sorted(folder.glob("*.yml"))}

    def render_string(self, source: str, context: dict[str, Any], where: Where) -> str:
        """Render inline template text found at ``where()`` (a YAML value); plain text passes through."""
        if not _JINJA_SYNTAX.search(source):
            return source.removesuffix("\n")  # as Jinja renders it (keep_trailing_newline off)
        return self._render(lambda: self._inline(source).render(context), where)

    @lru_cache(maxsize=1024)  # noqa: B019 - one Templates per run; rules share note and query texts
    def _inline(self, source: str) -> jinja2.Template:
        return self.text.from_string(source)

    def render_file(self, name: str, context: dict[str, Any], where: Where, native: bool = False) -> Any:
        """Render ``templates/<name>``; ``native`` returns the Python structure it builds."""
        env = self.native if native else self.text
        return self._render(lambda: env.get_template(name).render(context), where)

    def _render(self, render: Any, where: Where) -> Any:
        try:
            return render()
        except jinja2.TemplateNotFound as exc:
            raise RuleError(f"template not found: templates/{exc.name}", where()) from None
        except jinja2.TemplateSyntaxError as exc:
            raise RuleError(
                f"template syntax error: {exc.message}", self._place(exc.filename, exc.lineno, where())
            ) from None
        except Exception as exc:  # anything a template or a filter raises is the rule author's to fix
            filename, line = _template_frame(exc)
            raise RuleError(f"template error: {exc}", self._place(filename, line, where())) from None

    def _place(self, filename: str | None, line: int | None, where: Location) -> Location:
        """A file template's own line, or for inline text the YAML value's place."""
        if filename and filename != INLINE and line:
            path = Path(filename)
            if path.is_relative_to(Path.cwd()):
                path = path.relative_to(Path.cwd())
            return Location(str(path), line, 1)
        if line and where.line is not None:
            return Location(where.path, where.line + line - 1, where.column)
        return where


def _template_frame(exc: BaseException) -> tuple[str | None, int | None]:
    """The innermost traceback frame that belongs to a template (Jinja rewrites them)."""
    found: tuple[str | None, int | None] = (None, None)
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == INLINE or frame.filename.endswith(".j2"):
            found = (frame.filename, frame.lineno)
    return found
