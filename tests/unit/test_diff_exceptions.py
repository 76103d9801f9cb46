"""``dac diff`` on exception changes: the exceptions section, its flags, and the alerts an item
suppresses or lets back, on temporary git repositories built from the real rules.

The events are our own file (``--events``) with known identities, so the expected suppressions
are known exactly: ``deploy-bot`` creates three CSRs, ``release-bot`` two asking for the
controller manager's name (rule 1 and the controller-manager rule both alert on those), and
``carol`` one. No generated corpus (``corpus_size=0``) keeps the runs small.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest

from dac.events.reader import read_events
from dac.events.specs import expand_events
from dac.review import output
from dac.review.model import DiffReport, ListDiff, RuleDiff
from dac.review.report import Options, review
from tests.repository import shipped_rule
from tests.unit.test_diff import A_ID, K_ID, RULES, SCHEMA, A, K, commit_all, dac, locked_build, new_repo

RULE_1 = A_ID  # rule 1: CSR created or approved by a non-system identity
OWN_LIST = f"{A_ID}-exceptions"
KCM = "system:kube-controller-manager"
EVENT_SPECS = [
    *({"csr_create": {"user": "deploy-bot", "subject": {"CN": f"app-{n}"}}} for n in range(3)),
    *({"csr_create": {"user": "release-bot", "subject": {"CN": KCM}}} for _ in range(2)),
    {"csr_create": {"user": "carol", "subject": {"CN": "carol"}}},
]
DEPLOY_BOT_ITEM = """    - item_id: deploy-bot-csr
      name: deploy bot requesting its client certificates
      description: The deploy bot requests one client certificate per application it deploys.
      owner: platform-team
      reason: PLAT-1234
      expires: 2027-01-31
      entries:
        - field: kubernetes.audit.user.username
          operator: included
          type: match
          value: deploy-bot
"""
SHARED_LIST = """# yaml-language-server: $schema=../../tooling/dac/schema/exception_list.schema.json
list_id: platform-tooling
name: Platform tooling identities
description: Cluster tooling that writes CSRs under its own identity.
items:
  - item_id: platform-bots
    name: platform bots
    description: The platform team's bots request client certificates for what they deploy.
    owner: platform-team
    reason: PLAT-99
    expires: {expires}
    entries:
      - field: kubernetes.audit.user.username
        operator: included
        type: match_any
        value: [{users}]
"""


def events_file(root: Path) -> tuple[Path, dict[str, list[str]], dict[str, str]]:
    """The events as an NDJSON audit log, each user's document ids, and each document's CSR name."""
    events = expand_events(EVENT_SPECS, seed=11)
    path = root / "audit.ndjson"
    path.write_text("".join(json.dumps(e) + "\n" for e in events), "utf-8")
    ids: dict[str, list[str]] = {}
    names: dict[str, str] = {}
    for document in read_events([path], "k8s-audit").documents:  # ids as dac reads the file
        audit = document.source["kubernetes"]["audit"]
        ids.setdefault(audit["user"]["username"], []).append(document.id)
        names[document.id] = audit["objectRef"]["name"]
    return path, ids, names


def rule_1_text(items: str = "", drop_cert_manager: bool = False, lists: bool = False) -> str:
    """Rule 1's file with ``items`` appended to its own exception items (or its item removed)."""
    text = (RULES / f"{A}.yml").read_text("utf-8")
    start = text.index("\nexceptions:\n") + 1
    end = re.compile(r"^\S", re.M).search(text, start + 1)
    assert end is not None
    block = text[start : end.start()]
    if drop_cert_manager:
        block = "exceptions:\n  items:\n" if items else ""
    if lists:
        block = (block or "exceptions:\n").replace(
            "exceptions:\n", "exceptions:\n  lists: [platform-tooling]\n"
        )
    return text[:start] + block + items + text[end.start() :]


def kcm_text(lists: bool) -> str:
    text = (RULES / f"{K}.yml").read_text("utf-8")
    return (
        text.replace("\ntests:\n", "\nexceptions:\n  lists: [platform-tooling]\ntests:\n") if lists else text
    )


def run(repo: Path, events: Path) -> DiffReport:
    return review(repo, Options(base="main", corpus_size=0, events=[events])).report


def by_id(report: DiffReport) -> dict[str, RuleDiff]:
    return {r.rule_id: r for r in report.rules}


def the_list(report: DiffReport, list_id: str) -> ListDiff:
    (found,) = [lst for lst in report.exceptions if lst.list_id == list_id]
    return found


@pytest.fixture(scope="module")
def added(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """BASE: rule 1 as shipped. HEAD: one more item on rule 1, for deploy-bot."""
    root = tmp_path_factory.mktemp("exc-added")
    repo = new_repo(root / "repo")
    events, ids, names = events_file(root)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(repo)
        (repo / ".gitignore").write_text("build/\n", "utf-8")
        rule = repo / "detections/kubernetes" / f"{A}.yml"
        rule.write_text(rule_1_text(), "utf-8")
        locked_build(repo)
        base = commit_all(repo, "base")
        rule.write_text(rule_1_text(DEPLOY_BOT_ITEM), "utf-8")
        report = run(repo, events)
        code, markdown, err = dac(
            "diff", "main", "--format", "markdown", "--corpus-size", "0", "--events", str(events)
        )
        assert code == 0, err
    return {
        "report": report,
        "markdown": markdown,
        "ids": ids,
        "names": names,
        "base": base,
    }


def test_an_added_item_is_its_own_section_with_owner_reason_expiry_and_flag(added: dict) -> None:
    report = added["report"]
    (lst,) = report.exceptions
    assert (lst.list_id, lst.type, lst.status) == (OWN_LIST, "rule_default", "modified")
    assert lst.rules == [by_id(report)[RULE_1].name] and lst.fields == []
    (item,) = lst.items
    assert (item.item_id, item.status, item.owner, item.reason, item.expires) == (
        "deploy-bot-csr",
        "added",
        "platform-team",
        "PLAT-1234",
        "2027-01-31T00:00:00.000Z",
    )
    assert [(f.field, f.diff) for f in item.fields] == [
        ("entries", '@@ -0,0 +1 @@\n+kubernetes.audit.user.username included match "deploy-bot"')
    ]
    assert [f.id for f in item.flags] == ["exception-added"]
    assert "exception-added" in report.flag_ids
    jsonschema.validate(report.as_dict(), SCHEMA)


def test_an_item_change_reviews_the_unchanged_rule_it_tunes(added: dict) -> None:
    rule = by_id(added["report"])[RULE_1]
    # an item does not change the rule object (nor its version), yet the rule is reviewed
    assert rule.status == "unchanged" and rule.fields == [] and rule.base_version == rule.head_version
    assert rule.exception_lists == [OWN_LIST] and rule.noteworthy


def test_the_added_item_suppresses_exactly_the_deploy_bots_alerts(added: dict) -> None:
    report, ids = added["report"], added["ids"]
    behaviour = by_id(report)[RULE_1].behaviour
    assert behaviour is not None and behaviour.base_alerts is not None
    suppressed = behaviour.newly_suppressed
    assert sorted(s.alert.document_id for s in suppressed) == sorted(ids["deploy-bot"])
    assert {(s.list_id, s.item_id, s.alert.user, s.alert.verb) for s in suppressed} == {
        (OWN_LIST, "deploy-bot-csr", "deploy-bot", "create")
    }
    assert {a.document_id for a in behaviour.only_base} == set(ids["deploy-bot"])
    assert behaviour.only_head == [] and behaviour.reappeared == []
    assert behaviour.head_alerts == behaviour.base_alerts - 3
    assert the_list(report, OWN_LIST).items[0].suppresses == 3
    assert "alerts-lost" not in report.flag_ids  # the loss is the item's, shown with it


def test_markdown_of_an_added_item_against_golden_text(added: dict) -> None:
    markdown, ids, names = added["markdown"], added["ids"], added["names"]
    section = f"""### Exceptions

<details>
<summary><b>modified</b> list `{OWN_LIST}` (rule_default) · 1 item added · `exception-added`</summary>

`detections/kubernetes/{A}.yml` · used by “Kubernetes Client Certificate Signing Request Created or \
Approved by Non-System Identity”

- :warning: `exception-added`: deploy-bot-csr: suppresses 3 alerts in the behavioural diff

| item | change | owner | reason | expires | newly suppresses |
|---|---|---|---|---|---:|
| `deploy-bot-csr` deploy bot requesting its client certificates | added | platform-team | PLAT-1234 | \
2027-01-31 | 3 alerts |

`deploy-bot-csr` `entries`:

```diff
@@ -0,0 +1 @@
+kubernetes.audit.user.username included match "deploy-bot"
```

</details>
"""
    assert section in markdown
    rule = markdown[markdown.index("<b>unchanged, exceptions changed</b>") :]
    rule = rule[: rule.index("</details>")]
    assert rule.startswith(
        "<b>unchanged, exceptions changed</b> Kubernetes Client Certificate Signing Request Created or "
        "Approved by Non-System Identity · +0 / -3 alerts, 3 newly suppressed</summary>\n\n"
        f"`{A_ID}` · `detections/kubernetes/{A}.yml` · version 1 → 1\n\n"
        f"Exception lists changed: `{OWN_LIST}`\n\n"
    )
    assert (
        "Exceptions: **3 suppressed at HEAD, not at BASE**; **0 suppressed at BASE reappear at HEAD**.\n\n"
        "| | document | user | verb | object | from |\n|---|---|---|---|---|---|\n"
    ) in rule
    rows = [line for line in rule.splitlines() if line.startswith("| suppressed by")]
    assert sorted(rows) == sorted(
        f"| suppressed by `deploy-bot-csr` | `{doc}` | deploy-bot | create | certificatesigningrequests/"
        f"{names[doc]} | events file |"
        for doc in ids["deploy-bot"]
    )
    assert "| lost |" not in rule


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """BASE: rule 1 with its cert-manager item, rule 1 and the controller-manager rule sharing
    platform-tooling (deploy-bot). HEAD: the cert-manager item removed; the shared item also takes
    release-bot and expires later."""
    root = tmp_path_factory.mktemp("exc-tuned")
    repo = new_repo(root / "repo")
    events, ids, _ = events_file(root)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(repo)
        rules = repo / "detections/kubernetes"
        (repo / "detections/exceptions").mkdir()
        shared = repo / "detections/exceptions/platform-tooling.yml"
        shared.write_text(SHARED_LIST.format(expires="2027-01-31", users="deploy-bot"), "utf-8")
        (rules / f"{A}.yml").write_text(rule_1_text(lists=True), "utf-8")
        (rules / f"{K}.yml").write_text(kcm_text(lists=True), "utf-8")
        locked_build(repo)
        commit_all(repo, "base")
        shared.write_text(SHARED_LIST.format(expires="2027-06-30", users="deploy-bot, release-bot"), "utf-8")
        (rules / f"{A}.yml").write_text(rule_1_text(drop_cert_manager=True, lists=True), "utf-8")
        locked_build(repo)
        report = run(repo, events)
    return {"report": report, "ids": ids}


def test_a_removed_item_lets_its_alerts_reappear(tuned: dict) -> None:
    report = tuned["report"]
    own = the_list(report, OWN_LIST)
    assert own.status == "removed"
    shipped = {i["item_id"]: i["owner"] for i in shipped_rule(A)["exceptions"]["items"]}
    assert {item.item_id: item.owner for item in own.items} == shipped
    for item in own.items:
        assert item.status == "removed" and item.flags == [] and item.suppresses is None
    rule = by_id(report)[RULE_1]
    assert rule.status == "modified"  # its exceptions_list lost the reference
    assert [f.field for f in rule.fields] == ["exceptions_list"]
    behaviour = rule.behaviour
    assert behaviour is not None
    back = behaviour.reappeared
    assert back and {(s.item_id, s.alert.user) for s in back} == {
        ("cert-manager-controller-csr-signer", "system:serviceaccount:cert-manager:cert-manager")
    }
    assert {(s.alert.index, s.alert.document_id) for s in back} <= {
        (a.index, a.document_id) for a in behaviour.only_head
    }
    assert all(s.alert.origin.startswith("scenario ") for s in back)  # rule 1's own scenarios


def test_a_shared_list_change_names_both_rules_and_their_new_suppressions(tuned: dict) -> None:
    report, ids = tuned["report"], tuned["ids"]
    shared = the_list(report, "platform-tooling")
    assert (shared.type, shared.status, shared.head_path) == (
        "detection",
        "modified",
        "detections/exceptions/platform-tooling.yml",
    )
    names = {by_id(report)[RULE_1].name, by_id(report)[K_ID].name}
    assert set(shared.rules) == names
    (item,) = shared.items
    assert item.status == "modified"
    assert {f.id for f in item.flags} == {"exception-widened", "exception-expiry-extended"}
    fields = {f.field: f for f in item.fields}
    assert set(fields) == {"entries", "expire_time"}
    assert fields["entries"].diff == (
        "@@ -1 +1 @@\n"
        '-kubernetes.audit.user.username included match_any ["deploy-bot"]\n'
        '+kubernetes.audit.user.username included match_any ["deploy-bot", "release-bot"]'
    )
    assert (fields["expire_time"].before, fields["expire_time"].after) == (
        "2027-01-31T00:00:00.000Z",
        "2027-06-30T00:00:00.000Z",
    )
    for rule_id in (RULE_1, K_ID):
        rule = by_id(report)[rule_id]
        assert "platform-tooling" in rule.exception_lists
        assert rule.behaviour is not None
        newly = {s.alert.document_id for s in rule.behaviour.newly_suppressed if s.item_id == "platform-bots"}
        assert newly == set(ids["release-bot"]), rule.name
    assert item.suppresses == 4  # two release-bot CSRs, in each of the two rules
    jsonschema.validate(report.as_dict(), SCHEMA)
    text = output.to_text(report)
    assert "flag exception-widened: platform-bots: an entry accepts more values" in text
    assert "modified item platform-bots" in text and "used by" in text


def test_fail_on_an_exception_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = new_repo(tmp_path / "repo")
    monkeypatch.chdir(repo)
    rule = repo / "detections/kubernetes" / f"{A}.yml"
    rule.write_text(rule_1_text(), "utf-8")
    locked_build(repo)
    commit_all(repo, "base")
    rule.write_text(rule_1_text(DEPLOY_BOT_ITEM), "utf-8")
    code, _, err = dac("diff", "--no-behaviour", "--fail-on", "exception-added")
    assert code == 1 and "blocking flags: exception-added" in err
    code, _, _ = dac("diff", "--no-behaviour", "--fail-on", "exception-widened")
    assert code == 0


def test_widening_is_read_from_the_entries() -> None:
    from dac.review.exceptions import widened

    def item(*entries: dict, os_types: tuple[str, ...] = ()) -> dict:
        return {"entries": list(entries), "os_types": list(os_types)}

    user = {"field": "u", "operator": "included", "type": "match", "value": "a"}
    verb = {"field": "v", "operator": "included", "type": "match", "value": "create"}
    both = {**user, "type": "match_any", "value": ["a", "b"]}
    assert widened(item(user, verb), item(user)) == "1 of its 2 entries dropped"
    assert widened(item(user), item(both)) == "an entry accepts more values"
    assert (
        widened(item(user), item({**user, "type": "exists", "value": None})) == "an entry accepts more values"
    )
    assert widened(item(both), item(user)) is None  # narrowed
    assert widened(item(user), item({**user, "value": "c"})) is None  # another value: not provably wider
    assert widened(item(user), item(user, verb)) is None  # an entry added narrows
    assert widened(item(user, os_types=("linux",)), item(user)) == "its OS types were widened or dropped"
    excluded = {**user, "operator": "excluded"}
    assert widened(item(excluded), item({**excluded, "type": "match_any", "value": ["a", "b"]})) is None


def test_a_huge_exception_change_stays_within_the_comment_limit() -> None:
    from dac.review.exceptions import compare_items
    from dac.review.model import SideInfo

    def item(n: int, users: list[str]) -> dict:
        return {
            "item_id": f"item-{n}",
            "name": f"item {n}",
            "description": "x" * 200,
            "entries": [{"field": "u", "operator": "included", "type": "match_any", "value": users}],
            "meta": {"owner": "team", "reason": "TICKET-1"},
        }

    lists = [
        ListDiff(
            f"list-{n}",
            "detection",
            "modified",
            f"List {n}",
            head_path=f"detections/exceptions/list-{n}.yml",
            rules=[f"Rule {n}"],
            items=compare_items(
                [item(i, ["a"]) for i in range(60)], [item(i, ["a", "b" * 40]) for i in range(60)]
            ),
        )
        for n in range(300)
    ]
    report = DiffReport(SideInfo("main", "f" * 40, 0), SideInfo("working tree", None, 0), exceptions=lists)
    assert all(f.id == "exception-widened" for lst in lists for f in lst.flags)
    comment = output.to_markdown(report)
    assert len(comment) <= output.COMMENT_LIMIT
    assert comment.count("### Exceptions") == 1
    match = re.search(
        r"(\d+) rules and exception lists are shown without their details and (\d+) more rules and "
        r"exception lists are not shown",
        comment,
    )
    assert match, comment[-600:]
    assert comment.count("<details>") + int(match.group(2)) == 300
    assert comment.count("… 10 more (`--format json` lists all)") >= 1  # 60 items, 50 detailed
