"""The ``dac`` command line.

Exit codes: 0 success, 1 problems found (printed one per line as
``file:line:column: message``), 2 usage error, 3 a bug in dac itself.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from dac.compile import CompiledRule, compile_rules
from dac.engine.base import Engine
from dac.errors import DacError
from dac.events.reader import INPUT_FORMATS
from dac.loader import rule_files
from dac.lock import VersionLock
from dac.project import Project
from dac.render.environment import Templates

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        code = args.command(args)
        sys.stdout.flush()  # a reader that went away shows up here, not at interpreter exit
        return code
    except DacError as exc:
        print(f"dac: {exc}", file=sys.stderr)
        return EXIT_PROBLEMS
    except _InvalidRules:
        return EXIT_PROBLEMS
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `dac show … | head`: stop quietly (Python docs, "Note on SIGPIPE")
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_PROBLEMS
    except Exception as exc:  # a bug in dac itself: one line, the traceback only on request
        if os.environ.get("DAC_DEBUG"):
            raise
        print(
            f"dac: internal error: {type(exc).__name__}: {exc} (set DAC_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


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

    docs = command("docs", cmd_docs, "write docs/rules/<rule>.md for every rule, from the rule files")
    docs.add_argument(
        "--out", type=Path, default=Path("docs/rules"), help="output folder (default: docs/rules/)"
    )
    docs.add_argument("--check", action="store_true", help="only check that the pages are up to date")

    efficacy = command(
        "efficacy", cmd_efficacy, "measure the CSR subject rules and published approaches on a seeded corpus"
    )
    efficacy.add_argument("--seed", type=int, default=1)
    efficacy.add_argument("--malicious", type=int, default=1000, help="attack requests (default 1000)")
    efficacy.add_argument(
        "--benign", type=int, default=1000, help="benign and look-alike requests (default 1000)"
    )
    efficacy.add_argument("--format", choices=["text", "json"], default="text")
    efficacy.add_argument(
        "--log-format", choices=["native", "gke", "aks", "eks"], default="native",
        help="the envelope the corpus's audit events arrive in (default: native audit log)",
    )

    generate = commands.add_parser(
        "generate",
        help="write synthetic raw audit events (NDJSON) to stdout",
        description="write synthetic raw audit events (NDJSON) to stdout",
    )
    generate.set_defaults(command=cmd_generate)
    generate.add_argument("scenario", help="mixed, csr-attacks or csr-benign (dac.events.generate.SCENARIOS)")
    generate.add_argument("--count", type=int, default=1000, help="number of events (default 1000)")
    generate.add_argument("--seed", type=int, default=1)
    generate.add_argument(
        "--format", choices=["native", "gke", "aks", "eks"], default="native",
        help="native audit log (default), or a managed cluster's envelope (GKE, AKS, EKS)",
    )

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
        default="auto",
        help="record format: auto (default, per record), native, gke, aks, eks or ecs (indexed documents)",
    )
    run.add_argument(
        "--rules", type=Path, nargs="+", metavar="PATH", help="rule files or folders (default: all)"
    )
    run.add_argument(
        "--now",
        type=_timestamp,
        help="one execution of each rule at this time (ISO 8601); default: replay every scheduled execution",
    )
    run.add_argument("--from", dest="start", type=_timestamp, help="replay from (default: the first event)")
    run.add_argument("--to", dest="end", type=_timestamp, help="replay to (default: the last event)")
    run.add_argument("--quiet", action="store_true", help="no progress line and no per-rule summary")
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


class _InvalidRules(Exception):
    """Some rule did not compile; its problems are already reported."""


def _valid_rules(
    args: argparse.Namespace, paths: Sequence[Path] | None = None
) -> tuple[Project, list[CompiledRule]]:
    """The compiled rules, for commands that need every rule valid (else report and stop)."""
    project, compiled, problems = _compile(args, paths)
    if problems:
        _report(problems)
        raise _InvalidRules
    return project, compiled


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
        print(f"{len(compiled)} rules compiled, {len(problems)} problems", file=sys.stderr)
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


def cmd_docs(args: argparse.Namespace) -> int:
    from dac.docs import render_pages, stale_pages, write_pages

    project, compiled = _valid_rules(args)
    pages = render_pages(compiled, Templates(project.templates), VersionLock.load(project.lock))
    if args.check:
        stale = stale_pages(pages, args.out)
        _report(stale)
        return EXIT_PROBLEMS if stale else EXIT_OK
    write_pages(pages, args.out)
    print(f"wrote {len(pages)} pages into {args.out}/", file=sys.stderr)
    return EXIT_OK


def cmd_test(args: argparse.Namespace) -> int:
    from dac.engine.local import LocalEngine
    from dac.scenarios import run_scenario, scenarios

    project, compiled = _valid_rules(args)
    lock = VersionLock.load(project.lock)
    engine = LocalEngine()
    results = []
    problems: list[DacError] = []  # scenarios whose events could not be built
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
        print(f"{len(results) - len(failed)} passed, {len(failed) + len(problems)} failed")
    return EXIT_PROBLEMS if failed or problems else EXIT_OK


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def cmd_run(args: argparse.Namespace) -> int:
    from dac.run import RunOptions, run_rules

    if args.out is not None and (problem := _unwritable(args.out)):
        print(f"dac run: error: --out {args.out}: {problem}", file=sys.stderr)
        return EXIT_USAGE
    project, compiled = _valid_rules(args, args.rules)
    lock = VersionLock.load(project.lock)
    rules = [c.with_version(lock.version_of(c)) for c in compiled]
    options = RunOptions(args.events, args.input, args.now, args.start, args.end, args.quiet)
    return run_rules(rules, options, _engine(args) if args.engine != "local" else None, args.out)


def _unwritable(path: Path) -> str | None:
    """Why ``path`` cannot take the output file, or None."""
    if path.is_dir():
        return "is a folder"
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        return f"folder {parent} does not exist"
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        return "permission denied"
    return None


def _engine(args: argparse.Namespace) -> Engine:
    if args.engine == "local":
        from dac.engine.local import LocalEngine

        return LocalEngine()
    from dac.engine.elasticsearch import ElasticsearchEngine
    from dac.engine.es_connection import connect

    env = {**os.environ, "ES_URL": args.es_url} if args.es_url else None
    return ElasticsearchEngine(connect(env), keep=args.keep)


def cmd_efficacy(args: argparse.Namespace) -> int:
    from dac.efficacy import measure

    _, compiled = _valid_rules(args)
    report = measure(compiled, args.seed, args.malicious, args.benign, args.log_format)
    if args.format == "json":
        print(json.dumps(report.as_dict(), indent=2))
    else:
        corpus = f"{report.malicious} malicious and {report.benign} benign CSR requests"
        corpus += f", {args.log_format} logs"
        print(f"corpus: {corpus} (seed {args.seed})\n")
        families = sorted({k for s in report.scores.values() for k in s.by if k.startswith("family:")})
        header = (
            "identity",
            "approach",
            "recall",
            "false positives",
            *(f.removeprefix("family:") for f in families),
        )
        rows = []
        for (identity, approach), score in report.scores.items():
            cells = [f"{score.by[f][0]}/{score.by[f][1]}" for f in families]
            rows.append((identity, approach, f"{score.recall:.3f}", str(score.false_positives), *cells))
        _table(header, rows)
    ours = [s for (_, approach), s in report.scores.items() if approach == "this repository's rule"]
    return EXIT_OK if all(s.recall == 1.0 and s.false_positives == 0 for s in ours) else EXIT_PROBLEMS


def cmd_generate(args: argparse.Namespace) -> int:
    from dac.events.generate import SCENARIOS, generate

    if args.scenario not in SCENARIOS:
        raise DacError(f"unknown scenario {args.scenario!r}: choose one of {', '.join(sorted(SCENARIOS))}")
    from dac.events.envelopes import wrap

    out = sys.stdout
    for record in wrap(generate(args.scenario, args.count, args.seed), args.format):
        out.write(json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n")
    return EXIT_OK
