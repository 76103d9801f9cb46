"""``dac diff`` on a temporary git repository built from the real rules and templates.

BASE holds the repository's three CSR rules, a second rule on the shared KQL macro (B) and a
copy of the system:masters rule (R). HEAD, the working tree, then: adds a rule (N), edits the
controller-manager rule's query (K), changes one line of the macro A and B use, removes R,
renames the system:masters rule file (M), and widens B so it fires on benign events.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest

from dac.cli import main
from dac.documents import values_at
from dac.review import output
from dac.review.behaviour import collect_events
from dac.review.model import (
    AlertRef,
    Behaviour,
    DiffReport,
    FieldDiff,
    Flag,
    RuleDiff,
    SideInfo,
)
from dac.review.report import Options, review
from tests.fixtures.project import edit
from tests.repository import PROJECT, REPO

RULES = PROJECT.detections / "kubernetes"
A = "csr_created_or_approved_by_non_system_identity"
M = "csr_request_for_system_masters_group"
K = "csr_request_for_kube_controller_manager_identity"
A_ID, M_ID, K_ID = (
    "2e7c9c78-3a0d-4c84-b5e2-1066ffa3acca",
    "d4818217-6ce5-4ae6-8902-c9397d85da6c",
    "f4a14c20-f6b1-4edc-a968-7ab31fb1ad4c",
)
B_ID, R_ID, N_ID = (
    "0b7d1c52-9a61-4d38-8f0e-2c1a4e6b7d01",
    "0b7d1c52-9a61-4d38-8f0e-2c1a4e6b7d02",
    "0b7d1c52-9a61-4d38-8f0e-2c1a4e6b7d03",
)
MACRO_LINE = 'not {{ field }}:{{ data.system_identities | map(attribute="identity") | list | kql_any }}'
CODE_CLAUSE = "  and kubernetes.audit.responseStatus.code < 400\n"
CORPUS = 2000
SCHEMA = json.loads((REPO / "tooling/dac/schema/diff.schema.json").read_text("utf-8"))


def git(repo: Path, *args: str) -> str:
    config = repo.parent / "gitconfig"  # no user or system settings: the same commits everywhere
    config.touch()
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
        "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z",
        "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": str(config),
    }
    done = subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


def rule_text(stem: str, replacements: dict[str, str] | None = None) -> str:
    return edit((RULES / f"{stem}.yml").read_text("utf-8"), replacements or {})


def without_exceptions(text: str) -> str:
    """A rule file without its own exception items: a copy keeping them would repeat their item_ids."""
    start = text.index("\nexceptions:\n") + 1
    end = re.compile(r"^\S", re.M).search(text, start + 1)
    assert end is not None
    return text[:start] + text[end.start() :]


def dac(*argv: str) -> tuple[int, str, str]:
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([*argv, "--path", "detections"])
    return code, out.getvalue(), err.getvalue()


def new_repo(root: Path) -> Path:
    """A git repository on branch main holding the real templates and a detections folder."""
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    shutil.copytree(PROJECT.templates, root / "templates")
    (root / "detections/kubernetes").mkdir(parents=True)
    return root


def commit_all(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def locked_build(repo: Path) -> None:
    code, _, err = dac("build", "--out", str(repo / "build"))
    assert code == 0, err
    shutil.rmtree(repo / "build")


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The repository, BASE committed and HEAD in the working tree, and its review."""
    repo = new_repo(tmp_path_factory.mktemp("diff") / "repo")
    cwd = Path.cwd()
    os.chdir(repo)
    try:
        rules = repo / "detections/kubernetes"
        for stem in (A, M, K):
            shutil.copy(RULES / f"{stem}.yml", rules)
        b_base = without_exceptions(
            rule_text(
                A, {f"rule_id: {A_ID}": f"rule_id: {B_ID}", "\nname: Kubernetes Client": "\nname: B Client"}
            )
        )
        (rules / "b.yml").write_text(b_base, "utf-8")
        (rules / "r.yml").write_text(
            rule_text(M, {f"rule_id: {M_ID}": f"rule_id: {R_ID}", "name: Kubernetes CSR": "name: R CSR"}),
            "utf-8",
        )
        (repo / ".gitignore").write_text("build/\n", "utf-8")
        locked_build(repo)
        base = commit_all(repo, "base")
        base_lock = (repo / "detections/version.lock.json").read_text("utf-8")

        (rules / "n.yml").write_text(
            rule_text(K, {f"rule_id: {K_ID}": f"rule_id: {N_ID}", "name: Kubernetes CSR": "name: N CSR"}),
            "utf-8",
        )
        k = rule_text(K, {"vars: {attribute: CN,": "vars: {attribute: O,"})
        k = k[: k.index("  - name: kubelet bootstrap and renewal stay silent")]  # a scenario removed
        (rules / f"{K}.yml").write_text(k, "utf-8")
        macro = repo / "templates/macros/kql.j2"
        macro.write_text(
            edit(
                macro.read_text("utf-8"),
                {
                    MACRO_LINE: MACRO_LINE.replace(
                        '{{ data.system_identities | map(attribute="identity") | list | kql_any }}',
                        '{{ ((data.system_identities | map(attribute="identity") | list)'
                        ' + ["system:kube-proxy"]) | kql_any }}',
                    )
                },
            ),
            "utf-8",
        )
        (rules / "r.yml").unlink()
        git(repo, "mv", f"detections/kubernetes/{M}.yml", "detections/kubernetes/masters.yml")
        (rules / "b.yml").write_text(
            edit(
                b_base,
                {CODE_CLAUSE: "", "severity: high\nrisk_score: 73": "severity: critical\nrisk_score: 80"},
            ),
            "utf-8",
        )
        a = rule_text(
            A,
            {
                "fields: {kubernetes.audit.user.username: alice, kubernetes.audit.verb: create}\n": (
                    "fields: {kubernetes.audit.verb: create}\n"
                )
            },
        )
        (rules / f"{A}.yml").write_text(a, "utf-8")
        locked_build(repo)
        lock = json.loads((repo / "detections/version.lock.json").read_text("utf-8"))
        lock[A_ID] = json.loads(base_lock)[A_ID]  # A changed, but its lock entry was not bumped
        (repo / "detections/version.lock.json").write_text(
            json.dumps(lock, indent=2, sort_keys=True) + "\n", "utf-8"
        )

        result = review(repo, Options(base="main", corpus_size=CORPUS))
        code, markdown, err = dac("diff", "--format", "markdown", "--corpus-size", str(CORPUS))
        yield {"repo": repo, "base": base, "review": result, "markdown": markdown, "code": code, "err": err}
    finally:
        os.chdir(cwd)


def by_id(report: DiffReport) -> dict[str, RuleDiff]:
    return {r.rule_id: r for r in report.rules}


def test_rules_are_classified_by_rule_id(scenario: dict) -> None:
    report = scenario["review"].report
    status = {rule_id: r.status for rule_id, r in by_id(report).items()}
    assert status == {
        A_ID: "modified",
        B_ID: "modified",
        K_ID: "modified",
        N_ID: "added",
        M_ID: "renamed",
        R_ID: "removed",
    }
    renamed = by_id(report)[M_ID]
    assert (renamed.base_path, renamed.head_path) == (
        f"detections/kubernetes/{M}.yml",
        "detections/kubernetes/masters.yml",
    )
    assert scenario["review"].problems == []
    assert report.changed_files == ["templates/macros/kql.j2"]


def test_a_shared_macro_change_is_named_under_every_rule_it_changes(scenario: dict) -> None:
    rules = by_id(scenario["review"].report)
    assert rules[A_ID].causes == ["templates/macros/kql.j2"]  # A's own YAML changed only in its tests
    assert rules[B_ID].causes == ["detections/kubernetes/b.yml", "templates/macros/kql.j2"]
    assert rules[K_ID].causes == [f"detections/kubernetes/{K}.yml"]  # reads the ES|QL template, not the macro
    (query,) = [f for f in rules[A_ID].fields if f.field == "query"]
    assert query.diff is not None
    uses = rule_text(A).count("kql.not_system_identity(")  # each use of the macro changes one line
    assert [line[0] for line in query.diff.splitlines()[1:] if line[0] in "+-"] == ["-", "+"] * uses


def test_review_flags(scenario: dict) -> None:
    flags = {
        rule_id: sorted(f.id for f in r.flags) for rule_id, r in by_id(scenario["review"].report).items()
    }
    assert flags == {
        A_ID: ["missing-version-bump", "tests-weakened"],
        B_ID: ["risk-raised", "severity-raised"],
        K_ID: ["alerts-lost", "tests-removed"],
        N_ID: [],
        M_ID: [],
        R_ID: ["deployed-rule-removed"],
    }
    weakened = next(f for f in by_id(scenario["review"].report)[A_ID].flags if f.id == "tests-weakened")
    assert (
        weakened.message
        == "“a user creates a CSR with kubectl”: no longer checks kubernetes.audit.user.username"
    )


def test_the_widened_rule_gains_exactly_the_benign_rejected_requests(
    scenario: dict, head_events: tuple
) -> None:
    """Dropping ``responseStatus.code < 400`` adds exactly the allowed-but-failed CSR writes by people.

    The oracle reads the shared events directly, independently of any query engine.
    """
    report = scenario["review"].report
    b = by_id(report)[B_ID].behaviour
    assert b is not None and b.skipped is None
    _, events = head_events
    system = re.compile(
        "|".join(
            re.escape(i).replace(r"\*", ".*")
            for i in [
                "system:kube-controller-manager",
                "system:serviceaccount:kube-system:certificate-controller",
                "system:kube-scheduler",
                "system:kube-proxy",
                "system:node:*",
                "system:bootstrap:*",
                "kubelet-bootstrap",
                "eks:*",
                "aksService",
                "kubelet-nodepool-bootstrap",
                "system:gcp-controller-manager",
            ]
        )
    )

    def one(source: dict, path: str) -> object:
        found = values_at(source, path)
        return found[0] if found else None

    expected = {
        d.id
        for d in events.documents
        if one(d.source, "kubernetes.audit.objectRef.resource") == "certificatesigningrequests"
        and one(d.source, "kubernetes.audit.verb") in ("create", "update", "patch")
        and one(d.source, "kubernetes.audit.objectRef.subresource") in (None, "approval")
        and one(d.source, "kubernetes.audit.annotations.authorization_k8s_io/decision") == "allow"
        and (one(d.source, "kubernetes.audit.responseStatus.code") or 0) >= 400
        and not system.fullmatch(str(one(d.source, "kubernetes.audit.user.username")))
    }
    assert expected, "the corpus must hold rejected requests for this test to mean anything"
    assert {a.document_id for a in b.only_head} == expected
    assert b.only_base == []
    assert b.both == b.base_alerts and b.head_alerts == b.both + len(expected)
    assert {a.origin.split(" ")[0] for a in b.only_head} >= {"scenario", "generated"}


@pytest.fixture(scope="module")
def head_events(scenario: dict) -> tuple:
    """The changed HEAD rules and the events the review shared between the sides, built again."""
    from dac.compile import compile_rules
    from dac.loader import rule_files
    from dac.render.environment import Templates

    repo = scenario["repo"]
    compiled, problems = compile_rules(rule_files(repo / "detections"), Templates(repo / "templates"))
    assert not problems
    head = {c.rule.rule_id: c for c in compiled}
    pairs = [(None, head[i]) for i in (A_ID, B_ID, K_ID, N_ID)]
    return pairs, collect_events(pairs, CORPUS, 1, prefilter=False)  # every event whole, for oracles


def test_the_narrowed_query_shows_the_attacks_it_now_misses(scenario: dict) -> None:
    k = by_id(scenario["review"].report)[K_ID].behaviour
    assert k is not None and k.base_alerts and len(k.only_base) == k.base_alerts > k.head_alerts
    origins = {a.origin.split(" (")[0] for a in k.only_base}
    assert "efficacy attack" in origins
    assert all(
        a.user and a.verb == "create" and a.object.startswith("certificatesigningrequests/")
        for a in k.only_base
    )
    n = by_id(scenario["review"].report)[N_ID].behaviour
    assert n is not None and n.base_alerts is None and n.head_alerts == len(n.only_head) > 0


def test_json_follows_its_schema(scenario: dict) -> None:
    body = json.loads(output.to_json(scenario["review"].report))
    jsonschema.validate(body, SCHEMA)
    assert body["counts"] == {"added": 1, "removed": 1, "modified": 3, "renamed": 1, "unchanged": 0}


def test_markdown_against_golden_text(scenario: dict) -> None:
    markdown = scenario["markdown"]
    assert scenario["code"] == 0, scenario["err"]
    base = scenario["base"][:12]
    header = f"""<!-- dac-diff -->
## Detection rule review

BASE `{base}` (merge base with main) → HEAD `working tree`

| added | removed | modified | renamed/moved | unchanged | flagged |
|---:|---:|---:|---:|---:|---:|
| 1 | 1 | 3 | 1 | 0 | 4 |

Shared files changed: `templates/macros/kql.j2`
"""
    assert markdown.startswith(header)
    removed = f"""<details>
<summary><b>removed</b> R CSR Request for System Masters Group · `deployed-rule-removed`</summary>

`{R_ID}` · `detections/kubernetes/r.yml` · version 1

- :warning: `deployed-rule-removed`: deployed from BASE (version 1): a deploy leaves it in Kibana unless \
told to prune rules the repository no longer has

</details>
"""
    renamed = f"""<details>
<summary><b>renamed/moved</b> Kubernetes CSR Request for System Masters Group</summary>

`{M_ID}` · `detections/kubernetes/{M}.yml` → `detections/kubernetes/masters.yml` · version 1 → 1

</details>
"""
    assert removed in markdown
    assert renamed in markdown
    a_block = markdown[markdown.index("<b>modified</b> Kubernetes Client") :]
    a_block = a_block[: a_block.index("</details>")]
    assert a_block.startswith(
        "<b>modified</b> Kubernetes Client Certificate Signing Request Created or Approved by "
        "Non-System Identity"
        " · +0 / -0 alerts · `missing-version-bump` `tests-weakened`</summary>\n\n"
        f"`{A_ID}` · `detections/kubernetes/{A}.yml` · version 1 → 2\n\n"
        "Changed by: `templates/macros/kql.j2`\n\n"
        "- :warning: `missing-version-bump`: the rendered rule changed but the lock still says "
        "version 1, as at "
        "BASE: run `dac build` and commit the lock\n"
        "- :warning: `tests-weakened`: “a user creates a CSR with kubectl”: no longer checks "
        "kubernetes.audit.user.username\n\n"
        "`query`:\n\n"
        "```diff\n"
        "@@ -4,7 +4,7 @@\n"
        '    and kubernetes.audit.verb:("create" or "update" or "patch")\n'
        "    and (not kubernetes.audit.objectRef.subresource:* or "
        'kubernetes.audit.objectRef.subresource:"approval")\n'
        "    and kubernetes.audit.responseStatus.code < 400\n"
        '-   and not kubernetes.audit.user.username:("system:kube-controller-manager" or '
    )
    # the GKE branch reads the same identity list through the caller's principal
    assert "\n@@ -13,5 +13,5 @@\n" in a_block
    assert '+   and not kubernetes.audit.protoPayload.authenticationInfo.principalEmail:(' in a_block
    assert '"system:gcp-controller-manager" or "system:kube-proxy"))\n )\n```\n' in a_block
    assert "**0 only at HEAD**, **0 only at BASE**." in a_block


def test_fail_on_a_flag_makes_it_blocking(scenario: dict) -> None:
    code, _, err = dac("diff", "--no-behaviour", "--fail-on", "missing-version-bump")
    assert code == 1 and "blocking flags: missing-version-bump" in err
    code, _, _ = dac("diff", "--no-behaviour", "--fail-on", "enabled-flipped")
    assert code == 0


# --- edge cases ---------------------------------------------------------------------------------


@pytest.fixture
def small_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    repo = new_repo(tmp_path / "repo")
    monkeypatch.chdir(repo)
    shutil.copy(RULES / f"{A}.yml", repo / "detections/kubernetes")
    locked_build(repo)
    commit_all(repo, "base")
    return repo


def test_an_empty_diff(small_repo: Path) -> None:
    code, out, err = dac("diff", "--format", "markdown")
    assert code == 0, err
    assert "| 0 | 0 | 0 | 0 | 1 | 0 |" in out and "No rule changed." in out and "<details>" not in out
    code, out, _ = dac("diff")
    assert code == 0 and "no rule changed" in out


def test_a_base_that_does_not_build_is_reported_and_head_still_reviewed(small_repo: Path) -> None:
    template = small_repo / "templates/kibana/rule.j2"
    good = template.read_text("utf-8")
    template.write_text(good.replace("{", "{% broken", 1), "utf-8")
    commit_all(small_repo, "broken template")
    template.write_text(good, "utf-8")
    code, out, err = dac("diff", "HEAD", "--format", "markdown", "--no-behaviour")
    assert code == 0, err
    assert "**BASE does not build** (1 problems):" in out
    assert re.search(r"- `[0-9a-f]{12}:templates/kibana/rule.j2:1:1: template syntax error", out), out
    assert "| 1 | 0 | 0 | 0 | 0 | 0 |" in out  # the rule shows as added at HEAD


def test_invalid_yaml_at_head_is_a_located_error(small_repo: Path) -> None:
    path = small_repo / "detections/kubernetes" / f"{A}.yml"
    path.write_text(path.read_text("utf-8").replace("severity: high", "severity: [high", 1), "utf-8")
    code, _, err = dac("diff", "--no-behaviour")
    assert code == 1
    line = err.splitlines()[0]
    assert re.match(rf"detections/kubernetes/{A}\.yml:\d+:\d+: ", line), err
    assert "/tmp" not in err and "dac-diff-" not in err


def test_a_shallow_clone_without_the_base_commit_says_to_fetch_more(
    small_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (small_repo / "detections/kubernetes/x.txt").write_text("second commit\n", "utf-8")
    commit_all(small_repo, "second")
    clone = tmp_path / "shallow"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{small_repo}", str(clone)], check=True)
    monkeypatch.chdir(clone)
    code, _, err = dac("diff", "HEAD~1", "--no-behaviour")
    assert code == 1
    assert "unknown revision 'HEAD~1'" in err and "git fetch --unshallow" in err and "fetch-depth: 0" in err


def test_no_base_and_no_main_says_what_to_do(small_repo: Path) -> None:
    git(small_repo, "branch", "-m", "main", "trunk")
    code, _, err = dac("diff", "--no-behaviour")
    assert code == 1 and "neither origin/main nor main exists" in err


def huge_report(rules: int) -> DiffReport:
    alert = AlertRef(
        "0123456789abcdef0123",
        "logs-kubernetes.audit_logs-default",
        "generated",
        "2026-01-01T00:00:00Z",
        "alice",
        "create",
        "certificatesigningrequests/csr-x",
    )
    diffs = [
        RuleDiff(
            f"00000000-0000-0000-0000-{n:012d}",
            f"Rule {n} " + "x" * 40,
            "modified",
            base_path=f"detections/r{n}.yml",
            head_path=f"detections/r{n}.yml",
            base_name=f"Rule {n}",
            base_version=1,
            head_version=2,
            fields=[
                FieldDiff("severity", "low", "high"),
                FieldDiff("query", "a", "b", "@@ -1 +1 @@\n-" + "a" * 300 + "\n+" + "b" * 300),
            ],
            flags=[Flag("severity-raised", "severity low → high")],
            causes=["templates/macros/kql.j2"],
            behaviour=Behaviour(1000, 1, 3, 1, [], [alert] * 2),
        )
        for n in range(rules)
    ]
    return DiffReport(
        SideInfo("main", "f" * 40, rules),
        SideInfo("working tree", None, rules),
        diffs,
        ["templates/macros/kql.j2"],
    )


def test_a_huge_diff_is_truncated_per_rule_within_both_limits() -> None:
    report = huge_report(2000)
    comment = output.to_markdown(report)
    assert len(comment) <= output.COMMENT_LIMIT
    assert comment.startswith(output.MARKER)
    assert "| 0 | 0 | 2000 | 0 | 0 | 2000 |" in comment
    shown = comment.count("<details>")
    assert 0 < shown < 2000
    match = re.search(
        r"\*\*Truncated\*\* to stay within 65,536 characters: (?:(\d+) rules are shown without their "
        r"details and )?(\d+) more rules are not shown\. The job summary",
        comment,
    )
    assert match, comment[-600:]
    assert shown + int(match.group(2)) == 2000
    summary = output.to_markdown(report, output.SUMMARY_LIMIT, measure="bytes")
    assert len(summary.encode("utf-8")) <= output.SUMMARY_LIMIT
    assert summary.count("<details>") > shown
    small = output.to_markdown(huge_report(3))
    assert "Truncated" not in small and small.count("```diff") == 3


def test_the_generated_corpus_made_in_workers_is_the_one_converted_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Made in forked workers, with or without needles, the corpus is `dac generate`'s events
    converted one by one here (RSA keys included: workers sign with this process's keys)."""
    from dac.events.generate import generate
    from dac.events.reader import to_source_document
    from dac.review import behaviour

    raw = list(generate("mixed", 2000, 3))
    whole = [(d.index, d.id, d.source) for d in (to_source_document(e, "k8s-audit") for e in raw)]
    needles = (b"certificatesigningrequests",)
    holding = [needles[0] in json.dumps(e).encode("utf-8") for e in raw]
    monkeypatch.setattr(behaviour, "EVENTS_PER_WORKER", 500)
    monkeypatch.setattr(behaviour, "CHUNK", 300)  # 7 chunks: without needles, shared by the cores
    assert behaviour.generated_documents(2000, 3) == whole
    prefiltered = behaviour.generated_documents(2000, 3, needles)
    assert [(index, id_) for index, id_, _ in prefiltered] == [(index, id_) for index, id_, _ in whole]
    kept = [entry for entry in prefiltered if entry[2] is not None]
    assert kept == [d for d, holds in zip(whole, holding, strict=True) if holds]
    assert 0 < len(kept) < len(whole) / 10
    monkeypatch.setattr(behaviour, "EVENTS_PER_WORKER", 10**9)
    assert behaviour.generated_documents(2000, 3, needles) == prefiltered


def test_the_prefiltered_review_equals_the_review_of_every_event_converted_whole(
    scenario: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Events holding none of the rules' needles are only counted: the report (alerts gained,
    lost and in both per rule, their ids and fields, counts, notes) is the same as when every
    event is converted and run. Same process, so the same RSA keys and event ids."""
    from functools import partial

    from dac.review import report as review_report

    monkeypatch.setattr(review_report, "collect_events", partial(collect_events, prefilter=False))
    whole = review(scenario["repo"], Options(base="main", corpus_size=CORPUS)).report
    prefiltered = scenario["review"].report
    assert output.to_json(prefiltered) == output.to_json(whole)
    assert output.to_markdown(prefiltered) == output.to_markdown(whole)
    assert sum(len(r.behaviour.only_head) for r in whole.rules if r.behaviour) > 0


def test_prefiltered_event_files_give_the_alerts_of_the_whole_conversion(
    head_events: tuple, tmp_path: Path
) -> None:
    """`--events` lines that hold no needle are checked and counted, not kept; a needle written
    with a \\u escape is still found; a bad line is an error either way."""
    from dac.engine.local import LocalEngine
    from dac.events.generate import generate
    from dac.events.reader import document_id
    from dac.review import behaviour

    pairs, _ = head_events
    lines = [json.dumps(e) for e in generate("mixed", 3000, 11)]
    escaped = next(n for n, line in enumerate(lines) if '"certificatesigningrequests"' in line)
    lines[escaped] = lines[escaped].replace("certificatesigningrequests", "\\u0063ertificatesigningrequests")
    escaped_line = lines[escaped]
    lines.insert(7, '{"kind": "Event"')
    log = tmp_path / "audit.log"
    log.write_text("\n".join(lines) + "\n", "utf-8")
    whole = collect_events(pairs, 0, 1, [log], prefilter=False)
    prefiltered = collect_events(pairs, 0, 1, [log])

    def from_file(events: behaviour.Events) -> list:
        return [d for d in events.documents if events.origins[(d.index, d.id)] == "events file"]

    assert 0 < len(from_file(prefiltered)) < len(from_file(whole)) / 10
    assert prefiltered.count == whole.count and prefiltered.origins == whole.origins
    assert [str(p) for p in prefiltered.problems] == [str(p) for p in whole.problems] != []
    assert prefiltered.sources == whole.sources
    kept = {d.id: d for d in prefiltered.documents}
    for document in whole.documents:
        if document.id in kept:
            assert kept[document.id] == document
    assert document_id(escaped_line.encode("utf-8")) in kept
    engine = LocalEngine()
    same = behaviour.compare_behaviour(pairs, prefiltered, engine)
    assert same == behaviour.compare_behaviour(pairs, whole, engine)
    assert sum(b.head_alerts for b in same.values()) > 0


def test_user_events_are_an_input_of_the_behavioural_diff(small_repo: Path) -> None:
    from dac.events.specs import expand_events

    path = small_repo / "detections/kubernetes" / f"{A}.yml"
    path.write_text(edit(path.read_text("utf-8"), {CODE_CLAUSE: ""}), "utf-8")
    rejected = expand_events(
        [{"csr_create": {"user": "carol", "subject": {"CN": "carol"}, "outcome": "invalid"}}], seed=7
    )
    log = small_repo.parent / "audit.ndjson"
    log.write_text("".join(json.dumps(e) + "\n" for e in rejected), "utf-8")
    code, out, err = dac("diff", "--format", "json", "--corpus-size", "0", "--events", str(log))
    assert code == 0, err
    body = json.loads(out)
    jsonschema.validate(body, SCHEMA)
    (rule,) = [r for r in body["rules"] if r["status"] == "modified"]
    from_file = [a for a in rule["behaviour"]["only_head"] if a["origin"] == "events file"]
    assert [(a["user"], a["verb"]) for a in from_file] == [("carol", "create")]
    assert [s["name"] for s in body["event_sources"]] == ["scenarios", "efficacy", "events"]


def test_text_output_is_coloured_only_when_asked() -> None:
    report = huge_report(2)
    plain, coloured = output.to_text(report), output.to_text(report, colour=True)
    assert "\033[" not in plain and "\033[33mMODIFIED\033[0m Rule 0" in coloured
    assert "0 added, 0 removed, 2 modified, 0 renamed/moved, 0 unchanged" in plain
    assert "  flag severity-raised: severity low → high" in plain
    assert "  alerts: BASE 1, HEAD 3, both 1, only HEAD 2, only BASE 0" in plain


def test_rule_versions_run_in_workers_match_one_run(
    head_events: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dac.engine.local import LocalEngine
    from dac.review import behaviour

    pairs, events = head_events
    in_one_run = behaviour.compare_behaviour(pairs, events, LocalEngine())
    monkeypatch.setattr(behaviour, "EVENTS_PER_WORKER", 100)
    in_workers = behaviour.compare_behaviour(pairs, events, LocalEngine())
    assert in_workers == in_one_run
    assert sum(b.head_alerts for b in in_one_run.values()) > 0


def test_diff_events_name_skipped_files_and_read_any_format_like_dac_run(small_repo: Path) -> None:
    """Review 3.5: the files `dac diff --events` does not read are notes of the review (text,
    Markdown, JSON), and --input defaults to auto, as for `dac run` (an AKS record is read)."""
    from dac.events.specs import expand_events

    path = small_repo / "detections/kubernetes" / f"{A}.yml"
    path.write_text(edit(path.read_text("utf-8"), {CODE_CLAUSE: ""}), "utf-8")
    (event,) = expand_events(
        [{"csr_create": {"user": "carol", "subject": {"CN": "carol"}, "outcome": "invalid"}}], seed=7
    )
    folder = small_repo.parent / "events"
    folder.mkdir()
    aks = {"category": "kube-audit", "time": event["requestReceivedTimestamp"],
           "properties": {"log": json.dumps(event)}}
    (folder / "aks.ndjson").write_text(json.dumps(aks) + "\n", "utf-8")
    (folder / "audit.txt").write_text(json.dumps(event) + "\n", "utf-8")
    common = ("diff", "--corpus-size", "0", "--events", str(folder))
    code, out, err = dac(*common, "--format", "json")
    assert code == 0, err
    body = json.loads(out)
    name = f"{folder / 'audit.txt'}: skipped: not an event file name"
    skipped = [n for n in body["notes"] if n.startswith(name)]
    assert len(skipped) == 1, body["notes"]
    (rule,) = [r for r in body["rules"] if r["status"] == "modified"]
    assert [a["user"] for a in rule["behaviour"]["only_head"] if a["origin"] == "events file"] == ["carol"]
    for fmt in ("text", "markdown"):
        code, out, err = dac(*common, "--format", fmt)
        assert code == 0 and skipped[0] in out, (fmt, err)
    (folder / "aks.ndjson").unlink()
    code, out, err = dac(*common, "--format", "json")
    assert f"no event file was read from {folder}" in json.loads(out)["notes"]
