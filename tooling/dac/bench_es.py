"""Benchmark on a real Elasticsearch: bulk-load generated audit events, then time every rule's query.

``make bench-es`` (or ``python -m dac.bench_es --count N``) against the Elasticsearch that
``dac.engine.es_connection.connect`` finds. The events (``generate("mixed")``: 1% CSR traffic) are
converted to documents once and cached under ``.cache/bench/`` so that the timed part is only
the bulk load, sent pre-serialised from parallel threads while refresh is off, with ids left to
Elasticsearch as Elastic Agent leaves them (append-only indexing). Each rule's query
runs through ElasticsearchEngine (the same request the engine sends) several times; the report
gives the first run and the median. Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from dac.compile import compile_rules
from dac.engine.elasticsearch import ElasticsearchEngine, RunIndices
from dac.engine.es_connection import REPO_ROOT, Connection, backend_error, connect
from dac.errors import DacError
from dac.events.generate import generate
from dac.events.k8s_audit import to_document
from dac.events.reader import index_name
from dac.loader import rule_files
from dac.project import Project
from dac.render.environment import Templates

CACHE = REPO_ROOT / ".cache" / "bench"
SOURCE_INDEX = "logs-kubernetes.audit_logs-default"
CHUNK_DOCS = 2000  # ~3.4 MB bulk bodies: large enough to amortise a request, small enough to stream
WORKERS = 3  # senders in flight: keeps both cores of a 2-core node busy while one body is parsed
REPEATS = 7
TARGET_DOCS_PER_SECOND = 20_000
TARGET_QUERY_MS = 200.0
# Whatever shapes the cached documents: a change to any of these makes a new cache file.
GENERATOR_FILES = ("events/generate.py", "events/audit.py", "events/csr.py", "events/k8s_audit.py",
                   "data/mappings/kubernetes.audit_logs.json")


def cached_documents(count: int, seed: int) -> Path:
    """NDJSON of ``count`` generated documents, written once per generator version."""
    package = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for name in GENERATOR_FILES:
        digest.update((package / name).read_bytes())
    path = CACHE / f"mixed-{count}-{seed}-{digest.hexdigest()[:12]}.ndjson"
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    for stale in CACHE.glob(f"mixed-{count}-{seed}-*"):
        stale.unlink()
    started = time.perf_counter()
    partial = path.with_suffix(".partial")
    with partial.open("w", encoding="utf-8") as out:
        for event in generate("mixed", count, seed):
            source = to_document(event)
            if index_name(source) != SOURCE_INDEX:
                raise DacError(f"generated document for unexpected index {index_name(source)}")
            out.write(json.dumps(source, separators=(",", ":")) + "\n")
    partial.rename(path)
    took = time.perf_counter() - started
    print(f"generated {count:,} documents in {took:.0f} s -> {path}", file=sys.stderr)
    return path


def bulk_bodies(path: Path) -> Iterator[bytes]:
    """Bulk request bodies of CHUNK_DOCS ``create`` actions (valid for data streams and indices)."""
    lines: list[str] = []
    with path.open(encoding="utf-8") as source:
        for line in source:
            lines.append('{"create":{}}\n' + line)
            if len(lines) == CHUNK_DOCS:
                yield "".join(lines).encode("utf-8")
                lines = []
    if lines:
        yield "".join(lines).encode("utf-8")


def bulk_load(connection: Connection, target: str, path: Path) -> float:
    """Send every body with WORKERS requests in flight; the seconds it took. Any rejection is an error."""
    client = connection.client.options(request_timeout=300)

    def send(body: bytes) -> None:
        response = client.bulk(operations=body, index=target, filter_path="errors,items.*.error")
        if response.get("errors"):
            item = next(i for i in response["items"] if "error" in next(iter(i.values())))
            error = next(iter(item.values()))["error"]
            raise DacError(f"bulk rejected a document: {error.get('type')}: {error.get('reason')}")

    started = time.perf_counter()
    pending: set[Future[None]] = set()
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        for body in bulk_bodies(path):
            if len(pending) >= WORKERS * 2:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    future.result()
            pending.add(pool.submit(send, body))
        for future in pending:
            future.result()
    return time.perf_counter() - started


def project_rules() -> list[dict[str, Any]]:
    project = Project.at(REPO_ROOT / "detections")
    compiled, problems = compile_rules(rule_files(project.detections), Templates(project.templates))
    if problems:
        raise problems[0]
    return [c.with_version(1) for c in compiled]


def time_rule(engine: ElasticsearchEngine, run: RunIndices, rule: dict[str, Any]) -> tuple[list[float], int]:
    """Milliseconds of each of REPEATS executions, and how many documents the rule matched."""
    times, found = [], 0
    for _ in range(REPEATS):
        started = time.perf_counter()
        found = len(engine.execute(run, rule, None))
        times.append((time.perf_counter() - started) * 1000)
    return times, found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dac.bench_es", description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000, help="events to load (default 1,000,000)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    try:
        return bench(args.count, args.seed)
    except DacError as exc:
        print(f"bench-es: {exc}", file=sys.stderr)
        return 2


def bench(count: int, seed: int) -> int:
    connection = connect()
    print(f"Elasticsearch: {connection.description}")
    rules = project_rules()
    path = cached_documents(count, seed)
    engine = ElasticsearchEngine(connection)
    client = connection.client
    run = RunIndices(f"dacbench{time.strftime('%H%M%S')}")
    missed = []
    try:
        target = engine.create_target(run, SOURCE_INDEX)
        fast = {"index.refresh_interval": "-1", "index.translog.durability": "async"}
        client.indices.put_settings(index=target, settings=fast)
        seconds = bulk_load(connection, target, path)
        started = time.perf_counter()
        client.indices.put_settings(index=target, settings=dict.fromkeys(fast))  # back to defaults
        client.indices.refresh(index=target)
        refresh = time.perf_counter() - started
        stored = client.count(index=target)["count"]
        if stored != count:
            raise DacError(f"{stored:,} documents stored, {count:,} sent")
        rate = count / seconds
        print(f"bulk: {count:,} documents in {seconds:.1f} s = {rate:,.0f} docs/s "
              f"(target >= {TARGET_DOCS_PER_SECOND:,}); refresh {refresh:.1f} s")
        if rate < TARGET_DOCS_PER_SECOND:
            missed.append("bulk throughput")
        for rule in rules:
            why_not = engine.cannot_run(rule)
            if why_not:
                print(f"rule {rule['name']} ({rule['type']}): skipped, {why_not}")
                continue
            times, found = time_rule(engine, run, rule)
            median = statistics.median(times)
            print(f"rule {rule['name']} ({rule['type']}): median {median:.1f} ms, first {times[0]:.1f} ms, "
                  f"{found} hits (max_signals {rule.get('max_signals', 100)}), {REPEATS} runs")
            if median >= TARGET_QUERY_MS:
                missed.append(rule["name"])
    except Exception as exc:
        if isinstance(exc, DacError):
            raise
        raise backend_error(exc, "benchmark") from None
    finally:
        engine.clean_up(run)
    if missed:
        print(f"below target: {', '.join(missed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
