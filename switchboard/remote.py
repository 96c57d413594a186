"""Runs executed by workers: flow runs of the ``run-workflow/run-workflow`` deployment.

:func:`submit` checks the stored workflow and its inputs here, where a mistake can still be
reported to whoever asked, then creates a flow run of the on-demand deployment with the
Switchboard run id chosen up front; a ``switchboard worker`` picks it up. :func:`wait`
follows the flow run to its end and returns the same run result ``switchboard run --json``
prints, read from the run record the worker wrote (node outputs included).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from prefect.client.orchestration import PrefectClient, get_client
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.exceptions import ObjectNotFound
from sqlalchemy.ext.asyncio import AsyncEngine

from deployments.entrypoint import FLOW_NAME
from deployments.sync import GENERIC_DEPLOYMENT, ensure_generic_deployment, ensure_work_pool
from flows.plan import build_plan
from storage.runs import RunRecordNotFoundError, RunStore
from storage.workflows import WorkflowStore
from switchboard.api import new_run_id

#: Tags the deployment's flow run with the Switchboard run it executes (the runner's own flow
#: run, a subflow, carries ``switchboard-run:<id>``).
REQUEST_TAG = "switchboard-request:"
#: Prefect's final state type -> the run record status it means.
_FINAL = {
    StateType.COMPLETED: "completed",
    StateType.FAILED: "failed",
    StateType.CRASHED: "crashed",
    StateType.CANCELLED: "cancelled",
}


class RemoteUnavailableError(RuntimeError):
    """Runs cannot be sent to workers (no Prefect server configured, or it does not answer)."""


@dataclass(frozen=True)
class RemoteRun:
    """A run handed to the workers."""

    run_id: str
    flow_run_id: UUID
    workflow: str
    version: int


async def submit(
    engine: AsyncEngine,
    name: str,
    inputs: Mapping[str, Any] | None = None,
    *,
    version: int | None = None,
    inputs_are_text: bool = False,
    trigger: str = "api",
    triggered_by: str | None = None,
    run_id: str | None = None,
) -> RemoteRun:
    """Create a flow run of the on-demand deployment for the stored workflow ``name``.

    The definition is validated and the inputs resolved first: :class:`DefinitionError`,
    :class:`InputError` and :class:`storage.workflows.WorkflowNotFoundError` are raised before
    anything is queued. Raises :class:`RemoteUnavailableError` when no Prefect server answers.
    """
    stored = await WorkflowStore(engine).get(name, version)
    plan = build_plan(stored.definition)
    resolved = plan.workflow.resolve_inputs(inputs or {}, from_text=inputs_are_text)
    run_id = run_id or new_run_id()
    async with get_client() as client:
        deployment_id = await _deployment_id(client)
        flow_run = await client.create_flow_run_from_deployment(
            deployment_id,
            parameters={
                "name": stored.name,
                "version": stored.version,
                "inputs": resolved,
                "trigger": trigger,
                "run_id": run_id,
                "triggered_by": triggered_by,
            },
            tags=[f"{REQUEST_TAG}{run_id}", f"workflow:{stored.name}", f"trigger:{trigger}"],
        )
    return RemoteRun(run_id, flow_run.id, stored.name, stored.version)


async def _deployment_id(client: PrefectClient) -> UUID:
    error = await client.api_healthcheck()
    if error is not None:
        raise RemoteUnavailableError(f"the Prefect API at {client.api_url} does not answer: {error}")
    try:
        return (await client.read_deployment_by_name(f"{FLOW_NAME}/{GENERIC_DEPLOYMENT}")).id
    except ObjectNotFound:
        # First remote run against this server: declare the deployment (and its pool).
        await ensure_work_pool(client)
        deployment_id, _ = await ensure_generic_deployment(client)
        return deployment_id


async def wait(
    engine: AsyncEngine,
    run: RemoteRun,
    *,
    poll: float = 0.5,
    timeout: float | None = None,
    on_state: Callable[[FlowRun], None] | None = None,
) -> dict[str, Any]:
    """Follow ``run`` until its flow run ends; return its run result (``RunResult.to_dict()``).

    ``on_state`` is called with the flow run each time its state changes. A run that ended
    without a result of its own (its worker died, it was cancelled before it started) gets
    one made from its Prefect state. Raises :class:`TimeoutError` after ``timeout`` seconds.
    """
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    seen: str | None = None
    async with get_client() as client:
        while True:
            flow_run = await client.read_flow_run(run.flow_run_id)
            state = flow_run.state
            if state is not None and on_state is not None and state.name != seen:
                seen = state.name
                on_state(flow_run)
            if state is not None and state.is_final():
                break
            if deadline is not None and loop.time() > deadline:
                raise TimeoutError(f"run {run.run_id} did not end within {timeout:g} s")
            await asyncio.sleep(poll)
    store = RunStore(engine)
    result = await store.result(run.run_id)
    if result is not None:
        return result
    return await _result_from_state(store, run, flow_run)


async def _result_from_state(store: RunStore, run: RemoteRun, flow_run: FlowRun) -> dict[str, Any]:
    assert flow_run.state is not None
    state = flow_run.state
    status = _FINAL.get(state.type, "failed")
    try:
        record = await store.get(run.run_id)
    except RunRecordNotFoundError:
        record = None
    if record is not None and record.is_final:
        status = record.status
    message = (record.error if record is not None else None) or state.message or f"flow run ended {state.name}"
    return {
        "run_id": run.run_id,
        "flow_run_id": record.flow_run_id if record is not None else None,
        "workflow": run.workflow,
        "version": run.version,
        "status": status,
        "inputs": (record.inputs if record is not None else flow_run.parameters.get("inputs")) or {},
        "nodes": {},
        "error": message,
        "resumed_from": None,
        "usage": {},
    }
