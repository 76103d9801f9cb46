"""The Elasticsearch plumbing that needs no server: pins, compose file, connection resolution,
index-pattern resolution and query rewriting of the Elasticsearch engine."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from dac.engine import es_connection
from dac.engine.elasticsearch import (
    RunIndices,
    _rewrite_from,
    _window,
    matching_indices,
    server_mappings,
)
from dac.engine.es_connection import Capabilities, connect, read_dotenv, redact_url
from dac.errors import BackendError, RuleError
from dac.mapping import IndexMapping

ROOT = Path(__file__).resolve().parents[2]


def es_local_version() -> str:
    match = re.search(r"^ES_VERSION=(\S+)$", (ROOT / "scripts/es-local").read_text(), re.MULTILINE)
    assert match, "scripts/es-local must pin ES_VERSION"
    return match.group(1)


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_images_pin_the_es_local_version():
    version = es_local_version()
    assert re.fullmatch(r"9\.\d+\.\d+", version)
    images = {name: service["image"] for name, service in compose()["services"].items()}
    assert images == {
        "elasticsearch": f"docker.elastic.co/elasticsearch/elasticsearch:{version}",
        "kibana-setup": f"docker.elastic.co/elasticsearch/elasticsearch:{version}",
        "kibana": f"docker.elastic.co/kibana/kibana:{version}",
    }


def test_compose_every_variable_has_an_env_example_entry():
    text = (ROOT / "docker-compose.yml").read_text()
    used = set(re.findall(r"(?<!\$)\$\{([A-Z_]+)", text))
    example = read_dotenv(ROOT / ".env.example")
    assert used == set(example)


def test_compose_services_are_healthchecked_secured_and_persistent():
    services = compose()["services"]
    es, kibana, setup = services["elasticsearch"], services["kibana"], services["kibana-setup"]
    assert es["environment"]["xpack.security.enabled"] == "true"
    assert es["environment"]["discovery.type"] == "single-node"
    assert "healthcheck" in es and "healthcheck" in kibana
    assert setup["depends_on"] == {"elasticsearch": {"condition": "service_healthy"}}
    # `up --wait` accepts the one-shot setup only when a running service depends on its completion.
    assert kibana["depends_on"] == {"kibana-setup": {"condition": "service_completed_successfully"}}
    assert kibana["environment"]["ELASTICSEARCH_USERNAME"] == "kibana_system"
    assert "XPACK_ENCRYPTEDSAVEDOBJECTS_ENCRYPTIONKEY" in kibana["environment"]
    assert all(port.startswith("127.0.0.1:") for s in (es, kibana) for port in s["ports"])
    assert set(compose()["volumes"]) == {"esdata", "kibanadata"}


def test_read_dotenv_handles_comments_blanks_and_quotes(tmp_path):
    env = tmp_path / ".env"
    env.write_text('# comment\n\nA=1\nB="two words"\nC=\'x=y\'\nnot a line\n')
    assert read_dotenv(env) == {"A": "1", "B": "two words", "C": "x=y"}
    assert read_dotenv(tmp_path / "missing") == {}


def test_redact_url_drops_credentials_only():
    assert redact_url("https://elastic:s3cret@es.example:9243/base") == "https://es.example:9243/base"
    assert redact_url("http://127.0.0.1:9200") == "http://127.0.0.1:9200"


def test_redact_url_is_total_so_a_malformed_url_can_be_named():
    assert redact_url("http://u:pw@h:99999/x") == "http://h:99999/x"
    assert redact_url("http://u:pw@[::1") == "http://[::1"
    assert redact_url("https://kb/a?b=@c") == "https://kb/a?b=@c"


@pytest.mark.parametrize("url", ["http://u:pw-secret@h:99999", "http://u:pw-secret@[::1"])
def test_a_malformed_es_url_is_one_line_without_secrets(url):
    with pytest.raises(BackendError, match=r"^ES_URL http://(h:99999|\[::1): ") as caught:
        connect({"ES_URL": url})
    assert "pw-secret" not in str(caught.value) and "\n" not in str(caught.value)


def test_connect_without_any_source_says_how_to_get_one(monkeypatch):
    monkeypatch.setattr(es_connection, "docker_available", lambda: False)
    with pytest.raises(BackendError, match=r"ES_URL.*make es-local.*not integration"):
        connect({"ES_LOCAL_PORT": "1"})  # nothing listens on port 1


def test_connect_rejects_a_bad_verify_setting():
    with pytest.raises(BackendError, match="ES_VERIFY_CERTS must be"):
        connect({"ES_URL": "https://127.0.0.1:1", "ES_VERIFY_CERTS": "no"})


def test_connect_unreachable_url_is_one_line_without_secrets(capsys):
    env = {"ES_URL": "http://127.0.0.1:1", "ES_USERNAME": "u", "ES_PASSWORD": "pw-secret-123"}
    with pytest.raises(BackendError) as caught:
        connect(env)
    assert "127.0.0.1:1" in str(caught.value) and "pw-secret-123" not in str(caught.value)
    assert "\n" not in str(caught.value)


def test_verification_off_is_announced(capsys):
    with pytest.raises(BackendError):
        connect({"ES_URL": "https://127.0.0.1:1", "ES_VERIFY_CERTS": "false"})
    assert "verification is OFF" in capsys.readouterr().err


def test_capabilities_come_from_installed_modules():
    bare = Capabilities(frozenset({"x-pack-core", "x-pack-security", "transport-netty4"}))
    assert (bare.esql, bare.eql, bare.data_streams) == (False, False, False)
    full = Capabilities(frozenset({"x-pack-esql", "x-pack-eql", "data-streams"}))
    assert (full.esql, full.eql, full.data_streams) == (True, True, True)


def test_index_expressions_resolve_like_elasticsearch():
    names = ["logs-kubernetes.audit_logs-default", "logs-kubernetes.audit_logs-prod",
             "logs-system.auth-default"]
    assert matching_indices(["logs-kubernetes.audit_logs-*"], names) == names[:2]
    assert matching_indices(["logs-*", "-*-prod"], names) == [names[0], names[2]]
    # `?` and `[` are literal characters in index expressions, not wildcards
    assert matching_indices(["logs-kubernetes.audit_logs-defaul?"], names) == []
    assert matching_indices(["logs-system.auth-default"], names) == [names[2]]


def run_with(targets: dict[str, str]) -> RunIndices:
    run = RunIndices("dacns")
    run.targets = targets
    return run


def test_esql_from_points_at_the_run_indices_and_keeps_metadata():
    run = run_with({"logs-kubernetes.audit_logs-default": "logs-kubernetes.audit_logs-default-dacns"})
    query = "FROM logs-kubernetes.audit_logs-* METADATA _id, _index\n| WHERE a == 1"
    assert _rewrite_from(query, run) == (
        "FROM logs-kubernetes.audit_logs-default-dacns METADATA _id, _index\n| WHERE a == 1"
    )
    assert _rewrite_from("from logs-other-*, logs-k* | LIMIT 1", run) == (
        "from logs-kubernetes.audit_logs-default-dacns | LIMIT 1"
    )
    assert _rewrite_from("FROM logs-other-* | LIMIT 1", run) is None


def test_backing_indices_map_back_to_the_source_index():
    run = run_with({"logs-a-default": "logs-a-default-dacns"})
    assert run.original_index(".ds-logs-a-default-dacns-2026.01.01-000001") == "logs-a-default"
    assert run.original_index("logs-a-default-dacns") == "logs-a-default"


def test_window_is_kibanas_time_range_filter():
    from datetime import UTC, datetime

    rule = {"rule_id": "r", "from": "now-6m", "to": "now"}
    now = datetime(2026, 1, 1, 0, 10, 0, 123456, tzinfo=UTC)
    assert _window(rule, now) == {"range": {"@timestamp": {
        "gte": "2026-01-01T00:04:00.123Z", "lte": "2026-01-01T00:10:00.123Z",
        "format": "strict_date_optional_time"}}}
    assert _window(rule, None) is None
    with pytest.raises(RuleError, match="from"):
        _window({"rule_id": "r", "from": "now-1M"}, now)


def test_server_mappings_replace_only_module_types_the_server_lacks():
    mapping = IndexMapping("t", {"dynamic": False, "properties": {
        "message": {"type": "match_only_text"},
        "data_stream": {"properties": {"dataset": {"type": "constant_keyword"}}},
        "user": {"properties": {"name": {"type": "keyword",
                                         "fields": {"text": {"type": "match_only_text"}}}}},
    }})
    bare = server_mappings(mapping, frozenset({"x-pack-core"}))
    assert bare["properties"]["message"] == {"type": "text"}
    assert bare["properties"]["data_stream"]["properties"]["dataset"] == {"type": "keyword"}
    assert bare["properties"]["user"]["properties"]["name"]["fields"]["text"] == {"type": "text"}
    assert server_mappings(mapping, frozenset({"mapper-extras", "constant-keyword"})) == mapping.body
