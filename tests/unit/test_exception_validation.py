"""Exceptions as code through ``dac validate`` and ``dac build``: every problem located, warnings
said without failing, shared lists found under detections/exceptions/, and the build output in
Kibana's shape and import order. Tests start from rule 1 and its first real tuning item (the
others are left out, so a new item in the shipped rule does not change what these tests edit)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

from dac.mapping import load_mapping
from tests.fixtures.project import NON_SYSTEM, FixtureProject, edit, position

AUDIT = load_mapping("kubernetes.audit_logs")

RULE = "detections/rule.yml"
ITEM = "cert-manager-controller-csr-signer"
USERNAME_FIELD = "field: kubernetes.audit.user.username"
SHARED = "detections/exceptions/platform.yml"


def first_item_only(text: str) -> str:
    """Rule text whose ``exceptions.items`` keeps only its first item."""
    block = text.index("\nexceptions:\n") + 1
    end = re.search(r"^\S", text[block + len("exceptions:\n"):], re.M)
    stop = block + len("exceptions:\n") + end.start() if end else len(text)
    second = text.find("\n    - item_id:", text.index("    - item_id:", block) + 1, stop)
    return text if second == -1 else text[: second + 1] + text[stop:]


# A conjunctive query of the test's own, so the reachability tests do not follow the shipped query.
CONJUNCTIVE_QUERY = """query: |
  {%- import "macros/kql.j2" as kql -%}
  kubernetes.audit.objectRef.resource:"certificatesigningrequests"
  and kubernetes.audit.verb:("create" or "update" or "patch")
  and kubernetes.audit.annotations.authorization_k8s_io/decision:"allow"
  and {{ kql.not_system_identity("kubernetes.audit.user.username") }}
"""


def copy_tuned(
    project: FixtureProject,
    replacements: dict[str, str] | None = None,
    to: str = "rule.yml",
    query: str | None = None,
) -> str:
    """Rule 1 with its first tuning item only (and ``query`` instead of its own, when given),
    written to ``detections/<to>`` after ``replacements``."""
    text = first_item_only(project.rule_text(NON_SYSTEM))
    if query is not None:
        text = re.sub(r"^query: \|\n(?:[ \t]+.*\n|\n)*", query, text, count=1, flags=re.M)
    text = edit(text, replacements or {})
    project.write(f"detections/{to}", text)
    return text


def at(text: str, needle: str, path: str = RULE, offset: int = 0) -> str:
    line, column = position(text, needle)
    return f"{path}:{line}:{column + offset}"


def shared_list(item_id: str = "ci-bootstrap", username: str = "system:serviceaccount:ci:bootstrap") -> str:
    return f"""# yaml-language-server: $schema=../../tooling/dac/schema/exception_list.schema.json
list_id: platform-tooling
name: Platform tooling identities
description: Cluster tooling that writes CSRs under its own identity.
items:
  - item_id: {item_id}
    name: CI cluster bootstrap job
    description: The CI bootstrap job requests a client certificate once per cluster.
    owner: platform-team
    reason: PLAT-1234
    entries:
      - field: kubernetes.audit.user.username
        operator: included
        type: match
        value: "{username}"
"""


def uses_shared_list(project: FixtureProject) -> str:
    return copy_tuned(project, {"exceptions:\n  items:": "exceptions:\n  lists: [platform-tooling]\n  items:"}
    )


def test_expired_item_is_an_error_at_its_expiry(project: FixtureProject) -> None:
    text = copy_tuned(project, {"expires: 2027-05-31": "expires: 2020-01-01"})
    run = project.dac("validate")
    assert run.code == 1
    assert run.problems == [
        f"{at(text, '2020-01-01')}: exception item {ITEM!r} expired on 2020-01-01T00:00:00.000Z: Kibana no "
        "longer applies it; renew it (new expires, reason) or delete it"
    ]


def test_item_expiring_soon_is_a_warning_and_the_exit_code_stays_zero(project: FixtureProject) -> None:
    soon = (datetime.now(UTC) + timedelta(days=5)).date().isoformat()
    text = copy_tuned(project, {"expires: 2027-05-31": f"expires: {soon}"})
    run = project.dac("validate")
    assert run.code == 0, run.err
    assert run.problems[0].startswith(f"{at(text, soon)}: warning: exception item {ITEM!r} expires in 5 days")
    assert run.problems[0].endswith("owner: platform-security")
    quiet = project.dac("validate", "--expiry-warning-days", "3")
    assert (quiet.code, quiet.problems) == (0, [])


def test_unmapped_field_is_an_error_at_the_field(project: FixtureProject) -> None:
    text = copy_tuned(project, {USERNAME_FIELD: "field: kubernetes.audit.user.nmae"})
    run = project.dac("validate")
    assert run.code == 1
    assert run.problems == [
        f"{at(text, 'kubernetes.audit.user.nmae')}: exception field 'kubernetes.audit.user.nmae' is not "
        f"searchable in kubernetes.audit_logs (kubernetes integration {AUDIT.package_version}): "
        "the index does not map it, so the exception never matches"
    ]


def test_an_object_is_not_a_field(project: FixtureProject) -> None:
    copy_tuned(project, {USERNAME_FIELD: "field: kubernetes.audit.user"})
    assert "it is an object, not a field" in project.dac("validate").problems[0]


def test_item_excluded_by_the_query_is_a_warning(project: FixtureProject) -> None:
    text = copy_tuned(
        project,
        {"value: system:serviceaccount:cert-manager:cert-manager": "value: system:kube-controller-manager"},
        query=CONJUNCTIVE_QUERY,
    )
    run = project.dac("validate")
    assert run.code == 0
    assert run.problems == [
        f"{at(text, USERNAME_FIELD)}: warning: exception item {ITEM!r} can never match an alert of "
        'this rule: the query excludes "system:kube-controller-manager" on kubernetes.audit.user.username'
    ]


def test_item_outside_the_values_the_query_requires_is_a_warning(project: FixtureProject) -> None:
    text = copy_tuned(project, {
            USERNAME_FIELD: "field: kubernetes.audit.verb",
            "value: system:serviceaccount:cert-manager:cert-manager": "value: delete",
        },
        query=CONJUNCTIVE_QUERY,
    )
    run = project.dac("validate")
    assert run.code == 0
    assert run.problems == [
        f"{at(text, 'field: kubernetes.audit.verb')}: warning: exception item {ITEM!r} can never match "
        'an alert of this rule: the rule only alerts when it is "create" or "patch" or "update" on '
        "kubernetes.audit.verb"
    ]


def test_an_excluded_entry_against_a_pinned_value_is_a_warning_and_a_wildcard_is_evaluated(
    project: FixtureProject,
) -> None:
    copy_tuned(project, {
            USERNAME_FIELD: "field: kubernetes.audit.objectRef.resource",
            "operator: included\n          type: match": "operator: excluded\n          type: match",
            "value: system:serviceaccount:cert-manager:cert-manager": "value: certificatesigningrequests",
        },
        query=CONJUNCTIVE_QUERY,
    )
    assert "can never match" in project.dac("validate").problems[0]
    copy_tuned(project, {
            "type: match\n": "type: wildcard\n",
            "value: system:serviceaccount:cert-manager:cert-manager": "value: system:serviceaccount:*",
        },
    )
    assert project.dac("validate").problems == []  # a wildcard that can match raises nothing


def test_bad_entry_type_is_located_with_the_entry_types(project: FixtureProject) -> None:
    text = copy_tuned(project, {"type: match\n": "type: regex\n"})
    run = project.dac("validate")
    assert run.code == 1
    assert run.problems == [
        f"{at(text, USERNAME_FIELD)}: exceptions.items.0.entries.0: type 'regex' is not an entry type here "
        "(match, match_any, exists, wildcard, nested; inside nested: match, match_any, exists)"
    ]


def test_missing_owner_is_a_schema_error(project: FixtureProject) -> None:
    copy_tuned(project, {"      owner: platform-security\n": ""})
    assert (
        project.dac("validate").problems[0].endswith("missing required field 'owner' in exceptions.items.0")
    )


def test_shared_list_is_read_from_detections_exceptions_and_built(project: FixtureProject) -> None:
    uses_shared_list(project)
    project.write(SHARED, shared_list())
    run = project.dac("validate")
    assert (run.code, run.problems) == (0, []), run.err
    built = project.dac("build", "--out", "build")
    assert built.code == 0, built.err
    lines = [json.loads(line) for line in (project.root / "build" / "rules.ndjson").read_text().splitlines()]
    rule, *rest = lines
    assert [ref["list_id"] for ref in rule["exceptions_list"]] == [
        "platform-tooling",
        "2e7c9c78-3a0d-4c84-b5e2-1066ffa3acca-exceptions",
    ]
    assert rule["exceptions_list"][0] == {
        "id": "platform-tooling",
        "list_id": "platform-tooling",
        "type": "detection",
        "namespace_type": "single",
    }
    # rules first, then each list followed by its items, lists by list_id (Kibana's export layout)
    assert [(o.get("list_id"), o.get("item_id"), o.get("type")) for o in rest] == [
        ("2e7c9c78-3a0d-4c84-b5e2-1066ffa3acca-exceptions", None, "rule_default"),
        ("2e7c9c78-3a0d-4c84-b5e2-1066ffa3acca-exceptions", ITEM, "simple"),
        ("platform-tooling", None, "detection"),
        ("platform-tooling", "ci-bootstrap", "simple"),
    ]
    written = json.loads((project.root / "build" / "exceptions" / "platform-tooling.json").read_text())
    assert written["items"][0]["meta"] == {"owner": "platform-team", "reason": "PLAT-1234"}
    assert written["list"] == rest[2]


def test_a_shared_list_no_rule_uses_is_a_warning(project: FixtureProject) -> None:
    copy_tuned(project)
    project.write(SHARED, shared_list())
    run = project.dac("validate")
    assert run.code == 0
    assert run.problems == [
        f"{SHARED}:2:10: warning: no rule uses exception list 'platform-tooling': it is not built"
    ]


def test_unknown_shared_list_is_an_error(project: FixtureProject) -> None:
    text = uses_shared_list(project)
    run = project.dac("validate")
    assert run.problems == [
        f"{at(text, 'platform-tooling')}: no shared exception list 'platform-tooling' under "
        "detections/exceptions/ (known: none)"
    ]


def test_the_same_item_id_in_two_lists_is_an_error(project: FixtureProject) -> None:
    uses_shared_list(project)
    project.write(SHARED, shared_list(item_id=ITEM))
    run = project.dac("validate")
    assert run.code == 1
    assert any(f"{SHARED}:6:14: duplicate item_id {ITEM!r}" in p for p in run.problems), run.problems


def test_the_same_item_in_two_lists_is_an_error(project: FixtureProject) -> None:
    uses_shared_list(project)
    project.write(SHARED, shared_list(username="system:serviceaccount:cert-manager:cert-manager"))
    run = project.dac("validate")
    assert run.code == 1
    assert any(
        "exception item 'ci-bootstrap' repeats item" in p and "keep it in one list" in p for p in run.problems
    )


def test_a_broken_shared_list_is_located(project: FixtureProject) -> None:
    copy_tuned(project)
    project.write(SHARED, shared_list().replace("    owner: platform-team\n", ""))
    run = project.dac("validate")
    assert run.code == 1
    assert run.problems == [f"{SHARED}:6:5: missing required field 'owner' in items.0"]


def test_a_shared_list_whose_only_rule_failed_is_not_called_unused(project: FixtureProject) -> None:
    """Review 7: a bad entry in a shared list fails the rule that uses it; the list is then not
    built, but 'no rule uses exception list' pointed away from the real fault."""
    uses_shared_list(project)
    text = shared_list().replace(USERNAME_FIELD, "field: kubernetes.audit.user.nmae")
    project.write(SHARED, text)
    run = project.dac("validate")
    assert run.code == 1
    assert run.problems == [
        f"{at(text, 'kubernetes.audit.user.nmae', SHARED)}: exception field 'kubernetes.audit.user.nmae' "
        f"is not searchable in kubernetes.audit_logs (kubernetes integration {AUDIT.package_version}): "
        "the index does not map it, so the exception never matches"
    ]
