"""How runs reach workers: the work pool, the flows' names and the on-demand deployment.

The library owns these because the run launcher (:mod:`switchboard.remote`) creates flow runs
of the on-demand deployment and declares it on the first remote run against a new server; the
flows themselves (:mod:`deployments.entrypoint`) are a front end that imports these names, so
the dependency points one way. :func:`run_request` is the on-demand flow's signature: the
entrypoint's flow has exactly these parameters (a test holds them equal), and the deployment's
parameter schema is built from it.
"""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.utilities.callables import parameter_schema

#: The run-workflow flow's name in Prefect; deployments are ``run-workflow/<deployment>``.
FLOW_NAME = "run-workflow"
#: The retention flow's name; ``switchboard deploy`` schedules it as ``switchboard-cleanup/daily``.
CLEANUP_FLOW_NAME = "switchboard-cleanup"
#: The work pool every Switchboard deployment runs on (``switchboard worker`` serves it).
WORK_POOL = "switchboard"
#: Where workers import the flow from: a module path, so it works wherever Switchboard is
#: installed, whatever the worker's working directory.
ENTRYPOINT = "deployments.entrypoint.run_workflow_flow"
CLEANUP_ENTRYPOINT = "deployments.entrypoint.cleanup_flow"
#: The unscheduled deployment that runs any stored workflow on demand (``switchboard run
#: --remote``, Slack, webhooks): ``run-workflow/run-workflow``, as in ``prefect.yaml``.
GENERIC_DEPLOYMENT = "run-workflow"
GENERIC_TAGS = ["switchboard"]
GENERIC_DESCRIPTION = (
    "Run a stored Switchboard workflow by name (parameters name, version, inputs, trigger). "
    "`switchboard deploy` keeps it up to date."
)
#: The scheduled retention clean-up: ``switchboard-cleanup/daily``.
CLEANUP_DEPLOYMENT = "daily"


def run_request(
    name: str,
    version: int | None = None,
    inputs: dict[str, Any] | None = None,
    trigger: str = "deployment",
    run_id: str | None = None,
    triggered_by: str | None = None,
    retry_of: str | None = None,
    slack_thread: list[str] | None = None,
) -> None:
    """The parameters of a run-workflow flow run (see ``deployments.entrypoint.run_workflow_flow``)."""


def run_request_schema() -> dict[str, Any]:
    """The OpenAPI schema of :func:`run_request`'s parameters, as Prefect stores it on a deployment."""
    return parameter_schema(run_request).model_dump(exclude_unset=True)


def api_url_configured() -> bool:
    """Whether Prefect talks to a configured server (not the embedded ephemeral one)."""
    from prefect.settings import PREFECT_API_URL

    return bool(PREFECT_API_URL.value())


async def ensure_work_pool(client: PrefectClient, name: str = WORK_POOL) -> bool:
    """Create the process work pool ``name`` if it is missing; True if it was created."""
    try:
        await client.read_work_pool(name)
        return False
    except ObjectNotFound:
        pass
    from prefect.workers.process import ProcessWorker

    try:
        await client.create_work_pool(
            WorkPoolCreate(
                name=name,
                type="process",
                base_job_template=ProcessWorker.get_default_base_job_template(),
                description="Switchboard workflow runs (`switchboard worker`).",
            )
        )
    except ObjectAlreadyExists:
        return False  # another process created it meanwhile
    return True


async def ensure_generic_deployment(
    client: PrefectClient,
) -> tuple[UUID, Literal["created", "updated", "unchanged"]]:
    """Create or update ``run-workflow/run-workflow``, the deployment on-demand runs use.

    Returns its id and what was done (``created``, ``updated`` or ``unchanged``); the work pool
    must exist. Safe to call from several processes at once: Prefect upserts by name.
    """
    try:
        current = await client.read_deployment_by_name(f"{FLOW_NAME}/{GENERIC_DEPLOYMENT}")
    except ObjectNotFound:
        current = None
    schema = run_request_schema()
    if current is not None and (
        current.work_pool_name == WORK_POOL
        and current.entrypoint == ENTRYPOINT
        and sorted(current.tags) == sorted(GENERIC_TAGS)
        and (current.description or "") == GENERIC_DESCRIPTION
        and current.parameter_openapi_schema == schema
        and not current.schedules
        and not current.paused
    ):
        return current.id, "unchanged"
    flow_id = await client.create_flow_from_name(FLOW_NAME)
    deployment_id = await client.create_deployment(
        flow_id=flow_id,
        name=GENERIC_DEPLOYMENT,
        description=GENERIC_DESCRIPTION,
        parameters={"trigger": "deployment"},
        tags=GENERIC_TAGS,
        work_pool_name=WORK_POOL,
        entrypoint=ENTRYPOINT,
        parameter_openapi_schema=schema,
        paused=False,
        schedules=[],
    )
    return deployment_id, "created" if current is None else "updated"
