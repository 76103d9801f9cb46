"""Which Kibana rules (and exception lists and items) this repository manages, and whether someone
changed them since.

A deployed rule carries two marks (Kibana keeps both through create, import and read:
``tags`` is the alerting rule's own field and ``meta`` a free-form rule param, see
rule_management/logic/detection_rules_client/converters/normalize_rule_fields_common.ts):
- the tag ``Managed by dac``, so a person in the Kibana UI sees the rule lives in git;
- ``meta.dac``: the repository that owns it, the environment, and the content hash of exactly
  what was deployed. A rule whose normalised content no longer hashes to that value was
  edited outside the repository: it has drifted.
Exception lists and items get the same two marks (both keep ``tags`` and ``meta`` through the
exception list API); their comparable content is ``comparable_exception``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from dac.objectdiff import normalise

MANAGED_TAG = "Managed by dac"
META_KEY = "dac"
OWNERSHIP_FIELDS = frozenset({"meta"})  # left out of every comparison and hash


# What Kibana sets on exception lists and items itself (lists plugin, services/exception_lists/utils/
# index.ts transformSavedObjectToExceptionList/-Item): never part of a comparison.
EXCEPTION_MANAGED_FIELDS = frozenset(
    {"id", "_version", "tie_breaker_id", "created_at", "created_by", "updated_at", "updated_by",
     "immutable", "version"}
)  # fmt: skip


def is_exception_object(obj: Mapping[str, Any]) -> bool:
    """An exception list or item (they carry ``list_id`` and no ``rule_id``), not a rule."""
    return "list_id" in obj and "rule_id" not in obj


def comparable(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a rule, exception list or item that content hashes and diffs look at."""
    if is_exception_object(obj):
        return comparable_exception(obj)
    return normalise(obj, OWNERSHIP_FIELDS)


def comparable_exception(obj: Mapping[str, Any]) -> dict[str, Any]:
    """An exception list or item without Kibana's bookkeeping and this tool's mark: comments are their
    text (Kibana adds id/created_*), ``expire_time`` an instant, empty values dropped, ``meta`` kept
    (it holds the item's owner and reason) except ``meta.dac``."""
    out: dict[str, Any] = {}
    for key in sorted(obj):
        value = obj[key]
        if key in EXCEPTION_MANAGED_FIELDS or value in (None, "", [], {}):
            continue
        if key == "meta" and isinstance(value, Mapping):
            value = {k: v for k, v in value.items() if k != META_KEY}
            if not value:
                continue
        elif key == "comments" and isinstance(value, list):
            value = [c.get("comment") if isinstance(c, Mapping) else c for c in value]
        elif key == "expire_time" and isinstance(value, str):
            value = instant(value)
        out[key] = value
    return out


def instant(text: str) -> str:
    """An ISO date-time as ``YYYY-MM-DDTHH:MM:SS.mmmZ`` in UTC (as JavaScript's toISOString writes it)."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def content_hash(rule: Mapping[str, Any]) -> str:
    body = orjson.dumps(comparable(rule), option=orjson.OPT_SORT_KEYS)
    return "sha256:" + hashlib.sha256(body).hexdigest()


def stamp(body: Mapping[str, Any], repository: str, environment: str) -> dict[str, Any]:
    """``body`` as this repository deploys it: the managed tag added, ``meta.dac`` set."""
    tags = list(body.get("tags") or [])
    if MANAGED_TAG not in tags:
        tags.append(MANAGED_TAG)
    stamped = {**body, "tags": tags}
    meta = {key: value for key, value in (body.get("meta") or {}).items() if key != META_KEY}
    meta[META_KEY] = {
        "repository": repository,
        "environment": environment,
        "content_hash": content_hash(stamped),
    }
    stamped["meta"] = meta
    return stamped


def unstamped(rule: Mapping[str, Any]) -> dict[str, Any]:
    """A Kibana rule without this tool's marks (what the repository's build would produce)."""
    out = dict(rule)
    out["tags"] = [tag for tag in rule.get("tags") or [] if tag != MANAGED_TAG]
    meta = {key: value for key, value in (rule.get("meta") or {}).items() if key != META_KEY}
    if meta:
        out["meta"] = meta
    else:
        out.pop("meta", None)
    return out


def deployed_mark(rule: Mapping[str, Any]) -> Mapping[str, Any] | None:
    meta = rule.get("meta")
    mark = meta.get(META_KEY) if isinstance(meta, Mapping) else None
    return mark if isinstance(mark, Mapping) and isinstance(mark.get("content_hash"), str) else None


def owned_by(rule: Mapping[str, Any], repository: str) -> bool:
    """Whether ``repository`` deployed this rule (anything else is never touched)."""
    mark = deployed_mark(rule)
    return mark is not None and mark.get("repository") == repository


def drifted(rule: Mapping[str, Any]) -> bool:
    """A managed rule whose content is no longer what was deployed."""
    mark = deployed_mark(rule)
    return mark is not None and mark["content_hash"] != content_hash(rule)
