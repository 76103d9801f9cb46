"""``make bench`` (deploy part): 2,000 rules into an empty space of the Kibana stand-in.

The rules are the repository's, replicated as the build benchmark does (``dac.bench``), built
once, then deployed by the same calls ``dac deploy`` makes. Targets (issue 8): at most 25
HTTP requests for the fresh deploy; a no-change re-deploy with 0 writes and at most 25 reads;
the client's own CPU time for plan + apply under 5 s. The stand-in serves from threads of this
process, so the client's CPU is measured on the main thread only (``time.thread_time``).

Runs from the repository root: the stand-in lives with the tests (``tests/kibana_standin``).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import orjson

from dac.bench import replicate_rules
from dac.build import build_rules, read_build, read_exception_lists
from dac.compile import compile_rules
from dac.deploy.apply import apply_plan
from dac.deploy.plan import desired_lists, desired_rules
from dac.deploy.session import make_plan
from dac.deploy.targets import DEFAULT_IMPORT_MAX_BYTES, Environment
from dac.kibana.client import KibanaClient, Settings
from dac.loader import rule_files
from dac.lock import VersionLock
from dac.project import Project
from dac.render.environment import Templates

RULES = 2_000
TARGETS = {"requests": 25, "reads": 25, "cpu_seconds": 5.0}


def main() -> int:
    sys.path.insert(0, str(Path.cwd()))
    from tests.kibana_standin.server import KibanaStandIn

    project = Project.at(Path("detections"))
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        replicate_rules(project, root, RULES)
        compiled, problems = compile_rules(rule_files(root / "detections"), Templates(root / "templates"))
        if problems or len(compiled) != RULES:
            print("\n".join(map(str, problems[:5])), file=sys.stderr)
            return 1
        build_rules(compiled, VersionLock.load(root / "detections" / "version.lock.json"), root / "build")
        built = read_build(root / "build")
        lists_built = read_exception_lists(root / "build")
        size = sum(len(orjson.dumps(body)) for body in built.values())
        with KibanaStandIn() as kibana:
            kibana.add_space("bench")
            environment = Environment("bench", kibana.url, ("bench",), "bench")
            rows = []
            for label in ("fresh deploy", "no-change re-deploy"):
                kibana.clear_requests()
                client = KibanaClient(Settings(kibana.url, api_key=kibana.api_key))
                cpu = time.thread_time()
                wall = time.perf_counter()
                desired = desired_rules(
                    built, compiled, repository="bench", environment="bench", overrides={}
                )
                lists = desired_lists(lists_built, desired, repository="bench", environment="bench")
                plan = make_plan(client, environment, desired, lists=lists)
                result = apply_plan(client, plan, import_max_bytes=DEFAULT_IMPORT_MAX_BYTES)
                cpu = time.thread_time() - cpu
                wall = time.perf_counter() - wall
                reads = sum(1 for r in kibana.requests if not r.is_write)
                writes = sum(1 for r in kibana.requests if r.is_write)
                if result.failed:
                    print(
                        f"{label}: {len(result.failed)} rules failed: {result.failed[0][1]}", file=sys.stderr
                    )
                    return 1
                rows.append((label, reads, writes, cpu, wall))
            stored = len(kibana.rules("bench"))
            items = sum(len(kibana.exception_items("bench", list_id)) for list_id in lists_built)
            wanted_items = sum(len(lst["items"]) for lst in lists_built.values())
    print(f"deploy {RULES} rules ({size / 1e6:.1f} MB of rule JSON) into an empty stand-in space")
    failed = 0
    (_, reads, writes, cpu, wall), (_, again_reads, again_writes, again_cpu, again_wall) = rows
    most, most_reads, cpu_limit = TARGETS["requests"], TARGETS["reads"], TARGETS["cpu_seconds"]
    checks = [
        ("fresh deploy: HTTP requests", reads + writes, "", f"<= {most}", reads + writes <= most),
        ("fresh deploy: client CPU, plan + apply", cpu, "s", f"< {cpu_limit} s (wall {wall:.1f} s)",
         cpu < cpu_limit),
        ("re-deploy: write requests", again_writes, "", "0", again_writes == 0),
        ("re-deploy: read requests", again_reads, "", f"<= {most_reads}", again_reads <= most_reads),
        ("re-deploy: client CPU, plan + apply", again_cpu, "s", f"< {cpu_limit} s (wall {again_wall:.1f} s)",
         again_cpu < cpu_limit),
        ("rules stored in the space", stored, "", f"= {RULES}", stored == RULES),
        (f"exception items stored ({len(lists_built)} lists)", items, "", f"= {wanted_items}",
         items == wanted_items),
    ]  # fmt: skip
    width = max(len(c[0]) for c in checks)
    for label, value, unit, target, ok in checks:
        failed += not ok
        shown = f"{value:,.2f}" if isinstance(value, float) else f"{value:,}"
        print(f"{label.ljust(width)}  {shown:>8} {unit:<1} target {target}  {'ok' if ok else 'MISSED'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
