"""What a Kibana command says when things go wrong: retries (on every command, also when it fails
after retrying) and what a deploy wrote when waiting for health fails."""

from __future__ import annotations

import re
import socket

from tests.deploy.conftest import DeployRepo, needs_standin
from tests.deploy.test_deploy import deploy
from tests.kibana_standin.server import Fault


def closed_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_status_failing_after_retries_says_it_retried(repo: DeployRepo) -> None:
    repo.targets(["default"])
    down = {"KIBANA_URL": f"http://127.0.0.1:{closed_loopback_port()}", "KIBANA_MAX_RETRIES": "1"}
    run = repo.dac("status", "--env", "test", env=down)
    assert run.code == 1
    assert re.search(r"^retried: GET \S+: cannot connect .*, retried after", run.err, re.M), run.err
    assert run.err.strip().endswith("cannot connect (connection refused or unreachable) (after 1 retry)")


def test_status_and_pull_report_their_retries(repo: DeployRepo) -> None:
    needs_standin(repo.kibana, "a 503 on _find")
    space = repo.kibana.new_space()
    repo.targets([space])
    assert deploy(repo).code == 0
    repo.kibana.standin.inject(Fault.status(503, retry_after="0"), path_contains="rules/_find")  # type: ignore[union-attr]
    status = repo.dac("status", "--env", "test")
    assert "3 managed rules" in status.out, status.out + status.err  # exit 1 when a rule's run failed
    assert re.search(r"^retried: GET /s/\S+/api/detection_engine/rules/_find: HTTP 503", status.err, re.M)
    repo.kibana.standin.inject(Fault.status(503, retry_after="0"), path_contains="rules/_find")  # type: ignore[union-attr]
    pull = repo.dac("pull", "--env", "test", "--all-custom")
    assert pull.code == 0, pull.out + pull.err
    assert re.search(r"^retried: GET /s/\S+/api/detection_engine/rules/_find: HTTP 503", pull.err, re.M)


def test_a_plan_failing_after_retries_says_what_it_retried(repo: DeployRepo) -> None:
    needs_standin(repo.kibana, "503s on _find")
    space = repo.kibana.new_space()
    repo.targets([space])
    for _ in range(2):
        repo.kibana.standin.inject(Fault.status(503, retry_after="0"), path_contains="rules/_find")  # type: ignore[union-attr]
    run = repo.dac("plan", "--env", "test", env={"KIBANA_MAX_RETRIES": "1"})
    assert run.code == 1
    assert re.search(r"^retried: GET /s/\S+/api/detection_engine/rules/_find: HTTP 503", run.err, re.M)
    assert "HTTP 503" in run.err.splitlines()[-1] and "(after 1 retry)" in run.err.splitlines()[-1]


def test_a_kibana_error_while_waiting_for_health_still_says_what_was_applied(repo: DeployRepo) -> None:
    needs_standin(repo.kibana, "a 503 while waiting")
    standin = repo.kibana.standin
    assert standin is not None
    space = repo.kibana.new_space()
    repo.targets([space])
    standin.clear_requests()
    assert repo.dac("plan", "--env", "test").code == 0
    reads = sum(1 for r in standin.requests if r.path.endswith("/rules/_find"))  # the plan's, as deploy's
    standin.inject(Fault.status(503), nth=reads + 1, path_contains="rules/_find")
    run = deploy(repo, "--wait-healthy=60", env={"KIBANA_MAX_RETRIES": "0"})
    assert run.code == 1, run.out + run.err
    assert re.search(r"^Applied: \d+ created", run.out, re.M), run.out  # what was written is said
    health = re.findall(r"^health UNKNOWN .*: unknown: health not read: .*HTTP 503", run.out, re.M)
    assert len(health) == len(repo.built()), run.out
    assert run.out.index("Applied:") < run.out.index("health UNKNOWN")
