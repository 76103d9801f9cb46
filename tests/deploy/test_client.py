"""The Kibana client's own behaviour: retries (which, how often, how long), timeouts, secrets, TLS.

These test the client, so they always run on the stand-in, which can inject the faults.
"""

from __future__ import annotations

import base64
import socket
from collections.abc import Iterator

import pytest
import urllib3

from dac.errors import BackendError
from dac.kibana.client import KibanaClient, Settings, _transport_reason, display_url
from tests.kibana_standin.server import Fault, KibanaStandIn


@pytest.fixture
def standin() -> Iterator[KibanaStandIn]:
    with KibanaStandIn() as kibana:
        yield kibana


def client(kibana: KibanaStandIn, delays: list[float], **settings: float) -> KibanaClient:
    return KibanaClient(Settings(kibana.url, api_key=kibana.api_key, **settings), sleep=delays.append)  # type: ignore[arg-type]


def test_retry_after_is_honoured_and_each_retry_recorded(standin: KibanaStandIn) -> None:
    delays: list[float] = []
    kibana = client(standin, delays)
    standin.inject(Fault.status(429, retry_after="3"), path_contains="_find")
    assert kibana.find_rules("default") == []
    assert delays == [3.0]
    assert kibana.traffic.retries == ["GET /api/detection_engine/rules/_find: HTTP 429, retried after 3.0 s"]


def test_backoff_grows_and_retries_stop_at_the_limit(standin: KibanaStandIn) -> None:
    delays: list[float] = []
    kibana = client(standin, delays, retries=2)
    for _ in range(3):
        standin.inject(Fault.status(503), path_contains="/api/status")
    with pytest.raises(BackendError, match=r"GET /api/status to http://127\.0\.0\.1:\d+: HTTP 503"):
        kibana.version()
    assert len(delays) == 2 and delays[0] <= 0.25 < delays[1] * 2 and delays[1] <= 0.5
    assert kibana.traffic.reads == 3


def test_a_request_not_safe_to_repeat_is_never_retried(standin: KibanaStandIn) -> None:
    delays: list[float] = []
    kibana = client(standin, delays)
    standin.inject(Fault.status(503), path_contains="/api/status")
    with pytest.raises(BackendError, match="HTTP 503"):
        kibana.request("GET", "/api/status", repeatable=False)
    assert delays == [] and kibana.traffic.reads == 1


def test_a_timeout_is_retried_and_the_timeout_configurable(standin: KibanaStandIn) -> None:
    delays: list[float] = []
    kibana = client(standin, delays, timeout=0.3)
    standin.inject(Fault.timeout(1.0), path_contains="/api/status")
    assert kibana.version() == standin.version
    assert kibana.traffic.retries[0].startswith("GET /api/status: timed out, retried after")


def test_client_errors_are_not_retried(standin: KibanaStandIn) -> None:
    delays: list[float] = []
    kibana = KibanaClient(Settings(standin.url, api_key="not-the-key"), sleep=delays.append)
    with pytest.raises(BackendError, match="HTTP 401") as error:
        kibana.find_rules("default")
    assert delays == [] and "not-the-key" not in str(error.value)


def test_an_unknown_space_is_found_out(standin: KibanaStandIn) -> None:
    """Kibana's rules API stores a rule in any space id given; the spaces API knows which exist."""
    kibana = client(standin, [])
    assert kibana.space_exists("default") and not kibana.space_exists("nowhere")


def test_deletes_take_explicit_ids_and_never_more_than_100(standin: KibanaStandIn) -> None:
    kibana = client(standin, [])
    with pytest.raises(ValueError, match="1 to 100 ids"):
        kibana.delete_rules("default", [f"id-{n}" for n in range(101)])
    with pytest.raises(ValueError):
        kibana.delete_rules("default", [])
    assert standin.requests == []


def test_secrets_stay_out_of_repr_urls_and_settings() -> None:
    settings = Settings.from_env("https://user:hunter2@kb.example:5601/base/", {"KIBANA_API_KEY": "s3cret"})
    assert "s3cret" not in repr(settings)
    assert display_url(settings.url) == "https://kb.example:5601/base"
    assert KibanaClient(settings).url == "https://kb.example:5601/base"


def test_tls_verification_is_on_unless_turned_off() -> None:
    assert Settings.from_env("https://kb", {}).verify
    assert not Settings.from_env("https://kb", {"KIBANA_VERIFY_CERTS": "false"}).verify
    with pytest.raises(BackendError, match="KIBANA_TIMEOUT"):
        Settings.from_env("https://kb", {"KIBANA_TIMEOUT": "soon"})


def closed_loopback_port() -> int:
    """A port on 127.0.0.1 nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_refused_connection_is_not_called_a_timeout() -> None:
    """urllib3 2.x: NewConnectionError subclasses ConnectTimeoutError (urllib3/exceptions.py)."""
    kibana = KibanaClient(Settings(f"http://127.0.0.1:{closed_loopback_port()}", retries=0), sleep=[].append)
    with pytest.raises(BackendError) as error:
        kibana.version()
    assert "cannot connect" in str(error.value) and "timed out" not in str(error.value)


def test_a_name_that_does_not_resolve_is_said_so() -> None:
    failure = urllib3.exceptions.NameResolutionError("kb.invalid", None, OSError("not known"))  # type: ignore[arg-type]
    assert _transport_reason(failure) == "cannot resolve host"
    assert _transport_reason(urllib3.exceptions.ReadTimeoutError(None, "/", "read")) == "timed out"  # type: ignore[arg-type]


@pytest.mark.parametrize(("url", "env", "message"), [
    ("http://[::1", {}, r"^Kibana URL http://\[::1: Invalid IPv6 URL$"),
    ("http://u:pw@h:99999", {}, r"^Kibana URL http://h:99999: Port out of range"),
    ("kb.example:5601", {}, r"give http\(s\)://host"),
    ("https://kb?x=1", {}, r"no query or fragment"),
    ("https://kb", {"KIBANA_TIMEOUT": "nan"}, r"^KIBANA_TIMEOUT must be .* above 0, not nan$"),
    ("https://kb", {"KIBANA_TIMEOUT": "-1"}, r"^KIBANA_TIMEOUT must be .* above 0"),
    ("https://kb", {"KIBANA_MAX_RETRIES": "-1"}, r"^KIBANA_MAX_RETRIES must be 0 or more"),
])
def test_bad_settings_are_one_line_errors(url: str, env: dict[str, str], message: str) -> None:
    with pytest.raises(BackendError, match=message) as error:
        Settings.from_env(url, env)
    assert "pw" not in str(error.value)


def test_credentials_in_the_url_move_out_of_it_decoded() -> None:
    settings = Settings.from_env("https://us%40er:p%40ss%3Aword@kb.example:5601/base/", {})
    assert settings.url == "https://kb.example:5601/base" and "p@ss" not in repr(settings)
    assert (settings.username, settings.password) == ("us@er", "p@ss:word")
    token = base64.b64encode(b"us@er:p@ss:word").decode()
    assert KibanaClient(settings)._headers["authorization"] == f"Basic {token}"
    assert Settings.from_env("http://[::1]:5601", {}).url == "http://[::1]:5601"


def test_a_bad_kibana_url_from_the_cli_is_one_line(capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from dac.cli import main

    monkeypatch.setenv("KIBANA_URL", "http://h:99999")
    assert main(["status"]) == 1
    assert capsys.readouterr().err == "dac: Kibana URL http://h:99999: Port out of range 0-65535\n"
