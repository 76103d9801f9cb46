"""Exception items → the Elasticsearch query DSL Kibana builds from them. The one translation.

Kibana turns a rule's exception items into one filter and adds it to the rule's search negated
(``must_not``); both engines use the DSL made here, the local one through the DSL evaluator.
Source: elastic/kibana ``x-pack/solutions/security/plugins/lists/server/services/exception_lists/
build_exception_filter.ts`` (``buildExceptionFilter`` and the ``build*Clause`` helpers):

* ``match``: ``bool.should[match_phrase {field: value}]``, ``minimum_should_match: 1``
  (``buildMatchClause``); on a keyword field a phrase is the exact, case-sensitive value;
* ``match_any``: one such clause per value, OR-ed (``getBaseMatchAnyClause``; one value is
  written like ``match``);
* ``exists``: ``bool.should[exists {field}]`` (``buildExistsClause``);
* ``wildcard``: ``bool.filter.wildcard {field: value}``, case-sensitive, ``*`` and ``?``
  (``buildMatchWildcardClause``);
* ``operator: excluded``: the clause inside ``bool.must_not`` (``buildExclusionClause``);
* ``nested``: ``nested {path, query, score_mode: none}``, inner fields prefixed with the path,
  several inner entries AND-ed in ``bool.filter`` (``buildNestedClause``), so all of them must
  hold within one nested object;
* an item: its entries AND-ed in ``bool.filter`` (one entry: the clause alone); with
  ``os_types``, one such conjunction per OS type and per OS field (``host.os.type`` and
  ``host.os.name.caseless``), OR-ed (``transformOsType``);
* the rule: the items' clauses flattened into one ``bool.should`` (``createOrClauses``), the
  filter negated (``excludeExceptions: true``), which ``buildEsQuery`` places in ``must_not``
  (``get_query_filter.ts``); items whose ``expire_time`` is before the run's start are left out
  (``removeExpiredExceptions``). Chunking (``chunkSize``) applies only to value-list entries,
  which this repository does not use.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from dac.errors import DacError

ExceptionItem = dict[str, Any]
"""One item in Kibana's create-exception-list-item shape (``entries``, ``os_types``, ...)."""

OS_FIELDS = ("host.os.type", "host.os.name.caseless")


def entry_clause(entry: Mapping[str, Any], parent: str | None = None) -> dict[str, Any]:
    """The DSL of one entry (``createInnerAndClauses``)."""
    kind = entry["type"]
    if kind == "nested":
        inner = [entry_clause(e, entry["field"]) for e in entry["entries"]]
        query = inner[0] if len(inner) == 1 else {"bool": {"filter": inner}}
        return {"nested": {"path": entry["field"], "query": query, "score_mode": "none"}}
    field = f"{parent}.{entry['field']}" if parent else entry["field"]
    if kind == "match":
        clause = _phrases(field, [entry["value"]])
    elif kind == "match_any":
        values = entry["value"]
        clause = (
            _phrases(field, values)
            if len(values) == 1
            else {"bool": {"minimum_should_match": 1, "should": [_phrases(field, [v]) for v in values]}}
        )
    elif kind == "exists":
        clause = {"bool": {"minimum_should_match": 1, "should": [{"exists": {"field": field}}]}}
    elif kind == "wildcard":
        clause = {"bool": {"filter": {"wildcard": {field: entry["value"]}}}}
    else:
        raise ValueError(f"unknown exception entry type {kind!r}")
    if entry.get("operator") == "excluded":
        return {"bool": {"must_not": clause}}
    return clause


def _phrases(field: str, values: Sequence[str]) -> dict[str, Any]:
    return {"bool": {"minimum_should_match": 1, "should": [{"match_phrase": {field: v}} for v in values]}}


def item_clauses(item: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The clauses one item adds to the rule's ``should`` (``buildExceptionItemFilter``)."""
    entries = list(item["entries"])
    os_types = item.get("os_types") or []
    if os_types:
        return [
            {
                "bool": {
                    "filter": [
                        entry_clause(
                            {"field": field, "operator": "included", "type": "match", "value": os_type}
                        ),
                        *map(entry_clause, entries),
                    ]
                }
            }
            for field in OS_FIELDS
            for os_type in os_types
        ]
    if len(entries) == 1:
        return [entry_clause(entries[0])]
    return [{"bool": {"filter": [entry_clause(e) for e in entries]}}]


def item_filter(item: Mapping[str, Any]) -> dict[str, Any]:
    """One item as one clause: does this document match the item?"""
    clauses = item_clauses(item)
    return clauses[0] if len(clauses) == 1 else {"bool": {"should": clauses, "minimum_should_match": 1}}


def exceptions_filter(items: Iterable[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The filter matching every document some item matches; None without items."""
    clauses = [clause for item in items for clause in item_clauses(item)]
    return {"bool": {"should": clauses}} if clauses else None


def with_exceptions(query: dict[str, Any], items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A ``bool`` query (as ``kql.to_dsl`` returns) with the exceptions filter in its ``must_not``."""
    excluded = exceptions_filter(items)
    if excluded is None:
        return query
    body = dict(query["bool"])
    body["must_not"] = [*_as_list(body.get("must_not", [])), excluded]
    return {"bool": body}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def expire_moment(item: Mapping[str, Any]) -> datetime | None:
    text = item.get("expire_time")
    if not text:
        return None
    return datetime.fromisoformat(str(text).replace("Z", "+00:00"))


def active_items(items: Iterable[ExceptionItem], started: datetime | None = None) -> list[ExceptionItem]:
    """Items still in force when a run starts (``removeExpiredExceptions``: expired before the start)."""
    started = started or datetime.now(UTC)
    if started.tzinfo is None:
        started = started.replace(tzinfo=UTC)
    return [item for item in items if is_active(item, started)]


def is_active(item: Mapping[str, Any], started: datetime) -> bool:
    """Whether ``item`` is in force for an execution starting at ``started`` (aware datetime)."""
    moment = expire_moment(item)
    return moment is None or not moment < started


def rule_items(
    rule: Mapping[str, Any],
    lists: Mapping[str, Sequence[ExceptionItem]] | None,
    started: datetime | None = None,
) -> list[ExceptionItem]:
    """The active items of the lists a rendered rule names in ``exceptions_list``.

    ``lists`` maps list_id to items (the build's exception lists); None applies no exceptions.
    A list the rule names but ``lists`` lacks is an error: running without it would report
    alerts Kibana suppresses.
    """
    return active_items(rule_all_items(rule, lists), started)


def rule_all_items(
    rule: Mapping[str, Any], lists: Mapping[str, Sequence[ExceptionItem]] | None
) -> list[ExceptionItem]:
    """Every item of the lists ``rule`` names, expired or not, in list order (for a replay, whose
    executions each leave out the items expired at their own start: :func:`is_active`)."""
    if lists is None:
        return []
    items: list[ExceptionItem] = []
    for reference in rule.get("exceptions_list") or []:
        if reference["list_id"] not in lists:
            raise DacError(
                f"rule {rule.get('rule_id')}: exception list {reference['list_id']!r} was not provided"
            )
        items.extend(lists[reference["list_id"]])
    return items
