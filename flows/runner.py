"""The runner: one Prefect flow that executes a planned workflow, one Prefect task per node.

The flow walks the plan itself with asyncio: each node waits for its upstream nodes, decides
whether it runs (branch ports, skips, upstream failures), renders its params from the
upstream outputs and then awaits its Prefect task directly. Passing resolved outputs instead
of chains of futures keeps Prefect's per-task cost flat, and deciding skips and the final
status here avoids Prefect's "downstream of a failure stays Pending" behaviour (see
``PREFECT-NOTES.md``).

Node tasks that may have side effects persist their result under an explicit cache key:

* with ``cache:`` — the key is a hash of node type, version and resolved params (or the
  rendered ``cache.key``) with the node's ``ttl``: hits across runs and processes;
* otherwise — a key bound to the run's *resume root* (the first run of a retry chain), the
  node (and item) and its resolved params. A fresh run never hits it; a retry of a failed run
  reuses every such node that completed, so completed side effects are not repeated.

Pure nodes (no I/O: set, if, switch, merge, template, regex, JSON query) skip the result
store unless they ask for ``cache``: a resumed run recomputes them from the reused outputs.

Params are rendered *inside* the node's task (:class:`_NodeCall`), so a template that fails
or runs out of time is a failed task run in the Prefect UI with the message, and the node's
``timeout`` bounds the render as well (the render's own clock is cut to the node's timeout:
an async task's timeout cannot interrupt synchronous rendering). The keys above stay keys of
the *rendered* params, so caching and resume behave as before: Prefect asks the cache key
function for the key before it runs the task body, and that function is where the params
are rendered first — once, the body and every retry reuse the result. A key computed from
what the templates read instead (inputs, upstream outputs) would change whenever an
upstream output changed in a field the template never reads, and lose cache hits.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal, Protocol
from uuid import UUID, uuid4

import httpx
from prefect import flow, get_run_logger, task
from prefect.artifacts import acreate_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import RunInput, StateDetails, TaskRun, TaskRunPolicy, TaskRunResult
from prefect.context import TagsContext, TaskRunContext
from prefect.runtime import flow_run as runtime_flow_run
from prefect.states import Completed, Pending, State
from prefect.task_engine import run_task_async
from prefect.utilities.engine import emit_task_run_state_change_event
from pydantic import ValidationError

from flows import pauses, rate_limits
from flows.artifact import run_markdown
from flows.expressions import DEFAULT_LIMITS, ExpressionError, RenderLimits
from flows.model import NodeDef
from flows.plan import Plan, PlannedNode, build_plan
from flows.results import NodeResult, RunResult
from nodes.context import CredentialResolver, FilesBackend, MemoryBackend, NodeContext, RunInfo
from nodes.errors import NodeConfigError, NodeError, TransientError
from nodes.http_guard import DEFAULT_MAX_RESPONSE_BYTES, AllowList, GuardedTransport

logger = logging.getLogger("switchboard.runner")

#: Longest Retry-After we honour by waiting; longer ones fall back to the node's own delay.
MAX_RETRY_AFTER_SECONDS = 300.0

#: Default bound on node tasks running at once in one run.
DEFAULT_MAX_PARALLEL = 64

#: ``run_started`` comes once per run, before any node, with the Prefect flow-run id (its
#: ``node_id`` and ``label`` are empty); the others come per node (or ``for_each`` item).
#: ``waiting``: the node paused the flow run for a person's answer (``request`` says what).
EventKind = Literal["run_started", "started", "retrying", "waiting", "finished"]


@dataclass(frozen=True)
class NodeEvent:
    """Progress of one node, delivered to run listeners (CLI progress, Slack threads)."""

    run_id: str
    node_id: str
    kind: EventKind
    label: str
    attempt: int = 0
    result: NodeResult | None = None
    flow_run_id: str | None = None
    #: For ``waiting``: what is asked (``core.approval``: message, approvers, allow_self,
    #: timeout) and the pause ``key`` an answer must name (``flows.pauses.answer``).
    request: dict[str, Any] | None = None


Listener = Callable[[NodeEvent], None]


class RunRecorder(Protocol):
    """Where a run's record goes (``storage.runs.RunStore`` in Switchboard): written when the
    run starts and when it ends, never per node."""

    async def started(
        self,
        *,
        run_id: str,
        flow_run_id: str | None,
        workflow: str,
        version: int | None,
        trigger: str,
        triggered_by: str | None,
        inputs: dict[str, Any],
        resumed_from: str | None = None,
    ) -> None: ...

    async def finished(
        self, run_id: str, *, status: str, error: str | None, result: Mapping[str, Any] | None = None
    ) -> None: ...


class RunRecordError(RuntimeError):
    """The run record could not be written (the database is down or refused)."""


@dataclass
class RunServices:
    """Process-local things a run needs that cannot travel as flow parameters."""

    allow_hosts: AllowList = field(default_factory=AllowList)
    #: The most bytes of a response body the run's HTTP client reads (SWITCHBOARD_HTTP_MAX_RESPONSE_BYTES).
    http_max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    credential_resolver: CredentialResolver | None = None
    listeners: list[Listener] = field(default_factory=list)
    template_env: dict[str, str] = field(default_factory=dict)
    #: At most this many node tasks run at once in one run (for_each items included).
    max_parallel: int = DEFAULT_MAX_PARALLEL
    #: A plan already built by the caller (saves planning twice in-process).
    plan: Plan | None = None
    #: Records the run in Switchboard's database; None for unrecorded runs (benchmarks).
    recorder: RunRecorder | None = None
    #: Who started the run (a Slack user id, ``cli:<user>``), for the record and the audit log.
    triggered_by: str | None = None
    #: Chat memory and key-value state for the memory.* and state.* nodes.
    memory: MemoryBackend | None = None
    #: The file store for nodes that produce or read files.
    files: FilesBackend | None = None
    #: Where per-credential rate limits are kept (``flows.rate_limits``): auto, prefect, local, off.
    rate_limits: rate_limits.Backend = "auto"
    #: ``(channel, ts)`` of the run's Slack message (runs the bot started), for ``thread: run``.
    slack_thread: tuple[str, str] | None = None
    #: How long a node's templates may render and how large what they build may be
    #: (``SWITCHBOARD_TEMPLATE_TIMEOUT`` / ``SWITCHBOARD_TEMPLATE_MAX_SIZE``); a node's own
    #: ``timeout`` shortens the time.
    render_limits: RenderLimits = DEFAULT_LIMITS


@dataclass
class _RunState:
    services: RunServices
    plan: Plan
    run: RunInfo
    http: httpx.AsyncClient
    attempts: dict[str, int] = field(default_factory=dict)
    #: One pause (``core.approval``) at a time: a flow run has one state.
    pause_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def emit(self, event: NodeEvent) -> None:
        for listener in self.services.listeners:
            try:
                listener(event)
            except Exception:
                logger.exception("run listener failed on %s", event)


#: Services registered by in-process callers, by run id (see :func:`register_services`).
_SERVICES: dict[str, RunServices] = {}
#: Runs executing in this process, by run id (node tasks find their run here).
_RUNS: dict[str, _RunState] = {}
#: Results waiting for the in-process caller that registered services for them.
_RESULTS: dict[str, RunResult] = {}


def register_services(run_id: str, services: RunServices) -> None:
    """Attach process-local services to a run about to start in this process."""
    _SERVICES[run_id] = services


def take_result(run_id: str) -> RunResult | None:
    """The result of a run started in this process with :func:`register_services` (once)."""
    _SERVICES.pop(run_id, None)
    return _RESULTS.pop(run_id, None)


class WorkflowFailed(Exception):
    """Raised at the end of a flow whose workflow failed, so Prefect marks the run Failed."""


def _digest(*parts: Any) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:40]


def _cache_key_fn(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    call: _NodeCall = parameters["call"]
    return call.cache_key()


_UNRENDERED: Any = object()


class _NodeCall:
    """One node (or ``for_each`` item) as its task runs it: the params are rendered on first
    use, inside the task — by the cache key function when the node persists its result, else
    by the task body — and kept, with a render failure, for the body and its retries.

    A plain class (not a dataclass): Prefect walks dataclass parameters looking for futures,
    and this one holds the run's whole template scope.
    """

    __slots__ = ("_failure", "_key", "_params", "label", "limits", "planned", "resume_root", "scope")

    def __init__(
        self,
        planned: PlannedNode,
        label: str,
        scope: Mapping[str, Any],
        *,
        resume_root: str,
        limits: RenderLimits,
        failure: Exception | None = None,
    ) -> None:
        self.planned = planned
        self.label = label
        self.scope = scope
        self.resume_root = resume_root
        self.limits = limits.within(planned.definition.timeout)
        self._failure = failure
        self._params: Any = _UNRENDERED
        self._key: str | None = None

    def params(self) -> Any:
        """The rendered params; raises the render's failure as a NodeConfigError."""
        self._render()
        if self._failure is not None:
            raise self._failure
        return self._params

    def cache_key(self) -> str:
        """The result-store key of the rendered params (see the module docstring)."""
        self._render()
        if self._key is None:
            try:
                self._key = self._compute_key()
            except NodeConfigError as exc:
                self._failure = exc
        if self._failure is not None:
            # A key nothing else has: nothing is read back, and the body fails with the reason.
            return f"unrendered-{uuid4().hex}"
        assert self._key is not None
        return self._key

    def _render(self) -> None:
        if self._params is not _UNRENDERED or self._failure is not None:
            return
        try:
            self._params = self.planned.params.render(self.scope, limits=self.limits)
        except ExpressionError as exc:
            self._failure = NodeConfigError(f"params: {exc}", node_id=self.planned.id)

    def _compute_key(self) -> str:
        node = self.planned.definition
        spec = self.planned.spec
        if node.cache is not None:
            if self.planned.cache_key is not None:
                try:
                    rendered = self.planned.cache_key.render(self.scope, limits=self.limits)
                except ExpressionError as exc:
                    raise NodeConfigError(f"cache.key: {exc}", node_id=self.planned.id) from exc
                return "cache-" + _digest(spec.type, spec.version, rendered)
            return "cache-" + _digest(spec.type, spec.version, self._params)
        return "run-" + _digest(self.resume_root, self.label, spec.type, spec.version, self._params)


def _retry_only_transient(task: Any, task_run: TaskRun, state: State[Any]) -> bool:
    """Retry transient provider failures and node timeouts; never permanent errors."""
    return isinstance(state.data, TransientError | TimeoutError)


@task(name="node", retry_condition_fn=_retry_only_transient, task_run_name="{label}")
async def node_task(
    label: str,
    run_id: str,
    node_id: str,
    call: _NodeCall,
    upstream: dict[str, Any],
) -> Any:
    """Execute one node (or one ``for_each`` item): render its params, validate them, run it."""
    state = _RUNS[run_id]
    planned = state.plan.nodes[node_id]
    spec = planned.spec
    attempt = state.attempts.get(label, 0) + 1
    state.attempts[label] = attempt
    state.emit(NodeEvent(run_id, node_id, "started" if attempt == 1 else "retrying", label, attempt))
    params = call.params()
    try:
        model = spec.params_model.model_validate(params)
    except ValidationError as exc:
        raise NodeConfigError(_params_message(exc), node_id=node_id) from exc
    ctx = NodeContext(
        node_id=node_id,
        run=state.run,
        http=state.http,
        logger=get_run_logger(),
        attempt=attempt,
        credential_name=planned.definition.credential,
        upstream=upstream,
        credential_resolver=state.services.credential_resolver,
        credential_kind=spec.credential,
        memory_backend=state.services.memory,
        files_backend=state.services.files,
        max_response_bytes=state.services.http_max_response_bytes,
        input_waiter=pauses.Pauser(
            key=pauses.pause_key(label, attempt),
            node_id=node_id,
            lock=state.pause_lock,
            announce=lambda request: state.emit(
                NodeEvent(
                    run_id, node_id, "waiting", label, attempt, flow_run_id=state.run.flow_run_id, request=request
                )
            ),
        ),
    )
    limit = rate_limits.limit_for(
        workflow=state.run.workflow,
        node_id=node_id,
        provider=spec.credential,
        credential=planned.definition.credential,
        declared=planned.definition.rate_limit.per_second if planned.definition.rate_limit else None,
    )
    if limit is not None:
        await rate_limits.acquire(limit, state.services.rate_limits)
    try:
        return await spec.invoke(ctx, model)
    except TransientError as exc:
        await _honour_retry_after(exc, planned.definition, attempt)
        raise


def _params_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        path = ".".join(str(p) for p in err["loc"])
        parts.append(f"params.{path}: {err['msg']}" if path else f"params: {err['msg']}")
    return "; ".join(parts)


async def _honour_retry_after(exc: TransientError, node: NodeDef, attempt: int) -> None:
    """Wait out the part of a Retry-After the node's own retry delay does not cover."""
    if exc.retry_after is None or attempt > node.retries:
        return
    delays, _ = node.retry_delays()
    if isinstance(delays, list):
        configured = delays[min(attempt - 1, len(delays) - 1)] if delays else 0.0
    else:
        configured = float(delays)
    extra = min(exc.retry_after, MAX_RETRY_AFTER_SECONDS) - configured
    if extra > 0:
        await asyncio.sleep(extra)


def _task_for(planned: PlannedNode) -> Any:
    node = planned.definition
    delays, jitter = node.retry_delays()
    return _task_variant(
        node.id,
        node.retries,
        tuple(delays) if isinstance(delays, list) else delays,
        jitter,
        node.timeout,
        node.cache.ttl if node.cache else None,
        persisted=node.cache is not None or not planned.spec.pure,
    )


@functools.lru_cache(maxsize=4096)
def _task_variant(
    name: str,
    retries: int,
    delays: float | tuple[float, ...],
    jitter: float | None,
    timeout: float | None,
    cache_ttl: float | None,
    *,
    persisted: bool,
) -> Any:
    """``node_task`` with one node's options; memoised because ``with_options`` reads the
    task's source code each time (2-3 ms per node per run, measured).

    Persisted variants store their result under the explicit key from ``_cache_key_fn``
    (cache hits and resume); pure nodes without ``cache`` skip the result store entirely
    (measured ~1-2 ms of CPU per node) and are recomputed by a resumed run.
    """
    options: dict[str, Any] = {
        "name": name,
        "retries": retries,
        "retry_delay_seconds": list(delays) if isinstance(delays, tuple) else delays,
        "retry_jitter_factor": jitter,
        "timeout_seconds": timeout,
    }
    if persisted:
        options.update(persist_result=True, cache_key_fn=_cache_key_fn)
        if cache_ttl:
            options["cache_expiration"] = timedelta(seconds=cache_ttl)
    else:
        options.update(persist_result=False, cache_policy=NO_CACHE)
    return node_task.with_options(**options)


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


class _Executor:
    """Walks one plan: decides, renders and runs every node exactly once."""

    def __init__(self, state: _RunState, inputs: dict[str, Any], resume_root: str) -> None:
        self.state = state
        self.plan = state.plan
        self.resume_root = resume_root
        self.results: dict[str, NodeResult] = {}
        self.nodes_scope: dict[str, dict[str, Any]] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}
        #: Completed Prefect task runs per node: recorded as the downstream task runs' inputs
        #: so the Prefect UI draws the workflow's edges.
        self.task_runs: dict[str, list[TaskRunResult]] = {}
        self.prefect_tasks = {node_id: _task_for(p) for node_id, p in self.plan.nodes.items()}
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
            if result.output is None:
                result.output = {"error": result.error}
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
            output=[p.output if p.status == "completed" else {"error": p.error} for p in parts]
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
        call = _NodeCall(
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
        return NodeResult("failed", attempts=attempts, error=_error_text(error, state))


def _error_text(exc: Any, state: State[Any]) -> str:
    if isinstance(exc, TimeoutError) and state.message:
        return state.message
    if isinstance(exc, NodeError):
        return str(exc)
    if isinstance(exc, BaseException):  # a bug in node code: name the exception type
        text = str(exc)
        return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return state.message or "failed"


async def _recording(write: Any) -> None:
    try:
        await write
    except Exception as exc:
        raise RunRecordError(f"could not write the run record to Switchboard's database: {exc}") from exc


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
    services = _SERVICES.get(run_id) or RunServices()
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
            )
        )
    transport = GuardedTransport(
        services.allow_hosts, ssl_context=_tls_context(), max_response_bytes=services.http_max_response_bytes
    )
    try:
        # trust_env=False: no proxy or netrc from the environment may reroute or decorate what
        # workflow authors send (the guard checks the addresses it connects to itself).
        async with httpx.AsyncClient(transport=transport, timeout=30.0, trust_env=False) as http:
            state = _RunState(services=services, plan=plan, run=run, http=http)
            state.emit(NodeEvent(run_id, "", "run_started", "", flow_run_id=str(flow_run_id)))
            _RUNS[run_id] = state
            try:
                # The run's tags label the flow run only. Inherited by every task run, the unique
                # `switchboard-run:<id>` tag would defeat Prefect's tag-concurrency cache and cost
                # an API call per run before the first node starts.
                with TagsContext(current_tags=set()):
                    results = await _Executor(state, resolved_inputs, resume_root or run_id).run()
            finally:
                del _RUNS[run_id]
    except BaseException as exc:
        if recorder is not None:
            await _recording(recorder.finished(run_id, status="failed", error=f"{type(exc).__name__}: {exc}"))
        raise
    status, error = _run_status(plan, results)
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
    )
    if recorder is not None:
        await _recording(recorder.finished(run_id, status=status, error=error, result=result.to_dict()))
    if run_id in _SERVICES:
        _RESULTS[run_id] = result
    await acreate_markdown_artifact(
        markdown=run_markdown(result),
        key=f"workflow-{plan.workflow.name}",
        description=f"Switchboard run {run_id}: {status}",
    )
    if status == "failed":
        raise WorkflowFailed(error)
    return result.to_dict()
