"""Running a workflow in this process: the run's services, its record, its failure handler.

:func:`run_here` is what ``client.runs`` (and the ``switchboard.arun`` convenience) call; it is
given the settings and the database engine, it never reads the environment.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from prefect import tags
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags
from prefect.client.schemas.objects import State, TaskRun
from prefect.client.schemas.sorting import FlowRunSort
from prefect.context import TagsContext
from prefect.flow_engine import run_flow_async
from prefect.states import Pending, Running
from prefect.transactions import BaseTransaction
from sqlalchemy.ext.asyncio import AsyncEngine

from flows.events import Listener
from flows.expressions import RenderLimits
from flows.model import DefinitionError, Problem, Workflow
from flows.plan import Plan, build_plan
from flows.results import RunResult, RunStatus
from flows.runner import workflow_flow
from flows.services import RunServices
from flows.services import runs as active_runs
from nodes.context import CredentialResolver
from nodes.http_guard import AllowList
from storage.files import FileStore
from storage.memory import MemoryStore
from storage.runs import RunStore
from storage.workflows import WorkflowStore
from switchboard import embedded_prefect
from switchboard.credentials import resolver_for
from switchboard.database import open_engine
from switchboard.settings import Settings
from switchboard.subworkflows import SUBWORKFLOW_TRIGGER, Authorize, Parent, SubWorkflows

logger = logging.getLogger(__name__)

WorkflowSource = str | Path | Mapping[str, Any] | Workflow
#: What the run functions accept: a source, or a plan already validated by :func:`validate`.
Runnable = WorkflowSource | Plan


class RunNotFoundError(LookupError):
    """No run with that id is known to Prefect."""


class NotRetryableError(ValueError):
    """The run cannot be retried (it did not fail)."""


def new_run_id() -> str:
    """A fresh Switchboard run id (12 hex digits)."""
    return uuid.uuid4().hex[:12]


async def _run_nested(flow: Any, parameters: dict[str, Any], task: Any, task_run: TaskRun) -> State[Any]:
    """Run the workflow flow as a subflow nested under a node's task run (``core.workflow``).

    Calling the flow from inside the node's task would make Prefect add a task run of its own
    to the parent flow run to hold the subflow; creating the flow run with the node's task run
    as its parent puts the child under the node in the Prefect UI instead. The node's task run
    reaches the server's database through its events, a moment later (the task-run recorder
    writes in batches), so it is created through the API first — with its own id and key, which
    the recorder's events then update (an existing row with that key is returned as it is).
    """
    async with embedded_prefect.client() as client:
        await client.create_task_run(
            task,
            flow_run_id=task_run.flow_run_id,
            dynamic_key=task_run.dynamic_key,
            id=task_run.id,
            name=task_run.name,
            state=Running(),
            task_inputs=task_run.task_inputs,
        )
        flow_run = await client.create_flow_run(
            flow,
            parameters=flow.serialize_parameters(parameters),
            parent_task_run_id=task_run.id,
            tags=TagsContext.get().current_tags,
            state=Pending(),
        )
    # Outside the node task's transaction: nested in it, the child's persisted node results
    # would only be written when the node's own commits, so a failed child would keep none of
    # them and a retry would repeat its completed side effects.
    outside = BaseTransaction.__var__.set(None)  # type: ignore[arg-type]  # None: no transaction
    try:
        state = await run_flow_async(flow, flow_run=flow_run, parameters=parameters, return_type="state")
    finally:
        BaseTransaction.__var__.reset(outside)
    assert isinstance(state, State)
    return state


def _run_tag(run_id: str) -> str:
    return f"switchboard-run:{run_id}"


async def run_here(
    workflow: Runnable,
    inputs: Mapping[str, Any] | None = None,
    *,
    settings: Settings,
    trigger: str = "api",
    version: int | None = None,
    inputs_are_text: bool = False,
    listeners: Iterable[Listener] = (),
    allow_hosts: str | Iterable[str] | None = None,
    credential_resolver: CredentialResolver | None = None,
    run_id: str | None = None,
    resume_of: str | None = None,
    resume_root: str | None = None,
    triggered_by: str | None = None,
    record: bool = True,
    engine: AsyncEngine | None = None,
    slack_thread: tuple[str, str] | None = None,
    parent: Parent | None = None,
    authorize: Authorize | None = None,
) -> RunResult:
    """Run a workflow in this process, on ``settings``, and return its :class:`RunResult`.

    Invalid definitions raise :class:`DefinitionError`; invalid inputs raise
    :class:`flows.model.InputError` — both before anything runs. A workflow that fails
    returns a result with ``status == "failed"``; it does not raise.

    With ``record`` (the default) the run gets a row in Switchboard's database
    (``switchboard runs``), written when it starts and when it ends, and its memory.* and
    state.* nodes use that database. Long-lived callers (the Slack bot, workers) pass their
    own ``engine`` so runs share one connection pool; otherwise each run opens and closes one.
    ``slack_thread`` is ``(channel, ts)`` of the run's Slack message (the bot passes it), where
    ``slack.post_message`` with ``thread: run`` replies.

    When a recorded run fails and its workflow names ``on_failure``, that stored workflow runs
    next (here, before this returns) with the input ``failure`` (:func:`failure_input`).

    A recorded run's ``core.workflow`` nodes run their stored workflows through this function
    too, as children (``parent``: :mod:`switchboard.subworkflows`); ``authorize`` says whether
    the run's user may run each of them (the bot passes its Slack permissions).
    """
    plan = workflow if isinstance(workflow, Plan) else build_plan(workflow)
    resolved = plan.workflow.resolve_inputs(inputs or {}, from_text=inputs_are_text)
    run_id = run_id or new_run_id()
    services = RunServices(
        allow_hosts=AllowList.parse(settings.http_allow_hosts if allow_hosts is None else allow_hosts),
        http_max_response_bytes=settings.http_max_response_bytes,
        credential_resolver=credential_resolver,
        listeners=list(listeners),
        template_env=settings.template_env_values(),
        render_limits=RenderLimits(timeout_seconds=settings.template_timeout, max_size=settings.template_max_size),
        max_parallel=settings.max_parallel_nodes,
        rate_limits=settings.rate_limits,
        plan=plan,
        triggered_by=triggered_by,
        slack_thread=slack_thread,
        parent_run_id=parent.run_id if parent else None,
        prices=settings.price_table(),
        mcp_commands=settings.mcp_command_set,
        usage_parent=parent.usage if parent else None,
    )
    async with AsyncExitStack() as stack:
        if record:
            if engine is None:
                engine = await stack.enter_async_context(open_engine(settings))
            services.recorder = RunStore(engine)
            services.memory = MemoryStore(engine)
            services.files = FileStore(engine, settings.files_path)
            if credential_resolver is None:
                services.credential_resolver = resolver_for(engine, settings, triggered_by)
            child_engine = engine

            async def start_child(
                child: Plan, inputs: dict[str, Any], version: int, child_id: str, root: str, caller: Parent
            ) -> RunResult:
                return await run_here(
                    child,
                    inputs,
                    settings=settings,
                    trigger=SUBWORKFLOW_TRIGGER,
                    version=version,
                    allow_hosts=allow_hosts,
                    credential_resolver=credential_resolver,
                    run_id=child_id,
                    resume_root=root,
                    triggered_by=triggered_by,
                    engine=child_engine,
                    slack_thread=slack_thread,
                    parent=caller,
                    authorize=authorize,
                )

            services.workflow_caller = SubWorkflows(
                WorkflowStore(engine),
                run_id=run_id,
                resume_root=resume_root or run_id,
                chain=(*(parent.chain if parent else ()), plan.workflow.name),
                max_depth=settings.max_workflow_depth,
                start=start_child,
                new_run_id=new_run_id,
                authorize=authorize,
            )
        await embedded_prefect.ready()  # waits without blocking the loop (the bot keeps answering)
        result = await _run_registered(
            plan,
            resolved,
            services,
            run_id,
            trigger,
            version,
            resume_of,
            resume_root,
            parent=parent,
        )
        handler = plan.workflow.on_failure
        if handler and engine is not None and result.status == "failed" and trigger != FAILURE_TRIGGER:
            await _start_failure_handler(handler, result, engine, settings=settings, allow_hosts=allow_hosts)
        return result


#: The trigger of a run started by another run's ``on_failure`` (whose own ``on_failure`` is
#: not followed: a failing handler cannot start a chain or a loop).
FAILURE_TRIGGER = "on_failure"


def failure_input(result: RunResult) -> dict[str, Any]:
    """What an ``on_failure`` workflow receives as its ``failure`` input."""
    return {
        "run_id": result.run_id,
        "flow_run_id": result.flow_run_id,
        "workflow": result.workflow,
        "version": result.version,
        "status": result.status,
        "error": result.error,
        "inputs": result.inputs,
        "failed_nodes": {node_id: node.error for node_id, node in result.nodes.items() if node.status == "failed"},
    }


async def _start_failure_handler(
    name: str,
    failed: RunResult,
    engine: AsyncEngine,
    *,
    settings: Settings,
    allow_hosts: str | Iterable[str] | None,
) -> None:
    """Run the stored workflow ``name`` with the failed run as its ``failure`` input, after it.

    A missing handler, or one that does not accept ``failure``, is logged and audited: the
    failed run's own result is what the caller gets either way.
    """
    from storage import audit
    from storage.workflows import WorkflowNotFoundError, WorkflowStore

    actor = f"{FAILURE_TRIGGER}:{failed.run_id}"
    try:
        stored = await WorkflowStore(engine).get(name)
        handled = await run_here(
            stored.definition,
            {"failure": failure_input(failed)},
            settings=settings,
            trigger=FAILURE_TRIGGER,
            version=stored.version,
            triggered_by=actor,
            allow_hosts=allow_hosts,
            engine=engine,
        )
    except (WorkflowNotFoundError, DefinitionError) as exc:
        logger.error(
            "run %s of %s failed; its on_failure workflow %r did not start: %s",
            failed.run_id,
            failed.workflow,
            name,
            exc,
        )
        await audit.append(
            engine,
            actor=actor,
            action="on-failure-not-started",
            target=name,
            detail={"failed_run": failed.run_id, "workflow": failed.workflow, "reason": str(exc)[:500]},
        )
        return
    logger.info(
        "run %s of %s failed: on_failure run %s of %s %s",
        failed.run_id,
        failed.workflow,
        handled.run_id,
        name,
        handled.status,
    )


async def _run_registered(
    plan: Plan,
    resolved: dict[str, Any],
    services: RunServices,
    run_id: str,
    trigger: str,
    version: int | None,
    resume_of: str | None,
    resume_root: str | None,
    *,
    parent: Parent | None = None,
) -> RunResult:
    active_runs.register(run_id, services)
    run_tags = [
        f"workflow:{plan.workflow.name}",
        f"version:{version if version is not None else 'draft'}",
        f"trigger:{trigger}",
        _run_tag(run_id),
        *plan.workflow.tags,
    ]
    parameters: dict[str, Any] = {
        "definition": plan.workflow.to_dict(),
        "inputs": resolved,
        "run_id": run_id,
        "version": version,
        "trigger": trigger,
        "resume_of": resume_of,
        "resume_root": resume_root,
    }
    flow = workflow_flow(plan.workflow.name)
    try:
        with tags(*run_tags):
            if parent is None or parent.task_run is None:
                state = await flow(**parameters, return_state=True)
            else:
                state = await _run_nested(flow, parameters, parent.task, parent.task_run)
    finally:
        result = active_runs.take_result(run_id)
    if result is None:  # the flow ended before it could report (crash, cancellation)
        status: RunStatus = "cancelled" if state.is_cancelled() else "failed"
        result = RunResult(
            run_id=run_id,
            workflow=plan.workflow.name,
            version=version,
            status=status,
            inputs=resolved,
            flow_run_id=str(state.state_details.flow_run_id) if state.state_details.flow_run_id else None,
            error=state.message or f"flow run ended {state.name}",
            resumed_from=resume_of,
        )
    return result


async def retry_here(
    run_id: str,
    *,
    settings: Settings,
    listeners: Iterable[Listener] = (),
    new_run_id: str | None = None,
    **options: Any,
) -> RunResult:
    """Resume a failed run in this process: same definition and inputs; completed nodes are not
    re-executed.

    The resumed run gets a new run id (``new_run_id``, or a fresh one); ``options`` are
    :func:`run_here`'s. Completed nodes reuse their persisted outputs and are reported
    ``cached: true``; failed, failure-skipped and downstream nodes run.
    """
    flow_run = await check_retryable(run_id)
    parameters = flow_run.parameters
    definition = parameters.get("definition")
    if not isinstance(definition, dict):
        raise DefinitionError([Problem("the run's definition was not recorded")], source=f"run {run_id}")
    return await run_here(
        definition,
        parameters.get("inputs") or {},
        settings=settings,
        trigger="retry",
        version=parameters.get("version"),
        listeners=listeners,
        resume_of=run_id,
        resume_root=parameters.get("resume_root") or run_id,
        run_id=new_run_id,
        **options,
    )


async def check_retryable(run_id: str) -> Any:
    """The Prefect flow run of ``run_id`` if it can be retried; raises saying why not."""
    async with embedded_prefect.client() as client:
        runs = await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[_run_tag(run_id)])),
            sort=FlowRunSort.START_TIME_DESC,
            limit=1,
        )
    if not runs:
        raise RunNotFoundError(f"no run with id {run_id!r} (see the Prefect UI or `switchboard runs`)")
    flow_run = runs[0]
    if flow_run.state is not None and flow_run.state.is_completed():
        raise NotRetryableError(f"run {run_id} completed; only failed runs can be retried")
    if flow_run.state is not None and flow_run.state.is_cancelled():
        raise NotRetryableError(f"run {run_id} was cancelled; start it again with `switchboard run`")
    if flow_run.state is not None and not flow_run.state.is_final():
        raise NotRetryableError(f"run {run_id} is still {flow_run.state.name}; retry it once it has ended")
    return flow_run
