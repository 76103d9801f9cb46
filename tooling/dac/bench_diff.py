"""``make bench``, the review part: ``dac diff``'s behavioural diff on 3 changed rules.

A scratch git repository holds the repository's rules at BASE; HEAD changes the query of
each of the three (one widened, two looking at another subject attribute), so every version
must run. The review then runs both versions of every changed rule over 100,000 generated
events, plus the scenarios and the CSR efficacy corpus, built once and shared: target under
15 s, building the events included.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dac.project import Project
from dac.review.report import Options, review

EVENTS = 100_000
TARGET_SECONDS = 15.0
CHANGES = {  # rule file stem → (old text, new text)
    "csr_created_or_approved_by_non_system_identity": (
        "and kubernetes.audit.responseStatus.code < 400\n  ",
        "",
    ),
    "csr_request_for_system_masters_group": ("{attribute: O,", "{attribute: OU,"),
    "csr_request_for_kube_controller_manager_identity": ("{attribute: CN,", "{attribute: O,"),
}


def bench_diff(project: Project) -> tuple[str, float, str, str, bool]:
    with tempfile.TemporaryDirectory() as scratch:
        repo = Path(scratch)
        shutil.copytree(project.templates, repo / "templates")
        shutil.copytree(project.detections, repo / "detections")
        git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com"]
        for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "base"]):
            subprocess.run([*git, *args], cwd=repo, check=True, capture_output=True)
        for stem, (old, new) in CHANGES.items():
            path = next((repo / "detections").rglob(f"{stem}.yml"))
            text = path.read_text("utf-8")
            assert text.count(old) == 1, f"{stem}: the bench edit no longer applies"
            path.write_text(text.replace(old, new), "utf-8")
        started = time.perf_counter()
        result = review(repo, Options(base="main", corpus_size=EVENTS))
        seconds = time.perf_counter() - started
    changed = [r for r in result.report.rules if r.behaviour is not None]
    label = (
        f"dac diff, {len(changed)} changed rules over {result.report.events:,} events "
        f"(both sides, events built once)"
    )
    ok = len(changed) == len(CHANGES) and not result.problems and seconds < TARGET_SECONDS
    return (label, seconds, "s", f"< {TARGET_SECONDS:.0f} s", ok)


def main() -> int:
    label, value, unit, target, ok = bench_diff(Project.at(Path("detections")))
    print(f"{label}  {value:>12,.1f} {unit:<10} target {target}  {'ok' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
