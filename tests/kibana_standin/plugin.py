"""pytest plugin (registered in tests/conftest.py): says which Kibana the session's tests used, and
provides the ``kibana_target`` fixture.

- The header names the Kibana the environment selects (``KIBANA_URL``, the docker-compose stack, or the
  stand-in); the summary lists what the tests actually opened.
- ``kibana_target``: a fresh ``KibanaTarget`` per test (``tests/kibana_standin/target.py``); on the
  stand-in, rules execute on the Elasticsearch of ``ES_URL`` (or a local node on 127.0.0.1:9200 that
  answers), so tests relying on execution should carry the ``integration`` marker.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator

import pytest

from tests.kibana_standin import target as kibana_target_module
from tests.kibana_standin.target import KibanaTarget, configured_kibana, open_kibana_target

STANDIN = "the Kibana stand-in (tests/kibana_standin; set KIBANA_URL or run `make up` for a real Kibana)"


def pytest_report_header(config: pytest.Config) -> str:
    return f"kibana: {configured_kibana() or STANDIN}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    opened = Counter(kibana_target_module.OPENED)
    if not opened:
        return
    terminalreporter.section("Kibana")
    for kind, count in opened.items():
        terminalreporter.write_line(f"{count} test(s) ran against {kind}")


def elasticsearch_url() -> str | None:
    """Where the stand-in executes rules: ``ES_URL``, else a node answering on 127.0.0.1:ES_LOCAL_PORT."""
    if os.environ.get("ES_URL"):
        return os.environ["ES_URL"]
    url = f"http://127.0.0.1:{os.environ.get('ES_LOCAL_PORT', '9200')}"
    try:
        with urllib.request.urlopen(f"{url}/_cluster/health", timeout=2):
            return url
    except urllib.error.HTTPError:
        return None  # something answers but refuses (e.g. needs credentials): not ours to use
    except OSError:
        return None


@pytest.fixture
def kibana_target() -> Iterator[KibanaTarget]:
    """A Kibana for this test: real when configured, else a fresh stand-in (closed after the test)."""
    with open_kibana_target(elasticsearch_url()) as opened:
        yield opened
