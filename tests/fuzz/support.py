"""What every fuzz test shares: a fixed budget, a hard time limit per example, the located-error check.

Budget: each test names its ``max_examples``; ``derandomize=True`` makes CI runs repeatable. For a
longer local run set ``DAC_FUZZ_CASES`` (examples per test) and ``DAC_FUZZ_SEED`` (a random seed
instead of the derandomized one).

Time: Hypothesis' ``deadline`` fails an example that is slow twice in a row; :func:`time_limit`
interrupts one that hangs in Python code (SIGALRM), and ``faulthandler`` kills the process with
every thread's traceback if even that does not get through (a hang inside C code), so CI never
blocks on a fuzz case.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import signal
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any, TypeVar

from hypothesis import HealthCheck, seed, settings

from dac.errors import DacError, QueryError

EXAMPLE_SECONDS = 10  # the hard limit of one example; the slowest legitimate one takes < 0.5 s
DEADLINE = timedelta(seconds=5)  # generous: CI is shared; EXAMPLE_SECONDS catches a hang

F = TypeVar("F", bound=Callable[..., Any])


BUDGETS: dict[str, int] = {}  # test name -> examples it runs, for the summary line (conftest.py)
REPORT_LINES: list[str] = []  # what fuzzers ran, printed at the end of the session (tests/conftest.py)


def seed_description() -> str:
    chosen = os.environ.get("DAC_FUZZ_SEED")
    return f"seed {chosen}" if chosen is not None else "derandomized (set DAC_FUZZ_SEED for a random seed)"


class ExampleTimeout(Exception):
    """An example ran past EXAMPLE_SECONDS: a hang, reported as a failure of that example."""


def fuzz(max_examples: int) -> Callable[[F], F]:
    """The settings of one fuzz test: its budget, derandomized unless DAC_FUZZ_SEED is set."""
    cases = os.environ.get("DAC_FUZZ_CASES")
    chosen_seed = os.environ.get("DAC_FUZZ_SEED")
    configured = settings(
        max_examples=int(cases) if cases else max_examples,
        derandomize=chosen_seed is None,
        database=None,
        deadline=DEADLINE,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                               HealthCheck.filter_too_much],
        print_blob=True,
    )

    def apply(test: F) -> F:
        BUDGETS[test.__name__] = int(cases) if cases else max_examples
        test = configured(test)
        return seed(int(chosen_seed))(test) if chosen_seed is not None else test

    return apply


@contextlib.contextmanager
def time_limit(seconds: float = EXAMPLE_SECONDS) -> Iterator[None]:
    """Fail the running example with ExampleTimeout after ``seconds``; kill the run at twice that."""
    if sys.platform == "win32" or not hasattr(signal, "setitimer"):
        yield
        return

    def expired(signum: int, frame: Any) -> None:
        raise ExampleTimeout(f"example still running after {seconds} s: a hang")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    faulthandler.dump_traceback_later(seconds * 2 + 5, exit=True)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        faulthandler.cancel_dump_traceback_later()
        signal.signal(signal.SIGALRM, previous)


T = TypeVar("T")


def result_or_located_error(action: Callable[[], T], what: str) -> T | DacError:
    """Run ``action`` under the time limit: its result, or the DacError it raised if that is located.

    Located means a file line (``location.line``) or a position in the query text
    (``QueryError.query_line``). Any other exception propagates and fails the example.
    """
    with time_limit():
        try:
            return action()
        except DacError as exc:
            assert_located(exc, what)
            return exc


def assert_located(error: DacError, what: str) -> None:
    line = error.location.line if error.location is not None else None
    if isinstance(error, QueryError) and line is None:
        line = error.query_line
    assert line is not None and line >= 1, f"{what}: error without a position: {error!r}"
    assert str(error) and "\n" not in str(error).strip(), f"{what}: error is not one line: {str(error)!r}"
