"""A small HTTP client for Kibana's Detection Engine API, safe to run from CI.

Facts it builds on (elastic/kibana, x-pack/solutions/security/plugins/security_solution/
common/api/detection_engine/**/*.schema.yaml and the route handlers beside them):
- every request carries ``elastic-api-version: 2023-10-31``; writes also ``kbn-xsrf``;
- a space is addressed by id as ``/s/<space>/api/…`` (the default space has no prefix);
- auth is ``Authorization: ApiKey …`` or basic.

Transient failures (connection errors, timeouts, 429, 502, 503, 504) are retried with capped
exponential backoff and jitter, honouring ``Retry-After``, but only for requests the caller
marks safe to repeat. Every retry is recorded so the command can say so. Secrets never leave
this module: errors name the method and path, never headers or credentials.
"""

from __future__ import annotations

import base64
import json
import math
import random
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit, urlunsplit

import urllib3

from dac.errors import BackendError
from dac.urls import redact_url

API_VERSION = "2023-10-31"
RULES = "/api/detection_engine/rules"
RETRY_STATUSES = frozenset({429, 502, 503, 504})
DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 4
FIND_PAGE_SIZE = 1000  # rules per _find page (the saved-objects find window is 10,000)
BULK_ACTION_MAX_IDS = 100  # _bulk_action refuses more ids per request (RULES_TABLE_MAX_PAGE_SIZE)
RULE_IDS_PER_FILTER = 100  # keeps a _find URL near 5 kB, well under Node's 16 kB header limit
# The exception list API (x-pack/solutions/security/plugins/lists/server/routes/*_exception_list*_route.ts,
# EXCEPTION_LIST_URL / EXCEPTION_LIST_ITEM_URL of @kbn/securitysolution-list-constants).
LISTS = "/api/exception_lists"
ITEMS = "/api/exception_lists/items"
LISTS_PER_ITEM_FIND = 50  # list_id=a,b,… of one items _find (find_exception_list_item_route.ts)


@dataclass(frozen=True)
class Response:
    status: int
    data: Any


@dataclass
class Traffic:
    """What the client sent: reads, writes and each retry, for the command's summary and the bench."""

    reads: int = 0
    writes: int = 0
    retries: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Settings:
    """Connection settings from the environment (``KIBANA_*``); secrets are kept out of ``repr``."""

    url: str
    api_key: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_cert: str | None = None
    verify: bool = True
    timeout: float = DEFAULT_TIMEOUT
    retries: int = DEFAULT_RETRIES

    @classmethod
    def from_env(cls, url: str, env: Mapping[str, str]) -> Settings:
        """Checked settings: a bad URL or number is a one-line BackendError, never a traceback.

        A ``user:password@`` in the URL becomes ``username``/``password`` (percent-decoded), so
        ``url`` holds only what may be printed."""
        base, url_user, url_password = _split_credentials(url)
        try:
            timeout = float(env.get("KIBANA_TIMEOUT", DEFAULT_TIMEOUT))
            retries = int(env.get("KIBANA_MAX_RETRIES", DEFAULT_RETRIES))
        except ValueError:
            raise BackendError("KIBANA_TIMEOUT and KIBANA_MAX_RETRIES must be numbers") from None
        if not (math.isfinite(timeout) and timeout > 0):
            raise BackendError(f"KIBANA_TIMEOUT must be a number of seconds above 0, not {timeout}")
        if retries < 0:
            raise BackendError(f"KIBANA_MAX_RETRIES must be 0 or more, not {retries}")
        return cls(
            url=base,
            api_key=env.get("KIBANA_API_KEY") or None,
            username=env.get("KIBANA_USERNAME") or url_user,
            password=env.get("KIBANA_PASSWORD") or url_password,
            ca_cert=env.get("KIBANA_CA_CERT") or None,
            verify=env.get("KIBANA_VERIFY_CERTS", "true").lower() not in ("false", "0", "no"),
            timeout=timeout,
            retries=retries,
        )


def _split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """(display URL, user, password) of a Kibana URL, or a BackendError saying what is wrong."""
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError when out of range or not a number
    except ValueError as exc:
        raise BackendError(f"Kibana URL {shown}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BackendError(f"Kibana URL {shown}: give http(s)://host[:port][/base path]")
    if parts.query or parts.fragment:
        raise BackendError(f"Kibana URL {shown}: no query or fragment here")
    user = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    return display_url(url).rstrip("/"), user or None, password or None


def display_url(url: str) -> str:
    """The URL without any user:password part, fit to print."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal keeps its brackets
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class KibanaClient:
    def __init__(
        self,
        settings: Settings,
        *,
        sleep: Callable[[float], None] = time.sleep,
        max_backoff: float = 20.0,
    ) -> None:
        self.settings = settings
        self.url = display_url(settings.url)
        self.traffic = Traffic()
        self._sleep = sleep
        self._max_backoff = max_backoff
        parts = urlsplit(settings.url)
        headers = {"elastic-api-version": API_VERSION, "accept": "application/json"}
        username = settings.username or parts.username
        password = settings.password or parts.password
        if settings.api_key:
            headers["authorization"] = f"ApiKey {settings.api_key}"
        elif username is not None:
            token = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
            headers["authorization"] = f"Basic {token}"
        self._headers = headers
        pool: dict[str, Any] = {"retries": False, "timeout": urllib3.Timeout(total=settings.timeout)}
        if parts.scheme == "https":
            pool["cert_reqs"] = "CERT_REQUIRED" if settings.verify else "CERT_NONE"
            if settings.ca_cert:
                pool["ca_certs"] = settings.ca_cert
        if not settings.verify:
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        self._http = urllib3.PoolManager(**pool)

    # ---- transport -------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        space: str | None = None,
        query: Mapping[str, Any] | None = None,
        json_body: Any = None,
        files: Mapping[str, tuple[str, bytes]] | None = None,
        repeatable: bool,
        accept: tuple[int, ...] = (),
    ) -> Response:
        """Send one request; retry transient failures when ``repeatable``.

        Answers 2xx, and those in ``accept``, are returned; anything else is a BackendError
        naming the method, path and Kibana's message (never the request's headers).
        """
        full = _space_path(space) + path
        if query:
            full += "?" + urlencode(query)
        write = method != "GET"
        headers = dict(self._headers)
        body: bytes | None = None
        if write:
            headers["kbn-xsrf"] = "true"
        if json_body is not None:
            body = json.dumps(json_body).encode("utf-8")
            headers["content-type"] = "application/json"
        elif files is not None:
            body, headers["content-type"] = urllib3.encode_multipart_formdata(
                {name: (filename, data, "application/x-ndjson") for name, (filename, data) in files.items()},
                boundary=uuid.uuid4().hex,
            )
        label = f"{method} {full.split('?')[0]}"
        attempt = 0
        while True:
            if write:
                self.traffic.writes += 1
            else:
                self.traffic.reads += 1
            wait: float | None = None
            try:
                answer = self._http.request(
                    method, self.url + full, body=body, headers=headers, redirect=False
                )
            except urllib3.exceptions.HTTPError as exc:
                reason = _transport_reason(exc)
                if not repeatable or attempt >= self.settings.retries:
                    raise BackendError(f"{label} to {self.url}: {reason}{_after(attempt)}") from None
                outcome = reason
            else:
                data = _decode(answer.data)
                if 200 <= answer.status < 300 or answer.status in accept:
                    return Response(answer.status, data)
                if answer.status in RETRY_STATUSES and repeatable and attempt < self.settings.retries:
                    outcome = f"HTTP {answer.status}"
                    wait = _retry_after(answer.headers.get("retry-after"))
                else:
                    raise BackendError(
                        f"{label} to {self.url}: HTTP {answer.status}: {_message(data)}{_after(attempt)}"
                    )
            attempt += 1
            delay = min(self._max_backoff, 0.25 * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)
            delay = min(self._max_backoff, max(delay, wait or 0.0))
            self.traffic.retries.append(f"{label}: {outcome}, retried after {delay:.1f} s")
            self._sleep(delay)

    # ---- the API ---------------------------------------------------------------------------

    def version(self) -> str:
        """The stack version (``GET /api/status``: ``version.number``)."""
        data = self.request("GET", "/api/status", repeatable=True).data
        try:
            return str(data["version"]["number"])
        except (KeyError, TypeError):
            raise BackendError(f"GET /api/status on {self.url}: no version.number in the answer") from None

    def space_exists(self, space: str) -> bool:
        """Whether the space exists (``GET /api/spaces/space/<id>``). The rules API does not check: a
        rule sent to a misspelt space id is stored there. A key not allowed to read spaces (403)
        cannot tell, and counts as existing."""
        answer = self.request(
            "GET", f"/api/spaces/space/{quote(space, safe='')}", repeatable=True, accept=(403, 404)
        )
        return answer.status != 404

    def find_rules(self, space: str, filter_kql: str | None = None) -> list[dict[str, Any]]:
        """Every detection rule in ``space`` (paged ``_find``)."""
        rules: list[dict[str, Any]] = []
        page = 1
        while True:
            query: dict[str, Any] = {
                "page": page,
                "per_page": FIND_PAGE_SIZE,
                "sort_field": "created_at",
                "sort_order": "asc",
            }
            if filter_kql:
                query["filter"] = filter_kql
            data = self.request("GET", f"{RULES}/_find", space=space, query=query, repeatable=True).data
            batch = data.get("data", []) if isinstance(data, dict) else []
            rules.extend(batch)
            total = int(data.get("total", 0)) if isinstance(data, dict) else 0
            if not batch or len(rules) >= total:
                return rules
            page += 1

    def find_rules_by_rule_id(self, space: str, rule_ids: list[str]) -> list[dict[str, Any]]:
        """The rules among ``rule_ids`` that exist in ``space`` (KQL on the rule params)."""
        found: list[dict[str, Any]] = []
        for start in range(0, len(rule_ids), RULE_IDS_PER_FILTER):
            chunk = rule_ids[start : start + RULE_IDS_PER_FILTER]
            terms = " OR ".join(f'"{rule_id}"' for rule_id in chunk)
            found.extend(self.find_rules(space, f"alert.attributes.params.ruleId: ({terms})"))
        return found

    def import_rules(self, space: str, ndjson: bytes, *, overwrite: bool) -> dict[str, Any]:
        """``_import`` one NDJSON batch; the answer lists per-rule errors (Kibana answers 200 anyway).

        Repeatable by construction: without ``overwrite`` a repeat can only meet a 409 for a rule
        the first attempt created (the caller re-checks it); with ``overwrite`` it writes the
        same content again.
        """
        return self.request(
            "POST",
            f"{RULES}/_import",
            space=space,
            query={"overwrite": "true" if overwrite else "false"},
            files={"file": ("rules.ndjson", ndjson)},
            repeatable=True,
        ).data

    def delete_rules(self, space: str, ids: list[str]) -> dict[str, Any]:
        """``_bulk_action`` delete by explicit object ids, at most 100 a request; never by query.

        A partial failure is an HTTP 500 whose body lists the errors per rule; it is returned,
        not raised, for the caller to check each rule.
        """
        if not ids or len(ids) > BULK_ACTION_MAX_IDS:
            raise ValueError(f"delete_rules takes 1 to {BULK_ACTION_MAX_IDS} ids, got {len(ids)}")
        return self.request(
            "POST",
            f"{RULES}/_bulk_action",
            space=space,
            json_body={"action": "delete", "ids": list(ids)},
            repeatable=True,
            accept=(500,),
        ).data

    # ---- exception lists and items --------------------------------------------------------------

    def find_exception_lists(self, space: str) -> list[dict[str, Any]]:
        """Every exception list of the space, both namespaces (``GET /api/exception_lists/_find``)."""
        return self._pages(space, f"{LISTS}/_find", {"namespace_type": "single,agnostic"})

    def find_exception_items(self, space: str, lists: list[tuple[str, str]]) -> list[dict[str, Any]]:
        """The items of the (list_id, namespace_type) lists: one paged ``items/_find`` for up to 50 lists
        at once (Kibana answers 404 only when none of them exists)."""
        found: list[dict[str, Any]] = []
        for start in range(0, len(lists), LISTS_PER_ITEM_FIND):
            chunk = lists[start : start + LISTS_PER_ITEM_FIND]
            query = {
                "list_id": ",".join(i for i, _ in chunk),
                "namespace_type": ",".join(n for _, n in chunk),
            }
            found.extend(self._pages(space, f"{ITEMS}/_find", query, missing_ok=True))
        return found

    def _pages(
        self, space: str, path: str, query: Mapping[str, Any], *, missing_ok: bool = False
    ) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        page = 1
        while True:
            answer = self.request(
                "GET",
                path,
                space=space,
                query={**query, "page": page, "per_page": FIND_PAGE_SIZE},
                repeatable=True,
                accept=(404,) if missing_ok else (),
            )
            if answer.status == 404:
                return out
            data = answer.data if isinstance(answer.data, dict) else {}
            batch = data.get("data") or []
            out.extend(batch)
            if not batch or len(out) >= int(data.get("total", 0)):
                return out
            page += 1

    def read_exception_object(
        self, space: str, kind: str, key: str, namespace_type: str
    ) -> dict[str, Any] | None:
        """A list (``kind`` ``list``) or item (``item``) by list_id / item_id; None when there is none."""
        path, name = (LISTS, "list_id") if kind == "list" else (ITEMS, "item_id")
        answer = self.request(
            "GET",
            path,
            space=space,
            query={name: key, "namespace_type": namespace_type},
            repeatable=True,
            accept=(404,),
        )
        return None if answer.status == 404 else answer.data

    def create_exception_object(self, space: str, kind: str, body: dict[str, Any]) -> Response:
        """POST a list or item. Repeatable: a repeat of a create that landed meets a 409, returned for the
        caller to read the object back and judge it (as rule creates are)."""
        path = LISTS if kind == "list" else ITEMS
        return self.request("POST", path, space=space, json_body=body, repeatable=True, accept=(409,))

    def update_exception_object(self, space: str, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        """PUT a list or item with the ``_version`` read at plan time: a concurrent edit is a 409, never
        overwritten. Not repeated (a repeat of a landed PUT would meet a 409 of its own making)."""
        path = LISTS if kind == "list" else ITEMS
        return self.request("PUT", path, space=space, json_body=body, repeatable=False).data

    def delete_exception_object(self, space: str, kind: str, key: str, namespace_type: str) -> bool:
        """DELETE a list (with its items, delete_exception_list.ts) or an item; False when already gone."""
        path, name = (LISTS, "list_id") if kind == "list" else (ITEMS, "item_id")
        answer = self.request(
            "DELETE",
            path,
            space=space,
            query={name: key, "namespace_type": namespace_type},
            repeatable=True,
            accept=(404,),
        )
        return answer.status != 404


def _space_path(space: str | None) -> str:
    return "" if space in (None, "default") else f"/s/{quote(space, safe='')}"


def _after(retries: int) -> str:
    """The tail of a final error: how often this request was retried before giving up."""
    return f" (after {retries} {'retry' if retries == 1 else 'retries'})" if retries else ""


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")[:200]


def _message(data: Any) -> str:
    if isinstance(data, dict):
        return str(data.get("message") or data.get("error") or data)[:300]
    return str(data)[:300]


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: fall back to the backoff


def _transport_reason(exc: urllib3.exceptions.HTTPError) -> str:
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        exc = exc.reason  # type: ignore[assignment]
    # In urllib3 2.x NameResolutionError < NewConnectionError < ConnectTimeoutError < TimeoutError,
    # so the connection failures are told apart before a timeout.
    if isinstance(exc, urllib3.exceptions.NameResolutionError):
        return "cannot resolve host"
    if isinstance(exc, urllib3.exceptions.NewConnectionError):
        return "cannot connect (connection refused or unreachable)"
    if isinstance(exc, urllib3.exceptions.TimeoutError):
        return "timed out"
    if isinstance(exc, urllib3.exceptions.SSLError):
        return "TLS error (set KIBANA_CA_CERT to the CA that signed Kibana's certificate)"
    if isinstance(exc, urllib3.exceptions.ProtocolError):
        return "connection dropped"
    return type(exc).__name__
