"""The DAG walk of one run: each node waits for its upstream nodes, decides whether it runs
(branch ports, skips, upstream failures) and then awaits its Prefect task directly.

Passing resolved outputs instead of chains of futures keeps Prefect's per-task cost flat, and
deciding skips and the final status here avoids Prefect's "downstream of a failure stays
Pending" behaviour (see ``PREFECT-NOTES.md``). Skipped nodes still show in the Prefect UI, as
task runs in a terminal state named ``Skipped``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any
from uuid import UUID, uuid4

from prefect.client.schemas.objects import RunInput, StateDetails, TaskRun, TaskRunPolicy, TaskRunResult
from prefect.states import Completed, Pending, State
from prefect.task_engine import run_task_async
from prefect.utilities.engine import emit_task_run_state_change_event

from flows.events import NodeEvent
from flows.expressions import ExpressionError
from flows.node_task import NodeCall, task_for
from flows.plan import PlannedNode
from flows.results import NodeResult
from flows.services import RunState
from nodes.errors import NodeConfigError, NodeError

logger = logging.getLogger("switchboard.runner")


class Executor:
    """Walks one plan: decides, renders and runs every node exactly once."""

    def __init__(self, state: RunState, inputs: dict[str, Any], resume_root: str) -> None:
        self.state = state
        self.plan = state.plan
        self.resume_root = resume_root
        self.results: dict[str, NodeResult] = {}
        self.nodes_scope: dict[str, dict[str, Any]] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}
        #: Completed Prefect task runs per node: recorded as the downstream task runs' inputs
        #: so the Prefect UI draws the workflow's edges.
        self.task_runs: dict[str, list[TaskRunResult]] = {}
        self.prefect_tasks = {node_id: task_for(p) for node_id, p in self.plan.nodes.items()}
        self.slots = asyncio.Semaphore(state.services.max_parallel)
        self.scope = {
            "inputs": inputs,
            "nodes": self.nodes_scope,
            "run": state.run.as_template_value(),
            "env": state.services.template_env,
            "item": None,
            "index": None,
        }

    async def run(self) -> dict[str, NodeResult]:
        for node_id in self.plan.order:
            self.tasks[node_id] = asyncio.ensure_future(self._node(self.plan.nodes[node_id]))
        await asyncio.gather(*self.tasks.values())
        return {node_id: self.results[node_id] for node_id in self.plan.order}

    def _finish(self, planned: PlannedNode, result: NodeResult) -> None:
        self.results[planned.id] = result
        self.nodes_scope[planned.id] = {"output": result.output, "status": result.status}
        self.state.emit(NodeEvent(self.state.run.id, planned.id, "finished", planned.id, result.attempts, result))

    def _blocked(self, planned: PlannedNode) -> NodeResult | None:
        """A skip result if the node must not run, else None."""
        upstream = self.results
        for source in planned.upstream:
            r = upstream[source]
            if r.status == "failed" and not r.continued:
                return NodeResult("skipped", error=f"upstream node '{source}' failed", skip_reason="failure")
            if r.status == "skipped" and r.skip_reason == "failure":
                return NodeResult("skipped", error=r.error, skip_reason="failure")
        taken = [
            upstream[e.source].status != "skipped" and (e.port is None or upstream[e.source].port == e.port)
            for e in planned.edges
        ]
        join = planned.spec.join
        runs = any(taken) or not taken if join and join(planned.definition.params) == "any" else all(taken)
        return None if runs else NodeResult("skipped", skip_reason="branch")

    async def _node(self, planned: PlannedNode) -> None:
        if planned.edges:
            await asyncio.gather(*(self.tasks[s] for s in planned.upstream))
        blocked = self._blocked(planned)
        if blocked is not None:
            self._record_skip(planned, blocked)
            self._finish(planned, blocked)
            return
        started = time.perf_counter()
        upstream = (
            {s: self.results[s].output for s in planned.upstream if self.results[s].status != "skipped"}
            if planned.spec.wants_upstream
            else {}
        )
        try:
            if planned.for_each is None:
                result = await self._call(planned, planned.id, self.scope, upstream)
            else:
                result = await self._for_each(planned, upstream)
        except (ExpressionError, NodeConfigError) as exc:
            result = NodeResult("failed", error=str(exc))
        result.duration_ms = (time.perf_counter() - started) * 1000
        if result.status == "failed" and planned.definition.on_error == "continue":
            result.continued = True
            if planned.for_each is None or result.output is None:  # a for_each's items are listed
                result.output = _failed_item(result)
        self._finish(planned, result)

    def _record_skip(self, planned: PlannedNode, result: NodeResult) -> None:
        """Show a skipped node in Prefect as a task run in a terminal state named ``Skipped``.

        A skipped node never runs its task, so without this the Prefect UI showed only the
        nodes that ran. The task run is reported the way Prefect's engine reports every
        in-process task run — a state-change event, which the server's task-run recorder
        writes — so it costs no API round trip: one event, Pending -> Completed(name="Skipped").
        Its upstream task runs are its inputs, so the UI's graph keeps the workflow's edges.
        """
        flow_run_id = self.state.run.flow_run_id
        if flow_run_id is None:
            return
        reason = result.error if result.skip_reason == "failure" else "not on the branch taken upstream"
        try:
            task = self.prefect_tasks[planned.id]
            task_run_id, run_of_flow = uuid4(), UUID(str(flow_run_id))
            details = StateDetails(task_run_id=task_run_id, flow_run_id=run_of_flow)
            pending: State[Any] = Pending(state_details=details)
            skipped: State[Any] = Completed(name="Skipped", message=f"skipped: {reason}", state_details=details)
            parents = {run for source in planned.upstream for run in self.task_runs.get(source, ())}
            task_run = TaskRun(
                id=task_run_id,
                name=planned.id,
                flow_run_id=run_of_flow,
                task_key=task.task_key,
                dynamic_key=f"skipped-{planned.id}",
                task_version=task.version,
                empirical_policy=TaskRunPolicy(),
                task_inputs={"upstream": list(parents)} if parents else {},
                expected_start_time=pending.timestamp,  # type: ignore[arg-type]  # a datetime is what it holds
                state=pending,
            )
            task_run.state = skipped
            emit_task_run_state_change_event(task_run, pending, skipped)
        except Exception:  # the UI loses a row; the run itself is unaffected
            logger.warning("could not record skipped node %s in Prefect", planned.id, exc_info=True)
            return
        self.task_runs.setdefault(planned.id, []).append(TaskRunResult(id=task_run_id))

    async def _for_each(self, planned: PlannedNode, upstream: dict[str, Any]) -> NodeResult:
        assert planned.for_each is not None
        limits = self.state.services.render_limits.within(planned.definition.timeout)
        try:
            items = planned.for_each.render(self.scope, limits=limits)
        except ExpressionError as exc:
            failure = NodeConfigError(f"for_each: {exc}", node_id=planned.id)
            return await self._call(planned, planned.id, self.scope, upstream, failure=failure)
        if not isinstance(items, list | tuple):
            failure = NodeConfigError(f"for_each rendered to {type(items).__name__}, expected a list")
            return await self._call(planned, planned.id, self.scope, upstream, failure=failure)
        limit = asyncio.Semaphore(planned.definition.concurrency or len(items) or 1)

        async def one(index: int, item: Any) -> NodeResult:
            async with limit:
                scope = {**self.scope, "item": item, "index": index}
                try:
                    return await self._call(planned, f"{planned.id}[{index}]", scope, upstream)
                except (ExpressionError, NodeConfigError) as exc:
                    return NodeResult("failed", error=f"item {index}: {exc}")

        parts = await asyncio.gather(*(one(i, item) for i, item in enumerate(items)))
        failed = [p for p in parts if p.status == "failed"]
        continue_on_error = planned.definition.on_error == "continue"
        return NodeResult(
            "failed" if failed else "completed",
            attempts=max((p.attempts for p in parts), default=0),
            cached=bool(parts) and all(p.cached for p in parts),
            output=[p.output if p.status == "completed" else _failed_item(p) for p in parts]
            if continue_on_error or not failed
            else None,
            error=failed[0].error if failed else None,
        )

    async def _call(
        self,
        planned: PlannedNode,
        label: str,
        scope: Mapping[str, Any],
        upstream: dict[str, Any],
        *,
        failure: Exception | None = None,
    ) -> NodeResult:
        """Run the node's task; it renders the params itself. With ``failure`` the task fails
        with it at once (a ``for_each`` that did not render still shows as a task run)."""
        call = NodeCall(
            planned,
            label,
            scope,
            resume_root=self.resume_root,
            limits=self.state.services.render_limits,
            failure=failure,
        )
        parents: set[RunInput] = {run for source in planned.upstream for run in self.task_runs.get(source, ())}
        async with self.slots:
            # The engine call behind `await task(...)`, with the upstream task runs given as
            # plain ids: `wait_for=[states]` would make Prefect walk every upstream output
            # (measured ~1.3 ms per edge).
            state = await run_task_async(
                task=self.prefect_tasks[planned.id],
                parameters={
                    "label": label,
                    "run_id": self.state.run.id,
                    "node_id": planned.id,
                    "call": call,
                    "upstream": upstream,
                },
                return_type="state",
                dependencies={"upstream": parents} if parents else None,
            )
        assert state is not None
        attempts = self.state.attempts.get(label, 0)
        if state.is_completed():
            task_run_id = state.state_details.task_run_id
            if task_run_id is not None:
                self.task_runs.setdefault(planned.id, []).append(TaskRunResult(id=task_run_id))
            output = await state.aresult()
            port = planned.spec.port_of(output) if planned.spec.port_of else None
            return NodeResult("completed", attempts=attempts, cached=state.name == "Cached", output=output, port=port)
        error = await state.aresult(raise_on_failure=False)
        # A node error may carry what the node produced before failing (a failed sub-workflow's
        # run id, status and outputs): the output `on_error: continue` passes on.
        output = getattr(error, "output", None) if isinstance(error, NodeError) else None
        return NodeResult("failed", attempts=attempts, error=_error_text(error, state), output=output)


def _error_text(exc: Any, state: State[Any]) -> str:
    if isinstance(exc, TimeoutError) and state.message:
        return state.message
    if isinstance(exc, NodeError):
        return str(exc)
    if isinstance(exc, BaseException):  # a bug in node code: name the exception type
        text = str(exc)
        return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return state.message or "failed"


def _failed_item(part: NodeResult) -> dict[str, Any]:
    """What a failed node (or ``for_each`` item) outputs under ``on_error: continue``: its
    error, with what it output before failing (a child run's id and status)."""
    kept = part.output if isinstance(part.output, dict) else {}
    return {**kept, "error": part.error}
