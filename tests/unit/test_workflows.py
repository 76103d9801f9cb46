"""The GitHub workflows keep their security properties (actionlint and the schema check syntax)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from tests.repository import REPO

WORKFLOWS = sorted((REPO / ".github/workflows").glob("*.yml"))
PINNED = re.compile(r"^[\w.-]+/[\w.-]+@[0-9a-f]{40}$")


def load(path: Path) -> dict:
    return yaml.load(path.read_text("utf-8"), Loader=yaml.BaseLoader)  # `on` stays a string key


def test_every_action_is_pinned_by_commit() -> None:
    assert WORKFLOWS
    for path in WORKFLOWS:
        for name, job in load(path)["jobs"].items():
            for step in job.get("steps", []):
                if "uses" in step:
                    assert PINNED.match(step["uses"]), f"{path.name}/{name}: {step['uses']} is not pinned"


def test_pull_requests_run_untrusted_code_read_only() -> None:
    workflow = load(REPO / ".github/workflows/pull-request.yml")
    assert set(workflow["on"]) == {"pull_request"}  # never pull_request_target
    assert workflow["permissions"] == {"contents": "read"}
    writers = {name: job for name, job in workflow["jobs"].items() if "permissions" in job}
    assert list(writers) == ["comment"] and writers["comment"]["permissions"] == {"pull-requests": "write"}
    steps = writers["comment"]["steps"]
    assert all("run" not in s and "checkout" not in s.get("uses", "") for s in steps), "no repository code"


def test_deploys_never_overlap_and_use_environments() -> None:
    workflow = load(REPO / ".github/workflows/deploy.yml")
    assert workflow["concurrency"] == {"group": "deploy", "cancel-in-progress": "false"}
    jobs = workflow["jobs"]
    assert [jobs[j]["environment"] for j in ("staging", "production")] == ["staging", "production"]
    assert jobs["production"]["needs"] == "staging"
    runs = [s["run"] for s in jobs["staging"]["steps"] if "run" in s]
    assert any("make plan ENV=staging" in r and "set -o pipefail" in r for r in runs)
    assert any(r.startswith("make deploy ENV=staging") for r in runs)
    # The repository's deploy.yml names each environment's URL variable; the job must set it.
    targets = load(REPO / "deploy.yml")["environments"]
    for name in ("staging", "production"):
        assert "env" not in jobs[name]  # no secret for `make build`'s package installs
        kibana_steps = [s for s in jobs[name]["steps"] if "make plan" in s.get("run", "")
                        or "make deploy" in s.get("run", "")]
        assert len(kibana_steps) == 2
        for step in kibana_steps:
            assert {targets[name]["url_env"], "KIBANA_API_KEY"} <= set(step["env"])
