"""Integration tests run on a real Elasticsearch: ES_URL, else Docker compose, else a node started
by ``scripts/es-local`` (see dac.engine.es_connection). Without one they fail, saying how to get
one; ``pytest -m "not integration"`` leaves them out."""

from __future__ import annotations

from pathlib import Path

import pytest

from dac.engine.elasticsearch import ElasticsearchEngine
from dac.engine.es_connection import Connection, connect
from dac.errors import BackendError

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/integration is an integration test."""
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def es() -> Connection:
    """The one Elasticsearch connection of the session."""
    try:
        return connect()
    except BackendError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def es_engine(es: Connection) -> ElasticsearchEngine:
    """An engine that creates and removes its own namespace on every run."""
    return ElasticsearchEngine(es)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--require-all-rules",
        action="store_true",
        help="fail, instead of skip, a rule the server cannot execute (use on a full distribution)",
    )
