"""Applying a plan: the writes that converge Kibana on the repository, and nothing else.

- Creates go through ``_import`` without ``overwrite``, in batches under the payload limit. A
  rule that already exists answers a per-rule 409; it is read back and counts as created only
  when it is ours and holds exactly what was sent (a retried batch whose first attempt landed).
- Updates go through ``_import`` with ``overwrite``, only for rules the plan verified are this
  repository's (or identical rules it adopts), always with ``version`` and ``enabled``.
- Deletes go through ``_bulk_action`` delete with explicit object ids, at most 100 a request.
- ``_import`` answers 200 even when rules failed: its ``errors[]`` is read by ``status_code``.
Every rule not in its intended state at the end is named in ``ApplyResult.failed``.

Exception lists and items go through Kibana's exception list API, in the order references need
(a rule may only point to a list that exists: check_rule_exception_references.ts drops the link
otherwise): lists, then items, then rules with ``exceptions_list[].id`` set to each list's id in
this space, then deletions (rules, items, lists). A list or item create that meets a 409 is read
back and accepted only when it is ours and as sent; updates send the ``_version`` read at plan
time, so an edit made since then is a 409, never overwritten. Kibana keeps an item's existing
comments on update and only adds new ones (transformUpdateCommentsToComments), so an item whose
comments the repository removed or reordered is replaced (delete, then create).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import orjson

from dac.deploy.ownership import content_hash, owned_by
from dac.deploy.plan import EXCEPTION_ITEM, EXCEPTION_LIST, RULE, Plan, PlanItem, deletes
from dac.errors import BackendError
from dac.kibana.client import BULK_ACTION_MAX_IDS, KibanaClient

MULTIPART_OVERHEAD = 1_000  # boundary and part headers around the NDJSON file
# A partial failure is Kibana's warning (e.g. no index matches yet): reported, not a failed deploy.
HEALTHY = frozenset({"succeeded", "partial failure"})
SETTLED = frozenset({"succeeded", "failed", "partial failure"})


@dataclass
class ApplyResult:
    done: list[PlanItem] = field(default_factory=list)
    failed: list[tuple[PlanItem, str]] = field(default_factory=list)
    started: datetime = field(default_factory=lambda: datetime.now(UTC))


def apply_plan(
    client: KibanaClient,
    plan: Plan,
    *,
    overwrite_drift: bool = False,
    import_max_bytes: int,
) -> ApplyResult:
    result = ApplyResult()
    for space in dict.fromkeys(item.space for item in plan.items):
        everything = [item for item in plan.items if item.space == space]
        for item in everything:
            if item.action == "drift" and not (overwrite_drift and (item.desired is not None or plan.prune)):
                result.failed.append((item, _drift_reason(item)))
        lists = [i for i in everything if i.kind == EXCEPTION_LIST]
        list_ids = {i.id: i.current["id"] for i in lists if i.current and "id" in i.current}
        writes = [i for i in lists if _writes(i, overwrite_drift)]
        for item in writes:
            live = _write_exception(client, space, item, result)
            if live is not None:
                list_ids[item.id] = live["id"]
        failed_lists = {i.id for i, _ in result.failed if i.kind == EXCEPTION_LIST and i.space == space}
        for item in (i for i in everything if i.kind == EXCEPTION_ITEM and _writes(i, overwrite_drift)):
            if item.group in failed_lists:
                result.failed.append((item, f"its list {item.group} is not in its intended state"))
            else:
                _write_exception(client, space, item, result)
        items = [_with_list_ids(i, list_ids) for i in everything if i.kind == RULE]
        creates = [i for i in items if i.action == "create"]
        updates = [i for i in items if i.action == "update" or (overwrite_drift and _drift_to_write(i))]
        gone = [i for i in items if deletes(i, prune=plan.prune, overwrite_drift=overwrite_drift)]
        _import(client, space, creates, overwrite=False, limit=import_max_bytes, result=result)
        _import(client, space, updates, overwrite=True, limit=import_max_bytes, result=result)
        _delete(client, space, gone, result)
        for kind in (EXCEPTION_ITEM, EXCEPTION_LIST):  # items, then the lists no rule references any more
            for item in everything:
                if item.kind == kind and deletes(item, prune=plan.prune, overwrite_drift=overwrite_drift):
                    _delete_exception(client, space, item, result)
    return result


def _drift_reason(item: PlanItem) -> str:
    if item.kind == EXCEPTION_ITEM and item.desired is None:
        return "added in Kibana to a managed list; left as it is (`dac pull` brings it into the repository)"
    return "edited in Kibana since the last deploy; left as it is"


def _writes(item: PlanItem, overwrite_drift: bool) -> bool:
    return item.action in ("create", "update") or (overwrite_drift and _drift_to_write(item))


def _with_list_ids(item: PlanItem, list_ids: dict[str, str]) -> PlanItem:
    """The rule with each ``exceptions_list[].id`` set to the list's id in this space (the build has the
    list_id there). Comparisons mask this id (objectdiff.normalise), so it never makes a change."""
    references = (item.desired or {}).get("exceptions_list")
    if not references:
        return item
    resolved = [{**ref, "id": list_ids.get(ref["list_id"], ref.get("id"))} for ref in references]
    return replace(item, desired={**item.desired, "exceptions_list": resolved})  # type: ignore[dict-item]


def _kind(item: PlanItem) -> str:
    return "list" if item.kind == EXCEPTION_LIST else "item"


def _namespace(item: PlanItem) -> str:
    return (item.desired or item.current or {}).get("namespace_type", "single")


def _write_exception(
    client: KibanaClient, space: str, item: PlanItem, result: ApplyResult
) -> dict[str, Any] | None:
    """Create or update one list or item; returns Kibana's object, None when it failed (recorded)."""
    assert item.desired is not None
    kind = _kind(item)
    try:
        if item.current is None:
            return _create_exception(client, space, item, result)
        body = {**item.desired, "_version": item.current.get("_version")}
        if kind == "item":
            comments = _comments_for_update(
                item.current.get("comments") or [], item.desired.get("comments") or []
            )
            if comments is None:  # Kibana cannot drop or reorder comments on update: replace the item
                return _replace_item(client, space, item, result)
            body["comments"] = comments
        live = client.update_exception_object(space, kind, body)
    except BackendError as exc:
        result.failed.append((item, f"{'create' if item.current is None else 'update'} failed: {exc}"))
        return None
    result.done.append(item)
    return live


def _replace_item(
    client: KibanaClient, space: str, item: PlanItem, result: ApplyResult
) -> dict[str, Any] | None:
    """Delete and re-create an item, but only the version the plan read: Kibana's DELETE takes no
    ``_version``, so the item is re-read first and an edit made since is kept (as an update's 409)."""
    assert item.current is not None
    live = client.read_exception_object(space, "item", item.id, _namespace(item))
    if live is not None and live.get("_version") != item.current.get("_version"):
        result.failed.append((item, "edited in Kibana since the plan read it; not replaced (plan again)"))
        return None
    if live is not None:
        client.delete_exception_object(space, "item", item.id, _namespace(item))
    try:
        return _create_exception(client, space, item, result)
    except BackendError as exc:
        absent = "deleted to be replaced, but not re-created: the item is now absent"
        result.failed.append((item, f"{absent}: {exc}"))
        return None


def _create_exception(
    client: KibanaClient, space: str, item: PlanItem, result: ApplyResult
) -> dict[str, Any] | None:
    assert item.desired is not None
    kind = _kind(item)
    answer = client.create_exception_object(space, kind, item.desired)
    live = answer.data
    if answer.status == 409:  # a repeat of a create that landed, or someone else's object?
        live = client.read_exception_object(space, kind, item.id, _namespace(item))
        repository = item.desired["meta"]["dac"]["repository"]
        if live is None or not owned_by(live, repository) or content_hash(live) != content_hash(item.desired):
            result.failed.append(
                (item, f"a {kind} with this id appeared in Kibana meanwhile; not overwritten")
            )
            return None
    result.done.append(item)
    return live


def _comments_for_update(
    live: list[dict[str, Any]], wanted: list[dict[str, Any]]
) -> list[dict[str, Any]] | None:
    """The comments to PUT: the live ones (with their ids) followed by the new ones; None when the
    repository's comments do not start with Kibana's (a removal or reorder)."""
    texts = [c.get("comment") for c in live]
    if [c.get("comment") for c in wanted[: len(texts)]] != texts:
        return None
    return [{"id": c["id"], "comment": c["comment"]} for c in live] + [
        {"comment": c["comment"]} for c in wanted[len(texts) :]
    ]


def _delete_exception(client: KibanaClient, space: str, item: PlanItem, result: ApplyResult) -> None:
    try:
        client.delete_exception_object(space, _kind(item), item.id, _namespace(item))
    except BackendError as exc:
        result.failed.append((item, f"delete failed: {exc}"))
        return
    result.done.append(item)  # deleted now, or already gone (404): either way not in Kibana


def _drift_to_write(item: PlanItem) -> bool:
    return item.action == "drift" and item.desired is not None


def batches(items: Sequence[PlanItem], limit: int) -> Iterator[list[tuple[PlanItem, bytes]]]:
    """NDJSON lines grouped so that each request stays under ``limit`` bytes."""
    batch: list[tuple[PlanItem, bytes]] = []
    size = MULTIPART_OVERHEAD
    for item in items:
        line = orjson.dumps(item.desired, option=orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE)
        if batch and size + len(line) > limit:
            yield batch
            batch, size = [], MULTIPART_OVERHEAD
        batch.append((item, line))
        size += len(line)
    if batch:
        yield batch


def _import(
    client: KibanaClient,
    space: str,
    items: Sequence[PlanItem],
    *,
    overwrite: bool,
    limit: int,
    result: ApplyResult,
) -> None:
    for batch in batches(items, limit):
        try:
            answer = client.import_rules(space, b"".join(line for _, line in batch), overwrite=overwrite)
        except BackendError as exc:
            result.failed.extend((item, f"import failed: {exc}") for item, _ in batch)
            continue
        errors = {
            e.get("rule_id"): e.get("error") or {}
            for e in (answer.get("errors") or [] if isinstance(answer, dict) else [])
        }
        already_there = []
        for item, _ in batch:
            error = errors.get(item.id)
            if error is None:
                result.done.append(item)
            elif error.get("status_code") == 409 and not overwrite:
                already_there.append(item)
            else:
                result.failed.append(
                    (item, f"Kibana refused it: HTTP {error.get('status_code')}: {error.get('message', '')}")
                )
        if already_there:
            _check_existing(client, space, already_there, result)


def _check_existing(client: KibanaClient, space: str, items: list[PlanItem], result: ApplyResult) -> None:
    """Rules a create met as 409: created by an earlier attempt of this deploy, or by someone else?"""
    try:
        found = {r["rule_id"]: r for r in client.find_rules_by_rule_id(space, [i.id for i in items])}
    except BackendError as exc:
        result.failed.extend((item, f"exists already and could not be read back: {exc}") for item in items)
        return
    for item in items:
        existing = found.get(item.id)
        assert item.desired is not None
        if (
            existing is not None
            and owned_by(existing, item.desired["meta"]["dac"]["repository"])
            and content_hash(existing) == content_hash(item.desired)
        ):
            result.done.append(item)
        else:
            result.failed.append(
                (item, "a rule with this rule_id appeared in Kibana meanwhile; not overwritten")
            )


def _delete(client: KibanaClient, space: str, items: Sequence[PlanItem], result: ApplyResult) -> None:
    """Delete by object id; what the answer does not confirm is read back, never guessed from messages.

    A repeated delete meets ``Rule not found`` for rules the first attempt removed (Kibana reports
    it as a per-rule 500, bulk_actions_response.ts), so a rule counts as deleted when Kibana says
    so or when it is no longer there.
    """
    for start in range(0, len(items), BULK_ACTION_MAX_IDS):
        chunk = list(items[start : start + BULK_ACTION_MAX_IDS])
        by_object_id = {item.current["id"]: item for item in chunk if item.current}
        refused: dict[str, str] = {}
        confirmed: set[str] = set()
        try:
            answer = client.delete_rules(space, list(by_object_id))
        except BackendError as exc:
            refused = dict.fromkeys(by_object_id, f"delete failed: {exc}")
        else:
            attributes = (answer.get("attributes") if isinstance(answer, dict) else None) or {}
            confirmed = {r.get("id") for r in (attributes.get("results") or {}).get("deleted") or []}
            for error in attributes.get("errors") or []:
                for rule in error.get("rules") or []:
                    refused[rule.get("id")] = f"HTTP {error.get('status_code')}: {error.get('message', '')}"
        unsure = [item for object_id, item in by_object_id.items() if object_id not in confirmed]
        still_there: set[str] = set()
        if unsure:
            try:
                found = client.find_rules_by_rule_id(space, [item.id for item in unsure])
                still_there = {rule["id"] for rule in found}
            except BackendError as exc:
                result.failed.extend((item, f"delete not confirmed: {exc}") for item in unsure)
                continue
        for object_id, item in by_object_id.items():
            if object_id in still_there:
                reason = refused.get(object_id, "Kibana did not delete it")
                result.failed.append((item, f"still in Kibana: {reason}"))
            else:
                result.done.append(item)


@dataclass(frozen=True)
class Health:
    item: PlanItem
    status: str  # succeeded, failed, partial failure, "no execution yet", or "unknown" (not read)
    message: str


def wait_healthy(
    client: KibanaClient,
    items: Sequence[PlanItem],
    since: datetime,
    timeout: float,
    *,
    poll: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Health]:
    """Wait for the first execution after ``since`` of every enabled rule in ``items``.

    Kibana failing to answer (after the client's retries) ends the wait: every rule not yet
    settled is ``unknown`` with the error, so the caller still reports what it applied."""
    waiting = [i for i in items if i.desired is not None and i.desired.get("enabled")]
    outcome: dict[tuple[str, str, str], Health] = {}
    deadline = time.monotonic() + timeout
    while True:
        for space in dict.fromkeys(i.space for i in waiting):
            pending = [i for i in waiting if i.space == space and i.key not in outcome]
            if not pending:
                continue
            try:
                found = {r["rule_id"]: r for r in client.find_rules(space)}  # a few pages per poll
            except BackendError as error:
                return [
                    outcome.get(i.key) or Health(i, "unknown", f"health not read: {error}") for i in waiting
                ]
            for item in pending:
                last = _last_execution(found.get(item.id))
                if last and last["status"] in SETTLED and _after(last.get("date"), since):
                    outcome[item.key] = Health(item, last["status"], last.get("message", ""))
        if len(outcome) == len(waiting) or time.monotonic() >= deadline:
            break
        sleep(poll)
    return [
        outcome.get(i.key) or Health(i, "no execution yet", f"did not run within {timeout:g} s")
        for i in waiting
    ]


def _last_execution(rule: dict[str, Any] | None) -> dict[str, Any] | None:
    summary = (rule or {}).get("execution_summary") or {}
    last = summary.get("last_execution")
    return last if isinstance(last, dict) and "status" in last else None


def _after(date: str | None, since: datetime) -> bool:
    if not date:
        return False
    try:
        moment = datetime.fromisoformat(date.replace("Z", "+00:00"))
    except ValueError:
        return False
    return moment >= since.replace(microsecond=0)
