"""One deploy run against one environment: read Kibana's state and plan (``apply`` applies it).

The rules come from the build output (``dac build``'s ``build/rules/*.json``), which the
commands write first from the working tree through the same library call as ``dac build``
(``dac.build.build_rules``): what is planned is exactly what the build holds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from dac.build import read_build
from dac.compile import CompiledRule
from dac.deploy.plan import DesiredRule, Plan, desired_rules, mass_deletion_errors, plan_space
from dac.deploy.targets import Environment
from dac.kibana.client import KibanaClient, Settings
from dac.project import Project


def connect(environment: Environment, env: Mapping[str, str]) -> KibanaClient:
    return KibanaClient(Settings.from_env(environment.url, env))


def desired_for(
    environment: Environment, project: Project, compiled: Sequence[CompiledRule], build_out: Path
) -> list[DesiredRule]:
    """The build output of the rules ``environment`` selects, shaped for it."""
    built = read_build(build_out)
    selected = environment.select(compiled, project.detections.resolve().parent)
    return desired_rules(
        built,
        selected,
        repository=environment.repository,
        environment=environment.name,
        overrides=environment.overrides,
    )


def make_plan(
    client: KibanaClient,
    environment: Environment,
    desired: Sequence[DesiredRule],
    *,
    prune: bool = False,
    skip_is_error: bool = False,
    allow_mass_delete: bool = False,
) -> Plan:
    version = client.version()
    plan = Plan(environment.name, client.url, version, environment.repository, [])
    sizes = {}
    for space in environment.spaces:
        if not client.space_exists(space):
            plan.errors.append(f"space {space!r} does not exist in Kibana: create it, or fix the space id")
            continue
        current = client.find_rules(space)
        sizes[space] = len(current)
        plan.items.extend(
            plan_space(
                space, desired, current, repository=environment.repository, stack_version=version, prune=prune
            )
        )
    for item in plan.items:
        if item.action == "conflict":
            plan.errors.append(f"{item.name} ({item.id}) in space {item.space}: {item.reason}")
        elif item.action == "skip" and skip_is_error:
            plan.errors.append(f"{item.name} ({item.id}) in space {item.space}: skipped, {item.reason}")
    if not allow_mass_delete:
        plan.errors.extend(mass_deletion_errors(plan.items, sizes))
    return plan
