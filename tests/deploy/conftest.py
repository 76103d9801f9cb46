"""The deploy suite: a real Kibana when ``KIBANA_URL`` is set (or the docker-compose stack answers),
otherwise the Kibana stand-in (tests/kibana_standin); ``open_kibana_target`` chooses, first match wins,
and the session header says which. Every test deploys from a temporary copy of the repository, so
the real detections/ is never modified."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from dac.cli import main
from tests.fixtures.project import Run
from tests.kibana_standin.plugin import elasticsearch_url
from tests.kibana_standin.target import KibanaTarget, open_kibana_target
from tests.repository import PROJECT

REPO_ROOT = PROJECT.detections.parent


@pytest.fixture
def kibana() -> Iterator[KibanaTarget]:
    # the same Elasticsearch the stand-in's own tests use: ES_URL, else the local node (make test's)
    with open_kibana_target(elasticsearch_url()) as target:
        yield target


def needs_standin(kibana: KibanaTarget, why: str) -> None:
    if kibana.standin is None:
        pytest.skip(f"{why}: needs the stand-in's fault injection ({kibana.kind})")


@dataclass
class DeployRepo:
    """A copy of the repository (templates, rules, lock) with a deploy.yml, and `dac` run inside it."""

    root: Path
    kibana: KibanaTarget
    monkeypatch: pytest.MonkeyPatch

    def targets(self, spaces: list[str], **environment: Any) -> None:
        spec = {"url_env": "KIBANA_URL", "spaces": spaces, **environment}
        body = {"repository": "dac-tests", "environments": {"test": spec}}
        (self.root / "deploy.yml").write_text(
            "# yaml-language-server: $schema=tooling/dac/schema/deploy.schema.json\n" + yaml.safe_dump(body)
        )

    def dac(self, *argv: str, env: dict[str, str] | None = None) -> Run:
        out, err = io.StringIO(), io.StringIO()
        with self.monkeypatch.context() as patch:
            patch.chdir(self.root)
            for key, value in {**self.kibana.env, **(env or {})}.items():
                patch.setenv(key, value)
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(list(argv))
        run = Run(code, out.getvalue(), err.getvalue())
        for secret in self.kibana.secrets or [self.kibana.api_key or ""]:
            if secret:
                assert secret not in run.out + run.err, "a secret appeared in dac's output"
        return run

    def rule_file(self, stem: str) -> Path:
        return self.root / "detections" / "kubernetes" / f"{stem}.yml"

    def locked_version(self, rule_id: str) -> int:
        """The rule's version in the copy's lock, so tests follow legitimate rule edits."""
        lock = json.loads((self.root / "detections" / "version.lock.json").read_text())
        return int(lock[rule_id]["version"])

    def built(self) -> dict[str, bytes]:
        return {p.stem: p.read_bytes() for p in sorted((self.root / "build" / "rules").glob("*.json"))}


@pytest.fixture
def repo(tmp_path: Path, kibana: KibanaTarget, monkeypatch: pytest.MonkeyPatch) -> DeployRepo:
    shutil.copytree(PROJECT.templates, tmp_path / "templates")
    shutil.copytree(PROJECT.detections, tmp_path / "detections")
    for key in [k for k in os.environ if k.startswith("KIBANA_")]:
        monkeypatch.delenv(key)
    return DeployRepo(tmp_path, kibana, monkeypatch)
