"""``KibanaStandIn``: an HTTP test double of Kibana 9.x for the endpoints the deployer uses.

It is a stand-in, not a Kibana: an in-memory store behind ``http.server`` on 127.0.0.1 that answers
the Detection Engine rules API, the Spaces API and ``/api/status`` with Kibana's documented status
codes and bodies. Every behaviour names the Kibana source file it follows (paths relative to
elastic/kibana; ``SECSOL`` = ``x-pack/solutions/security/plugins/security_solution``, ``RULES_API`` =
``SECSOL/server/lib/detection_engine/rule_management/api/rules``). What it adds for tests: fault
injection (``inject``), a record of every request (``requests``), and execution of enabled rules on
a real Elasticsearch through the project's engine (``es_url``).

Routes, each also under ``/s/<space id>``:

==========================================  ==========================================================
``POST/PUT/PATCH/GET/DELETE``               ``/api/detection_engine/rules`` (GET/DELETE ``?rule_id=`` or
                                            ``?id=``; PUT/PATCH name the rule in the body)
``GET``                                     ``/api/detection_engine/rules/_find``
``POST``                                    ``/api/detection_engine/rules/_import`` (multipart ``file``)
``POST``                                    ``/api/detection_engine/rules/_export``
``POST``                                    ``/api/detection_engine/rules/_bulk_action``
``POST/PUT/GET/DELETE``                     ``/api/exception_lists`` (GET/DELETE ``?list_id=`` or ``?id=``,
                                            and ``namespace_type``), ``GET /api/exception_lists/_find``
``POST/PUT/GET/DELETE``                     ``/api/exception_lists/items`` (``?item_id=``/``?id=``),
                                            ``GET /api/exception_lists/items/_find``
``GET``                                     ``/api/status``
``POST`` / ``GET`` / ``GET,DELETE <id>``    ``/api/spaces/space``
==========================================  ==========================================================

Anything else, including the ``_bulk_create``/``_bulk_update``/``_bulk_delete`` routes Kibana 9.0
removed, is a 404. A space id in the path is not checked (as in Kibana: a rule sent to a space that
does not exist is stored there); ``GET /api/spaces/space/<id>`` answers 404 for an unknown space.

Error bodies: Kibana core's ``{statusCode, error, message}`` for router-level
failures (unknown route, auth, xsrf, body schema, payload size), the security solution's
``{message, status_code}`` (``SECSOL/server/lib/detection_engine/routes/utils.ts``
``buildSiemResponse``) for errors its handlers return.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import re
import socket
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from concurrent import futures
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from tests.kibana_standin import rules_model
from tests.kibana_standin.exceptions_model import ExceptionError, ExceptionStore, validate_item, validate_list
from tests.kibana_standin.rules_model import RuleValidationError

API_VERSION = "2023-10-31"  # the one public version of every route used here (``addVersion``)
RULES_URL = "/api/detection_engine/rules"
# EXCEPTION_LIST_URL / EXCEPTION_LIST_ITEM_URL (@kbn/securitysolution-list-constants)
LISTS_URL = "/api/exception_lists"
ITEMS_URL = "/api/exception_lists/items"
SPACE_PREFIX = re.compile(r"^/s/([^/]+)(/.*)$")
# Kibana's space id rule (x-pack/platform/plugins/shared/spaces/common/is_valid_space_identifier.ts).
SPACE_ID = re.compile(r"^[a-z0-9_\-]+$")
# RULES_TABLE_MAX_PAGE_SIZE (SECSOL/common/constants.ts): the most ids one _bulk_action takes.
BULK_ACTION_MAX_IDS = 100
# maxRuleImportExportSize (SECSOL/server/config.ts, default 10000): objects per import / export.
MAX_IMPORT_EXPORT_SIZE = 10_000
# The saved-objects find window (index.max_result_window of .kibana_alerting_cases).
MAX_RESULT_WINDOW = 10_000
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# The task manager's default capacity (x-pack/platform/plugins/shared/task_manager/server/config.ts
# DEFAULT_CAPACITY): how many tasks, here rule executions, run at once.
TASK_MANAGER_CAPACITY = 10
STATUS_ORDER = {"succeeded": 0, "going to run": 10, "running": 15, "partial failure": 20, "failed": 30}


# --------------------------------------------------------------------------- faults and records


@dataclass(frozen=True)
class Fault:
    """A failure ``KibanaStandIn.inject`` plays on a chosen request. Build one with the constructors.

    - ``Fault.status(code, retry_after=..., body=...)``: answer ``code`` (with ``Retry-After``) without
      applying the request; the body defaults to Kibana core's ``{statusCode, error, message}``.
    - ``Fault.timeout(seconds)``: hold the request ``seconds``, then close the connection without an
      answer; the request is NOT applied (a client with a shorter timeout sees a read timeout).
    - ``Fault.drop()``: close the connection without an answer, request not applied;
      ``Fault.drop(after_apply=True)`` applies it first (the write happened, the client saw an error).
    - ``Fault.partial_import(rule_ids, status_code=500, message=...)``: on ``_import``, those rule ids
      fail with a per-rule error in the 200 answer and are not stored; the rest are imported.
    """

    kind: str
    status_code: int = 0
    retry_after: str | None = None
    body: dict[str, Any] | None = None
    seconds: float = 0.0
    after_apply: bool = False
    rule_ids: tuple[str, ...] = ()
    message: str = ""

    @classmethod
    def status(cls, code: int, *, retry_after: str | None = None,
               body: dict[str, Any] | None = None) -> Fault:
        return cls("status", status_code=code, retry_after=retry_after, body=body)

    @classmethod
    def timeout(cls, seconds: float) -> Fault:
        return cls("timeout", seconds=seconds)

    @classmethod
    def drop(cls, *, after_apply: bool = False) -> Fault:
        return cls("drop", after_apply=after_apply)

    @classmethod
    def partial_import(cls, rule_ids: list[str], *, status_code: int = 500,
                       message: str = "stand-in injected import failure") -> Fault:
        return cls("partial_import", rule_ids=tuple(rule_ids), status_code=status_code, message=message)


@dataclass
class RecordedRequest:
    """One request as the stand-in saw it. ``path`` is without ``/s/<space>``; ``status`` is 0 when the
    connection was closed without an answer. The Authorization header is never recorded."""

    method: str
    path: str
    space: str
    query: dict[str, Any]
    is_write: bool
    status: int = 0
    body_bytes: int = 0


@dataclass
class _PendingFault:
    fault: Fault
    remaining: int  # matching requests still to let through before this one hits
    method: str | None
    path_contains: str | None


@dataclass
class _Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


class _HttpError(Exception):
    def __init__(self, response: _Response) -> None:
        super().__init__(response.status)
        self.response = response


def _json(status: int, body: Any) -> _Response:
    return _Response(status, orjson.dumps(body))


def _core_error(status: int, message: str) -> _HttpError:
    """Kibana core's error body (hapi/Boom): ``{statusCode, error, message}``."""
    reasons = {400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 409: "Conflict",
               413: "Request Entity Too Large", 415: "Unsupported Media Type"}
    return _HttpError(_json(status, {"statusCode": status, "error": reasons.get(status, "Error"),
                                     "message": message}))


def _siem_error(status: int, message: str | list[str]) -> _HttpError:
    """buildSiemResponse(...).error (SECSOL/server/lib/detection_engine/routes/utils.ts)."""
    text = ", ".join(message) if isinstance(message, list) else message
    return _HttpError(_json(status, {"message": text, "status_code": status}))


def _now() -> str:
    """Like JavaScript's ``new Date().toISOString()``."""
    moment = datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


# --------------------------------------------------------------------------- the server


class KibanaStandIn:
    """An in-memory Kibana 9.x for the deploy tests (see the module docstring). Use as a context manager
    or ``start()``/``stop()``; ``url`` is set by ``start()`` (an ephemeral port on 127.0.0.1).

    Auth: ``Authorization: ApiKey <api_key>`` or Basic ``username``/``password``; with neither
    configured, no auth is required. ``es_url`` turns on rule execution (see ``run_enabled_rules``).

    Spaces: ``/s/<id>/api/detection_engine/...`` works for ANY id, created or not, as in Kibana (it
    verifies spaces only for /app paths); only ``GET /api/spaces/space/<id>`` tells whether a space
    exists (404 if not). A client that must not deploy into a misspelt space checks there.
    """

    def __init__(
        self,
        *,
        api_key: str | None = "standin-api-key",
        username: str | None = None,
        password: str | None = None,
        version: str = "9.5.4",
        es_url: str | None = None,
        max_import_payload_bytes: int = 10 * 1024 * 1024,
        execution_delay_seconds: float = 0.0,
    ) -> None:
        self.api_key = api_key
        self.username = username
        self.password = password
        self.version = version
        self.es_url = es_url
        self.max_import_payload_bytes = max_import_payload_bytes
        self.execution_delay_seconds = execution_delay_seconds
        self.url = ""
        self.requests: list[RecordedRequest] = []
        self._lock = threading.RLock()
        self._spaces: dict[str, dict[str, Any]] = {}
        # space -> rule_id -> rule response, and space -> id -> rule_id. A space id that was never
        # created still holds objects (Kibana does not check; see _dispatch).
        self._rules: defaultdict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        self._ids: defaultdict[str, dict[str, str]] = defaultdict(dict)
        self._exceptions = ExceptionStore()  # exception lists and items, per space / agnostic
        self._faults: list[_PendingFault] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._executor: ThreadPoolExecutor | None = None  # rule executions, created on first use
        self._executions: list[Future[None]] = []
        self._alert_spaces: set[str] = set()  # spaces whose alerts index this stand-in wrote
        self._engine: Any = None
        self._create_space({"id": "default", "name": "Default",
                            "description": "This is your default space!", "_reserved": True})

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> str:
        """Listen on 127.0.0.1 (ephemeral port) in a background thread; returns ``url``."""
        server = _Server(("127.0.0.1", 0), _Handler)
        server.standin = self
        self._server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="kibana-standin",
                                        daemon=True)
        self._thread.start()
        return self.url

    def stop(self) -> None:
        """Stop serving; wait for running executions, then delete the alerts indices they wrote (test
        hygiene on a shared Elasticsearch: the stand-in's data goes with it)."""
        self._stopping.set()
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
        self._delete_alert_indices(self._alert_spaces)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> KibanaStandIn:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- test controls ----------------------------------------------------------------------------

    def add_space(self, space_id: str) -> None:
        """Create a space directly (``default`` always exists)."""
        with self._lock:
            if space_id not in self._spaces:
                self._create_space({"id": space_id, "name": space_id})

    def inject(self, fault: Fault, *, nth: int = 1, method: str | None = None,
               path_contains: str | None = None) -> None:
        """Play ``fault`` on the ``nth`` next request matching ``method`` and ``path_contains`` (a
        substring of the request path, ``/s/<space>`` included); only matching requests count."""
        if nth < 1:
            raise ValueError("nth counts from 1")
        with self._lock:
            self._faults.append(_PendingFault(fault, nth - 1, method.upper() if method else None,
                                              path_contains))

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    def rules(self, space: str = "default") -> list[dict[str, Any]]:
        """The rules stored in ``space``, each as Kibana's read API would answer it."""
        with self._lock:
            return [orjson.loads(orjson.dumps(rule)) for rule in self._rules.get(space, {}).values()]

    def wait_for_executions(self, timeout: float = 60.0) -> None:
        """Wait until the background executions started so far have finished."""
        with self._lock:
            started = list(self._executions)
        futures.wait(started, timeout)

    def run_enabled_rules(self, space: str = "default") -> None:
        """Execute every enabled rule of ``space`` once, now, in this thread (needs ``es_url``)."""
        with self._lock:
            enabled = [rid for rid, rule in self._rules.get(space, {}).items() if rule["enabled"]]
        for rule_id in enabled:
            self._execute(space, rule_id)

    # -- request handling -------------------------------------------------------------------------

    def _take_fault(self, method: str, raw_path: str) -> Fault | None:
        with self._lock:
            for pending in self._faults:
                if pending.method and pending.method != method:
                    continue
                if pending.path_contains and pending.path_contains not in raw_path:
                    continue
                if pending.remaining:
                    pending.remaining -= 1
                    continue
                self._faults.remove(pending)
                return pending.fault
        return None

    def _serve(self, handler: _Handler, body: bytes) -> None:
        method = handler.command
        parts = urlsplit(handler.path)
        match = SPACE_PREFIX.match(parts.path)
        space, path = (match.group(1), match.group(2)) if match else ("default", parts.path)
        path = path.rstrip("/") or "/"
        query = {k: v[0] if len(v) == 1 else v for k, v in parse_qs(parts.query).items()}
        record = RecordedRequest(method, path, space, query, method in WRITE_METHODS,
                                 body_bytes=len(body))
        with self._lock:
            self.requests.append(record)
        fault = self._take_fault(method, parts.path)
        if fault is not None and fault.kind == "timeout":
            self._stopping.wait(fault.seconds)
            handler.drop_connection()
            return
        if fault is not None and fault.kind == "drop" and not fault.after_apply:
            handler.drop_connection()
            return
        if fault is not None and fault.kind == "status":
            response = _json(fault.status_code, fault.body or {
                "statusCode": fault.status_code, "error": "Injected fault",
                "message": f"stand-in injected HTTP {fault.status_code}"})
            if fault.retry_after is not None:
                response.headers["Retry-After"] = fault.retry_after
        else:
            try:
                response = self._dispatch(method, space, path, query, handler.headers, body, fault)
            except _HttpError as error:
                response = error.response
        if fault is not None and fault.kind == "drop":  # after_apply: the request took effect
            handler.drop_connection()
            return
        record.status = response.status
        handler.send(response)

    def _dispatch(self, method: str, space: str, path: str, query: dict[str, Any], headers: Any,
                  body: bytes, fault: Fault | None) -> _Response:
        route = self._route(method, path)
        authenticated = self._authenticated(headers.get("Authorization"))
        if path == "/api/status" and method == "GET":
            if headers.get("Authorization") and not authenticated:
                raise _core_error(401, "Unauthorized")  # 'optional' auth still refuses bad credentials
            return self._status(authenticated)
        if route is None:
            raise _core_error(404, "Not Found")
        if not authenticated:
            # x-pack/platform/plugins/shared/security/server/authentication/authenticator.ts: 401
            raise _core_error(401, "Unauthorized")
        if method in WRITE_METHODS and headers.get("kbn-xsrf") is None:
            # src/core/packages/http/server-internal/src/lifecycle_handlers.ts createXsrfPostAuthHandler
            raise _core_error(400, "Request must contain a kbn-xsrf header.")
        version = headers.get("elastic-api-version")
        if version is not None and version != API_VERSION and not path.startswith("/api/spaces"):
            # src/core/packages/http/router-server-internal/src/versioned_router/core_versioned_route.ts
            raise _core_error(400, f"No version \"{version}\" available for [{method}] [{path}]. "
                                   f"Available versions are: [\"{API_VERSION}\"]")
        # No check that the space exists: Kibana's spaces on_post_auth_interceptor.ts verifies the
        # space only for /app paths, so API calls into a space id nobody created succeed and their
        # objects wait there (elastic/kibana#67164, #148930). GET /api/spaces/space/<id> is the check.
        return route(space, query, body, headers, fault)

    def _route(self, method: str, path: str) -> Callable[..., _Response] | None:
        rules = {
            ("POST", RULES_URL): self._create_rule,
            ("PUT", RULES_URL): self._update_rule,
            ("PATCH", RULES_URL): self._patch_rule,
            ("GET", RULES_URL): self._read_rule,
            ("DELETE", RULES_URL): self._delete_rule,
            ("GET", RULES_URL + "/_find"): self._find_rules,
            ("POST", RULES_URL + "/_import"): self._import_rules,
            ("POST", RULES_URL + "/_export"): self._export_rules,
            ("POST", RULES_URL + "/_bulk_action"): self._bulk_action,
            ("POST", "/api/spaces/space"): self._post_space,
            ("GET", "/api/spaces/space"): self._list_spaces,
            ("POST", LISTS_URL): self._create_list,
            ("PUT", LISTS_URL): self._update_list,
            ("GET", LISTS_URL): self._read_list,
            ("DELETE", LISTS_URL): self._delete_list,
            ("GET", LISTS_URL + "/_find"): self._find_lists,
            ("POST", ITEMS_URL): self._create_item,
            ("PUT", ITEMS_URL): self._update_item,
            ("GET", ITEMS_URL): self._read_item,
            ("DELETE", ITEMS_URL): self._delete_item,
            ("GET", ITEMS_URL + "/_find"): self._find_items,
        }
        if (method, path) in rules:
            return rules[(method, path)]
        if path.startswith("/api/spaces/space/") and path.count("/") == 4:
            space_id = path.rsplit("/", 1)[1]
            if method == "GET":
                return lambda *_: self._get_space(space_id)
            if method == "DELETE":
                return lambda *_: self._delete_space(space_id)
        return None

    def _authenticated(self, header: str | None) -> bool:
        if self.api_key is None and self.username is None:
            return True
        if not header:
            return False
        scheme, _, secret = header.partition(" ")
        if scheme.lower() == "apikey" and self.api_key is not None:
            return hmac.compare_digest(secret.strip(), self.api_key)
        if scheme.lower() == "basic" and self.username is not None:
            try:
                user, _, password = base64.b64decode(secret.strip()).decode("utf-8").partition(":")
            except ValueError:
                return False
            return hmac.compare_digest(user, self.username) and \
                hmac.compare_digest(password, self.password or "")
        return False

    def _user(self) -> str:
        # Kibana records the authenticated user (for an API key, the key's owner).
        return self.username or "elastic"

    # -- /api/status ------------------------------------------------------------------------------

    def _status(self, authenticated: bool) -> _Response:
        """src/core/packages/status/server-internal/src/routes/status.ts: ``authRequired: 'optional'``;
        without credentials only the overall level is shown (the redacted response)."""
        if not authenticated:
            return _json(200, {"status": {"overall": {"level": "available"}}})
        return _json(200, {
            "name": "kibana-standin",
            "uuid": "5b2de169-2785-441b-ae8c-186a1936b17d",
            "version": {"number": self.version, "build_hash": "standin", "build_number": 0,
                        "build_snapshot": False, "build_flavor": "traditional"},
            "status": {"overall": {"level": "available", "summary": "All services and plugins are available"},
                       "core": {}, "plugins": {}},
            "metrics": {},
        })

    # -- spaces -----------------------------------------------------------------------------------

    def _create_space(self, props: dict[str, Any]) -> dict[str, Any]:
        space = {"id": props["id"], "name": props["name"], "disabledFeatures": [],
                 **{k: v for k, v in props.items() if k not in ("id", "name")}}
        self._spaces[space["id"]] = space
        return space

    def _post_space(self, space: str, query: dict[str, Any], body: bytes, *_: Any) -> _Response:
        """x-pack/platform/plugins/shared/spaces/server/routes/api/external/post.ts"""
        props = _parse_json_body(body)
        if not isinstance(props, dict) or not isinstance(props.get("id"), str) \
                or not isinstance(props.get("name"), str) or not props["name"]:
            raise _core_error(400, "[request body]: id and name must be non-empty strings")
        if not SPACE_ID.match(props["id"]):
            raise _core_error(400, "[request body.id]: lower case, a-z, 0-9, \"_\", and \"-\" are allowed")
        with self._lock:
            if props["id"] in self._spaces:
                # spaces_client.ts create: the saved-objects conflict, wrapped by wrapError
                raise _core_error(409, f"A space with the identifier {props['id']} already exists.")
            return _json(200, self._create_space(props))

    def _list_spaces(self, *_: Any) -> _Response:
        """x-pack/platform/plugins/shared/spaces/server/routes/api/external/get_all.ts"""
        with self._lock:
            return _json(200, [s for s in self._spaces.values()])

    def _get_space(self, space_id: str) -> _Response:
        """.../routes/api/external/get.ts: 404 for an unknown id."""
        with self._lock:
            if space_id not in self._spaces:
                raise _core_error(404, "Not Found")
            return _json(200, self._spaces[space_id])

    def _delete_space(self, space_id: str) -> _Response:
        """.../routes/api/external/delete.ts: 204; the reserved default space cannot go; every object in
        the space (here: its rules) is deleted with it."""
        with self._lock:
            if space_id not in self._spaces:
                raise _core_error(404, "Not Found")
            if self._spaces[space_id].get("_reserved"):
                raise _core_error(400, "The default space cannot be deleted because it is reserved.")
            del self._spaces[space_id]
            self._rules.pop(space_id, None)
            self._ids.pop(space_id, None)
            self._exceptions.drop_space(space_id)
        if space_id in self._alert_spaces:
            self._delete_alert_indices({space_id})  # the stand-in's clean-up, see stop()
        return _Response(204)

    # -- exception lists and items ----------------------------------------------------------------
    # LISTS = x-pack/solutions/security/plugins/lists/server; the routes answer buildSiemResponse
    # errors (LISTS/routes/utils/build_siem_response.ts); the model is exceptions_model.py.

    def exception_items(self, space: str, list_id: str,
                        namespace_type: str = "single") -> list[dict[str, Any]]:
        """The items of one list as Kibana stores them (for tests)."""
        return self._exceptions.items_of(space, [(list_id, namespace_type)])

    def _exception_call(self, call: Callable[[], Any]) -> _Response:
        try:
            return _json(200, call())
        except ExceptionError as error:
            raise _siem_error(error.status, error.message) from None

    def _create_list(self, space: str, query: dict[str, Any], body: bytes, *_: Any) -> _Response:
        """LISTS/routes/create_exception_list_route.ts (409 for a list_id the namespace has)."""
        props = _parse_json_body(body)
        _schema_check(validate_list(props))
        return self._exception_call(lambda: self._exceptions.create_list(space, props, self._user(), _now()))

    def _update_list(self, space: str, query: dict[str, Any], body: bytes, *_: Any) -> _Response:
        """LISTS/routes/update_exception_list_route.ts (404 unknown, 409 stale ``_version``)."""
        props = _parse_json_body(body)
        _schema_check(validate_list(props))
        if isinstance(props, dict) and props.get("id") is None and props.get("list_id") is None:
            raise _siem_error(400, "either id or list_id need to be defined")
        return self._exception_call(lambda: self._exceptions.update_list(space, props, self._user(), _now()))

    def _read_list(self, space: str, query: dict[str, Any], *_: Any) -> _Response:
        """LISTS/routes/read_exception_list_route.ts: by ``id`` or ``list_id`` and ``namespace_type``
        (default single); 404 ``exception list list_id: "x" does not exist``."""
        namespace_type = _namespace_type(query)
        found = self._exceptions.find_list(space, namespace_type, list_id=query.get("list_id"),
                                           id=query.get("id"))
        if found is None:
            raise _siem_error(404, f"exception list {_which(query, 'list_id')} does not exist")
        return _json(200, found)

    def _delete_list(self, space: str, query: dict[str, Any], *_: Any) -> _Response:
        """LISTS/routes/delete_exception_list_route.ts + services/exception_lists/delete_exception_list.ts:
        the list and all its items go; answers the deleted list; 404 for an unknown one."""
        deleted = self._exceptions.delete_list(space, _namespace_type(query), list_id=query.get("list_id"),
                                               id=query.get("id"))
        if deleted is None:
            raise _siem_error(404, f"exception list {_which(query, 'list_id')} does not exist")
        return _json(200, deleted)

    def _find_lists(self, space: str, query: dict[str, Any], *_: Any) -> _Response:
        """LISTS/routes/find_exception_list_route.ts: ``namespace_type`` comma-separated (default single),
        ``page``/``per_page`` (default 1/20); ``{data, page, per_page, total}``. ``filter`` is not
        implemented by the stand-in (400)."""
        if query.get("filter"):
            raise _siem_error(400, "the stand-in does not implement filter on exception lists")
        page = _int_param(query, "page", 1, minimum=1)
        per_page = _int_param(query, "per_page", 20, minimum=1)
        types = str(query.get("namespace_type") or "single").split(",")
        if any(t not in ("single", "agnostic") for t in types):
            raise _core_error(400, "[request query]: namespace_type: Invalid enum value")
        found = self._exceptions.lists_of(space, types)
        data = found[(page - 1) * per_page: page * per_page]
        return _json(200, {"data": data, "page": page, "per_page": per_page, "total": len(found)})

    def _create_item(self, space: str, query: dict[str, Any], body: bytes, *_: Any) -> _Response:
        """LISTS/routes/create_exception_list_item_route.ts (404 no list, 409 item_id taken)."""
        props = _parse_json_body(body)
        _schema_check(validate_item(props) + ([] if isinstance(props, dict) and props.get("list_id")
                                               else ["list_id: Required"]))
        return self._exception_call(lambda: self._exceptions.create_item(space, props, self._user(), _now()))

    def _update_item(self, space: str, query: dict[str, Any], body: bytes, *_: Any) -> _Response:
        """LISTS/routes/update_exception_list_item_route.ts: ``either id or item_id need to be defined``
        is a 404 there; 404 unknown item; 409 stale ``_version``."""
        props = _parse_json_body(body)
        _schema_check(validate_item(props))
        if props.get("id") is None and props.get("item_id") is None:
            raise _siem_error(404, "either id or item_id need to be defined")
        return self._exception_call(lambda: self._exceptions.update_item(space, props, self._user(), _now()))

    def _read_item(self, space: str, query: dict[str, Any], *_: Any) -> _Response:
        """LISTS/routes/read_exception_list_item_route.ts."""
        found = self._exceptions.find_item(space, _namespace_type(query), item_id=query.get("item_id"),
                                           id=query.get("id"))
        if found is None:
            raise _siem_error(404, f"exception list item {_which(query, 'item_id')} does not exist")
        return _json(200, found)

    def _delete_item(self, space: str, query: dict[str, Any], *_: Any) -> _Response:
        """LISTS/routes/delete_exception_list_item_route.ts: answers the deleted item; 404 unknown."""
        deleted = self._exceptions.delete_item(space, _namespace_type(query), item_id=query.get("item_id"),
                                               id=query.get("id"))
        if deleted is None:
            raise _siem_error(404, f"exception list item {_which(query, 'item_id')} does not exist")
        return _json(200, deleted)

    def _find_items(self, space: str, query: dict[str, Any], *_: Any) -> _Response:
        """LISTS/routes/find_exception_list_item_route.ts + services/exception_lists/
        find_exception_list_items.ts: ``list_id`` and ``namespace_type`` comma-separated and of equal
        length (400 otherwise), items of all those lists; 404 only when none of the lists exists."""
        list_ids = [v for v in str(query.get("list_id") or "").split(",") if v]
        types = str(query.get("namespace_type") or "single").split(",")
        if not list_ids:
            raise _core_error(400, "[request query]: list_id: Required")
        if len(list_ids) != len(types):
            raise _siem_error(400, "list_id and namespace_id need to have the same comma separated number of "
                                   f"values. Expected list_id length: {len(list_ids)} to equal "
                                   f"namespace_type length: {len(types)}")
        page = _int_param(query, "page", 1, minimum=1)
        per_page = _int_param(query, "per_page", 20, minimum=1)
        pairs = list(zip(list_ids, types, strict=True))
        if all(self._exceptions.find_list(space, t, list_id=lid) is None for lid, t in pairs):
            raise _siem_error(404, f'exception list id: "{",".join(list_ids)}" does not exist')
        found = self._exceptions.items_of(space, pairs)
        data = found[(page - 1) * per_page: page * per_page]
        return _json(200, {"data": data, "page": page, "per_page": per_page, "total": len(found)})

    def _import_exceptions(self, space: str, objects: list[dict[str, Any]], overwrite: bool
                           ) -> tuple[list[dict[str, Any]], int]:
        """The exceptions part of a rule import (LISTS/services/exception_lists/
        import_exception_list_and_items.ts with ``overwrite_exceptions``): an existing list without
        overwrite is an error and its items are skipped (``Found that list_id: "x" already exists.
        Import of list_id: "x" skipped.``); with overwrite its items are deleted and replaced
        (utils/import/delete_list_items_to_overwrite.ts). Returns (errors, objects imported)."""
        errors: list[dict[str, Any]] = []
        count = 0
        user, now = self._user(), _now()
        skipped: set[str] = set()
        store = self._exceptions
        for obj in (o for o in objects if "item_id" not in o):
            namespace_type = obj.get("namespace_type", "single")
            existing = store.find_list(space, namespace_type, list_id=obj.get("list_id"))
            if existing is not None and not overwrite:
                skipped.add(obj["list_id"])
                errors.append({"list_id": obj["list_id"], "error": {"status_code": 409, "message":
                               f'Found that list_id: "{obj["list_id"]}" already exists. Import of list_id: '
                               f'"{obj["list_id"]}" skipped.'}})
                continue
            if existing is not None:
                store.delete_list(space, namespace_type, list_id=obj["list_id"])
            store.create_list(space, obj, user, now)
            count += 1
        for obj in (o for o in objects if "item_id" in o):
            if obj.get("list_id") in skipped:
                continue
            namespace_type = obj.get("namespace_type", "single")
            if store.find_item(space, namespace_type, item_id=obj["item_id"]) is not None:
                if not overwrite:
                    errors.append({"item_id": obj["item_id"], "list_id": obj.get("list_id"), "error": {
                        "status_code": 409, "message": f'Found that item_id: "{obj["item_id"]}" already '
                        f'exists. Import of item_id: "{obj["item_id"]}" skipped.'}})
                    continue
                store.delete_item(space, namespace_type, item_id=obj["item_id"])
            try:
                store.create_item(space, obj, user, now)
                count += 1
            except ExceptionError as error:
                errors.append({"item_id": obj["item_id"], "list_id": obj.get("list_id"),
                               "error": {"status_code": error.status, "message": error.message}})
        return errors, count

    def _resolve_references(self, space: str, rule: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """SECSOL/server/lib/detection_engine/rule_management/logic/import/
        check_rule_exception_references.ts: each ``exceptions_list`` entry of an imported rule is looked
        up by list_id; when it exists with the same ``namespace_type`` and ``type`` its ``id`` becomes the
        list's, otherwise the link is removed and an error reported for the rule (which is imported)."""
        references = rule.get("exceptions_list") or []
        if not references:
            return rule, []
        kept, problems = [], []
        for reference in references:
            found = self._exceptions.find_list(space, reference.get("namespace_type", "single"),
                                               list_id=reference.get("list_id"))
            if found is not None and found["type"] == reference.get("type"):
                kept.append({**reference, "id": found["id"]})
            else:
                problems.append(f'Rule with rule_id: "{rule["rule_id"]}" references a non existent exception '
                                f'list of list_id: "{reference.get("list_id")}". Reference has been removed.')
        return {**rule, "exceptions_list": kept}, problems

    def _rule_exception_items(self, space: str, rule: dict[str, Any]) -> list[dict[str, Any]]:
        """The items an execution applies: those of the lists in ``exceptions_list``, found by list_id and
        namespace_type (the rule executor's getExceptions helper under SECSOL/server/lib/detection_engine/
        rule_types/utils; that file was not re-read for this stand-in), expired ones left out at run time
        (build_exception_filter.ts removeExpiredExceptions, applied by exception_filter.active_items)."""
        from dac.query.exception_filter import active_items

        lists = [(ref["list_id"], ref.get("namespace_type", "single"))
                 for ref in rule.get("exceptions_list") or []]
        items = self._exceptions.items_of(space, lists) if lists else []
        return active_items([i for i in items if all(e.get("type") != "list" for e in i["entries"])])

    # -- rule CRUD --------------------------------------------------------------------------------

    def _lookup(self, space: str, *, rule_id: Any = None, id: Any = None) -> dict[str, Any]:
        """readRules by id or rule_id; the 404 of getIdError (SECSOL/.../rule_management/utils/utils.ts)."""
        rules = self._rules[space]
        if id is not None:
            found = rules.get(self._ids[space].get(str(id), ""))
            if found is None:
                raise _siem_error(404, f'id: "{id}" not found')
            return found
        if rule_id is not None:
            found = rules.get(str(rule_id))
            if found is None:
                raise _siem_error(404, f'rule_id: "{rule_id}" not found')
            return found
        raise _siem_error(404, "id or rule_id should have been defined")

    def _store(self, space: str, rule: dict[str, Any], before: dict[str, Any] | None) -> None:
        self._rules[space][rule["rule_id"]] = rule
        self._ids[space][rule["id"]] = rule["rule_id"]
        if rule["enabled"] and (before is None or not before["enabled"] or
                                rules_model.revisioned_change(before, rule)):
            self._schedule_execution(space, rule["rule_id"])

    def _create_rule(self, space: str, query: dict[str, Any], body: bytes, *_: Any) -> _Response:
        """RULES_API/create_rule/route.ts: schema check (400), duplicate rule_id (409), then createRule
        (.../detection_rules_client/methods/create_rule.ts: defaults, ``enabled`` false unless sent)."""
        props = _parse_json_body(body)
        _validate_body(props, need_identity=False)
        with self._lock:
            if props.get("rule_id") is not None and str(props["rule_id"]) in self._rules[space]:
                raise _siem_error(409, f'rule_id: "{props["rule_id"]}" already exists')
            rule = rules_model.new_rule(props, user=self._user(), now=_now())
            self._store(space, rule, None)
            return _json(200, rule)

    def _update_rule(self, space: str, query: dict[str, Any], body: bytes, *_: Any) -> _Response:
        """RULES_API/update_rule/route.ts + .../methods/update_rule.ts + mergers/apply_rule_update.ts:
        the rule is replaced (unsent fields back to defaults); ``version``/``enabled`` kept unless sent."""
        props = _parse_json_body(body)
        _validate_body(props, need_identity=True)
        with self._lock:
            existing = self._lookup(space, rule_id=props.get("rule_id"), id=props.get("id"))
            rule = rules_model.updated_rule(existing, props, user=self._user(), now=_now())
            self._store(space, rule, existing)
            return _json(200, rule)

    def _patch_rule(self, space: str, query: dict[str, Any], body: bytes, *_: Any) -> _Response:
        """RULES_API/patch_rule/route.ts + .../methods/patch_rule.ts + mergers/apply_rule_patch.ts."""
        props = _parse_json_body(body)
        if not isinstance(props, dict):
            raise _core_error(400, "[request body]: Expected object, received " + type(props).__name__)
        if props.get("rule_id") is None and props.get("id") is None:
            raise _siem_error(400, 'either "id" or "rule_id" must be set')
        with self._lock:
            existing = self._lookup(space, rule_id=props.get("rule_id"), id=props.get("id"))
            merged = {**{k: v for k, v in existing.items() if k not in rules_model.MANAGED_FIELDS}, **props}
            _validate_body(merged, need_identity=False)
            rule = rules_model.patched_rule(existing, props, user=self._user(), now=_now())
            self._store(space, rule, existing)
            return _json(200, rule)

    def _read_rule(self, space: str, query: dict[str, Any], *_: Any) -> _Response:
        """RULES_API/read_rule/route.ts: by ``id`` or ``rule_id``; 404 with getIdError's message."""
        if query.get("id") is None and query.get("rule_id") is None:
            raise _siem_error(400, 'either "id" or "rule_id" must be set')
        with self._lock:
            return _json(200, self._lookup(space, rule_id=query.get("rule_id"), id=query.get("id")))

    def _delete_rule(self, space: str, query: dict[str, Any], *_: Any) -> _Response:
        """RULES_API/delete_rule/route.ts: answers the deleted rule."""
        if query.get("id") is None and query.get("rule_id") is None:
            raise _siem_error(400, 'either "id" or "rule_id" must be set')
        with self._lock:
            rule = self._lookup(space, rule_id=query.get("rule_id"), id=query.get("id"))
            self._remove(space, rule)
            return _json(200, rule)

    def _remove(self, space: str, rule: dict[str, Any]) -> None:
        del self._rules[space][rule["rule_id"]]
        del self._ids[space][rule["id"]]

    # -- _find ------------------------------------------------------------------------------------

    def _find_rules(self, space: str, query: dict[str, Any], *_: Any) -> _Response:
        """RULES_API/find_rules/route.ts and find_rules_route.schema.yaml: ``page`` (from 1, default 1),
        ``per_page`` (default 20), ``sort_field`` with ``sort_order`` (both or neither), ``filter`` (KQL
        on ``alert.attributes.*``), ``fields``. The answer is ``{page, perPage, total, data}``."""
        page = _int_param(query, "page", 1, minimum=1)
        per_page = _int_param(query, "per_page", 20, minimum=0)
        if (query.get("sort_field") is None) != (query.get("sort_order") is None):
            raise _siem_error(400, 'when "sort_order" and "sort_field" must exist together or not at all')
        if page * per_page > MAX_RESULT_WINDOW:
            # The saved-objects find is an Elasticsearch search: from + size over max_result_window.
            raise _siem_error(400, "Result window is too large, from + size must be less than or equal "
                                   f"to: [{MAX_RESULT_WINDOW}] but was [{page * per_page}].")
        matches = _find_filter(query.get("filter"))
        with self._lock:
            found = [r for r in self._rules[space].values() if matches(r)]
            found = orjson.loads(orjson.dumps(found))
        sort_field = query.get("sort_field")
        if sort_field:
            key = {"createdAt": "created_at", "updatedAt": "updated_at", "riskScore": "risk_score"}.get(
                sort_field, sort_field)
            found.sort(key=lambda r: _sort_key(r, key), reverse=query.get("sort_order") == "desc")
        data = found[(page - 1) * per_page: page * per_page]
        fields = query.get("fields")
        if fields:
            wanted = {fields} if isinstance(fields, str) else set(fields)
            # find_rules.ts always keeps the fields the response transform needs (id, rule_id, ...).
            wanted |= {"id", "rule_id", "name", "type", "enabled"}
            data = [{k: v for k, v in r.items() if k in wanted} for r in data]
        return _json(200, {"page": page, "perPage": per_page, "total": len(found), "data": data})

    # -- _import ----------------------------------------------------------------------------------

    def _import_rules(self, space: str, query: dict[str, Any], body: bytes, headers: Any,
                      fault: Fault | None) -> _Response:
        """RULES_API/import_rules/route.ts and import_rules_route.schema.yaml.

        - ``body.maxBytes: config.maxRuleImportPayloadBytes``: a larger body is hapi's 413.
        - the multipart field ``file``; a file name not ending ``.ndjson`` is a 400
          ``Invalid file extension <ext>``.
        - each NDJSON line: the export-details line is skipped (create_promise_from_rule_import_stream),
          exception lists and items are imported first (see _import_exceptions, ``overwrite_exceptions``),
          action connectors are counted as imported, a rule is validated
          like a create (400 per rule) and its exception references resolved (_resolve_references);
          a rule_id twice in the file is a 400 per repeat unless
          ``overwrite``, the last one imported (getTupleDuplicateErrorsAndUniqueRules); an existing
          rule_id without ``overwrite`` is a 409 per rule (import_rules.ts ``rule_id: "x" already
          exists``); with ``overwrite`` the rule is updated like a PUT (import_rules/overwrite_rules.ts:
          applyRuleUpdate, ``enabled`` kept unless the line sends it).
        - the answer is always 200 with ``success``, ``success_count``, ``rules_count``, ``errors`` and the
          exceptions/action-connector counters; per-rule errors are ``{rule_id, error: {status_code,
          message}}`` and successful rules are not listed.
        """
        if len(body) > self.max_import_payload_bytes:
            raise _core_error(413, "Payload content length greater than maximum allowed: "
                                   f"{self.max_import_payload_bytes}")
        filename, content = _multipart_file(headers.get("Content-Type", ""), body)
        extension = "." + filename.rsplit(".", 1)[1].lower() if "." in filename else ""
        if extension != ".ndjson":
            raise _siem_error(400, f"Invalid file extension {extension}")
        overwrite = _bool_param(query, "overwrite")
        lines = [line for line in content.split(b"\n") if line.strip()]
        if len(lines) > MAX_IMPORT_EXPORT_SIZE:
            raise _siem_error(500, f"Can't import more than {MAX_IMPORT_EXPORT_SIZE} rules")
        errors: list[dict[str, Any]] = []
        rules: list[dict[str, Any]] = []
        exception_objects: list[dict[str, Any]] = []
        connectors = 0
        rules_count = 0
        for line in lines:
            try:
                item = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                rules_count += 1
                errors.append(_import_error("(unknown id)", 400, f"Unexpected token in JSON: {exc}"))
                continue
            if isinstance(item, dict) and "exported_count" in item:
                continue  # the export details line
            if isinstance(item, dict) and ("list_id" in item or "item_id" in item) and "rule_id" not in item:
                exception_objects.append(item)  # create_rules_stream_from_ndjson.ts sortImports
                continue
            if isinstance(item, dict) and item.get("type") == "action" and "attributes" in item:
                connectors += 1
                continue
            rules_count += 1
            try:
                rules_model.validate_props(item, need_identity=False, need_rule_id=True)
            except RuleValidationError as exc:
                rule_id = item.get("rule_id") if isinstance(item, dict) else None
                errors.append(_import_error(str(rule_id or "(unknown id)"), 400, ", ".join(exc.messages)))
                continue
            rules.append(item)
        # getTupleDuplicateErrorsAndUniqueRules (rule_management/utils/utils.ts): a rule_id seen again is
        # a 400 per repeat unless ``overwrite``; the last occurrence is the one imported.
        unique: dict[str, dict[str, Any]] = {}
        for item in rules:
            rule_id = str(item["rule_id"])
            if rule_id in unique and not overwrite:
                message = f'More than one rule with rule-id: "{rule_id}" found'
                errors.append(_import_error(rule_id, 400, message))
            unique[rule_id] = item
        failing = set(fault.rule_ids) if fault is not None and fault.kind == "partial_import" else set()
        success_count = 0
        user, now = self._user(), _now()
        with self._lock:
            # import_rules_route.ts imports the exceptions first, then the rules that reference them
            exceptions_errors, exceptions = self._import_exceptions(
                space, exception_objects, _bool_param(query, "overwrite_exceptions"))
            for rule_id, item in unique.items():
                item, reference_problems = self._resolve_references(space, item)
                errors.extend(_import_error(rule_id, 400, problem) for problem in reference_problems)
                if rule_id in failing:
                    errors.append(_import_error(rule_id, fault.status_code, fault.message))  # type: ignore[union-attr]
                    continue
                existing = self._rules[space].get(rule_id)
                if existing is not None and not overwrite:
                    errors.append(_import_error(rule_id, 409, f'rule_id: "{rule_id}" already exists'))
                    continue
                if existing is None:
                    rule = rules_model.new_rule(item, user=user, now=now)
                else:
                    rule = rules_model.updated_rule(existing, item, user=user, now=now)
                self._store(space, rule, existing)
                success_count += 1
        return _json(200, {
            "success": not errors,
            "success_count": success_count,
            "rules_count": rules_count,
            "errors": errors,
            "exceptions_errors": exceptions_errors,
            "exceptions_success": not exceptions_errors,
            "exceptions_success_count": exceptions,
            "action_connectors_success": True,
            "action_connectors_success_count": connectors,
            "action_connectors_errors": [],
            "action_connectors_warnings": [],
        })

    # -- _export ----------------------------------------------------------------------------------

    def _export_rules(self, space: str, query: dict[str, Any], body: bytes, *_: Any) -> _Response:
        """RULES_API/export_rules/route.ts, export_rules_route.schema.yaml, and
        .../logic/export/get_export_details_ndjson.ts: one rule per NDJSON line, then (unless
        ``exclude_export_details=true``) the details line; ids not found are ``missing_rules``."""
        request = _parse_json_body(body) if body.strip() else None
        with self._lock:
            stored = self._rules[space]
            if isinstance(request, dict) and isinstance(request.get("objects"), list):
                wanted = [str(o.get("rule_id")) for o in request["objects"] if isinstance(o, dict)]
                if len(wanted) > MAX_IMPORT_EXPORT_SIZE:
                    raise _siem_error(400, f"Can't export more than {MAX_IMPORT_EXPORT_SIZE} rules")
                exported = [stored[r] for r in wanted if r in stored]
                missing = [{"rule_id": r} for r in wanted if r not in stored]
            else:
                exported, missing = list(stored.values()), []
            lines = [orjson.dumps({k: v for k, v in r.items() if k != "execution_summary"})
                     for r in exported]
        if not _bool_param(query, "exclude_export_details"):
            lines.append(orjson.dumps({
                "exported_count": len(exported),
                "exported_rules_count": len(exported),
                "missing_rules": missing,
                "missing_rules_count": len(missing),
                "exported_exception_list_count": 0,
                "exported_exception_list_item_count": 0,
                "missing_exception_list_item_count": 0,
                "missing_exception_list_items": [],
                "missing_exception_lists": [],
                "missing_exception_lists_count": 0,
                "exported_action_connector_count": 0,
                "missing_action_connection_count": 0,
                "missing_action_connections": [],
                "excluded_action_connection_count": 0,
                "excluded_action_connections": [],
            }))
        filename = str(query.get("file_name", "export.ndjson"))
        return _Response(200, b"".join(line + b"\n" for line in lines), "application/ndjson",
                         {"Content-Disposition": f'attachment; filename="{filename}"'})

    # -- _bulk_action -----------------------------------------------------------------------------

    def _bulk_action(self, space: str, query: dict[str, Any], body: bytes, *_: Any) -> _Response:
        """RULES_API/bulk_actions/route.ts (validateBulkAction, fetchRulesByQueryOrIds) and
        bulk_actions_response.ts (buildBulkResponse).

        - more than 100 ``ids`` -> 400; ``ids`` together with ``query`` -> 400;
        - neither -> EVERY rule of the space (``query`` undefined finds all): the hazard the issue names;
        - an unknown id is a per-rule error ``Rule not found`` (status 500 in normalizeErrorResponse);
        - any error -> HTTP 500 ``{message: 'Bulk edit partially failed' | 'Bulk edit failed',
          status_code: 500, attributes: {errors, results, summary}}``; else 200 ``{success, rules_count,
          attributes: {results: {updated, created, deleted, skipped}, summary}}``.
        """
        request = _parse_json_body(body)
        if not isinstance(request, dict) or request.get("action") not in (
                "enable", "disable", "delete", "duplicate", "export", "edit", "run", "fill_gaps"):
            raise _core_error(400, "[request body]: action: Invalid discriminator value. Expected "
                                   "'delete' | 'disable' | 'enable' | 'export' | 'duplicate' | 'run' | "
                                   "'fill_gaps' | 'edit'")
        ids = request.get("ids")
        if ids is not None and (not isinstance(ids, list) or not ids):
            raise _core_error(400, "[request body]: ids: Array must contain at least 1 element(s)")
        if ids is not None and len(ids) > BULK_ACTION_MAX_IDS:
            raise _siem_error(400, f"More than {BULK_ACTION_MAX_IDS} ids sent for bulk edit action.")
        if ids is not None and "query" in request:
            raise _siem_error(400, "Both query and ids are sent. "
                                   "Define either ids or query in request payload.")
        action = request["action"]
        if action not in ("enable", "disable", "delete", "duplicate"):
            raise _siem_error(400, f"the stand-in does not implement bulk action {action!r}")
        user, now = self._user(), _now()
        errors: list[dict[str, Any]] = []  # normalized: one entry per message, its rules listed
        updated: list[dict[str, Any]] = []
        created: list[dict[str, Any]] = []
        deleted: list[dict[str, Any]] = []
        with self._lock:
            if ids is not None:
                targets = []
                for rule_id_or_missing in ids:
                    rule_id = self._ids[space].get(str(rule_id_or_missing))
                    if rule_id is None:
                        _add_bulk_error(errors, "Rule not found", {"id": str(rule_id_or_missing)})
                    else:
                        targets.append(self._rules[space][rule_id])
            else:
                query_text = request.get("query") or None
                targets = [r for r in self._rules[space].values() if _find_filter(query_text)(r)]
            for rule in targets:
                if action in ("enable", "disable"):
                    # bulk_enable_disable_rules.ts -> rulesClient.bulkEnableRules/bulkDisableRules:
                    # ``enabled`` is not revisioned; updatedAt/By are stamped.
                    changed = {**rule, "enabled": action == "enable", "updated_at": now, "updated_by": user}
                    self._store(space, changed, rule)
                    updated.append(changed)
                elif action == "delete":
                    self._remove(space, rule)
                    deleted.append(rule)
                else:  # duplicate: logic/actions/duplicate_rule.ts, a disabled "[Duplicate]" copy
                    copy = rules_model.new_rule(
                        {**{k: v for k, v in rule.items() if k not in rules_model.MANAGED_FIELDS},
                         "rule_id": str(uuid.uuid4()), "name": f"{rule['name']} [Duplicate]",
                         "enabled": False}, user=user, now=now)
                    self._store(space, copy, None)
                    created.append(copy)
        succeeded = len(updated) + len(created) + len(deleted)
        failed = sum(len(e["rules"]) for e in errors)
        summary = {"failed": failed, "succeeded": succeeded, "skipped": 0, "total": succeeded + failed}
        results = {"updated": updated, "created": created, "deleted": deleted, "skipped": []}
        if errors:
            return _json(500, {
                "message": "Bulk edit partially failed" if succeeded else "Bulk edit failed",
                "status_code": 500,
                "attributes": {"errors": errors, "results": results, "summary": summary},
            })
        return _json(200, {"success": True, "rules_count": summary["total"],
                           "attributes": {"results": results, "summary": summary}})

    # -- execution --------------------------------------------------------------------------------

    def _schedule_execution(self, space: str, rule_id: str) -> None:
        """An enabled rule runs soon after it is enabled (the task manager schedules it now), on at most
        TASK_MANAGER_CAPACITY workers at once, as Kibana's task manager runs its tasks."""
        if not self.es_url or self._stopping.is_set():
            return
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(TASK_MANAGER_CAPACITY, thread_name_prefix="standin-rule")
            self._executions.append(self._executor.submit(self._execute_later, space, rule_id))

    def _execute_later(self, space: str, rule_id: str) -> None:
        if not self._stopping.wait(self.execution_delay_seconds):
            self._execute(space, rule_id)

    def _set_summary(self, space: str, rule_id: str, status: str, message: str,
                     metrics: dict[str, Any]) -> None:
        with self._lock:
            rule = self._rules.get(space, {}).get(rule_id)
            if rule is not None:
                rule["execution_summary"] = {"last_execution": {
                    "date": _now(), "status": status, "status_order": STATUS_ORDER[status],
                    "message": message, "metrics": metrics}}

    def _execute(self, space: str, rule_id: str) -> None:
        """One execution of a rule on the real Elasticsearch, as the security rule executor does
        (SECSOL/server/lib/detection_engine/rule_types/create_security_rule_type_wrapper.ts): status
        ``running``, then ``succeeded``; ``partial failure`` with Kibana's warning when no index matches
        the rule's patterns; ``failed`` with the error when the search fails (e.g. ES|QL on a node
        without it). Alerts go to ``.alerts-security.alerts-<space>``."""
        with self._lock:
            rule = self._rules.get(space, {}).get(rule_id)
            if rule is None or not rule["enabled"] or not self.es_url:
                return
            rule = orjson.loads(orjson.dumps(rule))
        self._set_summary(space, rule_id, "running", "", {})
        started = time.perf_counter()
        from dac.errors import DacError

        try:
            engine = self._elasticsearch()
            items = self._rule_exception_items(space, rule)
            outcome = engine.run_on_cluster(rule, space, datetime.now(UTC), items=items)
        except Exception as exc:  # any failure of an execution is its ``failed`` status, as in Kibana
            reason = str(exc) if isinstance(exc, DacError) else f"{type(exc).__name__}: {exc}"
            self._set_summary(space, rule_id, "failed",
                              f'An error occurred during rule execution: message: "{reason}"',
                              {"total_search_duration_ms": _ms(started)})
            return
        if outcome.alerts:
            with self._lock:
                self._alert_spaces.add(space)
        metrics = {"total_search_duration_ms": _ms(started), "total_indexing_duration_ms": 0}
        if not outcome.searched and rule["type"] != "esql":
            self._set_summary(
                space, rule_id, "partial failure",
                'This rule is attempting to query data from Elasticsearch indices listed in the "Index '
                'patterns" section of the rule definition, however no index matching: '
                f'{orjson.dumps(rule.get("index", [])).decode()} was found. This warning will continue to '
                "appear until a matching index is created or this rule is disabled.", metrics)
            return
        self._set_summary(space, rule_id, "succeeded", "Rule execution completed successfully", metrics)

    def _delete_alert_indices(self, spaces: set[str]) -> None:
        if not spaces or self._engine is None:
            return
        names = ",".join(f".alerts-security.alerts-{space}" for space in sorted(spaces))
        self._engine.client.options(ignore_status=404).indices.delete(index=names, expand_wildcards="all")
        self._alert_spaces -= spaces

    def _elasticsearch(self) -> Any:
        from dac.engine.elasticsearch import ElasticsearchEngine
        from dac.engine.es_connection import connect

        with self._lock:
            if self._engine is None:
                self._engine = ElasticsearchEngine(connect({"ES_URL": self.es_url or ""}))
            return self._engine


# --------------------------------------------------------------------------- helpers


def _ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)


def _parse_json_body(body: bytes) -> Any:
    try:
        return orjson.loads(body) if body.strip() else None
    except orjson.JSONDecodeError as exc:
        raise _core_error(400, f"Invalid request payload JSON format: {exc}") from None


def _validate_body(props: Any, *, need_identity: bool) -> None:
    """The route's zod validation: Kibana core answers 400 ``[request body]: <problems>``."""
    try:
        rules_model.validate_props(props, need_identity=need_identity)
    except RuleValidationError as exc:
        raise _core_error(400, "[request body]: " + ", ".join(exc.messages)) from None


def _schema_check(problems: list[str]) -> None:
    if problems:
        raise _core_error(400, "[request body]: " + ", ".join(problems))


def _namespace_type(query: dict[str, Any]) -> str:
    value = str(query.get("namespace_type") or "single")
    if value not in ("single", "agnostic"):
        raise _core_error(400, "[request query]: namespace_type: Invalid enum value. "
                               "Expected 'agnostic' | 'single'")
    return value


def _which(query: dict[str, Any], key: str) -> str:
    return f'id: "{query["id"]}"' if query.get("id") is not None else f'{key}: "{query.get(key)}"'


def _int_param(query: dict[str, Any], name: str, default: int, *, minimum: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise _core_error(400, f"[request query]: {name}: Expected number, received nan") from None
    if value < minimum:
        raise _core_error(400, f"[request query]: {name}: Number must be greater than or equal to {minimum}")
    return value


def _bool_param(query: dict[str, Any], name: str) -> bool:
    raw = query.get(name)
    if raw is None:
        return False
    if raw not in ("true", "false"):
        raise _core_error(400, f"[request query]: {name}: Invalid enum value. Expected 'true' | 'false'")
    return raw == "true"


def _import_error(rule_id: str, status: int, message: str) -> dict[str, Any]:
    """createBulkErrorObject (SECSOL/server/lib/detection_engine/routes/utils.ts)."""
    return {"rule_id": rule_id, "error": {"status_code": status, "message": message}}


def _add_bulk_error(errors: list[dict[str, Any]], message: str, rule: dict[str, Any]) -> None:
    """normalizeErrorResponse: errors grouped by message, each with its rules."""
    for error in errors:
        if error["message"] == message:
            error["rules"].append(rule)
            return
    errors.append({"message": message, "status_code": 500, "rules": [rule]})


def _multipart_file(content_type: str, body: bytes) -> tuple[str, bytes]:
    """The ``file`` part of a multipart/form-data body: (filename, content)."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if "multipart/form-data" not in content_type or not match:
        raise _core_error(415, "Unsupported Media Type")
    delimiter = b"--" + match.group(1).encode("latin-1")
    for part in body.split(delimiter)[1:]:
        if part.startswith(b"--"):
            break
        head, _, content = part.partition(b"\r\n\r\n")
        disposition = head.decode("utf-8", "replace")
        if re.search(r'name="file"', disposition):
            name = re.search(r'filename="([^"]*)"', disposition)
            if content.endswith(b"\r\n"):
                content = content[:-2]
            return (name.group(1) if name else ""), content
    raise _core_error(400, "[request body.file]: expected value of type [Stream] but got [undefined]")


def _sort_key(rule: dict[str, Any], path: str) -> tuple[bool, Any]:
    value: Any = rule
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return (value is None, value if isinstance(value, int | float) else str(value))


# _find ``filter``: KQL over the rule saved object's attributes. The stand-in evaluates the KQL AST
# (the project's own parser) on these attribute names, with keyword semantics (exact values, ``*``
# wildcards) except ``name``, a text field where a value matches a whole word (case-insensitive).
_FILTER_ATTRIBUTES: dict[str, Callable[[dict[str, Any]], Any]] = {
    "name": lambda r: r.get("name"),
    "enabled": lambda r: r.get("enabled"),
    "tags": lambda r: r.get("tags", []),
    "createdBy": lambda r: r.get("created_by"),
    "updatedBy": lambda r: r.get("updated_by"),
    "params.ruleId": lambda r: r.get("rule_id"),
    "params.type": lambda r: r.get("type"),
    "params.immutable": lambda r: r.get("immutable"),
    "params.version": lambda r: r.get("version"),
    "schedule.interval": lambda r: r.get("interval"),
    "alertTypeId": lambda r: {"query": "siem.queryRule", "eql": "siem.eqlRule", "esql": "siem.esqlRule",
                              "threshold": "siem.thresholdRule", "new_terms": "siem.newTermsRule"}.get(
                                  r.get("type")),
}


def _find_filter(text: Any) -> Callable[[dict[str, Any]], bool]:
    if not text:
        return lambda rule: True
    from dac.errors import DacError
    from dac.query import kql

    try:
        tree = kql.parse_kql(str(text))
    except DacError as exc:
        raise _siem_error(400, f"Invalid filter: {exc}") from None

    def value_matches(field_name: str, actual: Any, wanted: kql.Value) -> bool:
        values = actual if isinstance(actual, list) else [actual]
        for value in values:
            if value is None:
                continue
            if isinstance(wanted.text, bool) or isinstance(value, bool):
                if str(value).lower() == str(wanted.text).lower():
                    return True
                continue
            text_value = str(value)
            if wanted.wildcard is not None:
                pattern = ".*".join(re.escape(p) for p in wanted.wildcard)
                if re.fullmatch(pattern, text_value, re.IGNORECASE if field_name == "name" else 0):
                    return True
            elif field_name == "name":
                words = re.findall(r"\w+", text_value.lower())
                target = re.findall(r"\w+", str(wanted.text).lower())
                if target and any(words[i:i + len(target)] == target for i in range(len(words))):
                    return True
            elif text_value == str(wanted.text):
                return True
        return False

    def evaluate(node: Any, rule: dict[str, Any]) -> bool:
        if isinstance(node, kql.MatchAll):
            return True
        if isinstance(node, kql.And):
            return all(evaluate(c, rule) for c in node.children)
        if isinstance(node, kql.Or):
            return any(evaluate(c, rule) for c in node.children)
        if isinstance(node, kql.Not):
            return not evaluate(node.child, rule)
        if isinstance(node, kql.Is | kql.Exists):
            name = node.field.name if node.field is not None else None
            if name is None:
                raise _siem_error(400, "Invalid filter: free text is not supported on rules")
            attribute = name.removeprefix("alert.attributes.")
            getter = _FILTER_ATTRIBUTES.get(attribute)
            if getter is None:
                raise _siem_error(400, f"Invalid filter: the stand-in does not index {name}")
            if isinstance(node, kql.Exists):
                return getter(rule) not in (None, [])
            return value_matches(attribute, getter(rule), node.value)
        raise _siem_error(400, f"Invalid filter: the stand-in does not support {type(node).__name__}")

    return lambda rule: evaluate(tree, rule)


# --------------------------------------------------------------------------- HTTP plumbing


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    standin: KibanaStandIn


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Kibana's server speaks
    server: _Server

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _handle(self) -> None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            body = self._read_chunked()
        else:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
        self.server.standin._serve(self, body)

    def _read_chunked(self) -> bytes:
        """A ``Transfer-Encoding: chunked`` body (hapi accepts both framings)."""
        chunks = []
        while True:
            size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    def send(self, response: _Response) -> None:
        self.send_response(response.status)
        if response.status != 204:
            self.send_header("Content-Type", response.content_type)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if response.body:
            self.wfile.write(response.body)

    def drop_connection(self) -> None:
        """Close the socket without an answer: the client sees a connection reset / remote disconnect."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def log_message(self, format: str, *args: Any) -> None:  # no access log on stderr
        return
