"""deploy.yml: the repository's own file is valid, and mistakes are located one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from dac.deploy.targets import resolve_environment
from dac.errors import DacError
from tests.repository import PROJECT, compile_repository_rules

DEPLOY_YML = PROJECT.detections.parent / "deploy.yml"


def test_the_repository_deploy_file_names_staging_and_production() -> None:
    env = {"KIBANA_URL_STAGING": "https://staging.example:5601", "KIBANA_URL_PRODUCTION": "https://kb.example"}
    staging = resolve_environment("staging", DEPLOY_YML, env)
    assert (staging.url, staging.spaces, dict(staging.overrides)) == (
        "https://staging.example:5601", ("security-staging",), {"enabled": False})
    production = resolve_environment("production", DEPLOY_YML, env)
    assert production.spaces == ("default", "soc-emea")
    rules = compile_repository_rules()
    assert production.select(rules, PROJECT.detections.parent) == rules
    assert DEPLOY_YML.read_text().startswith(
        "# yaml-language-server: $schema=tooling/dac/schema/deploy.schema.json\n")


def test_kibana_url_alone_is_a_one_off_target_for_the_default_space(tmp_path: Path) -> None:
    env = resolve_environment(None, tmp_path / "deploy.yml", {"KIBANA_URL": "http://kb:5601"})
    assert (env.name, env.url, env.spaces) == ("default", "http://kb:5601", ("default",))
    with pytest.raises(DacError, match="set KIBANA_URL"):
        resolve_environment(None, tmp_path / "deploy.yml", {})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("environments:\n  staging:\n    url: https://kb\n    spaces: [Bad Space]\n",
         "deploy.yml:4:14: environments.staging.spaces.0: 'Bad Space' does not match"),
        ("environments:\n  staging:\n    url: https://kb\n    spaces: [a]\n    api_key: secret\n",
         "deploy.yml:5:5: unknown field 'api_key' in environments.staging"),
        ("environments:\n  staging:\n    url_env: KB_URL\n    spaces: [a]\n",
         "deploy.yml:3:14: environment 'staging' takes Kibana's URL from $KB_URL, which is not set"),
        ("environments:\n  prod:\n    url: https://kb\n    spaces: [a]\n",
         "no environment 'staging' in"),
        ("environments:\n  staging:\n    url: https://kb\n    url_env: KB_URL\n    spaces: [a]\n",
         "deploy.yml:3:5: environments.staging: give exactly one of url or url_env"),
        ("environments:\n  staging:\n    spaces: [a]\n",
         "deploy.yml:3:5: environments.staging: give exactly one of url or url_env"),
    ],
    ids=["space id", "secret in the file", "unset url variable", "unknown environment", "url and url_env",
         "neither url nor url_env"],
)
def test_mistakes_are_located(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "deploy.yml"
    path.write_text(text)
    with pytest.raises(DacError) as error:
        resolve_environment("staging", path, {})
    assert message in str(error.value)


def test_a_selection_that_matches_nothing_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "deploy.yml"
    path.write_text("environments:\n  staging:\n    url: https://kb\n    spaces: [a]\n"
                    "    rules: {tags: [No Such Tag]}\n")
    env = resolve_environment("staging", path, {})
    with pytest.raises(DacError, match="tag 'No Such Tag' matches no rule"):
        env.select(compile_repository_rules(), PROJECT.detections.parent)


def test_the_schema_states_the_code_default_repository() -> None:
    """A one-off KIBANA_URL deploy marks rules with DEFAULT_REPOSITORY; the schema must say which."""
    import json

    from dac.deploy.targets import DEFAULT_REPOSITORY

    schema = json.loads((PROJECT.detections.parent / "tooling/dac/schema/deploy.schema.json").read_text())
    assert f'Default: "{DEFAULT_REPOSITORY}"' in schema["properties"]["repository"]["description"]
