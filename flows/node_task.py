"""The body of one node's Prefect task, its cache key and its retry rules.

Node tasks that may have side effects persist their result under an explicit cache key:

* with ``cache:`` — the key is a hash of node type, version and resolved params (or the
  rendered ``cache.key``) with the node's ``ttl``: hits across runs and processes;
* otherwise — a key bound to the run's *resume root* (the first run of a retry chain), the
  node (and item) and its resolved params. A fresh run never hits it; a retry of a failed run
  reuses every such node that completed, so completed side effects are not repeated.

Pure nodes (no I/O: set, if, switch, merge, template, regex, JSON query) skip the result
store unless they ask for ``cache``: a resumed run recomputes them from the reused outputs.

Params are rendered *inside* the node's task (:class:`NodeCall`), so a template that fails
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
from collections.abc import Mapping
from datetime import timedelta
from typing import Any
from uuid import uuid4

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.context import TaskRunContext
from prefect.states import State
from pydantic import ValidationError

from flows import pauses, rate_limits
from flows.events import NodeEvent
from flows.expressions import ExpressionError, RenderLimits
from flows.model import NodeDef
from flows.plan import PlannedNode
from flows.services import runs
from flows.tool_tasks import ToolTasks
from nodes.context import NodeContext
from nodes.errors import NodeConfigError, TransientError

#: Longest Retry-After we honour by waiting; longer ones fall back to the node's own delay.
MAX_RETRY_AFTER_SECONDS = 300.0


def _digest(*parts: Any) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:40]


def _cache_key_fn(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    call: NodeCall = parameters["call"]
    return call.cache_key()


_UNRENDERED: Any = object()


class NodeCall:
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
    call: NodeCall,
    upstream: dict[str, Any],
) -> Any:
    """Execute one node (or one ``for_each`` item): render its params, validate them, run it."""
    state = runs.state(run_id)
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
        workflow_caller=state.services.workflow_caller,
        usage_meter=state.meter,
        tool_runner=ToolTasks(state, node_id, attempt),
        http_transport=state.transport,
        mcp_commands=state.services.mcp_commands,
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


def task_for(planned: PlannedNode) -> Any:
    """The Prefect task that runs ``planned``: ``node_task`` with the node's retries,
    timeout and result persistence."""
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
