"""Which Kibana the deploy tests talk to, first match wins (like the Elasticsearch tests):

1. ``KIBANA_URL`` set: that real Kibana, with ``KIBANA_API_KEY`` or ``KIBANA_USERNAME`` and
   ``KIBANA_PASSWORD``, ``KIBANA_CA_CERT``, and ``KIBANA_VERIFY_CERTS=false`` to turn TLS verification
   off (never off by default).
2. The repository's docker-compose stack (``make up``): a Kibana answering ``GET /api/status`` on
   127.0.0.1:``KIBANA_PORT`` (5601), user ``elastic`` with ``ELASTIC_PASSWORD`` from the environment
   or ``.env``.
3. Otherwise a fresh ``KibanaStandIn`` (rules executed on ``es_url`` when given).

``open_kibana_target(es_url)`` yields a ``KibanaTarget``; the helpers on it go through the HTTP API,
so the same test runs on both kinds. Spaces it created are deleted at exit.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from dac.engine.es_connection import REPO_ROOT, read_dotenv, redact_url
from tests.kibana_standin.server import API_VERSION, KibanaStandIn

DEFAULT_COMPOSE_PORT = "5601"
REQUEST_TIMEOUT_SECONDS = 30
OPENED: list[str] = []
"""``kind`` of every target opened in this process, for the test session's summary (plugin.py)."""


class KibanaTargetError(Exception):
    """The configured Kibana cannot be used (bad settings, or it answered an unexpected error)."""


@dataclass
class KibanaTarget:
    """A Kibana for one test: a real one or the stand-in. ``env`` holds the ``KIBANA_*`` variables a
    ``dac`` command needs to reach it (secrets included); ``api_key`` is the API key secret, if any,
    and ``secrets`` every secret value, so tests can assert none appears in output."""

    # Secrets stay out of repr: pytest prints fixture values in a failing test's report (the CI log).
    # ``url`` too, since a KIBANA_URL may carry ``user:password@``; ``kind`` names the redacted URL.
    url: str = field(repr=False)
    env: dict[str, str] = field(repr=False)
    api_key: str | None = field(repr=False)
    kind: str
    standin: KibanaStandIn | None = None
    secrets: list[str] = field(default_factory=list, repr=False)
    _authorization: str | None = field(default=None, repr=False)
    _ssl: ssl.SSLContext | None = field(default=None, repr=False)
    _spaces: list[str] = field(default_factory=list)

    # -- raw HTTP ---------------------------------------------------------------------------------

    def request(self, method: str, path: str, *, space: str | None = None, body: Any = None,
                query: Mapping[str, Any] | None = None, data: bytes | None = None,
                content_type: str | None = None, authorization: str | None = "configured",
                xsrf: bool = True) -> tuple[int, Any]:
        """One API call; returns (status, parsed JSON body or text). Errors are answers, not raised.

        ``body`` is sent as JSON, ``data`` as is (with ``content_type``); ``authorization=None`` sends
        no credentials and any other string replaces them; ``xsrf=False`` leaves out ``kbn-xsrf``.
        """
        prefix = f"/s/{space}" if space and space != "default" else ""
        url = f"{self.url}{prefix}{path}" + (f"?{urlencode(query, doseq=True)}" if query else "")
        headers = {"elastic-api-version": API_VERSION}
        if xsrf:
            headers["kbn-xsrf"] = "true"
        auth = self._authorization if authorization == "configured" else authorization
        if auth:
            headers["Authorization"] = auth
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            content_type = "application/json"
        if content_type:
            headers["Content-Type"] = content_type
        call = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(call, timeout=REQUEST_TIMEOUT_SECONDS, context=self._ssl) as answer:
                status, raw, kind = answer.status, answer.read(), answer.headers.get("Content-Type", "")
        except urllib.error.HTTPError as error:
            status, raw, kind = error.code, error.read(), error.headers.get("Content-Type", "")
        text = raw.decode("utf-8", "replace")
        if not text or not kind.startswith("application/json"):
            return status, text or None
        return status, json.loads(text)

    def _expect(self, method: str, path: str, wanted: tuple[int, ...], **kwargs: Any) -> Any:
        status, body = self.request(method, path, **kwargs)
        if status not in wanted:
            raise KibanaTargetError(f"{self.kind}: {method} {path} answered {status}: {body}")
        return body

    # -- helpers for tests ------------------------------------------------------------------------

    def version(self) -> str:
        return self._expect("GET", "/api/status", (200,))["version"]["number"]

    def new_space(self) -> str:
        """A new, uniquely named space (``POST /api/spaces/space``), deleted when the target closes."""
        space_id = f"dac-test-{uuid.uuid4().hex[:10]}"
        self._expect("POST", "/api/spaces/space", (200,), body={"id": space_id, "name": space_id})
        self._spaces.append(space_id)
        return space_id

    def edit_out_of_band(self, space: str, rule_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Change a rule as the Kibana UI's rule editor does: a PATCH of the changed fields."""
        return self._expect("PATCH", "/api/detection_engine/rules", (200,), space=space,
                            body={"rule_id": rule_id, **changes})

    def create_unmanaged_rule(self, space: str, body: dict[str, Any]) -> dict[str, Any]:
        """A rule made outside the repository (as in the UI): ``POST /api/detection_engine/rules``."""
        return self._expect("POST", "/api/detection_engine/rules", (200,), space=space, body=body)

    def get_rule(self, space: str, rule_id: str) -> dict[str, Any] | None:
        status, body = self.request("GET", "/api/detection_engine/rules", space=space,
                                    query={"rule_id": rule_id})
        if status == 404:
            return None
        if status != 200:
            raise KibanaTargetError(f"{self.kind}: reading rule {rule_id} answered {status}: {body}")
        return body

    def exception_items(self, space: str, list_id: str,
                        namespace_type: str = "single") -> list[dict[str, Any]]:
        """Every item of one exception list (``GET /api/exception_lists/items/_find``); [] if no list."""
        found: list[dict[str, Any]] = []
        page = 1
        while True:
            status, body = self.request("GET", "/api/exception_lists/items/_find", space=space, query={
                "list_id": list_id, "namespace_type": namespace_type, "page": page, "per_page": 100})
            if status == 404:
                return []
            if status != 200:
                raise KibanaTargetError(f"{self.kind}: finding items of {list_id} answered {status}: {body}")
            found += body["data"]
            if not body["data"] or len(found) >= body["total"]:
                return found
            page += 1

    def add_exception_item(self, space: str, body: dict[str, Any]) -> dict[str, Any]:
        """An item added as the Kibana UI adds one (``POST /api/exception_lists/items``)."""
        return self._expect("POST", "/api/exception_lists/items", (200,), space=space, body=body)

    def edit_exception_item(self, space: str, item_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Edit an item as the UI's exception flyout does: read it, PUT it back with the changes."""
        item = self._expect("GET", "/api/exception_lists/items", (200,), space=space,
                            query={"item_id": item_id, "namespace_type": "single"})
        keep = ("item_id", "namespace_type", "name", "description", "type", "entries", "os_types", "tags",
                "meta", "expire_time", "comments", "_version")
        body = {k: item[k] for k in keep if k in item}
        return self._expect("PUT", "/api/exception_lists/items", (200,), space=space,
                            body={**body, **changes})

    def find_rules(self, space: str) -> list[dict[str, Any]]:
        """Every rule of the space, through ``_find`` page by page."""
        found: list[dict[str, Any]] = []
        page = 1
        while True:
            body = self._expect("GET", "/api/detection_engine/rules/_find", (200,), space=space,
                                query={"page": page, "per_page": 500})
            found += body["data"]
            if not body["data"] or len(found) >= body["total"]:
                return found
            page += 1

    def close(self) -> None:
        for space_id in self._spaces:
            self.request("DELETE", f"/api/spaces/space/{space_id}")
        self._spaces.clear()
        if self.standin is not None:
            self.standin.stop()


def configured_kibana(env: Mapping[str, str] | None = None) -> str | None:
    """A description of the real Kibana the environment points at, or None (then: the stand-in)."""
    env = os.environ if env is None else env
    if env.get("KIBANA_URL"):
        return f"real Kibana at {redact_url(env['KIBANA_URL'])} (KIBANA_URL)"
    url = _compose_url(env)
    if _answers(url):
        return f"real Kibana at {url} (docker compose)"
    return None


@contextmanager
def open_kibana_target(es_url: str | None, env: Mapping[str, str] | None = None) -> Iterator[KibanaTarget]:
    """The Kibana for a test (see the module docstring); closed, and its spaces deleted, at exit."""
    env = os.environ if env is None else env
    if env.get("KIBANA_URL"):
        target = _from_env(env)
    elif _answers(_compose_url(env)):
        target = _from_compose(env)
    else:
        standin = KibanaStandIn(es_url=es_url)
        url = standin.start()
        key = standin.api_key or ""
        target = KibanaTarget(url=url, env={"KIBANA_URL": url, "KIBANA_API_KEY": key}, api_key=key,
                              kind="stand-in", standin=standin, secrets=[key],
                              _authorization=f"ApiKey {key}")
    OPENED.append(target.kind)
    try:
        yield target
    finally:
        target.close()


def _from_env(env: Mapping[str, str]) -> KibanaTarget:
    url = env["KIBANA_URL"].rstrip("/")
    settings = {k: v for k, v in env.items() if k.startswith("KIBANA_")}
    verify = env.get("KIBANA_VERIFY_CERTS", "true").lower()
    if verify not in ("true", "false"):
        raise KibanaTargetError(f"KIBANA_VERIFY_CERTS must be 'true' or 'false', not {verify!r}")
    context: ssl.SSLContext | None = None
    if url.startswith("https:"):
        context = ssl.create_default_context(cafile=env.get("KIBANA_CA_CERT") or None)
        if verify == "false":
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
    api_key = env.get("KIBANA_API_KEY") or None
    if api_key:
        authorization, secrets = f"ApiKey {api_key}", [api_key]
    elif env.get("KIBANA_USERNAME"):
        password = env.get("KIBANA_PASSWORD", "")
        token = base64.b64encode(f"{env['KIBANA_USERNAME']}:{password}".encode()).decode()
        authorization, secrets = f"Basic {token}", [password]
    else:
        raise KibanaTargetError("KIBANA_URL is set without KIBANA_API_KEY or KIBANA_USERNAME/KIBANA_PASSWORD")
    return KibanaTarget(url=url, env=settings, api_key=api_key, kind=f"real Kibana at {redact_url(url)}",
                        secrets=[s for s in secrets if s], _authorization=authorization, _ssl=context)


def _compose_url(env: Mapping[str, str]) -> str:
    dotenv = read_dotenv(REPO_ROOT / ".env")
    port = env.get("KIBANA_PORT") or dotenv.get("KIBANA_PORT") or DEFAULT_COMPOSE_PORT
    return f"http://127.0.0.1:{port}"


def _from_compose(env: Mapping[str, str]) -> KibanaTarget:
    password = env.get("ELASTIC_PASSWORD") or read_dotenv(REPO_ROOT / ".env").get("ELASTIC_PASSWORD")
    if not password:
        raise KibanaTargetError("a docker-compose Kibana answers but ELASTIC_PASSWORD is not in the "
                                "environment or .env")
    url = _compose_url(env)
    token = base64.b64encode(f"elastic:{password}".encode()).decode()
    return KibanaTarget(
        url=url, env={"KIBANA_URL": url, "KIBANA_USERNAME": "elastic", "KIBANA_PASSWORD": password},
        api_key=None, kind=f"real Kibana at {url}", secrets=[password], _authorization=f"Basic {token}",
    )


def _answers(url: str) -> bool:
    """Whether something answers HTTP ``GET /api/status`` at ``url`` within 2 s (any status counts)."""
    try:
        with urllib.request.urlopen(f"{url}/api/status", timeout=2):
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False
