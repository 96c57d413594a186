"""The deployable entry flow: run a stored workflow by name on a worker (or anywhere).

A deployment cannot carry Switchboard's process-local services (database engine, credential
resolver, listeners), so this flow reads :class:`switchboard.settings.Settings` (the edge) and
runs the workflow through a :class:`switchboard.Client`: the runner flow becomes a
subflow of this flow run, its nodes Prefect task runs of that subflow, and the run record,
memory, files and credentials behave exactly as for a run started from the CLI.
"""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.runtime import deployment as runtime_deployment
from prefect.runtime import flow_run as runtime_flow_run
from sqlalchemy.ext.asyncio import AsyncEngine

from flows.runner import WorkflowFailed
from switchboard.client import Client
from switchboard.retention import parse_age
from switchboard.settings import Settings
from switchboard.work_pool import CLEANUP_FLOW_NAME, FLOW_NAME

#: The database engine of a long-lived process running many of these flows in-process (the
#: warm worker); None: each run opens its own.
_shared_engine: AsyncEngine | None = None


def share_engine(engine: AsyncEngine | None) -> None:
    """Let every run of this flow in this process use ``engine`` (None: stop sharing)."""
    global _shared_engine
    _shared_engine = engine


def _client() -> Client:
    """The client of one flow run: settings read here, at the edge; the warm worker's engine
    when it shares one (else the client opens its own)."""
    return Client(Settings.from_env(), engine=_shared_engine)


def _flow_run_name() -> str:
    parameters = runtime_flow_run.parameters
    version = parameters.get("version")
    label = f" v{version}" if version is not None else ""
    return f"{parameters.get('name', 'workflow')}{label} · {parameters.get('trigger', 'deployment')}"


@flow(
    name=FLOW_NAME,
    flow_run_name=_flow_run_name,
    persist_result=False,
    log_prints=False,
)
async def run_workflow_flow(
    name: str,
    version: int | None = None,
    inputs: dict[str, Any] | None = None,
    trigger: str = "deployment",
    run_id: str | None = None,
    triggered_by: str | None = None,
    retry_of: str | None = None,
    slack_thread: list[str] | None = None,
) -> dict[str, Any]:
    """Run the stored workflow ``name`` (``version``, or the latest) with ``inputs``.

    ``trigger`` is recorded on the run (``schedule`` for scheduled deployments); ``run_id``
    lets the caller that created this flow run choose the Switchboard run id up front, and
    ``triggered_by`` says who asked (``slack:U123``, ``cli:alice``; default: the deployment),
    which also picks whose credentials the run uses. ``retry_of`` resumes that failed run
    instead (completed nodes are not re-executed; ``name`` must be its workflow's).
    ``slack_thread`` is ``[channel, ts]`` of the run's Slack message (the bot passes it).
    Returns the run result; raises (so the flow run ends Failed) when the workflow did not
    complete.
    """
    deployment_name = runtime_deployment.name
    thread = (slack_thread[0], slack_thread[1]) if slack_thread and len(slack_thread) == 2 else None
    who = triggered_by or (f"deployment:{deployment_name}" if deployment_name else None)
    async with _client() as client:
        if retry_of is not None:
            result = await client.runs.retry(retry_of, new_run_id=run_id, triggered_by=who, slack_thread=thread)
        else:
            stored = await client.workflows.get(name, version)
            result = await client.runs.run(
                stored.definition,
                inputs or {},
                trigger=trigger,
                version=stored.version,
                run_id=run_id,
                triggered_by=who,
                slack_thread=thread,
            )
    if result.status != "completed":
        raise WorkflowFailed(f"run {result.run_id} {result.status}: {result.error}")
    return result.to_dict()


@flow(name=CLEANUP_FLOW_NAME, persist_result=False, log_prints=False)
async def cleanup_flow(older_than: str | None = None) -> dict[str, Any]:
    """Delete run records and Prefect flow runs that ended longer ago than ``older_than``
    (``30d``, ``12h``; default ``SWITCHBOARD_RETENTION_DAYS``); what ``switchboard cleanup`` does.

    Fails (so Prefect shows it) when some flow runs could not be deleted.
    """
    age = parse_age(older_than) if older_than else None
    async with _client() as client:
        result = await client.retention.cleanup(age, actor=f"deployment:{runtime_deployment.name or CLEANUP_FLOW_NAME}")
    if result.failed:
        raise RuntimeError(f"kept {len(result.failed)} run(s) whose Prefect flow run could not be deleted")
    return result.to_dict()
