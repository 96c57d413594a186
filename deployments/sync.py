"""Make Prefect's deployments match the stored workflows' ``schedule`` blocks.

Every stored, non-archived workflow whose latest version has a ``schedule`` gets one
deployment of the ``run-workflow`` flow (:mod:`deployments.entrypoint`), named
``workflow-<name>``, on the ``switchboard`` process work pool, with:

* one schedule (slug ``switchboard``): the cron or interval, in the schedule's timezone;
* fixed parameters: the workflow name, the version deployed, the schedule's inputs and
  ``trigger: schedule``;
* the deployment paused when the schedule says ``paused: true``.

:func:`sync` creates missing deployments, updates changed ones (a new version is a change:
the version is pinned), pauses and resumes them, and deletes the deployments of workflows
that no longer have a schedule (or were archived). It only ever touches deployments carrying
:data:`MANAGED_TAG`, so deployments made by hand or from ``prefect.yaml`` are left alone.
A second call with nothing changed in between changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.actions import (
    DeploymentScheduleCreate,
    DeploymentScheduleUpdate,
    DeploymentUpdate,
)
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterTags, FlowFilter, FlowFilterName
from prefect.client.schemas.responses import DeploymentResponse
from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule
from prefect.exceptions import ObjectNotFound
from prefect.utilities.callables import parameter_schema

from deployments.entrypoint import cleanup_flow
from flows.model import Schedule, load_definition
from switchboard.client import Client
from switchboard.errors import WorkflowNotFoundError
from switchboard.work_pool import (
    CLEANUP_DEPLOYMENT,
    CLEANUP_ENTRYPOINT,
    CLEANUP_FLOW_NAME,
    ENTRYPOINT,
    FLOW_NAME,
    GENERIC_DEPLOYMENT,
    GENERIC_TAGS,
    WORK_POOL,
    ensure_generic_deployment,
    ensure_work_pool,
    run_request_schema,
)
from switchboard.workflows import StoredVersion

#: Marks deployments this module owns (and may update or delete).
MANAGED_TAG = "switchboard:schedule"
CLEANUP_DESCRIPTION = (
    "Delete Switchboard run records and Prefect flow runs older than SWITCHBOARD_RETENTION_DAYS "
    "(`switchboard deploy` keeps it on SWITCHBOARD_CLEANUP_SCHEDULE)."
)
#: The slug of the one schedule a managed deployment has.
SCHEDULE_SLUG = "switchboard"
#: Interval schedules count from this moment (in the schedule's timezone), so recreating a
#: deployment does not shift when it fires.
INTERVAL_ANCHOR = datetime(2020, 1, 1)

Action = Literal["created", "updated", "paused", "resumed", "removed", "unchanged"]


def deployment_name(workflow: str) -> str:
    """The name of a scheduled workflow's deployment."""
    return f"workflow-{workflow}"


@dataclass(frozen=True)
class Change:
    """What :func:`sync` did to one workflow's deployment."""

    workflow: str
    deployment: str
    action: Action
    #: The schedule deployed (``cron 0 9 * * * Europe/Berlin``), empty for removals.
    schedule: str = ""
    version: int | None = None
    paused: bool = False
    #: For updates: the fields that changed.
    changed: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "workflow": self.workflow,
            "deployment": self.deployment,
            "action": self.action,
            "schedule": self.schedule,
            "version": self.version,
            "paused": self.paused,
            "changed": list(self.changed),
        }


@dataclass
class SyncReport:
    changes: list[Change] = field(default_factory=list)
    #: What happened to the on-demand deployment ``run-workflow/run-workflow``.
    generic: Action = "unchanged"
    #: What happened to the scheduled clean-up ``switchboard-cleanup/daily``.
    cleanup: Action = "unchanged"

    @property
    def changed(self) -> bool:
        own = (self.generic, self.cleanup)
        return any(a != "unchanged" for a in own) or any(c.action != "unchanged" for c in self.changes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "changed": self.changed,
            "generic": {"deployment": f"{FLOW_NAME}/{GENERIC_DEPLOYMENT}", "action": self.generic},
            "cleanup": {"deployment": f"{CLEANUP_FLOW_NAME}/{CLEANUP_DEPLOYMENT}", "action": self.cleanup},
            "deployments": [c.to_dict() for c in self.changes],
        }


@dataclass(frozen=True)
class Desired:
    """The deployment one scheduled workflow version should have."""

    workflow: str
    version: int
    schedule: Schedule
    description: str | None

    @property
    def name(self) -> str:
        return deployment_name(self.workflow)

    @property
    def parameters(self) -> dict[str, Any]:
        return {"name": self.workflow, "version": self.version, "inputs": self.schedule.inputs, "trigger": "schedule"}

    @property
    def tags(self) -> list[str]:
        return [MANAGED_TAG, f"workflow:{self.workflow}"]

    @property
    def summary(self) -> str:
        return describe_schedule(self.schedule)

    @property
    def deployment_description(self) -> str:
        head = f"Schedule of Switchboard workflow {self.workflow} v{self.version} (`switchboard deploy` manages it)."
        return f"{head}\n\n{self.description}" if self.description else head

    def prefect_schedule(self) -> CronSchedule | IntervalSchedule:
        s = self.schedule
        if s.cron is not None:
            return CronSchedule(cron=s.cron, timezone=s.timezone)
        assert s.interval is not None
        return IntervalSchedule(
            interval=timedelta(seconds=s.interval),
            anchor_date=INTERVAL_ANCHOR.replace(tzinfo=ZoneInfo(s.timezone)),
            timezone=s.timezone,
        )


def describe_schedule(schedule: Schedule) -> str:
    """``cron 0 9 * * 1-5 (Europe/Berlin)`` or ``every 30s (UTC)``."""
    what = f"cron {schedule.cron}" if schedule.cron is not None else f"every {schedule.interval:g}s"
    return f"{what} ({schedule.timezone})"


def desired_for(stored: StoredVersion) -> Desired | None:
    """The deployment a stored version asks for (None: it has no schedule)."""
    workflow = load_definition(stored.definition)
    if workflow.schedule is None:
        return None
    return Desired(stored.name, stored.version, workflow.schedule, workflow.description)


def _same_schedule(current: Any, wanted: CronSchedule | IntervalSchedule) -> bool:
    if isinstance(wanted, CronSchedule):
        return isinstance(current, CronSchedule) and (current.cron, current.timezone, current.day_or) == (
            wanted.cron,
            wanted.timezone,
            wanted.day_or,
        )
    return isinstance(current, IntervalSchedule) and (current.interval, current.timezone) == (
        wanted.interval,
        wanted.timezone,
    )


def _differences(current: DeploymentResponse, wanted: Desired) -> list[str]:
    """The fields of ``current`` that do not match ``wanted`` (``paused`` last)."""
    changed: list[str] = []
    schedules = current.schedules or []
    if (
        len(schedules) != 1
        or schedules[0].slug != SCHEDULE_SLUG
        or not schedules[0].active
        or schedules[0].parameters
        or not _same_schedule(schedules[0].schedule, wanted.prefect_schedule())
    ):
        changed.append("schedule")
    if current.parameters != wanted.parameters:
        changed.append("parameters")
    if current.work_pool_name != WORK_POOL:
        changed.append("work_pool")
    if current.entrypoint != ENTRYPOINT:
        changed.append("entrypoint")
    if sorted(current.tags) != sorted(wanted.tags):
        changed.append("tags")
    if (current.description or "") != wanted.deployment_description:
        changed.append("description")
    if bool(current.paused) != wanted.schedule.paused:
        changed.append("paused")
    return changed


async def managed_deployments(client: PrefectClient) -> dict[str, DeploymentResponse]:
    """Deployments this module owns, by name (every page)."""
    found: dict[str, DeploymentResponse] = {}
    offset = 0
    while True:
        page = await client.read_deployments(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[FLOW_NAME])),
            deployment_filter=DeploymentFilter(tags=DeploymentFilterTags(all_=[MANAGED_TAG])),
            limit=200,
            offset=offset,
        )
        found.update((d.name, d) for d in page)
        if len(page) < 200:
            return found
        offset += len(page)


async def sync(
    client: PrefectClient,
    stored: Iterable[StoredVersion],
    *,
    only: Sequence[str] | None = None,
    cleanup_cron: str | None = None,
) -> SyncReport:
    """Make the managed deployments match ``stored`` (the latest version of every live workflow).

    With ``only``, just those workflows' deployments are considered: created or updated when
    their stored version has a schedule, removed when it has none or is not in ``stored``.
    ``cleanup_cron`` (UTC; None or ``off``: none) schedules the retention clean-up.
    """
    wanted = {d.name: d for d in (desired_for(s) for s in stored) if d is not None}
    existing = await managed_deployments(client)
    if only is not None:
        names = {deployment_name(n) for n in only}
        wanted = {k: v for k, v in wanted.items() if k in names}
        existing = {k: v for k, v in existing.items() if k in names}
    report = SyncReport()
    await ensure_work_pool(client)
    _, report.generic = await ensure_generic_deployment(client)
    report.cleanup = await ensure_cleanup_deployment(client, cleanup_cron)
    flow_id = await client.create_flow_from_name(FLOW_NAME)
    for name in sorted(wanted.keys() | existing.keys()):
        desired = wanted.get(name)
        current = existing.get(name)
        if desired is None:
            assert current is not None
            await client.delete_deployment(current.id)
            report.changes.append(Change(_workflow_of(current, name), name, "removed"))
            continue
        base = Change(desired.workflow, name, "unchanged", desired.summary, desired.version, desired.schedule.paused)
        if current is None:
            await client.create_deployment(
                flow_id=flow_id,
                name=name,
                description=desired.deployment_description,
                parameters=desired.parameters,
                tags=desired.tags,
                work_pool_name=WORK_POOL,
                entrypoint=ENTRYPOINT,
                parameter_openapi_schema=run_request_schema(),
                paused=desired.schedule.paused,
                schedules=[_schedule_create(desired)],
            )
            report.changes.append(replace(base, action="created"))
            continue
        differences = _differences(current, desired)
        if not differences:
            report.changes.append(base)
            continue
        await _update(client, current, desired)
        action: Action = "updated"
        if differences == ["paused"]:
            action = "paused" if desired.schedule.paused else "resumed"
        report.changes.append(replace(base, action=action, changed=tuple(differences)))
    return report


async def ensure_cleanup_deployment(client: PrefectClient, cron: str | None) -> Action:
    """Make ``switchboard-cleanup/daily`` run on ``cron`` (UTC), or remove it (None, ``off``)."""
    try:
        current = await client.read_deployment_by_name(f"{CLEANUP_FLOW_NAME}/{CLEANUP_DEPLOYMENT}")
    except ObjectNotFound:
        current = None
    if cron is None or cron.strip().lower() == "off":
        if current is None:
            return "unchanged"
        await client.delete_deployment(current.id)
        return "removed"
    wanted = CronSchedule(cron=cron, timezone="UTC")
    schedules = current.schedules if current is not None else []
    if (
        current is not None
        and current.work_pool_name == WORK_POOL
        and current.entrypoint == CLEANUP_ENTRYPOINT
        and sorted(current.tags) == sorted(GENERIC_TAGS)
        and (current.description or "") == CLEANUP_DESCRIPTION
        and len(schedules) == 1
        and schedules[0].active
        and _same_schedule(schedules[0].schedule, wanted)
        and not current.paused
    ):
        return "unchanged"
    if current is not None:
        await client.delete_deployment(current.id)  # schedules are replaced, not patched
    flow_id = await client.create_flow_from_name(CLEANUP_FLOW_NAME)
    await client.create_deployment(
        flow_id=flow_id,
        name=CLEANUP_DEPLOYMENT,
        description=CLEANUP_DESCRIPTION,
        tags=GENERIC_TAGS,
        work_pool_name=WORK_POOL,
        entrypoint=CLEANUP_ENTRYPOINT,
        parameter_openapi_schema=parameter_schema(cleanup_flow).model_dump(exclude_unset=True),
        paused=False,
        schedules=[DeploymentScheduleCreate(schedule=wanted, active=True, slug=SCHEDULE_SLUG)],
    )
    return "created" if current is None else "updated"


def _workflow_of(deployment: DeploymentResponse, name: str) -> str:
    workflow = (deployment.parameters or {}).get("name")
    return str(workflow) if workflow else name.removeprefix("workflow-")


def _schedule_create(desired: Desired) -> Any:
    return DeploymentScheduleCreate(schedule=desired.prefect_schedule(), active=True, slug=SCHEDULE_SLUG)


async def _update(client: PrefectClient, current: DeploymentResponse, desired: Desired) -> None:
    # Schedules without our slug (added by hand in the UI) are dropped: Prefect must match
    # the stored definition exactly, and the server only patches by slug when all have one.
    for schedule in current.schedules or []:
        if schedule.slug != SCHEDULE_SLUG:
            await client.delete_deployment_schedule(current.id, schedule.id)
    await client.update_deployment(
        current.id,
        DeploymentUpdate(
            description=desired.deployment_description,
            parameters=desired.parameters,
            tags=desired.tags,
            work_pool_name=WORK_POOL,
            entrypoint=ENTRYPOINT,
            paused=desired.schedule.paused,
            parameter_openapi_schema=run_request_schema(),
            schedules=[
                DeploymentScheduleUpdate(
                    schedule=desired.prefect_schedule(), active=True, slug=SCHEDULE_SLUG, parameters={}
                )
            ],
        ),
    )


async def deploy(client: Client, name: str | None = None) -> SyncReport:
    """Make Prefect's deployments match the stored schedules (all workflows, or only ``name``).

    Creates, updates, pauses, resumes and removes the ``workflow-<name>`` deployments on the
    client's Prefect API (``PREFECT_API_URL``); a second call changes nothing. Raises
    :class:`WorkflowNotFoundError` for a ``name`` that is neither stored nor deployed.
    """
    known = await client.workflows.list(include_archived=True)
    live = [w.name for w in known if not w.archived and (name is None or w.name == name)]
    stored = [await client.workflows.get(n) for n in live]
    async with client.prefect() as prefect:
        report = await sync(
            prefect, stored, only=None if name is None else [name], cleanup_cron=client.settings.cleanup_schedule
        )
    if name is not None and not report.changes and all(w.name != name for w in known):
        raise WorkflowNotFoundError(f"no stored workflow named {name!r} (see `switchboard list`)")
    return report
