"""The API's routes: workflows (list, describe, start a run) and runs (list, read, cancel, retry).

Each route authenticates its caller (:mod:`bot.api.callers`) and then goes through the bot's
runtime and the one :class:`switchboard.Client` it holds, as ``/flow`` does: a run started
here executes in the bot or on workers exactly as a run started from Slack, with the
workflow's ``notify`` channel as its live message.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from bot.api.callers import Caller, authenticate
from bot.api.errors import ApiError
from bot.api.schemas import (
    RUN_STATUSES,
    ErrorResponse,
    InputInfo,
    Run,
    RunList,
    RunRequest,
    VersionInfo,
    WorkflowDetail,
    WorkflowList,
    WorkflowSummary,
)
from bot.runtime import BotRuntime, StartedRun, workflow_of
from flows.model import DefinitionError, InputError
from nodes import safe_json
from switchboard.errors import RunRecordNotFoundError, WorkflowNotFoundError
from switchboard.execution import NotRetryableError, RunNotFoundError, new_run_id
from switchboard.idempotency import IdempotencyConflictError
from switchboard.runs import RunRecord

#: Documents the bearer token in OpenAPI; :func:`caller` does the checking.
bearer = HTTPBearer(auto_error=False, description="An API token: `switchboard tokens create NAME --scope run`.")
#: The refusals every authenticated route may answer (OpenAPI).
REFUSALS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "No token, or a bad, expired or revoked one."},
    403: {"model": ErrorResponse, "description": "The token's scope or its owner's permissions do not allow it."},
    429: {"model": ErrorResponse, "description": "Over the token's rate limit (see Retry-After)."},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorResponse, "description": "No such thing visible."}}


def runtime_of(request: Request) -> BotRuntime:
    runtime: BotRuntime = request.app.state.runtime
    return runtime


async def caller(
    request: Request, _token: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)] = None
) -> Caller:
    """The authenticated caller of a route (401/429 otherwise)."""
    return await authenticate(request, runtime_of(request), request.app.state.limiter)


CallerDep = Annotated[Caller, Depends(caller)]
router = APIRouter(responses=REFUSALS)


@router.get("/workflows", operation_id="list_workflows", response_model=WorkflowList, summary="List workflows")
async def list_workflows(who: CallerDep) -> WorkflowList:
    """The stored workflows this token may read, by name."""
    summaries = await who.runtime.core.workflows.list()
    return WorkflowList(
        workflows=[
            WorkflowSummary(
                name=s.name,
                description=s.description,
                latest_version=s.latest_version,
                updated_at=s.updated_at.isoformat(),
                archived=s.archived,
            )
            for s in summaries
            if await who.may_read(s.name)
        ]
    )


@router.get(
    "/workflows/{name}",
    operation_id="get_workflow",
    response_model=WorkflowDetail,
    responses=NOT_FOUND,
    summary="Describe a workflow",
)
async def get_workflow(name: str, who: CallerDep) -> WorkflowDetail:
    """A workflow's latest version: its inputs (types, defaults, choices), outputs and versions."""
    await who.require_read(name)
    core = who.runtime.core
    try:
        stored, versions = await core.workflows.get(name), await core.workflows.versions(name)
    except WorkflowNotFoundError:
        raise ApiError(404, f"no workflow named {name[:100]!r} that this token can see") from None
    workflow = workflow_of(stored)
    return WorkflowDetail(
        name=stored.name,
        description=workflow.description,
        version=stored.version,
        inputs={key: InputInfo(**spec.model_dump()) for key, spec in workflow.inputs.items()},
        outputs=list(workflow.outputs),
        tags=list(workflow.tags),
        versions=[
            VersionInfo(version=v.version, created_at=v.created_at.isoformat(), created_by=v.created_by, note=v.note)
            for v in versions
        ],
    )


def _request_schema() -> dict[str, Any]:
    return {
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": RunRequest.model_json_schema()}},
        }
    }


@router.post(
    "/workflows/{name}/runs",
    operation_id="start_run",
    status_code=201,
    response_model=Run,
    responses={
        **NOT_FOUND,
        200: {"model": Run, "description": "The run an earlier request with this Idempotency-Key started."},
        409: {"model": ErrorResponse, "description": "The Idempotency-Key was used with another request."},
        422: {"model": ErrorResponse, "description": "The body or the inputs are invalid (every problem listed)."},
    },
    openapi_extra=_request_schema(),
    summary="Start a run",
)
async def start_run(
    name: str,
    request: Request,
    response: Response,
    who: CallerDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="The same key and body within 24 h return the same run instead of starting another.",
        ),
    ] = None,
) -> Run:
    """Start a run of a workflow with typed inputs, here or on workers as the bot runs it.

    Answers 201 with the run (status ``queued`` or ``running``), or with its whole result when
    it ended within ``wait`` seconds.
    """
    await who.require_run(name, action="start")
    asked = _run_request(await request.body(), request.app.state.max_bytes)
    runtime = who.runtime
    try:
        stored = await runtime.core.workflows.get(name, asked.version)
    except WorkflowNotFoundError:
        raise ApiError(404, f"workflow {name!r} has no version {asked.version}") from None
    try:
        inputs = workflow_of(stored).resolve_inputs(asked.inputs)
    except InputError as exc:
        problems = [{"field": p.field or "inputs", "message": p.message} for p in exc.problems]
        listed = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
        raise ApiError(422, f"invalid inputs for workflow {name!r}: {listed}", problems=problems) from None

    run_id = new_run_id()
    scope = f"api:{who.token.name}:{name}"
    if idempotency_key is not None:
        canonical = json.dumps({"version": stored.version, "inputs": asked.inputs}, sort_keys=True).encode()
        try:
            claim = await runtime.core.idempotency.claim(scope, idempotency_key, request=canonical, run_id=run_id)
        except ValueError as exc:  # a bad key, or IdempotencyConflictError
            if isinstance(exc, IdempotencyConflictError):
                raise ApiError(409, str(exc), code="idempotency_conflict", run_id=exc.run_id) from None
            raise ApiError(422, str(exc), problems=[{"field": "Idempotency-Key", "message": str(exc)}]) from None
        if not claim.won:
            response.status_code = 200
            response.headers["Idempotent-Replayed"] = "true"
            return await _run_of(runtime, claim.run_id, workflow=name, version=stored.version)
    try:
        started = await runtime.start_unattended(
            stored, inputs, trigger="api", triggered_by=who.actor, run_id=run_id, user=who.token.owner
        )
    except DefinitionError as exc:
        await _release(runtime, scope, idempotency_key)
        raise ApiError(500, f"workflow {name!r} v{stored.version} does not validate: {exc}") from None
    except BaseException:
        await _release(runtime, scope, idempotency_key)
        raise
    await _wait_for(started, asked.wait)
    return await _run_of(runtime, run_id, workflow=name, version=stored.version)


async def _release(runtime: BotRuntime, scope: str, key: str | None) -> None:
    if key is not None:
        await runtime.core.idempotency.release(scope, key)


def _run_request(body: bytes, max_bytes: int) -> RunRequest:
    """The body as a :class:`RunRequest` (empty: no inputs), parsed within bounds."""
    if not body.strip():
        return RunRequest()
    try:
        data = safe_json.loads(body, what="the body", max_bytes=max_bytes)
    except safe_json.UnsafeJSONError as exc:
        raise ApiError(400, f'{exc}; send a JSON object such as {{"inputs": {{"repo": "acme/api"}}}}') from None
    if not isinstance(data, dict):
        raise ApiError(422, 'the body must be a JSON object such as {"inputs": {...}, "wait": 30}')
    try:
        return RunRequest.model_validate(data)
    except ValueError as exc:
        errors: list[dict[str, Any]] = getattr(exc, "errors", lambda: [])()
        problems = [
            {"field": ".".join(str(p) for p in e.get("loc", ())) or "body", "message": e.get("msg", "")} for e in errors
        ]
        listed = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
        raise ApiError(422, f"invalid request: {listed}", problems=problems) from None


async def _wait_for(started: StartedRun, seconds: float) -> None:
    """Wait up to ``seconds`` for the run's task (never cancelling it: the run goes on)."""
    if seconds > 0:
        await asyncio.wait({started.task}, timeout=seconds)


async def _run_of(runtime: BotRuntime, run_id: str, *, workflow: str, version: int | None) -> Run:
    """The run as the API shows it; a run not recorded yet (a worker records it when it
    starts) is ``queued``, or ``running`` when this process is executing it."""
    try:
        record = await runtime.core.runs.get(run_id)
    except RunRecordNotFoundError:
        status = "running" if run_id in runtime.running else "queued"
        return Run(run_id=run_id, workflow=workflow, version=version, status=status)
    return await _run(runtime, record)


async def _run(runtime: BotRuntime, record: RunRecord) -> Run:
    data: dict[str, Any] = record.to_dict()
    if record.is_final:
        result = await runtime.core.runs.result(record.id)
        if result is not None:
            data |= {key: result.get(key) for key in ("outputs", "nodes", "usage")}
    return Run.model_validate(data)


async def _visible_record(who: Caller, run_id: str) -> RunRecord:
    """The record of ``run_id`` if the caller may read its workflow; else 404 (audited), exactly
    as for a run that does not exist."""
    try:
        record = await who.runtime.core.runs.get(run_id[:64])
    except RunRecordNotFoundError:
        record = None
    if record is None or not await who.may_read(record.workflow):
        target = record.workflow if record is not None else run_id
        raise await who.refuse(404, f"no run {run_id[:64]!r} that this token can see", target, run_id=run_id[:64])
    return record


@router.get("/runs", operation_id="list_runs", response_model=RunList, summary="List runs")
async def list_runs(
    who: CallerDep,
    workflow: Annotated[str | None, Query(max_length=100, description="Only this workflow's runs.")] = None,
    status: Annotated[str | None, Query(description="Only runs with this status.")] = None,
    limit: Annotated[int, Query(ge=1, le=200, description="At most this many, newest first.")] = 50,
) -> RunList:
    """Runs of the workflows this token may read, newest first."""
    if status is not None and status not in RUN_STATUSES:
        message = f"status {status[:20]!r}: choose one of {', '.join(RUN_STATUSES)}"
        raise ApiError(422, message, problems=[{"field": "status", "message": message}])
    runs = who.runtime.core.runs
    if workflow is not None:
        if not await who.may_read(workflow):
            return RunList(runs=[])
        records = await runs.list(workflow=workflow, status=status, limit=limit)
    elif who.token.scope == "admin" or (not who.token.workflows and who.access is None):
        records = await runs.list(status=status, limit=limit)
    else:
        names = [s.name for s in await who.runtime.core.workflows.list(include_archived=True)]
        readable = [name for name in names if await who.may_read(name)]
        records = await runs.list(workflows=readable, status=status, limit=limit) if readable else []
    return RunList(runs=[await _run(who.runtime, record) for record in records])


@router.get("/runs/{run_id}", operation_id="get_run", response_model=Run, responses=NOT_FOUND, summary="Read a run")
async def get_run(run_id: str, who: CallerDep) -> Run:
    """A run: its record and, once it has ended, its result (nodes, outputs, usage)."""
    return await _run(who.runtime, await _visible_record(who, run_id))


@router.post(
    "/runs/{run_id}/cancel",
    operation_id="cancel_run",
    status_code=202,
    response_model=Run,
    responses={**NOT_FOUND, 409: {"model": ErrorResponse, "description": "The run is not running in this bot."}},
    summary="Cancel a run",
)
async def cancel_run(run_id: str, who: CallerDep) -> Run:
    """Cancel a run this bot process is executing or following (202: it is being cancelled)."""
    runtime = who.runtime
    started = runtime.running.get(run_id[:64])
    if started is not None:
        await who.require_run(started.workflow, action="cancel")
    else:
        record = await _visible_record(who, run_id)
        await who.require_run(record.workflow, action="cancel")
        reason = f"run {run_id!r} ended {record.status}" if record.is_final else f"run {run_id!r} is not running here"
        raise ApiError(409, reason, code="not_running")
    await runtime.cancel(run_id)
    return await _run_of(runtime, run_id, workflow=started.workflow, version=None)


@router.post(
    "/runs/{run_id}/retry",
    operation_id="retry_run",
    status_code=201,
    response_model=Run,
    responses={**NOT_FOUND, 409: {"model": ErrorResponse, "description": "The run cannot be resumed."}},
    summary="Retry a run",
)
async def retry_run(run_id: str, who: CallerDep) -> Run:
    """Resume a failed run as a new run: nodes that completed are not run again."""
    record = await _visible_record(who, run_id)
    await who.require_run(record.workflow, action="retry")
    try:
        started = await who.runtime.start_retry(record, triggered_by=who.actor, user=who.token.owner)
    except (NotRetryableError, RunNotFoundError) as exc:
        raise ApiError(409, str(exc), code="not_retryable") from None
    return await _run_of(who.runtime, started.run_id, workflow=record.workflow, version=record.version)
