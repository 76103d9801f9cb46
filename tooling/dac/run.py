"""``dac run``: rules over a user's own audit logs, streamed, with every scheduled execution replayed.

read (any format, plain or gzipped, located errors) → replay on an engine → alerts as NDJSON,
then one summary line per rule and one for the run on stderr. A progress line is drawn on stderr
only when it is a terminal; pipes and CI get the summary alone.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from dac.documents import SourceDocument
from dac.engine.base import Engine, ExceptionLists, KibanaRule, RuleOutcome
from dac.engine.replay import BATCH, Replay, executions_for, outside_every_window
from dac.errors import EventError
from dac.events.reader import ReadStats, file_documents, iter_documents, range_blocks

MAX_PRINTED_ERRORS = 100
PARALLEL_BYTES = 16 << 20  # of text (gzip: inflated); below this, starting workers costs more than it saves
EXIT_OK, EXIT_PROBLEMS = 0, 1


@dataclass(frozen=True)
class RunOptions:
    events: Sequence[Path]
    input_format: str = "auto"
    now: datetime | None = None
    start: datetime | None = None
    end: datetime | None = None
    quiet: bool = False
    processes: int | None = None  # worker processes for a large input (default: one per core)


class ErrorPrinter:
    """Prints located errors, at most ``MAX_PRINTED_ERRORS``, then counts the rest."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.count = 0

    def __call__(self, error: EventError) -> None:
        self.count += 1
        if self.count <= MAX_PRINTED_ERRORS:
            print(error, file=self.stream)

    def close(self) -> None:
        if self.count > MAX_PRINTED_ERRORS:
            print(f"… and {self.count - MAX_PRINTED_ERRORS} more malformed lines", file=self.stream)


class Progress:
    """``events read, events/s, alerts, ETA`` redrawn in place, at most a few times a second."""

    def __init__(self, stream: IO[str], stats: ReadStats, replay: Replay, enabled: bool) -> None:
        self.stream, self.stats, self.replay = stream, stats, replay
        self.enabled = enabled
        self.started = self.shown = time.monotonic()

    def update(self) -> None:
        now = time.monotonic()
        if not self.enabled or now - self.shown < 0.25:
            return
        self.shown = now
        elapsed = now - self.started
        rate = self.stats.events / elapsed if elapsed else 0.0
        line = f"{self.stats.events:,} events read, {rate:,.0f} events/s, {self.replay.alerts_so_far:,} hits"
        done = self.stats.bytes_done + self.stats.current_bytes()
        if self.stats.total_bytes and done:
            remaining = elapsed * (self.stats.total_bytes - done) / done
            line += f", ETA {remaining:,.0f} s"
        self.stream.write(f"\r\x1b[K{line}")
        self.stream.flush()

    def clear(self) -> None:
        if self.enabled:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def run_rules(rules: Sequence[KibanaRule], options: RunOptions, engine: Engine | None = None,
              out: Path | None = None, stdout: IO[str] | None = None, stderr: IO[str] | None = None,
              exceptions: ExceptionLists | None = None) -> int:
    """The whole command; returns its exit code."""
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    errors = ErrorPrinter(stderr)
    stats = ReadStats()
    started = time.perf_counter()
    outside = False
    if engine is None:
        outcomes, outside = _replay_locally(rules, options, errors, stats, stderr, exceptions)
    else:
        documents = list(iter_documents(list(options.events), options.input_format, errors, stats))
        outcomes = _run_on(engine, rules, documents, options, exceptions)
    seconds = time.perf_counter() - started
    errors.close()
    _write(outcomes, out, stdout)
    for path, reason in stats.skipped:
        print(f"{path}: skipped: {reason}", file=stderr)
    if not options.quiet:
        for outcome in outcomes:
            print(f"{outcome.name}: {summary(outcome)}", file=stderr)
    skipped_rules = sum(1 for o in outcomes if o.skipped)
    alerts = sum(len(o.alerts) for o in outcomes)
    rate = f", {stats.events / seconds:,.0f} events/s" if seconds and stats.events else ""
    print(
        f"{stats.events} events read, {errors.count} malformed lines, {alerts} alerts; "
        f"{len(outcomes) - skipped_rules} rules executed, {skipped_rules} skipped "
        f"({engine.name if engine else 'local'} engine, {seconds:.1f} s{rate})",
        file=stderr,
    )
    if stats.events == 0:
        what = "no event file" if not stats.files else "no event"
        print(f"dac run: {what} was read: nothing was evaluated", file=stderr)
        return EXIT_PROBLEMS
    if outside:
        print("dac run: no event falls inside any execution window (see --from, --to, --now): "
              "nothing was evaluated", file=stderr)
        return EXIT_PROBLEMS
    return EXIT_PROBLEMS if errors.count else EXIT_OK


def summary(outcome: RuleOutcome) -> str:
    """``N alerts in 3 executions (capped by max_signals in 1; M matched), K suppressed by exceptions
    in 12 ms``, or why skipped."""
    if outcome.skipped:
        return f"skipped ({outcome.skipped})"
    text = f"{len(outcome.alerts)} alerts"
    if outcome.executions != 1:
        text += f" in {outcome.executions} executions"
    if outcome.capped:
        where = "" if outcome.executions == 1 else f" in {outcome.capped_executions} of them"
        text += f" (capped by max_signals{where}; {outcome.matched} matched)"
    if outcome.suppressed:
        text += f", {len(outcome.suppressed)} suppressed by exceptions"
    return f"{text} in {outcome.seconds * 1000:.0f} ms"


def _replay_locally(rules: Sequence[KibanaRule], options: RunOptions, errors: ErrorPrinter, stats: ReadStats,
                    stderr: IO[str], exceptions: ExceptionLists | None) -> tuple[list[RuleOutcome], bool]:
    """Stream the input through a Replay: documents are converted only as far as the rules read;
    a large input is read by one worker process per core. Exception items apply per execution.
    Also whether every event lay outside every execution window."""
    from dac.documents import no_cycle_collection
    from dac.engine import parallel
    from dac.events.k8s_audit import members_read
    from dac.events.reader import collect_files, text_bytes

    replay = Replay(rules, exceptions=exceptions)
    members = members_read(replay.fields)
    progress = Progress(stderr, stats, replay, enabled=not options.quiet and stderr.isatty())
    files = collect_files(list(options.events), stats)
    streams = all(state.compiled is None or state.compiled.per_document for state in replay.rules)
    processes = options.processes or parallel.workers()
    if streams and processes > 1 and sum(map(text_bytes, files)) >= PARALLEL_BYTES:
        parallel.feed_in_parallel(replay, rules, files, options.input_format, members, errors, stats,
                                  progress.update, processes)
    else:
        batch: list[Any] = []
        with no_cycle_collection():
            for file in files:
                chunks = range_blocks(file, errors, stats)
                for document in file_documents(file, chunks, options.input_format, errors, stats, members,
                                               lazy=True, needles=replay.needles):
                    batch.append(document)
                    if len(batch) == BATCH:
                        replay.feed(batch)
                        batch = []
                        progress.update()
                stats.bytes_done += file.stat().st_size
                stats.current_bytes = lambda: 0
            replay.feed(batch)
    progress.clear()
    executions = executions_for(replay, options.now, options.start, options.end)
    return replay.finish(executions), outside_every_window(rules, executions, replay.first, replay.last)


def _run_on(engine: Engine, rules: Sequence[KibanaRule], documents: list[SourceDocument],
            options: RunOptions, exceptions: ExceptionLists | None) -> list[RuleOutcome]:
    if options.now is not None or not hasattr(engine, "replay"):
        return engine.run(rules, documents, options.now, exceptions=exceptions)
    return engine.replay(rules, documents, options.start, options.end,  # type: ignore[attr-defined]
                         exceptions=exceptions)


def _write(outcomes: list[RuleOutcome], out: Path | None, stdout: IO[str]) -> None:
    # json, not orjson: orjson refuses objects nested deeper than 254 levels, which an event may be
    text = "".join(
        json.dumps(alert, sort_keys=True, ensure_ascii=False, default=str) + "\n"
        for outcome in outcomes
        for alert in outcome.alerts
    )
    if out is not None:
        from dac.files import write_atomic

        write_atomic(out, text)
    else:
        stdout.write(text)
