"""One deploy run against one environment: read Kibana's state and plan (``apply`` applies it).

The rules come from the build output (``dac build``'s ``build/rules/*.json``), which the
commands write first from the working tree through the same library call as ``dac build``
(``dac.build.build_rules``): what is planned is exactly what the build holds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from dac.build import read_build, read_exception_lists
from dac.compile import CompiledRule
from dac.deploy.ownership import owned_by
from dac.deploy.plan import (
    DesiredList,
    DesiredRule,
    Plan,
    desired_lists,
    desired_rules,
    mass_deletion_errors,
    plan_exceptions,
    plan_space,
)
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


def lists_for(environment: Environment, desired: Sequence[DesiredRule], build_out: Path) -> list[DesiredList]:
    """The exception lists (and their items) the environment's rules reference, from the build output."""
    return desired_lists(
        read_exception_lists(build_out),
        desired,
        repository=environment.repository,
        environment=environment.name,
    )


def make_plan(
    client: KibanaClient,
    environment: Environment,
    desired: Sequence[DesiredRule],
    *,
    lists: Sequence[DesiredList] = (),
    prune: bool = False,
    skip_is_error: bool = False,
    allow_mass_delete: bool = False,
    overwrite_drift: bool = False,
) -> Plan:
    """Three or four reads per space, each paged: the space, its rules, its exception lists, and the
    items of the lists the repository wants or manages there (when there are any)."""
    version = client.version()
    plan = Plan(environment.name, client.url, version, environment.repository, [], prune=prune)
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
        # agnostic lists live once per Kibana: planned with the first space only
        here = [lst for lst in lists if lst.namespace_type == "single" or space == environment.spaces[0]]
        # always read the space's lists (one paged _find): a managed list no selected rule references
        # any more is still shown as an orphan and --prune can delete it
        plan.items.extend(_plan_exceptions(client, space, here, environment.repository, prune))
    for item in plan.items:
        if item.action == "conflict":
            plan.errors.append(f"{item.name} ({item.id}) in space {item.space}: {item.reason}")
        elif item.action == "skip" and skip_is_error:
            plan.errors.append(f"{item.name} ({item.id}) in space {item.space}: skipped, {item.reason}")
    if not allow_mass_delete:
        plan.errors.extend(
            mass_deletion_errors(plan.items, sizes, prune=prune, overwrite_drift=overwrite_drift)
        )
    return plan


def _plan_exceptions(
    client: KibanaClient, space: str, lists: Sequence[DesiredList], repository: str, prune: bool
) -> list:
    live_lists = [
        lst
        for lst in client.find_exception_lists(space)
        if lst.get("namespace_type", "single") == "single" or any(d.list_id == lst["list_id"] for d in lists)
    ]
    wanted = {(d.namespace_type, d.list_id) for d in lists}
    relevant = [
        (lst["list_id"], lst.get("namespace_type", "single"))
        for lst in live_lists
        if (lst.get("namespace_type", "single"), lst["list_id"]) in wanted or owned_by(lst, repository)
    ]
    items = client.find_exception_items(space, relevant) if relevant else []
    return plan_exceptions(space, lists, live_lists, items, repository=repository, prune=prune)
