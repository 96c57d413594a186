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

import httpx
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, FlowRunFilterParentFlowRunId
from prefect.client.schemas.objects import FlowRun, State, StateType
from prefect.exceptions import ObjectNotFound
from prefect.states import Cancelled, Cancelling
from sqlalchemy.ext.asyncio import AsyncEngine

from flows.events import Listener, NodeEvent
from flows.pauses import read_question
from flows.plan import build_plan
from flows.results import NodeResult
from storage.runs import RunRecordNotFoundError, RunStore
from storage.workflows import WorkflowStore
from switchboard import embedded_prefect
from switchboard.execution import check_retryable
from switchboard.execution import new_run_id as make_run_id
from switchboard.work_pool import FLOW_NAME, GENERIC_DEPLOYMENT, ensure_generic_deployment, ensure_work_pool

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
    slack_thread: tuple[str, str] | None = None,
) -> RemoteRun:
    """Create a flow run of the on-demand deployment for the stored workflow ``name``.

    The definition is validated and the inputs resolved first: :class:`DefinitionError`,
    :class:`InputError` and :class:`storage.workflows.WorkflowNotFoundError` are raised before
    anything is queued. Raises :class:`RemoteUnavailableError` when no Prefect server answers.
    ``slack_thread`` is ``(channel, ts)`` of the run's Slack message.
    """
    stored = await WorkflowStore(engine).get(name, version)
    plan = build_plan(stored.definition)
    resolved = plan.workflow.resolve_inputs(inputs or {}, from_text=inputs_are_text)
    run_id = run_id or make_run_id()
    parameters = {
        "name": stored.name,
        "version": stored.version,
        "inputs": resolved,
        "trigger": trigger,
        "run_id": run_id,
        "triggered_by": triggered_by,
        "slack_thread": list(slack_thread) if slack_thread else None,
    }
    flow_run_id = await _create(parameters, run_id, stored.name, trigger)
    return RemoteRun(run_id, flow_run_id, stored.name, stored.version)


async def submit_retry(
    engine: AsyncEngine,
    run_id: str,
    *,
    triggered_by: str | None = None,
    new_run_id: str | None = None,
    slack_thread: tuple[str, str] | None = None,
) -> RemoteRun:
    """Queue the resumption of the failed run ``run_id`` for the workers (see
    :func:`switchboard.aretry`); raises :class:`NotRetryableError` or :class:`RunNotFoundError`
    saying why not, before anything is queued."""
    await check_retryable(run_id)
    record = await RunStore(engine).get(run_id)
    retry_id = new_run_id or make_run_id()
    parameters = {
        "name": record.workflow,
        "version": record.version,
        "trigger": "retry",
        "run_id": retry_id,
        "triggered_by": triggered_by,
        "retry_of": run_id,
        "slack_thread": list(slack_thread) if slack_thread else None,
    }
    flow_run_id = await _create(parameters, retry_id, record.workflow, "retry")
    return RemoteRun(retry_id, flow_run_id, record.workflow, record.version or 0)


async def _create(parameters: dict[str, Any], run_id: str, workflow: str, trigger: str) -> UUID:
    async with embedded_prefect.client() as client:
        deployment_id = await _deployment_id(client)
        flow_run = await client.create_flow_run_from_deployment(
            deployment_id,
            parameters=parameters,
            tags=[f"{REQUEST_TAG}{run_id}", f"workflow:{workflow}", f"trigger:{trigger}"],
        )
    return flow_run.id


async def cancel(run: RemoteRun) -> None:
    """Ask for the run to be cancelled: its worker stops it and it ends Cancelled (a run not
    started yet is cancelled by Prefect at once)."""
    async with embedded_prefect.client() as client:
        flow_run = await client.read_flow_run(run.flow_run_id)
        if flow_run.state is not None and flow_run.state.is_final():
            return
        started = flow_run.state is not None and (flow_run.state.is_running() or flow_run.state.is_paused())
        state: State[Any] = (
            Cancelling(message="cancelled on request") if started else Cancelled(message="cancelled before it started")
        )
        await client.set_flow_run_state(run.flow_run_id, state, force=True)


async def follow(run: RemoteRun, listen: Listener, *, poll: float = 1.0) -> FlowRun:
    """Tell ``listen`` what the run does, read from Prefect every ``poll`` seconds, until it ends.

    Emits the node events an in-process run would (``run_started`` with the runner's flow-run
    id; ``started``, ``retrying``, ``finished`` per node; ``waiting`` with the question a paused
    node published), so a Slack live message follows a run on a worker as it follows one in
    the bot. ``for_each`` items are folded into their node (its final line comes with the
    run result). Returns the deployment's flow run in its final state.
    """
    runner_id: UUID | None = None
    seen: dict[UUID, tuple[str, int]] = {}
    asked: set[str] = set()
    async with embedded_prefect.client() as client:
        while True:
            try:
                flow_run, runner_id = await _follow_once(client, run, listen, runner_id, seen, asked)
            except (httpx.TransportError, httpx.HTTPStatusError) as exc:
                if not _briefly_unavailable(exc):
                    raise
                await asyncio.sleep(max(poll, 1.0))
                continue
            if flow_run.state is not None and flow_run.state.is_final():
                return flow_run
            await asyncio.sleep(poll)


async def _follow_once(
    client: PrefectClient,
    run: RemoteRun,
    listen: Listener,
    runner_id: UUID | None,
    seen: dict[UUID, tuple[str, int]],
    asked: set[str],
) -> tuple[FlowRun, UUID | None]:
    flow_run = await client.read_flow_run(run.flow_run_id)
    if runner_id is None:
        children = await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[run.flow_run_id])),
            limit=1,
        )
        if children:
            runner_id = children[0].id
            listen(NodeEvent(run.run_id, "", "run_started", "", flow_run_id=str(runner_id)))
    if runner_id is not None:
        for event in await _node_events(client, run.run_id, runner_id, seen):
            listen(event)
        waiting = await _question(client, run.run_id, runner_id, asked)
        if waiting is not None:
            listen(waiting)
    return flow_run, runner_id


async def _node_events(
    client: PrefectClient, run_id: str, runner_id: UUID, seen: dict[UUID, tuple[str, int]]
) -> list[NodeEvent]:
    events: list[NodeEvent] = []
    offset = 0
    while True:
        page = await client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[runner_id])), limit=200, offset=offset
        )
        for task_run in page:
            state = task_run.state
            if state is None:
                continue
            now = (state.name or "", task_run.run_count)
            if seen.get(task_run.id) == now:
                continue
            seen[task_run.id] = now
            label = task_run.name
            node_id, item = label.partition("[")[0], "[" in label
            attempt = max(task_run.run_count, 1)
            if state.type == StateType.RUNNING:
                events.append(NodeEvent(run_id, node_id, "started" if attempt == 1 else "retrying", label, attempt))
            elif state.name == "AwaitingRetry":
                events.append(NodeEvent(run_id, node_id, "retrying", label, attempt + 1))
            elif state.is_final() and not item:
                result = NodeResult(
                    status="completed" if state.is_completed() else "failed",
                    attempts=attempt,
                    duration_ms=task_run.total_run_time.total_seconds() * 1000,
                    error=None if state.is_completed() else (state.message or state.name),
                )
                events.append(NodeEvent(run_id, node_id, "finished", label, attempt, result))
        if len(page) < 200:
            return events
        offset += len(page)


async def _question(client: PrefectClient, run_id: str, runner_id: UUID, asked: set[str]) -> NodeEvent | None:
    runner = await client.read_flow_run(runner_id)
    state = runner.state
    key = state.state_details.pause_key if state is not None and state.is_paused() else None
    if not key or key in asked:
        return None
    question = await read_question(runner_id, key)
    if question is None:
        return None  # published just after the pause: next time
    asked.add(key)
    node_id = str(question.pop("node_id", ""))
    return NodeEvent(run_id, node_id, "waiting", node_id, 0, flow_run_id=str(runner_id), request=question)


async def _deployment_id(client: PrefectClient) -> UUID:
    try:
        return (await client.read_deployment_by_name(f"{FLOW_NAME}/{GENERIC_DEPLOYMENT}")).id
    except httpx.TransportError as exc:  # the lookup doubles as the health check: one call per run
        raise RemoteUnavailableError(f"the Prefect API at {client.api_url} does not answer: {exc}") from exc
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
    async with embedded_prefect.client() as client:
        while True:
            try:
                flow_run = await client.read_flow_run(run.flow_run_id)
            except (httpx.TransportError, httpx.HTTPStatusError) as exc:
                if not _briefly_unavailable(exc):
                    raise
                if deadline is not None and loop.time() > deadline:
                    raise TimeoutError(f"run {run.run_id} did not end within {timeout:g} s (last: {exc})") from exc
                await asyncio.sleep(max(poll, 1.0))
                continue
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


def _briefly_unavailable(exc: httpx.TransportError | httpx.HTTPStatusError) -> bool:
    """The Prefect server (or its database) is restarting: the run goes on, keep following it."""
    return not isinstance(exc, httpx.HTTPStatusError) or exc.response.status_code >= 500


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
