"""Deploy targets as code: ``deploy.yml`` names environments, each a Kibana and its spaces.

Loaded with the project's YAML loader, so a mistake is a located one-line error, and checked
against ``schema/deploy.schema.json`` (the file's modeline points editors at it). Secrets are
never in the file: they come from the environment (``KIBANA_API_KEY``, or ``KIBANA_USERNAME``
and ``KIBANA_PASSWORD``, and ``KIBANA_CA_CERT``). Without ``--env``, ``KIBANA_URL`` alone
names a one-off target: every rule into the default space.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from dac.compile import CompiledRule
from dac.errors import DacError, Location
from dac.loader import load_yaml
from dac.rules import _schema_problems

DEPLOY_FILE = "deploy.yml"
SCHEMA_FILE = "deploy.schema.json"
DEFAULT_REPOSITORY = "dac"
DEFAULT_IMPORT_MAX_BYTES = 9_000_000  # under Kibana's default 10 MB import payload limit


@dataclass(frozen=True)
class Environment:
    name: str
    url: str = field(repr=False)  # a one-off KIBANA_URL may carry user:password@
    spaces: tuple[str, ...]
    repository: str
    paths: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    overrides: Mapping[str, Any] = field(default_factory=dict)
    import_max_bytes: int = DEFAULT_IMPORT_MAX_BYTES
    location: Location | None = None

    def select(self, rules: Sequence[CompiledRule], root: Path) -> list[CompiledRule]:
        """The rules this environment gets; a path or tag that matches nothing is an error."""
        if not self.paths and not self.tags:
            return list(rules)
        chosen = []
        unmatched = []
        for path in self.paths:
            base = (root / path).resolve()
            hits = [
                r for r in rules if r.rule.path.resolve() == base or base in r.rule.path.resolve().parents
            ]
            if not hits:
                unmatched.append(f"path {path!r}")
            chosen.extend(h for h in hits if h not in chosen)
        for tag in self.tags:
            hits = [r for r in rules if tag in r.rule.data.get("tags", [])]
            if not hits:
                unmatched.append(f"tag {tag!r}")
            chosen.extend(h for h in hits if h not in chosen)
        if unmatched:
            raise DacError(
                f"environment {self.name!r}: {', '.join(unmatched)} matches no rule", self.location
            )
        return chosen


@cache
def _schema() -> dict[str, Any]:
    return json.loads(resources.files("dac.schema").joinpath(SCHEMA_FILE).read_text("utf-8"))


def resolve_environment(name: str | None, deploy_file: Path, env: Mapping[str, str]) -> Environment:
    """The environment ``name`` from ``deploy_file``, or the one-off ``KIBANA_URL`` target."""
    if name is None:
        url = env.get("KIBANA_URL")
        if not url:
            raise DacError(
                f"name an environment of {deploy_file} with --env, or set KIBANA_URL for a one-off "
                "deploy to its default space"
            )
        return Environment("default", url, ("default",), DEFAULT_REPOSITORY)
    if not deploy_file.is_file():
        raise DacError(f"{deploy_file} not found: it names the environments --env chooses from")
    loaded = load_yaml(deploy_file)
    problems = [
        problem
        for error in jsonschema.Draft202012Validator(_schema()).iter_errors(loaded.data)
        for problem in _schema_problems(error, loaded.positions)
    ]
    if problems:
        raise problems[0]  # located at the first fault; fix and rerun for the next
    data = loaded.data
    environments = data["environments"]
    if name not in environments:
        raise DacError(
            f"no environment {name!r} in {deploy_file} (it has: {', '.join(sorted(environments))})",
            loaded.positions.of(("environments",), key=True),
        )
    spec = environments[name]
    where = loaded.positions.of(("environments", name), key=True)
    if "url" in spec:
        url = spec["url"]
    else:
        url = env.get(spec["url_env"], "")
        if not url:
            raise DacError(
                f"environment {name!r} takes Kibana's URL from ${spec['url_env']}, which is not set",
                loaded.positions.of(("environments", name, "url_env")),
            )
    rules = spec.get("rules", "all")
    selection = rules if isinstance(rules, dict) else {}
    return Environment(
        name=name,
        url=url,
        spaces=tuple(spec["spaces"]),
        repository=data.get("repository", DEFAULT_REPOSITORY),
        paths=tuple(selection.get("paths", ())),
        tags=tuple(selection.get("tags", ())),
        overrides=dict(spec.get("overrides", {})),
        import_max_bytes=spec.get("import_max_bytes", DEFAULT_IMPORT_MAX_BYTES),
        location=where,
    )
