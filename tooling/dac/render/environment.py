"""The ``templates/`` folder as Jinja environments, with shared data and located errors.

Two environments share one loader, the same filters and the same data:
``text`` renders queries and Markdown; ``native`` renders the Kibana rule
object as a Python structure (jinja2.nativetypes), which ``json`` then
serialises, so no template ever assembles JSON text. Both are strict:
an undefined name is an error, and nothing is auto-escaped. Both are
sandboxed (``render/sandbox.py``): templates come from pull requests.
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Callable
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import jinja2

from dac.errors import DacError, Location, RuleError
from dac.loader import RULE_SUFFIXES, load_yaml, read_text
from dac.render.filters import FILTERS
from dac.render.sandbox import SandboxedNative, SandboxedText, bounded_output, guarded

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
            "loader": jinja2.FunctionLoader(self._source),
            "undefined": jinja2.StrictUndefined,
            "autoescape": False,
            "keep_trailing_newline": False,
            "extensions": ["jinja2.ext.do"],
            # One command reads each template once: no stat of every template file per render.
            "auto_reload": False,
        }
        self.text = SandboxedText(**options)
        self.native = SandboxedNative(**options)
        for env in (self.text, self.native):
            env.filters.update(FILTERS)
            env.globals["data"] = self.data

    def _source(self, name: str) -> tuple[str, str, None] | None:
        """A template file's text, read within the file size limit (a FunctionLoader source)."""
        path = self.root / name
        if not path.resolve().is_relative_to(self.root.resolve()) or not path.is_file():
            return None  # TemplateNotFound; ``..`` and links out of templates/ are refused as not found
        return read_text(path), str(path), None  # read once (auto_reload is off)

    @cached_property
    def data(self) -> dict[str, Any]:
        """Every ``templates/data/*.yml``/``*.yaml`` (any case) by file stem: facts templates share."""
        folder = self.root / "data"
        files = sorted(p for p in folder.glob("*") if p.suffix.lower() in RULE_SUFFIXES and p.is_file())
        return {p.stem: load_yaml(p).data for p in files}

    def display(self, name: str) -> str:
        """How ``templates/<name>`` is named in messages."""
        return _display(str(self.root / name))

    def render_string(self, source: str, context: dict[str, Any], where: Where) -> str:
        """Render inline template text found at ``where()`` (a YAML value); plain text passes through."""
        if not _JINJA_SYNTAX.search(source):
            return source.removesuffix("\n")  # as Jinja renders it (keep_trailing_newline off)
        return self._render(lambda: "".join(bounded_output(self._inline(source).generate(context))), where)

    @lru_cache(maxsize=1024)  # noqa: B019 - one Templates per run; rules share note and query texts
    def _inline(self, source: str) -> jinja2.Template:
        return self.text.from_string(source)

    def render_file(self, name: str, context: dict[str, Any], where: Where, native: bool = False) -> Any:
        """Render ``templates/<name>``; ``native`` returns the Python structure it builds."""
        env = self.native if native else self.text
        concat = env.concat if native else "".join
        return self._render(lambda: concat(bounded_output(env.get_template(name).generate(context))), where)

    def _render(self, render: Any, where: Where) -> Any:
        try:
            with guarded():
                return render()
        except DacError as exc:  # a template file over the size limit
            at = exc.location or where()
            place = Location(_display(at.path), at.line, at.column)
            raise RuleError(f"{exc.message} (a template rendered for {where()})", place) from None
        except jinja2.TemplateNotFound as exc:
            raise RuleError(f"template not found: templates/{exc.name}", where()) from None
        except jinja2.TemplateSyntaxError as exc:
            frames = [*_template_frames(exc), (exc.filename or INLINE, exc.lineno)]
            raise self._located(f"template syntax error: {exc.message}", frames, where()) from None
        except Exception as exc:  # anything a template or a filter raises is the rule author's to fix
            raise self._located(f"template error: {exc}", _template_frames(exc), where()) from None

    def _located(self, message: str, frames: list[tuple[str, int | None]], where: Location) -> RuleError:
        """Blame the rule's own text when the failing render started there, else the template file.

        An error raised in a macro that an inline query imports is placed on the rule's line
        that called it, naming the macro file's line too; an error in a query or object
        template file is placed in that file, naming the rule that rendered it.
        """
        frames = [(name, line) for name, line in frames if line]
        if not frames:
            return RuleError(message, where)
        (outer, outer_line), (inner, inner_line) = frames[0], frames[-1]
        if outer == INLINE:
            place = where
            if where.line is not None:
                place = Location(where.path, where.line + (outer_line or 1) - 1, where.column)
            if inner != INLINE:
                message += f" (in {_display(inner)}:{inner_line})"
            return RuleError(message, place)
        return RuleError(f"{message} (rendered for {where})", Location(_display(inner), inner_line, 1))


def _display(filename: str) -> str:
    """A template file's name as the user typed paths: relative to the working folder when inside it."""
    path = Path(filename)
    return str(path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path)


def _template_frames(exc: BaseException) -> list[tuple[str, int | None]]:
    """The traceback frames that belong to templates, outermost first (Jinja rewrites them)."""
    return [
        (frame.filename, frame.lineno)
        for frame in traceback.extract_tb(exc.__traceback__)
        if frame.filename == INLINE or frame.filename.endswith(".j2")
    ]
