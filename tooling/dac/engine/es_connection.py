"""Finding the Elasticsearch to run against, and what that server can do.

Sources, first match wins: ``ES_URL`` (an existing cluster), a Docker engine
that answers (``docker compose up`` of the repository's docker-compose.yml),
a node already started by ``scripts/es-local``. Credentials come only from the
environment (for Docker: the ``.env`` file compose itself reads) and never
appear in descriptions or errors.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import elastic_transport
from elasticsearch import ApiError, Elasticsearch

from dac.errors import BackendError
from dac.urls import redact_url

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_LOCAL_PORT = 9200
DOCKER_ES_URL = "http://127.0.0.1:{port}"
COMPOSE_WAIT_SECONDS = 300
REQUEST_TIMEOUT_SECONDS = 30

HOW_TO = (
    "no Elasticsearch found: set ES_URL (with ES_API_KEY, or ES_USERNAME and ES_PASSWORD), "
    "or run a Docker engine (the tests then start docker-compose.yml; see `make up`), "
    "or start a local node with `make es-local`; `pytest -m 'not integration'` leaves these tests out"
)

# Module names as the distributions ship them (elasticsearch: x-pack/plugin/esql/build.gradle
# `name = 'x-pack-esql'`, x-pack/plugin/eql/build.gradle, modules/data-streams).
ESQL_MODULE = "x-pack-esql"
EQL_MODULE = "x-pack-eql"
DATA_STREAMS_MODULE = "data-streams"


@dataclass(frozen=True)
class Capabilities:
    """What the server can execute; probed from its installed modules, never guessed from a version."""

    modules: frozenset[str]  # modules and plugins installed on every node

    @property
    def esql(self) -> bool:
        return ESQL_MODULE in self.modules

    @property
    def eql(self) -> bool:
        return EQL_MODULE in self.modules

    @property
    def data_streams(self) -> bool:
        return DATA_STREAMS_MODULE in self.modules


@dataclass
class Connection:
    """A live client, a secret-free description of where it points, and the server's capabilities."""

    client: Elasticsearch
    description: str
    capabilities: Capabilities


def connect(env: Mapping[str, str] | None = None) -> Connection:
    """The Elasticsearch to use (see the module docstring); BackendError saying how to get one otherwise."""
    env = os.environ if env is None else env
    if env.get("ES_URL"):
        client, where = _client_from_env(env)
        return _checked(client, f"{where} (ES_URL)")
    if docker_available():
        client, where = _start_compose(env)
        return _checked(client, f"{where} (docker compose)")
    port = int(env.get("ES_LOCAL_PORT", DEFAULT_LOCAL_PORT))
    url = f"http://127.0.0.1:{port}"
    client = Elasticsearch(url, request_timeout=REQUEST_TIMEOUT_SECONDS)
    if _answers(client):
        return _checked(client, f"{url} (scripts/es-local)")
    raise BackendError(HOW_TO)


def _client_from_env(env: Mapping[str, str]) -> tuple[Elasticsearch, str]:
    url = env["ES_URL"]
    verify = env.get("ES_VERIFY_CERTS", "true").lower()
    if verify not in ("true", "false"):
        raise BackendError(f"ES_VERIFY_CERTS must be 'true' or 'false', not {verify!r}")
    options: dict[str, Any] = {"request_timeout": REQUEST_TIMEOUT_SECONDS}
    if env.get("ES_API_KEY"):
        options["api_key"] = env["ES_API_KEY"]
    elif env.get("ES_USERNAME"):
        options["basic_auth"] = (env["ES_USERNAME"], env.get("ES_PASSWORD", ""))
    if env.get("ES_CA_CERT"):
        if not Path(env["ES_CA_CERT"]).is_file():
            raise BackendError(f"ES_CA_CERT: no such file {env['ES_CA_CERT']}")
        options["ca_certs"] = env["ES_CA_CERT"]
    if verify == "false":
        print("warning: ES_VERIFY_CERTS=false: TLS certificate verification is OFF", file=sys.stderr)
        options["verify_certs"] = False
        options["ssl_show_warn"] = False
    where = redact_url(url)
    try:
        return Elasticsearch(url, **options), where
    except ValueError as exc:  # the client rejects malformed URLs this way
        # elasticsearch-py quotes the URL it could not parse, user:password and all
        raise BackendError(f"ES_URL {where}: {str(exc).replace(url, where)}") from None


def docker_available() -> bool:
    """Whether a Docker engine answers a ping within a few seconds."""
    try:
        import docker

        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # no socket, no permission, engine down: all mean "no Docker"
        return False


def _start_compose(env: Mapping[str, str]) -> tuple[Elasticsearch, str]:
    """``docker compose up -d --wait`` the repository's stack; the password comes from .env like compose's."""
    compose_file = REPO_ROOT / "docker-compose.yml"
    dotenv = read_dotenv(REPO_ROOT / ".env")
    password = env.get("ELASTIC_PASSWORD") or dotenv.get("ELASTIC_PASSWORD")
    if not compose_file.is_file() or not password:
        raise BackendError(
            f"Docker is available but {compose_file.name} or ELASTIC_PASSWORD is missing: "
            "copy .env.example to .env and set its passwords"
        )
    command = ["docker", "compose", "up", "-d", "--wait", "--wait-timeout", str(COMPOSE_WAIT_SECONDS)]
    try:
        done = subprocess.run(
            command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=COMPOSE_WAIT_SECONDS + 60
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BackendError(f"`docker compose up` failed: {exc}") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise BackendError(f"`docker compose up` failed (exit {done.returncode}): {last}")
    port = env.get("ES_PORT") or dotenv.get("ES_PORT") or str(DEFAULT_LOCAL_PORT)
    url = DOCKER_ES_URL.format(port=port)
    client = Elasticsearch(url, basic_auth=("elastic", password), request_timeout=REQUEST_TIMEOUT_SECONDS)
    return client, url


def read_dotenv(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines of a compose .env file (comments, blanks and optional quotes handled)."""
    if not path.is_file():
        return {}
    values = {}
    for line in path.read_text("utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def _answers(client: Elasticsearch) -> bool:
    try:
        client.options(request_timeout=2).cluster.health()
    except (ApiError, elastic_transport.TransportError):
        return False
    return True


def _checked(client: Elasticsearch, where: str) -> Connection:
    """Confirm the server answers and probe what it can run."""
    try:
        client.cluster.health(wait_for_status="yellow", timeout="30s")
        info = client.nodes.info(
            metric="plugins", filter_path="nodes.*.version,nodes.*.modules.name,nodes.*.plugins.name"
        )
    except (ApiError, elastic_transport.TransportError) as exc:
        raise backend_error(exc, f"Elasticsearch at {where}") from None
    nodes = list(info.get("nodes", {}).values())
    if not nodes:
        raise BackendError(f"Elasticsearch at {where}: node info lists no nodes")

    installed = [{m["name"] for m in node.get("modules", []) + node.get("plugins", [])} for node in nodes]
    capabilities = Capabilities(frozenset.intersection(*map(frozenset, installed)))
    versions = sorted({node.get("version", "?") for node in nodes})
    return Connection(client, f"Elasticsearch {'/'.join(versions)} at {where}", capabilities)


def backend_error(exc: Exception, doing: str) -> BackendError:
    """A one-line BackendError from a client exception: status and the server's reason."""
    if isinstance(exc, ApiError):
        error = exc.body.get("error") if isinstance(exc.body, dict) else None
        if isinstance(error, dict):
            causes = error.get("root_cause") or [error]
            reason = f"{causes[0].get('type')}: {causes[0].get('reason')}"
        else:
            reason = str(error or exc.message)
        return BackendError(f"{doing}: HTTP {exc.meta.status} {reason}")
    if isinstance(exc, elastic_transport.TransportError):
        return BackendError(f"{doing}: {type(exc).__name__}: {exc.message}")
    return BackendError(f"{doing}: {exc}")
