"""Running rules on a real Elasticsearch, the way Kibana's detection engine queries it.

Each run owns a namespace: every source index the documents name (e.g.
``logs-kubernetes.audit_logs-default``) becomes ``<index>-<namespace>`` with an
index template built from the shipped mapping, and alerts go to
``.alerts-security.alerts-<namespace>``. A rule's ``index`` patterns are matched
against the documents' original index names, and the search then targets the
run's copies of the matching ones, so several runs can share one cluster.
Everything the run created is deleted afterwards unless ``keep=True``.

Requests mirror Kibana (security_solution server/lib/detection_engine/rule_types):
``utils/build_events_query.ts`` for query rules, ``eql/build_eql_search_request.ts``
and ``esql/build_esql_search_request.ts`` + ``esql/esql.ts`` for the others. Exception items
become the negated filter of ``dac.query.exception_filter`` in each request (``get_query_filter.ts``).
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import elastic_transport
from elasticsearch import ApiError, helpers

from dac.compile import duration_seconds
from dac.documents import SourceDocument, values_at
from dac.engine.alerts import build_alert
from dac.engine.base import ExceptionLists, KibanaRule, RuleOutcome, Suppression
from dac.engine.es_connection import Connection, backend_error
from dac.errors import BackendError, EventError, RuleError, UnsupportedQueryError
from dac.mapping import IndexMapping, mapping_for_index
from dac.query.exception_filter import exceptions_filter, item_filter, rule_items, with_exceptions

TEMPLATE_PRIORITY = 1000  # above Fleet's integration templates (200) and the built-in logs-*-* (100)
ALERTS_MAPPING = {
    "dynamic": False,  # alerts copy arbitrary source fields; storage only needs a few keys
    "properties": {
        "@timestamp": {"type": "date"},
        "kibana.alert.rule.rule_id": {"type": "keyword"},
        "kibana.alert.uuid": {"type": "keyword"},
    },
}
# Field types that live in optional modules, and the core type with the same matching semantics
# that stands in for them on a server without the module (the integ-test-zip node ships neither).
# match_only_text: modules/mapper-extras, indexed like text without positions, phrases verified
# against _source, so match/phrase results equal text's. constant_keyword: x-pack/plugin/
# mapper-constant-keyword; as keyword it differs only for documents lacking the field.
MODULE_FIELD_TYPES = {
    "match_only_text": ("mapper-extras", "text"),
    "constant_keyword": ("constant-keyword", "keyword"),
}
Match = tuple[SourceDocument, dict[str, Any] | None]
"""A matched source document, with the ES|QL result row that matched it (None for other rule types)."""


@dataclass
class RunIndices:
    """What one run created on the cluster, and where each source index's documents went."""

    namespace: str
    targets: dict[str, str] = field(default_factory=dict)  # original index -> run index / data stream
    templates: list[str] = field(default_factory=list)
    data_streams: list[str] = field(default_factory=list)
    indices: list[str] = field(default_factory=list)
    existing: bool = False  # targets are the cluster's own indices (run_on_cluster): queries run as written

    @property
    def alerts_index(self) -> str:
        return f".alerts-security.alerts-{self.namespace}"

    def original_index(self, concrete: str) -> str:
        """The source index name behind a concrete index or data-stream backing index of this run."""
        for original, target in self.targets.items():
            if concrete == target or concrete.startswith(f".ds-{target}-"):
                return original
        return concrete


@dataclass
class ClusterRun:
    """What one ``run_on_cluster`` execution did: the alerts it wrote and the indices it searched."""

    alerts: list[dict[str, Any]]
    searched: list[str]  # indices, aliases and data streams the rule's patterns named (empty for ES|QL)


class ElasticsearchEngine:
    """The Engine protocol on a real cluster (see the module docstring)."""

    name = "elasticsearch"

    def __init__(self, connection: Connection, namespace: str | None = None, keep: bool = False) -> None:
        self.connection = connection
        self.client = connection.client.options(request_timeout=120)
        self.namespace = namespace
        self.keep = keep

    def run(
        self,
        rules: Sequence[KibanaRule],
        documents: Sequence[SourceDocument],
        now: datetime | None = None,
        exceptions: ExceptionLists | None = None,
    ) -> list[RuleOutcome]:
        run = RunIndices(self.namespace or f"dac{secrets.token_hex(4)}")
        try:
            self._load(run, documents)
            self._call("create the alerts index", self.client.indices.create,
                       index=run.alerts_index, mappings=ALERTS_MAPPING,
                       settings={"number_of_shards": 1, "number_of_replicas": 0, "hidden": True})
            run.indices.append(run.alerts_index)
            return [self._run_rule(run, rule, now, exceptions) for rule in rules]
        finally:
            if not self.keep:
                self.clean_up(run)

    def run_on_cluster(
        self, rule: KibanaRule, space_id: str, now: datetime, items: Sequence[dict[str, Any]] = ()
    ) -> ClusterRun:
        """Run ``rule`` once over what the cluster already holds, as a Kibana execution in ``space_id``.

        The rule's index patterns are resolved against the cluster's own indices, aliases and data
        streams (an ES|QL query runs as written), over ``[now + from, now]``; alerts go to
        ``.alerts-security.alerts-<space_id>``, created when the first alert is written. Nothing else is
        created or deleted.
        Unlike ``run`` nothing is skipped: a query the server cannot run raises its error (BackendError),
        as the rule's execution in Kibana would fail. Used by the Kibana stand-in of the deploy tests.
        ``items``: the rule's exception items in force, applied as ``execute`` applies them (must_not).
        """
        run = RunIndices(space_id, existing=True)
        resolved = self._call("resolving the cluster's indices", self.client.indices.resolve_index,
                              name="*", expand_wildcards="open")
        for kind in ("indices", "aliases", "data_streams"):
            for item in resolved.get(kind, []):
                run.targets[item["name"]] = item["name"]
        searched = [] if rule.get("type") == "esql" else _targets(run, rule)
        matches = self.execute(run, rule, now, items)
        if matches and not self._call("checking the alerts index", self.client.indices.exists,
                                      index=run.alerts_index):
            self._call("create the alerts index", self.client.options(ignore_status=400).indices.create,
                       index=run.alerts_index, mappings=ALERTS_MAPPING,
                       settings={"number_of_shards": 1, "number_of_replicas": 0, "hidden": True})
        return ClusterRun(self._write_alerts(run, rule, matches, now, space_id=space_id), searched)

    def replay(
        self,
        rules: Sequence[KibanaRule],
        documents: Sequence[SourceDocument],
        start: datetime | None = None,
        end: datetime | None = None,
        exceptions: ExceptionLists | None = None,
    ) -> list[RuleOutcome]:
        """Every scheduled execution (dac.engine.replay), each window searched on the cluster with the
        rule's exception items in force at that execution (as ``run``); suppressions are reported for
        query rules, as ``run`` reports them."""
        from dac.engine.local import timestamp
        from dac.engine.replay import Window, schedule, simulate

        times = [timestamp(d) for d in documents]
        first, last = start or min(times, default=None), end or max(times, default=None)
        run = RunIndices(self.namespace or f"dac{secrets.token_hex(4)}")
        try:
            self._load(run, documents)
            outcomes = []
            for rule in rules:
                started = time.perf_counter()
                reason = self.cannot_run(rule)
                if reason is not None:
                    outcomes.append(RuleOutcome(rule["rule_id"], rule["name"], skipped=reason))
                    continue
                # every hit of the window (up to ES's 10,000 result window); simulate caps and dedupes
                wide = {**rule, "max_signals": 10_000}
                executions = schedule(rule, first, last) if first and last else []
                def window(_start: datetime, end: datetime, wide: KibanaRule = wide) -> Window:
                    items = rule_items(wide, exceptions, end)
                    hits = self.execute(run, wide, end, items)
                    if not items or wide["type"] != "query":
                        return hits, ()
                    return hits, self.suppressed(run, wide, end, items)

                outcome = simulate(rule, executions, window)
                outcome.seconds = time.perf_counter() - started
                outcomes.append(outcome)
            return outcomes
        finally:
            if not self.keep:
                self.clean_up(run)

    # -- loading ----------------------------------------------------------------------------------

    def _load(self, run: RunIndices, documents: Sequence[SourceDocument]) -> None:
        data_streams = self.connection.capabilities.data_streams
        for original in dict.fromkeys(doc.index for doc in documents):
            self.create_target(run, original)
        actions = (
            {
                "_op_type": "create" if data_streams else "index",
                "_index": run.targets[doc.index],
                "_id": doc.id,
                "_source": doc.source,
            }
            for doc in documents
        )
        try:
            _, errors = helpers.bulk(self.client, actions, chunk_size=1000, raise_on_error=False,
                                     raise_on_exception=True)
        except (ApiError, elastic_transport.TransportError) as exc:
            raise backend_error(exc, "bulk indexing the documents") from None
        # A data stream keeps the first of two documents with one _id and refuses the second (409),
        # as it does for Elastic Agent; a plain index overwrites. Neither is a failure.
        errors = [e for e in errors if next(iter(e.values())).get("status") != 409]
        if errors:
            item = next(iter(errors[0].values()))
            error = item.get("error", {})
            raise EventError(
                f"Elasticsearch rejected document {item.get('_id')!r} "
                f"({len(errors)} rejected in all): {error.get('type')}: {error.get('reason')}"
            )
        if run.targets:
            self._call("refresh", self.client.indices.refresh, index=",".join(run.targets.values()))

    def create_target(self, run: RunIndices, original: str) -> str:
        """Create the run's copy of index ``original`` (template, then data stream or index)."""
        mapping = mapping_for_index(original)
        if mapping is None:
            raise EventError(f"no shipped field mapping serves index {original!r}")
        data_stream = self.connection.capabilities.data_streams
        target = f"{original}-{run.namespace}"
        template = {
            "index_patterns": [target],
            "priority": TEMPLATE_PRIORITY,
            "template": {
                "settings": {"number_of_shards": 1, "number_of_replicas": 0},
                "mappings": server_mappings(mapping, self.connection.capabilities.modules),
            },
            "_meta": {"managed_by": "dac integration run", "namespace": run.namespace},
        }
        if data_stream:
            template["data_stream"] = {}
        self._call("put the index template", self.client.indices.put_index_template,
                   name=target, **template)
        run.templates.append(target)
        if data_stream:
            self._call("create the data stream", self.client.indices.create_data_stream, name=target)
            run.data_streams.append(target)
        else:
            self._call("create the index", self.client.indices.create, index=target)
            run.indices.append(target)
        run.targets[original] = target
        return target

    def clean_up(self, run: RunIndices) -> None:
        """Delete exactly what this run created; a missing item is not an error."""
        client = self.client.options(ignore_status=404)
        try:
            if run.data_streams:
                client.indices.delete_data_stream(name=",".join(run.data_streams))
            if run.indices:
                client.indices.delete(index=",".join(run.indices), expand_wildcards="all")
            for name in run.templates:
                client.indices.delete_index_template(name=name)
        except (ApiError, elastic_transport.TransportError) as exc:
            raise backend_error(exc, f"cleaning up run {run.namespace}") from None

    # -- rules ------------------------------------------------------------------------------------

    def _run_rule(
        self,
        run: RunIndices,
        rule: KibanaRule,
        now: datetime | None,
        exceptions: ExceptionLists | None = None,
    ) -> RuleOutcome:
        outcome = RuleOutcome(rule_id=rule["rule_id"], name=rule["name"])
        started = time.perf_counter()
        outcome.skipped = self.cannot_run(rule)
        if outcome.skipped is None:
            items = rule_items(rule, exceptions, now)
            matches = self.execute(run, rule, now, items)
            outcome.alerts = self._write_alerts(run, rule, matches, now or datetime.now(UTC))
            if items and rule["type"] == "query":
                outcome.suppressed = self.suppressed(run, rule, now, items)
        outcome.seconds = time.perf_counter() - started
        return outcome

    def cannot_run(self, rule: KibanaRule) -> str | None:
        """Why this engine on this server cannot execute ``rule``, or None when it can."""
        kind = rule.get("type")
        capabilities = self.connection.capabilities
        if kind == "eql" and not capabilities.eql:
            return "server lacks EQL"
        if kind == "esql" and not capabilities.esql:
            return "server lacks ES|QL"
        if kind not in ("query", "eql", "esql"):
            return f"{kind} rules are not implemented by the Elasticsearch engine"
        return None

    def execute(
        self, run: RunIndices, rule: KibanaRule, now: datetime | None, items: Sequence[dict[str, Any]] = ()
    ) -> list[Match]:
        """The source documents (and ES|QL rows) ``rule`` matches in ``run``'s indices; no alerts written.

        ``items``: the rule's active exception items (``dac.query.exception_filter.rule_items``).
        """
        if rule.get("filters"):
            raise UnsupportedQueryError(f"rule {rule['rule_id']}: Kibana filters are not supported")
        window = _window(rule, now)
        if rule["type"] == "query":
            return self._query_rule(run, rule, window, items)
        request_filter: dict[str, Any] | None = None
        if window or items:  # EQL and ES|QL requests carry time range and exceptions as one filter
            excluded = exceptions_filter(items)
            request_filter = {"bool": {"filter": [window] if window else [],
                                       **({"must_not": [excluded]} if excluded else {})}}
        if rule["type"] == "eql":
            return self._eql_rule(run, rule, request_filter)
        return self._esql_rule(run, rule, request_filter)

    def suppressed(
        self, run: RunIndices, rule: KibanaRule, now: datetime | None, items: Sequence[dict[str, Any]]
    ) -> list[Suppression]:
        """Documents the query rule matches that an item suppresses, each with the first item (in list
        order) that matches it, told by Elasticsearch through named queries (``matched_queries``)."""
        from dac.query.kql import to_dsl

        targets = _targets(run, rule)
        if not targets:
            return []
        window = _window(rule, now)
        named = [{"bool": {"filter": [item_filter(item)], "_name": str(n)}} for n, item in enumerate(items)]
        query = to_dsl(rule.get("query", ""), _rule_mapping(rule))
        response = self._call(
            f"rule {rule['rule_id']}: suppressed documents", self.client.search,
            index=",".join(targets), ignore_unavailable=True, allow_no_indices=True,
            size=rule.get("max_signals", 100),
            query={"bool": {"filter": [query, *([window] if window else []), {"bool": {"should": named}}]}},
            sort=[{"@timestamp": {"order": "asc", "unmapped_type": "date"}}],
        )
        found = []
        for hit in response["hits"]["hits"]:
            item = items[min(int(name) for name in hit.get("matched_queries", []))]
            document = self._hit_document(run, hit)
            found.append(
                Suppression(document.index, document.id, item["list_id"], item["item_id"], item["name"])
            )
        return found

    def _query_rule(
        self,
        run: RunIndices,
        rule: KibanaRule,
        window: dict[str, Any] | None,
        items: Sequence[dict[str, Any]] = (),
    ) -> list[Match]:
        """A custom query rule: KQL and time range as filters, ``@timestamp`` ascending, max_signals."""
        if rule.get("language", "kuery") != "kuery":
            raise UnsupportedQueryError(f"rule {rule['rule_id']}: query language {rule['language']!r}")
        from dac.query.kql import to_dsl

        targets = _targets(run, rule)
        if not targets:
            return []
        query = with_exceptions(to_dsl(rule.get("query", ""), _rule_mapping(rule)), items)
        if window:
            query = {"bool": {**query["bool"], "filter": [*query["bool"]["filter"], window]}}
        response = self._call(
            f"rule {rule['rule_id']}: search", self.client.search,
            index=",".join(targets), ignore_unavailable=True, allow_no_indices=True,
            size=rule.get("max_signals", 100), query=query,
            sort=[{"@timestamp": {"order": "asc", "unmapped_type": "date"}}],
        )
        return [(self._hit_document(run, hit), None) for hit in response["hits"]["hits"]]

    def _eql_rule(
        self, run: RunIndices, rule: KibanaRule, request_filter: dict[str, Any] | None
    ) -> list[Match]:
        """An EQL rule: ``_eql/search`` with time range and exceptions as its filter; no sequences."""
        targets = _targets(run, rule)
        if not targets:
            return []
        options: dict[str, Any] = {}
        if request_filter:
            options["filter"] = request_filter
        for key in ("event_category_override", "timestamp_field", "tiebreaker_field"):
            if rule.get(key):
                options["event_category_field" if key == "event_category_override" else key] = rule[key]
        response = self._call(
            f"rule {rule['rule_id']}: EQL search", self.client.eql.search,
            index=",".join(targets), query=rule["query"], size=rule.get("max_signals", 100),
            allow_no_indices=True, **options,
        )
        hits = response["hits"]
        if "sequences" in hits:
            raise UnsupportedQueryError(f"rule {rule['rule_id']}: EQL sequences are not supported")
        return [(self._hit_document(run, hit), None) for hit in hits.get("events", [])]

    def _esql_rule(
        self, run: RunIndices, rule: KibanaRule, request_filter: dict[str, Any] | None
    ) -> list[Match]:
        """An ES|QL rule: FROM pointed at the run's indices, ``| limit max_signals+1``; each row comes with
        the source document its ``_id`` names, if it keeps one (Kibana esql.ts, fetch_source_documents.ts).
        """
        size = rule.get("max_signals", 100)
        query = _rewrite_from(rule["query"], run)
        if query is None:
            return []
        body: dict[str, Any] = {"query": f"{query} | limit {size + 1}"}
        if request_filter:
            body["filter"] = request_filter
        response = self._call(f"rule {rule['rule_id']}: ES|QL query", self.client.esql.query, **body)
        names = [column["name"] for column in response["columns"]]
        # row_to_document.ts: null cells are dropped
        rows = [{n: v for n, v in zip(names, row, strict=True) if v is not None}
                for row in response["values"]]
        sources = self._fetch_sources(run, [row["_id"] for row in rows if "_id" in row])
        matches: list[Match] = []
        seen: set[tuple[str, str]] = set()
        for row in rows:
            doc_id = row.get("_id", "")
            concrete = row.get("_index", "")
            fetched = _source_document(sources.get(doc_id, []), concrete)
            index = run.original_index(concrete or (fetched[0] if fetched else ""))
            if doc_id and (index, doc_id) in seen:
                continue  # Kibana de-duplicates alerts by the id derived from the event's _id and index
            seen.add((index, doc_id))
            matches.append((SourceDocument(index, doc_id, fetched[1] if fetched else {}), row))
        return matches[:size]

    def _fetch_sources(self, run: RunIndices, ids: list[str]) -> dict[str, list[tuple[str, dict[str, Any]]]]:
        """Source documents by ``_id`` (fetch_source_documents.ts): a list, as ids repeat across indices."""
        if not ids or not run.targets:
            return {}
        response = self._call(
            "fetching ES|QL source documents", self.client.search,
            index=",".join(run.targets.values()), query={"ids": {"values": ids}}, size=len(ids),
        )
        found: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for hit in response["hits"]["hits"]:
            found.setdefault(hit["_id"], []).append((hit["_index"], hit["_source"]))
        return found

    def _hit_document(self, run: RunIndices, hit: dict[str, Any]) -> SourceDocument:
        return SourceDocument(run.original_index(hit["_index"]), hit["_id"], hit["_source"])

    # -- alerts -----------------------------------------------------------------------------------

    def _write_alerts(
        self, run: RunIndices, rule: KibanaRule, matches: list[Match], now: datetime,
        space_id: str | None = None,
    ) -> list[dict[str, Any]]:
        alerts = [build_alert(rule, document, now, row) for document, row in matches]
        if space_id is not None:
            for alert in alerts:
                alert["kibana.space_ids"] = [space_id]
        if not alerts:
            return alerts
        actions = [
            {"_op_type": "index", "_index": run.alerts_index, "_source": alert,
             **({"_id": uuid[0]} if (uuid := values_at(alert, "kibana.alert.uuid")) else {})}
            for alert in alerts
        ]
        try:
            _, errors = helpers.bulk(self.client, actions, raise_on_error=False, refresh=True)
        except (ApiError, elastic_transport.TransportError) as exc:
            raise backend_error(exc, f"rule {rule['rule_id']}: writing alerts") from None
        if errors:
            error = next(iter(errors[0].values())).get("error", {})
            raise BackendError(
                f"rule {rule['rule_id']}: {len(errors)} alerts rejected: "
                f"{error.get('type')}: {error.get('reason')}"
            )
        return alerts

    def _call(self, doing: str, method: Any, **kwargs: Any) -> Any:
        """Call the client; any server or transport failure becomes a one-line BackendError."""
        try:
            return method(**kwargs)
        except (ApiError, elastic_transport.TransportError) as exc:
            raise backend_error(exc, doing) from None


def server_mappings(mapping: IndexMapping, modules: frozenset[str]) -> dict[str, Any]:
    """The mapping's template body, with module field types the server lacks replaced (MODULE_FIELD_TYPES)."""
    missing = {kind: core for kind, (module, core) in MODULE_FIELD_TYPES.items() if module not in modules}

    def adapt(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: missing.get(v, v) if k == "type" and isinstance(v, str) else adapt(v)
                    for k, v in node.items()}
        if isinstance(node, list):
            return [adapt(item) for item in node]
        return node

    return adapt(mapping.template_mappings()) if missing else mapping.template_mappings()


def _window(rule: KibanaRule, now: datetime | None) -> dict[str, Any] | None:
    """Kibana's time range filter ``[now + from, now]`` (build_events_query.ts buildTimeRangeFilter)."""
    if now is None:
        return None
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    if rule.get("to", "now") != "now":
        raise RuleError(f"rule {rule['rule_id']}: only to: now is supported, not {rule['to']!r}")
    try:
        start = now - timedelta(seconds=duration_seconds(rule["from"]))
    except ValueError:
        raise RuleError(f"rule {rule['rule_id']}: unsupported date math in from: {rule['from']!r}") from None
    bounds = {"gte": _iso(start), "lte": _iso(now), "format": "strict_date_optional_time"}
    return {"range": {"@timestamp": bounds}}


def _iso(moment: datetime) -> str:
    """Like JavaScript's ``Date.toISOString()``: UTC, milliseconds, ``Z``."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def pattern_matches(pattern: str, name: str) -> bool:
    """Whether an index expression (only ``*`` is a wildcard in Elasticsearch) names ``name``."""
    regex = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.fullmatch(regex, name) is not None


def matching_indices(patterns: Sequence[str], names: Sequence[str]) -> list[str]:
    """The names a list of index expressions resolves to; ``-pattern`` excludes, as in Elasticsearch."""
    chosen: list[str] = []
    for pattern in patterns:
        if pattern.startswith("-"):
            chosen = [name for name in chosen if not pattern_matches(pattern[1:], name)]
        else:
            chosen += [name for name in names if pattern_matches(pattern, name) and name not in chosen]
    return chosen


def _targets(run: RunIndices, rule: KibanaRule) -> list[str]:
    return [run.targets[name] for name in matching_indices(rule.get("index", []), list(run.targets))]


def _rule_mapping(rule: KibanaRule) -> IndexMapping:
    for pattern in rule.get("index", []):
        mapping = mapping_for_index(pattern)
        if mapping is not None:
            return mapping
    raise RuleError(f"rule {rule['rule_id']}: no shipped field mapping serves index {rule.get('index')}")


FROM_COMMAND = re.compile(r"^(\s*FROM\s+)([^|\s,]+(?:\s*,\s*[^|\s,]+)*)", re.IGNORECASE)


def _rewrite_from(query: str, run: RunIndices) -> str | None:
    """The ES|QL query reading the run's copies of the indices its FROM names; None when it names none.
    On the cluster's own indices (``run.existing``) the query runs as written."""
    if run.existing:
        return query
    match = FROM_COMMAND.match(query)
    if not match:
        raise UnsupportedQueryError("ES|QL query does not start with a FROM command")
    patterns = [p.strip().strip('"') for p in match.group(2).split(",")]
    targets = [run.targets[name] for name in matching_indices(patterns, list(run.targets))]
    if not targets:
        return None
    return f"{match.group(1)}{', '.join(targets)}{query[match.end():]}"


def _source_document(
    candidates: list[tuple[str, dict[str, Any]]], index: str
) -> tuple[str, dict[str, Any]] | None:
    """The fetched document for a row: the only one, else the one in the row's index.

    As Kibana's esql/utils/get_source_document.ts.
    """
    if len(candidates) == 1:
        return candidates[0]
    return next((c for c in candidates if c[0] == index), None)
