"""The ``dac`` command line. Every command exits 0 on success, 1 when it found problems,
2 on a usage error; problems are printed one per line as ``file:line:column: message``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from dac.compile import CompiledRule, compile_rules
from dac.errors import DacError
from dac.events.reader import INPUT_FORMATS
from dac.loader import rule_files
from dac.lock import VersionLock
from dac.project import Project
from dac.render.environment import Templates

EXIT_OK, EXIT_PROBLEMS = 0, 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.command(args)
    except DacError as exc:
        print(f"dac: {exc}", file=sys.stderr)
        return EXIT_PROBLEMS
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dac", description="Elastic Security detections as code.")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    def command(
        name: str, handler: Callable[[argparse.Namespace], int], help_text: str
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(command=handler)
        sub.add_argument(
            "--path", type=Path, default=Path("detections"), help="detections root (default: detections/)"
        )
        return sub

    validate = command(
        "validate", cmd_validate, "check every rule: schema, query syntax, fields, ATT&CK, ids"
    )
    validate.add_argument(
        "--check-lock", action="store_true", help="fail when a rule changed without a version bump"
    )
    validate.add_argument("--format", choices=["text", "json"], default="text")

    build = command("build", cmd_build, "validate, then write build/rules/*.json and build/rules.ndjson")
    build.add_argument("--out", type=Path, default=Path("build"), help="output folder (default: build/)")

    show = command("show", cmd_show, "print one rendered rule and its query (by rule_id, name or file)")
    show.add_argument("rule", help="rule_id, exact name, or path of the rule file")
    show.add_argument("--format", choices=["text", "json"], default="text")

    test = command("test", cmd_test, "run every rule's test scenarios in-process (no server)")
    test.add_argument("rules", nargs="*", help="rule_ids, names or files (default: all)")
    test.add_argument("--format", choices=["text", "json"], default="text")

    run = command("run", cmd_run, "run rules over your own audit logs and print the alerts as NDJSON")
    run.add_argument(
        "--events",
        type=Path,
        action="append",
        required=True,
        metavar="FILE|DIR",
        help="NDJSON event file or folder (repeatable)",
    )
    run.add_argument(
        "--input",
        choices=INPUT_FORMATS,
        default="k8s-audit",
        help="raw Kubernetes audit events (default) or already-indexed ECS documents",
    )
    run.add_argument(
        "--rules", type=Path, nargs="+", metavar="PATH", help="rule files or folders (default: all)"
    )
    run.add_argument(
        "--now",
        type=_timestamp,
        help="evaluate each rule's window ending at this time (ISO 8601); default: every event",
    )
    run.add_argument("--out", type=Path, help="write alerts here instead of stdout")
    run.add_argument("--engine", choices=["local", "elasticsearch"], default="local")
    run.add_argument("--es-url", help="Elasticsearch URL for --engine elasticsearch (default: $ES_URL)")
    run.add_argument("--keep", action="store_true", help="keep the temporary index (elasticsearch engine)")
    return parser


def _timestamp(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _compile(
    args: argparse.Namespace, paths: Sequence[Path] | None = None
) -> tuple[Project, list[CompiledRule], list[DacError]]:
    project = Project.at(args.path)
    files = [f for p in (paths or [project.detections]) for f in rule_files(p)]
    compiled, problems = compile_rules(files, Templates(project.templates))
    return project, compiled, problems


def _select(compiled: list[CompiledRule], wanted: Sequence[str]) -> list[CompiledRule]:
    """Rules named by rule_id, exact name or file path; all when nothing is named."""
    if not wanted:
        return compiled
    chosen = []
    for item in wanted:
        matches = [
            c
            for c in compiled
            if item in (c.rule.rule_id, c.rule.name) or Path(item).resolve() == c.rule.path.resolve()
        ]
        if not matches:
            raise DacError(f"no valid rule matches {item!r}")
        chosen.extend(m for m in matches if m not in chosen)
    return chosen


def _report(problems: list[DacError], fmt: str = "text") -> None:
    if fmt == "json":
        items = [
            {
                "path": p.location.path if p.location else None,
                "line": p.location.line if p.location else None,
                "column": p.location.column if p.location else None,
                "message": str(p).removeprefix(f"{p.location}: ") if p.location else str(p),
            }
            for p in problems
        ]
        print(json.dumps(items, indent=2))
        return
    for problem in problems:
        print(problem, file=sys.stderr)


def cmd_validate(args: argparse.Namespace) -> int:
    project, compiled, problems = _compile(args)
    if args.check_lock:
        problems.extend(VersionLock.load(project.lock).problems(compiled))
    _report(problems, args.format)
    if args.format == "text":
        print(f"{len(compiled)} rules valid, {len(problems)} problems", file=sys.stderr)
    return EXIT_PROBLEMS if problems else EXIT_OK


def cmd_build(args: argparse.Namespace) -> int:
    from dac.build import write_build

    project, compiled, problems = _compile(args)
    if problems:
        _report(problems)
        print(f"build failed: {len(problems)} problems; the previous build is untouched", file=sys.stderr)
        return EXIT_PROBLEMS
    lock = VersionLock.load(project.lock)
    write_build([rule.with_version(lock.version_of(rule)) for rule in compiled], args.out)
    for rule in compiled:
        if not lock.is_current(rule):
            print(f"version {lock.version_of(rule)}: {rule.rule.name}", file=sys.stderr)
    lock.updated(compiled).write()
    print(f"built {len(compiled)} rules into {args.out}/", file=sys.stderr)
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    project, compiled, problems = _compile(args)
    _report(problems)
    rule = _select(compiled, [args.rule])[0]
    body = rule.with_version(VersionLock.load(project.lock).version_of(rule))
    if args.format == "json":
        print(json.dumps(body, indent=2, sort_keys=True, ensure_ascii=False))
        return EXIT_OK
    print(
        f"# {body['name']}  ({body['rule_id']}, {body['type']}/{body['language']}, "
        f"{body['severity']} {body['risk_score']}, version {body['version']})"
    )
    print(f"# {rule.rule.path}\n")
    print(body["query"])
    print()
    print(
        json.dumps(
            {k: v for k, v in body.items() if k != "query"}, indent=2, sort_keys=True, ensure_ascii=False
        )
    )
    return EXIT_OK


def cmd_test(args: argparse.Namespace) -> int:
    from dac.engine.local import LocalEngine
    from dac.scenarios import run_scenario, scenarios

    project, compiled, problems = _compile(args)
    if problems:
        _report(problems)
        return EXIT_PROBLEMS
    lock = VersionLock.load(project.lock)
    engine = LocalEngine()
    results = []
    for scenario in scenarios(_select(compiled, args.rules)):
        try:
            results.append(run_scenario(scenario, engine, lock.version_of(scenario.rule)))
        except DacError as exc:
            problems.append(exc)
    _report(problems)
    failed = [r for r in results if not r.passed]
    if args.format == "json":
        print(
            json.dumps(
                [
                    {
                        "rule": r.scenario.rule.rule.name,
                        "scenario": r.scenario.name,
                        "expected": r.expected,
                        "got": len(r.outcome.alerts),
                        "skipped": r.outcome.skipped,
                        "failures": r.failures,
                        "seconds": round(r.seconds, 4),
                    }
                    for r in results
                ],
                indent=2,
            )
        )
    else:
        rows = [
            (
                r.scenario.rule.rule.path.stem,
                r.scenario.name,
                str(r.expected),
                "skip" if r.outcome.skipped else str(len(r.outcome.alerts)),
                f"{r.seconds * 1000:.0f} ms",
                "ok" if r.passed else "FAIL",
            )
            for r in results
        ]
        _table(("rule", "scenario", "expected", "got", "time", ""), rows)
        for r in failed:
            reasons = r.failures or [r.outcome.skipped]
            for reason in reasons:
                print(f"FAIL {r.scenario.test_id}: {reason}")
        print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return EXIT_PROBLEMS if failed or problems else EXIT_OK


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def cmd_run(args: argparse.Namespace) -> int:
    from dac.events.reader import read_events

    project, compiled, problems = _compile(args, args.rules)
    if problems:
        _report(problems)
        return EXIT_PROBLEMS
    events = read_events(args.events, args.input)
    _report(list(events.errors))
    lock = VersionLock.load(project.lock)
    rules = [c.with_version(lock.version_of(c)) for c in compiled]
    engine = _engine(args)
    outcomes = engine.run(rules, events.documents, args.now)
    lines = [
        json.dumps(alert, sort_keys=True, ensure_ascii=False, default=str)
        for o in outcomes
        for alert in o.alerts
    ]
    text = "".join(line + "\n" for line in lines)
    if args.out:
        from dac.files import write_atomic

        write_atomic(args.out, text)
    else:
        sys.stdout.write(text)
    for outcome in outcomes:
        state = f"skipped ({outcome.skipped})" if outcome.skipped else f"{len(outcome.alerts)} alerts"
        print(f"{outcome.name}: {state} in {outcome.seconds * 1000:.0f} ms", file=sys.stderr)
    print(
        f"{len(events.documents)} events read, {len(events.errors)} malformed lines, {len(lines)} alerts "
        f"({engine.name} engine)",
        file=sys.stderr,
    )
    return EXIT_PROBLEMS if events.errors else EXIT_OK


def _engine(args: argparse.Namespace):  # -> Engine
    if args.engine == "local":
        from dac.engine.local import LocalEngine

        return LocalEngine()
    from dac.engine.elasticsearch import ElasticsearchEngine
    from dac.engine.es_connection import connect

    return ElasticsearchEngine(connect(url=args.es_url), keep=args.keep)
