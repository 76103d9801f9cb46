"""Jinja environments that run untrusted templates: no code execution, bounded time and memory.

Rule files and templates arrive through pull requests and are rendered by CI before anyone
has read them. Both environments derive from Jinja's ``ImmutableSandboxedEnvironment``:

- no attribute that starts with ``_`` (``cycler.__init__.__globals__``, ``''.__class__``,
  ``self._TemplateReference__context``), no function marked unsafe, no ``str.format`` field
  that reaches one; a template cannot call ``update``/``append``/``pop`` on a dict or list,
  so a rule cannot change the shared ``data`` or another rule's context. (Templates build
  their own dicts with ``dict(base, key=value)`` instead of ``{% do d.update() %}``.)
- ``SandboxedNative`` is the same sandbox with jinja2.nativetypes' code generator and
  concatenation (for the Kibana rule object, rendered as a Python structure): the sandbox's
  checks sit in ``getattr``/``call``/``call_binop``, which the native code generator calls
  exactly as the text one does.
- Sizes: ``range`` is capped by the sandbox (100,000); ``*``, ``**`` and ``%`` and
  ``str.format`` refuse counts, exponents and widths beyond ``MAX_TEMPLATE_INT``, as do the
  numeric arguments of every filter (``center(10**9)``); ``lipsum`` is removed.
- :func:`guarded` bounds one render: its output (``MAX_RENDER_CHARS``), its wall time
  (``MAX_RENDER_SECONDS``, by an interval timer in the main thread) and, on Linux, the
  memory it may add (``MAX_RENDER_MEMORY_BYTES``, by lowering the address-space limit while
  it runs), so a loop that doubles a string cannot take the machine down either.
"""

from __future__ import annotations

import functools
import operator
import re
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from jinja2.nativetypes import NativeCodeGenerator, NativeTemplate, native_concat
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from dac.limits import (
    MAX_RENDER_CHARS,
    MAX_RENDER_MEMORY_BYTES,
    MAX_RENDER_SECONDS,
    MAX_TEMPLATE_INT,
    exceeded,
)

try:
    import resource
except ImportError:  # not on Windows: the time and output limits still hold
    resource = None  # type: ignore[assignment]

# Widths and precisions in printf-style (`%10.3s`) and str.format (`{0:>10}`) templates.
_PERCENT_SPEC = re.compile(r"%[-+ #0]*(\d*)(?:\.(\d+))?")
_FORMAT_SPEC = re.compile(r"\{[^{}]*:([^{}]*)\}")
_DIGITS = re.compile(r"\d+")


class RenderLimitError(Exception):
    """A render went past one of the limits in dac.limits (reported as a template error)."""


def _too_big(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_TEMPLATE_INT


def _refuse_int(value: Any, what: str) -> None:
    if _too_big(value):
        raise SecurityError(exceeded(what, MAX_TEMPLATE_INT, "", "MAX_TEMPLATE_INT"))


def _bounded_filter(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` refusing integer arguments (after the value) beyond MAX_TEMPLATE_INT."""
    skip = 2 if getattr(fn, "jinja_pass_arg", None) else 1  # context/environment, then the value

    @functools.wraps(fn)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        for value in (*args[skip:], *kwargs.values()):
            _refuse_int(value, f"filter argument {value}")
        return fn(*args, **kwargs)

    return bounded


class SandboxedText(ImmutableSandboxedEnvironment):
    """The sandbox for text (queries, Markdown)."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.globals.pop("lipsum", None)
        self.filters = {name: _bounded_filter(fn) for name, fn in self.filters.items()}

    def call_binop(self, context: Any, op: str, left: Any, right: Any) -> Any:
        if op == "**":
            _refuse_int(right, f"exponent {right}")
            if isinstance(left, int) and isinstance(right, int) and left.bit_length() * right > 4096:
                raise SecurityError(f"{left} ** {right} is too large a number for a template")
        elif op == "*":
            for side in (left, right):
                _refuse_int(side, f"repeat count {side}")
        elif op == "%" and isinstance(left, str):
            self._check_widths([d for spec in _PERCENT_SPEC.findall(left) for d in spec])
        return {"*": operator.mul, "**": operator.pow, "%": operator.mod}[op](left, right)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:
            specs = _FORMAT_SPEC.findall(value.__self__)
            self._check_widths([d for spec in specs for d in _DIGITS.findall(spec)])
        return wrapped

    @staticmethod
    def _check_widths(numbers: list[str]) -> None:
        for digits in numbers:
            if digits and (len(digits) > 6 or int(digits) > MAX_TEMPLATE_INT):
                _refuse_int(int(digits[:12]), f"format width {digits}")


class SandboxedNative(SandboxedText):
    """The same sandbox rendering to Python structures (jinja2.nativetypes)."""

    code_generator_class = NativeCodeGenerator
    concat = staticmethod(native_concat)  # type: ignore[assignment]


class _SandboxedNativeTemplate(NativeTemplate):
    environment_class = SandboxedNative


SandboxedNative.template_class = _SandboxedNativeTemplate


def bounded_output(pieces: Iterable[Any]) -> Iterator[Any]:
    """The pieces a template yields, stopped once their text passes MAX_RENDER_CHARS."""
    total = 0
    for piece in pieces:
        if isinstance(piece, str):
            total += len(piece)
            if total > MAX_RENDER_CHARS:
                raise RenderLimitError(
                    exceeded("rendered output", MAX_RENDER_CHARS, "characters", "MAX_RENDER_CHARS")
                )
        yield piece


@contextmanager
def guarded() -> Iterator[None]:
    """Bound the time and the memory of the render inside the ``with`` block.

    One generator for both limits: it runs around every render (several per rule).
    """
    lowered = _lower_memory_limit()
    timed = False
    try:
        timed = _start_timer()
        yield
    except MemoryError:
        if lowered is None:
            raise
        raise RenderLimitError(
            exceeded("rendering memory", MAX_RENDER_MEMORY_BYTES, "bytes", "MAX_RENDER_MEMORY_BYTES")
        ) from None
    finally:
        if lowered is not None:
            resource.setrlimit(resource.RLIMIT_AS, lowered)
        if timed:
            signal.setitimer(signal.ITIMER_REAL, 0)


def _expire(signum: int, frame: Any) -> None:
    raise RenderLimitError(exceeded("rendering", MAX_RENDER_SECONDS, "seconds", "MAX_RENDER_SECONDS"))


def _start_timer() -> bool:
    """Arm the render's interval timer; False where it cannot run (signals reach only the main
    thread; the output and memory limits still hold)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        return False
    if signal.getsignal(signal.SIGALRM) is not _expire:
        signal.signal(signal.SIGALRM, _expire)  # stays installed: it acts only on this module's timer
    signal.setitimer(signal.ITIMER_REAL, MAX_RENDER_SECONDS)
    return True


class _Baseline:
    """The process's address space, read from /proc every 64 renders (reading it costs ~100 µs)."""

    renders = 0
    size: int | None = None


def _lower_memory_limit() -> tuple[int, int] | None:
    """Lower the address-space limit to the baseline plus the render's allowance; returns the
    limits to restore, or None when nothing was lowered (no /proc, or already tighter)."""
    if _Baseline.renders % 64 == 0:
        _Baseline.size = _address_space()
    _Baseline.renders += 1
    if resource is None or _Baseline.size is None:
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    ceiling = _Baseline.size + MAX_RENDER_MEMORY_BYTES
    if hard != resource.RLIM_INFINITY:
        ceiling = min(ceiling, hard)
    if soft != resource.RLIM_INFINITY and soft <= ceiling:
        return None  # already tighter
    resource.setrlimit(resource.RLIMIT_AS, (ceiling, hard))
    return soft, hard


def _address_space() -> int | None:
    """This process's virtual memory size in bytes (Linux /proc), or None elsewhere."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            pages = int(statm.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pages * resource.getpagesize() if resource is not None else None
