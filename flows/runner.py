"""The runner: one Prefect flow that executes a planned workflow, one Prefect task per node.

The flow plans the workflow (or takes the caller's plan), records the run's start, opens the
run's guarded HTTP client, walks the plan (:mod:`flows.executor`, each node a task whose body
is :mod:`flows.node_task`), then records the result, hands it to an in-process caller
(:mod:`flows.services`) and publishes it as a Markdown artifact. A failed workflow raises
:class:`WorkflowFailed` at the end so Prefect marks the flow run Failed.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from collections.abc import Mapping
from typing import Any, Literal

import httpx
from prefect import flow
from prefect.artifacts import acreate_markdown_artifact
from prefect.context import TagsContext
from prefect.runtime import flow_run as runtime_flow_run

from flows.artifact import node_states, run_markdown
from flows.events import NodeEvent
from flows.executor import Executor
from flows.expressions import ExpressionError, RenderLimits
from flows.graph import mermaid
from flows.plan import Plan, build_plan
from flows.results import NodeResult, RunResult
from flows.services import ActiveRun, RunRecordError, RunState, runs
from flows.usage import Meter
from nodes.context import RunInfo
from nodes.http_guard import GuardedTransport

#: The Prefect flow name of a workflow's runs: each workflow is its own flow in the Prefect UI
#: (the Flows page lists workflows with their run history). The prefix keeps a workflow named
#: like one of Switchboard's own flows (``run-workflow``, ``cleanup``) apart from it.
FLOW_NAME_PREFIX = "workflow:"


@functools.lru_cache(maxsize=1024)
def workflow_flow(name: str) -> Any:
    """:func:`run_workflow` under the flow name of workflow ``name`` (memoised: ``with_options``
    reads the flow's source each time)."""
    return run_workflow.with_options(name=f"{FLOW_NAME_PREFIX}{name}")


class WorkflowFailed(Exception):
    """Raised at the end of a flow whose workflow failed, so Prefect marks the run Failed."""


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One TLS context per process: building it costs ~20 ms, per run it showed up."""
    return httpx.create_ssl_context()


def _flow_run_name() -> str:
    parameters = runtime_flow_run.parameters
    definition = parameters.get("definition") or {}
    version = parameters.get("version")
    label = f"v{version}" if version is not None else "draft"
    return f"{definition.get('name', 'workflow')} {label} · {parameters.get('trigger', 'api')}"


async def _recording(write: Any) -> None:
    try:
        await write
    except Exception as exc:
        raise RunRecordError(f"could not write the run record to Switchboard's database: {exc}") from exc


def _render_outputs(plan: Plan, scope: Mapping[str, Any], limits: RenderLimits) -> dict[str, Any]:
    """The workflow's declared outputs over the finished run's scope (a completed run only:
    a failed run declares nothing it could not build)."""
    rendered: dict[str, Any] = {}
    for name, compiled in plan.outputs.items():
        try:
            rendered[name] = compiled.render(scope, limits=limits)
        except ExpressionError as exc:
            raise ExpressionError(f"outputs.{name}: {exc}") from exc
    return rendered


def _run_status(plan: Plan, results: dict[str, NodeResult]) -> tuple[Literal["completed", "failed"], str | None]:
    for node_id in plan.order:
        r = results[node_id]
        if r.status == "failed" and not r.continued:
            return "failed", f"node '{node_id}' failed: {r.error}"
    return "completed", None


@flow(
    name="switchboard-workflow",
    flow_run_name=_flow_run_name,
    validate_parameters=False,
    persist_result=False,
    log_prints=False,
)
async def run_workflow(
    definition: dict[str, Any],
    inputs: dict[str, Any],
    run_id: str,
    version: int | None = None,
    trigger: str = "api",
    resume_of: str | None = None,
    resume_root: str | None = None,
) -> dict[str, Any]:
    """Run one workflow: plan it, execute every node as a Prefect task, report the result."""
    with runs.executing(run_id) as active:
        return await _execute(active, definition, inputs, run_id, version, trigger, resume_of, resume_root)


async def _execute(
    active: ActiveRun,
    definition: dict[str, Any],
    inputs: dict[str, Any],
    run_id: str,
    version: int | None,
    trigger: str,
    resume_of: str | None,
    resume_root: str | None,
) -> dict[str, Any]:
    services = active.services
    plan = services.plan or build_plan(definition)
    resolved_inputs = plan.workflow.resolve_inputs(inputs)
    flow_run_id = runtime_flow_run.id
    run = RunInfo(
        id=run_id,
        workflow=plan.workflow.name,
        version=version,
        trigger=trigger,
        flow_run_id=flow_run_id,
        slack_thread=services.slack_thread,
    )
    recorder = services.recorder
    if recorder is not None:
        await _recording(
            recorder.started(
                run_id=run_id,
                flow_run_id=flow_run_id,
                workflow=plan.workflow.name,
                version=version,
                trigger=trigger,
                triggered_by=services.triggered_by,
                inputs=resolved_inputs,
                resumed_from=resume_of,
                parent_run_id=services.parent_run_id,
            )
        )
    meter = Meter(services.prices, plan.workflow.budget, parent=services.usage_parent)
    transport = GuardedTransport(
        services.allow_hosts, ssl_context=_tls_context(), max_response_bytes=services.http_max_response_bytes
    )
    try:
        # trust_env=False: no proxy or netrc from the environment may reroute or decorate what
        # workflow authors send (the guard checks the addresses it connects to itself).
        async with httpx.AsyncClient(transport=transport, timeout=30.0, trust_env=False) as http:
            state = active.state = RunState(
                services=services, plan=plan, run=run, http=http, transport=transport, meter=meter
            )
            state.emit(NodeEvent(run_id, "", "run_started", "", flow_run_id=str(flow_run_id)))
            # The run's tags label the flow run only. Inherited by every task run, the unique
            # `switchboard-run:<id>` tag would defeat Prefect's tag-concurrency cache and cost
            # an API call per run before the first node starts.
            executor = Executor(state, resolved_inputs, resume_root or run_id)
            with TagsContext(current_tags=set()):
                results = await executor.run()
    except asyncio.CancelledError:
        # Stopped from outside (Slack's Cancel, a worker told to cancel, a parent run that was
        # cancelled): the record says so at once, not "failed: CancelledError".
        if recorder is not None:
            await _recording(recorder.finished(run_id, status="cancelled", error="cancelled while running"))
        raise
    except BaseException as exc:
        if recorder is not None:
            await _recording(recorder.finished(run_id, status="failed", error=f"{type(exc).__name__}: {exc}"))
        raise
    status, error = _run_status(plan, results)
    if meter.refused is not None:
        # The budget stops the run whichever node hit it (on_error: continue included).
        status, error = "failed", meter.refused
    outputs: dict[str, Any] = {}
    if status == "completed":
        try:
            outputs = _render_outputs(plan, executor.scope, services.render_limits)
        except ExpressionError as exc:
            status, error = "failed", f"could not build the workflow's outputs: {exc}"
    result = RunResult(
        run_id=run_id,
        workflow=plan.workflow.name,
        version=version,
        status=status,
        inputs=resolved_inputs,
        nodes=results,
        flow_run_id=flow_run_id,
        error=error,
        resumed_from=resume_of,
        outputs=outputs,
        usage=meter.summary(),
    )
    if recorder is not None:
        await _recording(recorder.finished(run_id, status=status, error=error, result=result.to_dict()))
    if active.registered:
        active.result = result
    await acreate_markdown_artifact(
        markdown=run_markdown(result, graph=mermaid(plan, node_states(result))),
        key=f"workflow-{plan.workflow.name}",
        description=f"Switchboard run {run_id}: {status}",
    )
    if status == "failed":
        raise WorkflowFailed(error)
    return result.to_dict()
