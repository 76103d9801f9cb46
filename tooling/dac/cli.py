"""The ``dac`` command line.

Exit codes: 0 success, 1 problems found (printed one per line as
``file:line:column: message``), 2 usage error, 3 a bug in dac itself.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dac.compile import CompiledRule, compile_rules
from dac.engine.base import Engine
from dac.errors import DacError, split_warnings
from dac.events.reader import INPUT_FORMATS
from dac.exception_lists import EXPIRY_WARNING_DAYS
from dac.limits import MAX_PROBLEMS_PRINTED
from dac.loader import find_rule_files
from dac.lock import VersionLock
from dac.project import Project
from dac.render.environment import Templates

if TYPE_CHECKING:
    from dac.deploy.plan import Plan
    from dac.deploy.targets import Environment
    from dac.kibana.client import KibanaClient

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3


def main(argv: Sequence[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else list(argv)
    named = arguments[0] if arguments and arguments[0] in _commands() else None  # no option precedes it
    args = _parser(named).parse_args(arguments)
    if problem := _output_problem(args):
        print(f"dac {args.command.__name__.removeprefix('cmd_')}: error: {problem}", file=sys.stderr)
        return EXIT_USAGE
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


def _parser(only: str | None = None) -> argparse.ArgumentParser:
    """The command line. With ``only`` (the command named on it), the other commands are left out:
    defining every command's arguments took a tenth of starting ``dac run`` and imported the
    deploy and review modules. ``dac`` alone or ``dac --help`` gets them all."""
    parser = argparse.ArgumentParser(prog="dac", description="Elastic Security detections as code.")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for name, (handler, help_text, arguments) in _commands().items():
        if only is not None and name != only:
            continue
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(command=handler)
        if handler is not cmd_generate:  # generate reads no rules
            sub.add_argument(
                "--path", type=Path, default=Path("detections"), help="detections root (default: detections/)"
            )
        arguments(sub)
    return parser


Arguments = Callable[[argparse.ArgumentParser], None]


def _commands() -> dict[str, tuple[Callable[[argparse.Namespace], int], str, Arguments]]:
    """Every command: its handler, its one-line help, and what defines its arguments."""
    return {
        "validate": (cmd_validate, "check every rule: schema, query syntax, fields, ATT&CK, ids",
                     _validate_arguments),
        "build": (cmd_build, "validate, then write build/rules/*.json and build/rules.ndjson",
                  _build_arguments),
        "show": (cmd_show, "print one rendered rule and its query (by rule_id, name or file)",
                 _show_arguments),
        "test": (cmd_test, "run every rule's test scenarios in-process (no server)", _test_arguments),
        "docs": (cmd_docs, "write docs/rules/<rule>.md for every rule, from the rule files",
                 _docs_arguments),
        "efficacy": (cmd_efficacy,
                     "measure the CSR subject rules and published approaches on a seeded corpus",
                     _efficacy_arguments),
        "generate": (cmd_generate, "write synthetic raw audit events (NDJSON) to stdout",
                     _generate_arguments),
        "run": (cmd_run, "run rules over your own audit logs and print the alerts as NDJSON",
                _run_arguments),
        "plan": (cmd_plan, "show what a deploy to an environment would change (read-only)",
                 _plan_arguments),
        "deploy": (cmd_deploy, "build, plan and apply the rules to an environment's Kibana spaces",
                   _deploy_arguments),
        "status": (cmd_status, "each managed rule in an environment: enabled, last run, message",
                   _target_arguments),
        "pull": (cmd_pull, "write custom rules that live in Kibana as rule files in detections/",
                 _pull_arguments),
        "diff": (cmd_diff, "review a change: rendered rules, review flags and alerts, BASE → HEAD",
                 _diff_arguments),
    }


def _validate_arguments(validate: argparse.ArgumentParser) -> None:
    validate.add_argument(
        "--check-lock", action="store_true", help="fail when a rule changed without a version bump"
    )
    validate.add_argument("--format", choices=["text", "json"], default="text")
    _expiry_argument(validate)


def _build_arguments(build: argparse.ArgumentParser) -> None:
    build.add_argument("--out", type=Path, default=Path("build"), help="output folder (default: build/)")
    _expiry_argument(build)


def _expiry_argument(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--expiry-warning-days", type=int, default=EXPIRY_WARNING_DAYS, metavar="N",
                     help=f"warn about exception items expiring within N days ({EXPIRY_WARNING_DAYS})")


def _show_arguments(show: argparse.ArgumentParser) -> None:
    show.add_argument("rule", help="rule_id, exact name, or path of the rule file")
    show.add_argument("--format", choices=["text", "json"], default="text")


def _test_arguments(test: argparse.ArgumentParser) -> None:
    test.add_argument("rules", nargs="*", help="rule_ids, names or files (default: all)")
    test.add_argument("--format", choices=["text", "json"], default="text")


def _docs_arguments(docs: argparse.ArgumentParser) -> None:
    docs.add_argument(
        "--out", type=Path, default=Path("docs/rules"), help="output folder (default: docs/rules/)"
    )
    docs.add_argument("--check", action="store_true", help="only check that the pages are up to date")


def _efficacy_arguments(efficacy: argparse.ArgumentParser) -> None:
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


def _generate_arguments(generate: argparse.ArgumentParser) -> None:
    generate.add_argument("scenario", help="mixed, csr-attacks or csr-benign (dac.events.generate.SCENARIOS)")
    generate.add_argument("--count", type=int, default=1000, help="number of events (default 1000)")
    generate.add_argument("--seed", type=int, default=1)
    generate.add_argument(
        "--format", choices=["native", "gke", "aks", "eks"], default="native",
        help="native audit log (default), or a managed cluster's envelope (GKE, AKS, EKS)",
    )


def _run_arguments(run: argparse.ArgumentParser) -> None:
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


def _plan_arguments(plan: argparse.ArgumentParser) -> None:
    _change_arguments(plan)
    plan.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help="exit 0 when there is nothing to change, 2 when there is, 1 on errors",
    )


def _deploy_arguments(deploy: argparse.ArgumentParser) -> None:
    _change_arguments(deploy)
    deploy.add_argument(
        "--overwrite-drift",
        action="store_true",
        help="overwrite rules edited in Kibana since the last deploy",
    )
    deploy.add_argument(
        "--wait-healthy",
        nargs="?",
        type=float,
        const=300.0,
        metavar="SECONDS",
        help="wait for the first run of every created or changed enabled rule (default 300 s)",
    )


def _change_arguments(sub: argparse.ArgumentParser) -> None:
    """What plan and deploy share."""
    from dac.deploy.plan import MASS_DELETE_RULES

    _target_arguments(sub)
    sub.add_argument("--out", type=Path, default=Path("build"), help="build folder (default: build/)")
    sub.add_argument(
        "--prune", action="store_true", help="delete managed rules removed from the repository"
    )
    sub.add_argument(
        "--allow-mass-delete",
        action="store_true",
        help=f"allow deleting more than {MASS_DELETE_RULES} objects (rules, exception lists with their "
        "items, items), or most rules, of a space",
    )
    sub.add_argument("--skip-is-error", action="store_true", help="fail when a rule is skipped")


def _pull_arguments(pull: argparse.ArgumentParser) -> None:
    _target_arguments(pull)
    which = pull.add_mutually_exclusive_group(required=True)
    which.add_argument("--rule-id", action="append", metavar="ID", help="the rule to pull (repeatable)")
    which.add_argument("--all-custom", action="store_true", help="every custom rule of the space")


def _target_arguments(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--env", help="environment of deploy.yml (default: the one-off $KIBANA_URL target)")
    sub.add_argument(
        "--targets", type=Path, help="the deploy targets file (default: deploy.yml beside detections/)"
    )
    sub.add_argument("--space", action="append", metavar="ID", help="only this space (repeatable)")
    sub.add_argument("--format", choices=["text", "json"], default="text")


def _diff_arguments(diff: argparse.ArgumentParser) -> None:
    from dac.review.model import FLAGS

    diff.add_argument("base", nargs="?", help="a revision (default: the merge base of HEAD with origin/main, "
                      "or main)")
    diff.add_argument(
        "head", nargs="?", help="a revision (default: the working tree, uncommitted changes too)"
    )
    diff.add_argument("--format", choices=["text", "json", "markdown"], default="text")
    diff.add_argument("--fail-on", nargs="+", default=[], choices=sorted(FLAGS), metavar="FLAG",
                      help=f"exit 1 when a rule carries one of these flags ({', '.join(FLAGS)})")
    diff.add_argument("--corpus-size", type=int, default=10_000, metavar="N",
                      help="generated mixed events for the behavioural diff (default 10000; 0: none)")
    diff.add_argument("--seed", type=int, default=1, help="seed of the generated events (default 1)")
    diff.add_argument("--events", type=Path, action="append", default=[], metavar="FILE|DIR",
                      help="your own event files, as for `dac run` (repeatable)")
    diff.add_argument("--input", choices=INPUT_FORMATS, default="auto",
                      help="format of the --events records, as for `dac run` (default: per record)")
    diff.add_argument("--no-behaviour", action="store_true", help="skip running the rules over events")
    diff.add_argument("--summary-file", type=Path, metavar="FILE",
                      help="also append the full Markdown review (up to 1 MiB) here: $GITHUB_STEP_SUMMARY")


def _timestamp(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _compile(
    args: argparse.Namespace, paths: Sequence[Path] | None = None, allow_empty: bool = False
) -> tuple[Project, list[CompiledRule], list[DacError]]:
    project = Project.at(args.path)
    found_files = [find_rule_files(p, project.root, allow_empty) for p in (paths or [project.detections])]
    files = [f for rules in found_files for f in rules.files]
    days = getattr(args, "expiry_warning_days", EXPIRY_WARNING_DAYS)
    compiled, found = compile_rules(files, Templates(project.templates), project.detections,
                                    expiry_warning_days=days)
    problems, warnings = split_warnings(found)
    for warning in warnings:  # warnings are said, never fail a command
        print(warning, file=sys.stderr)
    problems[:0] = [problem for rules in found_files for problem in rules.problems]
    return project, compiled, problems


class _InvalidRules(Exception):
    """Some rule did not compile; its problems are already reported."""


def _valid_rules(
    args: argparse.Namespace, paths: Sequence[Path] | None = None, allow_empty: bool = False
) -> tuple[Project, list[CompiledRule]]:
    """The compiled rules, for commands that need every rule valid (else report and stop)."""
    project, compiled, problems = _compile(args, paths, allow_empty)
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
    for problem in problems[:MAX_PROBLEMS_PRINTED]:
        print(problem, file=sys.stderr)
    if len(problems) > MAX_PROBLEMS_PRINTED:
        more = len(problems) - MAX_PROBLEMS_PRINTED
        print(f"… and {more:,} more problems (dac.limits.MAX_PROBLEMS_PRINTED)", file=sys.stderr)


def cmd_validate(args: argparse.Namespace) -> int:
    project, compiled, problems = _compile(args)
    if args.check_lock:
        problems.extend(VersionLock.load(project.lock).problems(compiled))
    _report(problems, args.format)
    if args.format == "text":
        print(f"{len(compiled)} rules compiled, {len(problems)} problems", file=sys.stderr)
    return EXIT_PROBLEMS if problems else EXIT_OK


def cmd_build(args: argparse.Namespace) -> int:
    project, compiled, problems = _compile(args)
    if problems:
        _report(problems)
        print(f"build failed: {len(problems)} problems; the previous build is untouched", file=sys.stderr)
        return EXIT_PROBLEMS
    _build(project, compiled, args.out)
    _write_docs(project, compiled, VersionLock.load(project.lock))
    return EXIT_OK


def _build(project: Project, compiled: list[CompiledRule], out: Path) -> None:
    from dac.build import build_rules

    lock = VersionLock.load(project.lock)
    for rule in build_rules(compiled, lock, out):
        print(f"version {lock.version_of(rule)}: {rule.rule.name}", file=sys.stderr)
    lists = {lst.list_id for rule in compiled for lst in rule.exception_lists}
    print(f"built {len(compiled)} rules and {len(lists)} exception lists into {out}/", file=sys.stderr)


def _write_docs(project: Project, compiled: list[CompiledRule], lock: VersionLock) -> None:
    from dac.docs import regenerate

    out = regenerate(project, compiled, lock)
    shown = out.relative_to(Path.cwd()) if out.is_relative_to(Path.cwd()) else out
    print(f"wrote {len(compiled)} pages into {shown}/", file=sys.stderr)


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
    from dac.scenarios import errored, run_scenario, scenarios

    project, compiled = _valid_rules(args)
    lock = VersionLock.load(project.lock)
    engine = LocalEngine()
    results = []
    for scenario in scenarios(_select(compiled, args.rules)):
        try:
            results.append(run_scenario(scenario, engine, lock.version_of(scenario.rule)))
        except DacError as exc:  # a row of its own, the error named once below the table
            results.append(errored(scenario, exc))
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
                        "error": None if r.error is None else str(r.error),
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
                "error" if r.error else "skip" if r.outcome.skipped else str(len(r.outcome.alerts)),
                f"{r.seconds * 1000:.0f} ms",
                "ok" if r.passed else "ERROR" if r.error else "FAIL",
            )
            for r in results
        ]
        _table(("rule", "scenario", "expected", "got", "time", ""), rows)
        errors: dict[str, list[str]] = {}  # one line per distinct error, naming its scenarios
        for r in failed:
            if r.error is not None:
                errors.setdefault(str(r.error), []).append(r.scenario.name)
                continue
            for reason in r.failures or [r.outcome.skipped]:
                print(f"FAIL {r.scenario.test_id}: {reason}")
        for error, names in errors.items():
            print(f"ERROR {error} (scenarios: {', '.join(names)})")
        print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return EXIT_PROBLEMS if failed else EXIT_OK


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def cmd_run(args: argparse.Namespace) -> int:
    from dac.run import RunOptions, run_rules

    if args.out is not None and (problem := _unwritable(args.out)):
        print(f"dac run: error: --out {args.out}: {problem}", file=sys.stderr)
        return EXIT_USAGE
    if args.start is not None and args.end is not None and args.start > args.end:
        print(f"dac run: error: --from {args.start.isoformat()} is later than --to {args.end.isoformat()}",
              file=sys.stderr)
        return EXIT_USAGE
    project, compiled = _valid_rules(args, args.rules)
    lock = VersionLock.load(project.lock)
    rules = [c.with_version(lock.version_of(c)) for c in compiled]
    exceptions = {list_id: items for c in compiled for list_id, items in c.exception_items().items()}
    options = RunOptions(args.events, args.input, args.now, args.start, args.end, args.quiet)
    engine = _engine(args) if args.engine != "local" else None
    return run_rules(rules, options, engine, args.out, exceptions=exceptions)


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


# The output folders dac creates when missing (with their parents); any other --out folder must
# have an existing parent, so a typo is refused instead of creating a tree somewhere.
_DEFAULT_OUT_FOLDERS = (Path("build"), Path("docs/rules"))


def _output_problem(args: argparse.Namespace) -> str | None:
    """Why an output path given on the command line cannot be written, checked before any work."""
    summary = getattr(args, "summary_file", None)
    if summary is not None and (problem := _unwritable(summary)):
        return f"--summary-file {summary}: {problem}"
    writes_folder = args.command in (cmd_build, cmd_plan, cmd_deploy) or (
        args.command is cmd_docs and not args.check)
    if writes_folder and (problem := _unwritable_folder(args.out, args.out in _DEFAULT_OUT_FOLDERS)):
        return f"--out {args.out}: {problem}"
    return None


def _unwritable_folder(path: Path, create_parents: bool = False) -> str | None:
    """Why ``path`` cannot be (or be created as) an output folder, or None."""
    if path.exists():
        if not path.is_dir():
            return "is not a folder"
        return None if os.access(path, os.W_OK | os.X_OK) else "permission denied"
    existing = path.parent
    while create_parents and not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.exists():
        return f"folder {existing} does not exist"
    if not existing.is_dir():
        return f"{existing} is not a folder"
    return None if os.access(existing, os.W_OK | os.X_OK) else "permission denied"


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
    from dac.events.audit import log_line
    from dac.events.envelopes import wrap

    out = sys.stdout
    for record in wrap(generate(args.scenario, args.count, args.seed), args.format):
        if args.format == "native":  # as the API server's log file holds it
            out.write(log_line(record) + "\n")
        else:
            out.write(json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n")
    return EXIT_OK


def _environment(args: argparse.Namespace, project: Project) -> Environment:
    from dataclasses import replace

    from dac.deploy.targets import DEPLOY_FILE, resolve_environment

    targets = args.targets or project.detections.resolve().parent / DEPLOY_FILE
    environment = resolve_environment(args.env, targets, os.environ)
    if args.space:
        unknown = [s for s in args.space if s not in environment.spaces and args.env]
        if unknown:
            raise DacError(f"environment {environment.name!r} has no space {', '.join(unknown)}")
        environment = replace(environment, spaces=tuple(args.space))
    return environment


def _planned(args: argparse.Namespace) -> tuple[Environment, KibanaClient, Plan]:
    from dac.deploy.session import connect, desired_for, lists_for, make_plan

    project, compiled = _valid_rules(args)
    environment = _environment(args, project)
    _build(project, compiled, args.out)  # what `dac build` does: plan what the build output holds
    desired = desired_for(environment, project, compiled, args.out)
    client = connect(environment, os.environ)
    with _retries_said_on_failure(client):
        plan = make_plan(
            client,
            environment,
            desired,
            lists=lists_for(environment, desired, args.out),
            prune=args.prune,
            skip_is_error=args.skip_is_error,
            allow_mass_delete=args.allow_mass_delete,
            overwrite_drift=getattr(args, "overwrite_drift", False),  # deploy's flag: it deletes more
        )
    return environment, client, plan


def _say_retries(client: KibanaClient) -> None:
    for retry in client.traffic.retries:
        print(f"retried: {retry}", file=sys.stderr)


@contextmanager
def _retries_said_on_failure(client: KibanaClient) -> Iterator[None]:
    """A Kibana command that fails still says what it retried before failing (README, Deploying)."""
    try:
        yield
    except DacError:
        _say_retries(client)
        raise


def _env_args(args: argparse.Namespace) -> str:
    """How a suggested command names this run's target."""
    return f"--env {args.env}" if args.env else ""


def cmd_plan(args: argparse.Namespace) -> int:
    from dac.deploy.render import plan_json, plan_text

    _, client, plan = _planned(args)
    if args.format == "json":
        print(plan_json(plan, traffic=client.traffic))
    else:
        _say_retries(client)
        sys.stdout.write(plan_text(plan, _env_args(args)))
    if plan.errors:
        return EXIT_PROBLEMS
    return 2 if args.detailed_exitcode and plan.has_changes else EXIT_OK


def cmd_deploy(args: argparse.Namespace) -> int:
    from dac.deploy.apply import HEALTHY, apply_plan, wait_healthy
    from dac.deploy.render import apply_text, health_text, plan_json, plan_text

    environment, client, plan = _planned(args)
    text = args.format == "text"
    if text:
        sys.stdout.write(plan_text(plan, _env_args(args)))
    if plan.errors:
        if text:
            _say_retries(client)
            print("nothing applied: the plan has errors", file=sys.stderr)
        else:
            print(plan_json(plan, traffic=client.traffic))
        return EXIT_PROBLEMS
    result = apply_plan(
        client, plan, overwrite_drift=args.overwrite_drift, import_max_bytes=environment.import_max_bytes
    )
    if text:  # what was written is said before waiting, whatever happens while waiting
        sys.stdout.write(apply_text(result, client.traffic))
        sys.stdout.flush()
    retried = len(client.traffic.retries)
    health = None
    if args.wait_healthy is not None:
        changed = [i for i in result.done if i.action in ("create", "update", "drift") and i.desired]
        health = wait_healthy(client, changed, result.started, args.wait_healthy)
    if text:
        for retry in client.traffic.retries[retried:]:
            print(f"retried: {retry}")
        if health is not None:
            sys.stdout.write(health_text(health))
    else:
        print(plan_json(plan, result, client.traffic, health))
    unhealthy = [h for h in health or [] if h.status not in HEALTHY]
    return EXIT_PROBLEMS if result.failed or unhealthy else EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    from dac.deploy.session import connect
    from dac.deploy.status import rule_statuses, status_dicts, status_rows

    project = Project.at(args.path)
    environment = _environment(args, project)
    client = connect(environment, os.environ)
    with _retries_said_on_failure(client):
        statuses = rule_statuses(client, environment)
    _say_retries(client)
    if args.format == "json":
        print(json.dumps(status_dicts(statuses), indent=2, ensure_ascii=False))
    else:
        _table(("space", "rule", "state", "last run", "when", "message"), status_rows(statuses))
        print(f"{len(statuses)} managed rules in environment {environment.name}")
    failing = [s for s in statuses if s.enabled and s.status in ("failed", "partial failure")]
    return EXIT_PROBLEMS if failing else EXIT_OK


def _rule_exceptions(client: KibanaClient, space: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    """The exception lists the ``rules`` reference, as Kibana holds them: {list_id: {"list", "items"}}."""
    references = {
        (r["list_id"], r.get("namespace_type", "single"))
        for rule in rules
        for r in rule.get("exceptions_list") or []
    }
    if not references:
        return {}
    lists = {lst["list_id"]: lst for lst in client.find_exception_lists(space)}
    out: dict[str, Any] = {list_id: {"list": lists.get(list_id), "items": []} for list_id, _ in references}
    for item in client.find_exception_items(space, sorted(references)):
        out[item["list_id"]]["items"].append(item)
    return out


def cmd_pull(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from dac.deploy.pull import is_custom, pull_rules
    from dac.deploy.session import connect

    project, compiled = _valid_rules(args, allow_empty=True)  # adopting into an empty repository
    environment = _environment(args, project)
    if len(environment.spaces) > 1:
        raise DacError(f"environment {environment.name!r} has several spaces: name one with --space")
    space = environment.spaces[0]
    client = connect(environment, os.environ)
    with _retries_said_on_failure(client):
        in_kibana = client.find_rules(space)
    if args.all_custom:
        chosen = [rule for rule in in_kibana if is_custom(rule)]
    else:
        by_id = {rule["rule_id"]: rule for rule in in_kibana}
        missing = [r for r in args.rule_id if r not in by_id]
        if missing:
            raise DacError(f"no rule {', '.join(missing)} in space {space!r}")
        prebuilt = [r for r in args.rule_id if not is_custom(by_id[r])]
        if prebuilt:
            raise DacError(f"{', '.join(prebuilt)}: Elastic prebuilt rules are not pulled, only custom ones")
        chosen = [by_id[r] for r in dict.fromkeys(args.rule_id)]
    with _retries_said_on_failure(client):
        references = _rule_exceptions(client, space, chosen)
    _say_retries(client)
    pulled = pull_rules(chosen, compiled, project, environment.overrides, references)
    if args.format == "json":
        rows = [{**asdict(p), "path": str(p.path), "fields": list(p.fields)} for p in pulled]
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return EXIT_OK
    for item in pulled:
        fields = f" ({', '.join(sorted(item.fields))})" if item.fields else ""
        print(f"{item.state} {item.path}{fields}: {item.name} ({item.rule_id})")
    new = sum(1 for p in pulled if p.state == "created")
    print(f"pulled {len(pulled)} rules from space {space}", file=sys.stderr)
    if new:
        print(f"{new} new rule files need test scenarios before `dac build` accepts them", file=sys.stderr)
    return EXIT_OK


def cmd_diff(args: argparse.Namespace) -> int:
    from dac.review import output
    from dac.review.report import Options, review

    project = Project.at(args.path)
    options = Options(args.base, args.head, args.corpus_size, args.seed, args.events, args.input,
                      not args.no_behaviour)
    result = review(project.detections.resolve().parent, options)
    _report(result.problems)
    report = result.report
    if args.format == "json":
        sys.stdout.write(output.to_json(report))
    elif args.format == "markdown":
        sys.stdout.write(output.to_markdown(report))
    else:
        colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
        sys.stdout.write(output.to_text(report, colour=colour))
    if args.summary_file:
        try:
            with args.summary_file.open("a", encoding="utf-8") as summary:
                summary.write(output.to_markdown(report, output.SUMMARY_LIMIT, measure="bytes"))
        except OSError as exc:
            raise DacError(f"--summary-file {args.summary_file}: {exc.strerror}") from None
    blocking = sorted(set(args.fail_on) & report.flag_ids)
    if blocking:
        print(f"dac diff: blocking flags: {', '.join(blocking)}", file=sys.stderr)
    return EXIT_PROBLEMS if result.problems or blocking else EXIT_OK
