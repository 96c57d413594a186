"""``core.workflow``: a run calls a stored workflow as its child.

The child is a recorded run of its own (trigger ``workflow``, ``parent_run_id`` the caller's
run), executed here as a Prefect subflow nested under the calling node's task run. Its resume
root is derived from the caller's and the node's label, so a retry of the node, or
``switchboard retry`` of the parent, resumes the child: its completed nodes with side effects
are reused, not repeated. Depth is bounded (``SWITCHBOARD_MAX_WORKFLOW_DEPTH``) and reported
with the chain of workflows that reached it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from prefect.client.schemas.objects import TaskRun
from prefect.context import TaskRunContext

from flows.model import DefinitionError, InputError, Workflow, load_definition
from flows.plan import Plan, build_plan
from flows.results import RunResult
from flows.usage import Meter
from nodes.context import NodeContext
from nodes.errors import NodeConfigError
from nodes.subworkflow import WORKFLOW_NODE, ChildRunFailed
from storage.workflows import StoredVersion, WorkflowNotFoundError, WorkflowStore

#: The trigger recorded on a run started by a ``core.workflow`` node.
SUBWORKFLOW_TRIGGER = "workflow"


@dataclass(frozen=True)
class Parent:
    """The run that calls a sub-workflow, as its child sees it."""

    run_id: str
    #: The calling node's Prefect task (run): the child's flow run is nested under it.
    task: Any | None
    task_run: TaskRun | None
    #: The workflows from the top-level run down to the caller.
    chain: tuple[str, ...]
    #: The caller's usage meter: the child's model calls count there too, under its budget.
    usage: Meter | None = None


#: Whether the run's user may run a stored workflow, by name: None if so, else why not. Front
#: ends that know permissions (the Slack bot) give one; without it every call is allowed.
Authorize = Callable[[str], Awaitable[str | None]]

#: Starts a child run: ``(plan, inputs, version, run_id, resume_root, parent) -> result``.
ChildRunner = Callable[[Plan, dict[str, Any], int, str, str, Parent], Awaitable[RunResult]]


def child_resume_root(parent_resume_root: str, label: str) -> str:
    """The resume root of the child a node (or ``for_each`` item) ``label`` starts: the same
    for every attempt of the node and every retry of the parent run."""
    return hashlib.sha256(f"{parent_resume_root}/{label}".encode()).hexdigest()[:12]


def static_calls(workflow: Workflow) -> dict[str, str]:
    """The stored workflows a workflow's ``core.workflow`` nodes name literally: node id -> name
    (a templated name is only known at run time, where the depth limit bounds it)."""
    calls: dict[str, str] = {}
    for node in workflow.nodes:
        if node.type != WORKFLOW_NODE:
            continue
        name = node.params.get("workflow")
        if isinstance(name, str) and "{" not in name and "%" not in name:
            calls[node.id] = name
    return calls


#: Finds the workflow a name calls: the latest stored version, a file of a folder, or None.
Lookup = Callable[[str], Awaitable[Workflow | None]]


def stored_lookup(store: WorkflowStore) -> Lookup:
    """A :data:`Lookup` over the latest stored versions."""

    async def lookup(name: str) -> Workflow | None:
        try:
            stored = await store.get(name)
        except WorkflowNotFoundError:
            return None
        return Workflow.model_validate(stored.definition)

    return lookup


async def find_cycle(workflow: Workflow, lookup: Lookup) -> tuple[str, list[str]] | None:
    """A chain of literal calls from ``workflow`` back to itself through the workflows
    ``lookup`` finds: ``(node id, [workflow, ..., workflow])``, or None."""
    for node_id, first in static_calls(workflow).items():
        seen: set[str] = set()
        stack: list[list[str]] = [[workflow.name, first]]
        while stack:
            path = stack.pop()
            current = path[-1]
            if current == workflow.name:
                return node_id, path
            if current in seen:
                continue
            seen.add(current)
            callee = await lookup(current)
            if callee is not None:  # one not stored yet: the run says so when it calls it
                stack.extend([*path, name] for name in static_calls(callee).values())
    return None


async def refused_calls(workflow: Workflow, lookup: Lookup, authorize: Authorize) -> list[str]:
    """Why ``authorize`` refuses the workflows ``workflow`` calls literally, directly or through
    the workflows they call (checked before a run goes to the workers, where no one can ask)."""
    refusals: list[str] = []
    seen: set[str] = set()
    pending = list(static_calls(workflow).values())
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        refusal = await authorize(name)
        if refusal is not None:
            refusals.append(f"it calls workflow '{name}': {refusal}")
            continue
        callee = await lookup(name)
        if callee is not None:
            pending.extend(static_calls(callee).values())
    return sorted(refusals)


class SubWorkflows:
    """The :class:`nodes.context.WorkflowCaller` of one run."""

    def __init__(
        self,
        store: WorkflowStore,
        *,
        run_id: str,
        resume_root: str,
        chain: tuple[str, ...],
        max_depth: int,
        start: ChildRunner,
        new_run_id: Callable[[], str],
        authorize: Authorize | None = None,
    ) -> None:
        self._authorize = authorize
        self._store = store
        self._run_id = run_id
        self._resume_root = resume_root
        self._chain = chain
        self._max_depth = max_depth
        self._start = start
        self._new_run_id = new_run_id

    async def _stored(self, ctx: NodeContext, workflow: str, version: int | None) -> StoredVersion:
        """The stored version a call runs, once the run's user may run it."""
        if self._authorize is not None:
            refusal = await self._authorize(workflow)
            if refusal is not None:
                raise NodeConfigError(f"may not run workflow '{workflow}': {refusal}", node_id=ctx.node_id)
        try:
            return await self._store.get(workflow, version)
        except WorkflowNotFoundError as exc:
            raise NodeConfigError(str(exc), node_id=ctx.node_id) from exc

    async def describe(self, ctx: NodeContext, *, workflow: str, version: int | None) -> dict[str, Any]:
        """What calling ``workflow`` takes: its description and its declared inputs as a JSON
        Schema (an ``ai.agent``'s workflow tool), refused as a call would be."""
        stored = await self._stored(ctx, workflow, version)
        try:
            definition = load_definition(stored.definition)
        except DefinitionError as exc:
            problems = "; ".join(str(problem) for problem in exc.problems)
            raise NodeConfigError(
                f"workflow '{workflow}' v{stored.version} does not validate here: {problems}", node_id=ctx.node_id
            ) from exc
        return {
            "name": definition.name,
            "version": stored.version,
            "description": definition.description or "",
            "inputs": definition.inputs_schema(),
        }

    async def __call__(
        self, ctx: NodeContext, *, workflow: str, version: int | None, inputs: Mapping[str, Any]
    ) -> dict[str, Any]:
        chain = " → ".join((*self._chain, workflow))
        if len(self._chain) >= self._max_depth:
            raise NodeConfigError(
                f"sub-workflows nest deeper than {self._max_depth} levels ({chain}); "
                "SWITCHBOARD_MAX_WORKFLOW_DEPTH sets the limit",
                node_id=ctx.node_id,
            )
        stored = await self._stored(ctx, workflow, version)
        label = f"workflow '{workflow}' v{stored.version}"
        try:
            plan = build_plan(stored.definition)
            resolved = plan.workflow.resolve_inputs(inputs)
        except InputError as exc:
            problems = "; ".join(str(problem) for problem in exc.problems)
            raise NodeConfigError(f"inputs for {label}: {problems}", node_id=ctx.node_id) from exc
        except DefinitionError as exc:
            problems = "; ".join(str(problem) for problem in exc.problems)
            raise NodeConfigError(f"{label} does not validate here: {problems}", node_id=ctx.node_id) from exc
        task = TaskRunContext.get()
        task_label = task.task_run.name if task is not None else ctx.node_id
        parent = Parent(
            self._run_id,
            task.task if task is not None else None,
            task.task_run if task is not None else None,
            self._chain,
            ctx.usage_meter if isinstance(ctx.usage_meter, Meter) else None,
        )
        result = await self._start(
            plan,
            resolved,
            stored.version,
            self._new_run_id(),
            child_resume_root(self._resume_root, task_label),
            parent,
        )
        output = {
            "run_id": result.run_id,
            "status": result.status,
            "outputs": result.outputs,
            "workflow": workflow,
            "version": stored.version,
            "flow_run_id": result.flow_run_id,
        }
        if result.status != "completed":
            raise ChildRunFailed(
                f"{label} (run {result.run_id}) {result.status}: {result.error or 'no error given'}",
                output=output,
                node_id=ctx.node_id,
            )
        return output
