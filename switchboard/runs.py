"""Runs from the client: start them here or on workers, follow, cancel, retry and list them.

``client.runs`` is a :class:`Runs`. :meth:`Runs.run` executes a workflow in this process;
:meth:`Runs.submit` hands a stored workflow to the workers (:mod:`switchboard.remote`);
:meth:`Runs.execute` does whichever the settings say (``SWITCHBOARD_EXECUTION``) and follows
the run to its end, which is what the bot and every front end that starts runs for others use.
Records listed are kept in step with Prefect (:func:`reconcile`).
"""

from __future__ import annotations

import builtins
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterFlowRunId
from prefect.client.schemas.objects import FlowRun
from prefect.client.schemas.sorting import LogSort
from sqlalchemy.ext.asyncio import AsyncEngine

from flows.events import Listener
from flows.model import Workflow
from flows.plan import Plan
from flows.results import RunResult
from storage.runs import RunRecord, RunRecordNotFoundError, RunStore
from storage.workflows import WorkflowStore
from switchboard import embedded_prefect, remote
from switchboard.errors import ClientClosedError, SubWorkflowRefusedError
from switchboard.execution import Runnable, check_retryable, retry_here, run_here
from switchboard.remote import RemoteRun
from switchboard.settings import Settings
from switchboard.subworkflows import Authorize, refused_calls, stored_lookup

#: Prefect's final state types and the run status they mean.
_FINAL = {"COMPLETED": "completed", "FAILED": "failed", "CRASHED": "crashed", "CANCELLED": "cancelled"}


async def reconcile(store: RunStore, records: list[RunRecord]) -> bool:
    """Bring records still marked running up to date with their Prefect flow runs.

    A run whose process died (or whose database went away) before it could record its end is
    left "running"; Prefect knows how it ended. Returns whether anything changed.
    """
    open_runs = {r.flow_run_id: r for r in records if not r.is_final and r.flow_run_id}
    if not open_runs:
        return False
    async with embedded_prefect.client() as client:
        flow_runs = await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(i) for i in open_runs])),
            limit=len(open_runs),
        )
    changed = False
    for flow_run in flow_runs:
        state = flow_run.state
        if state is None or state.type.value not in _FINAL:
            continue
        record = open_runs[str(flow_run.id)]
        await store.finished(record.id, status=_FINAL[state.type.value], error=state.message or None)
        changed = True
    return changed


@dataclass(frozen=True)
class LogLine:
    """One log line of a run, as Prefect stored it."""

    at: datetime
    level: str
    node: str | None
    message: str


#: Token shapes that must never be shown even if a log line carried one.
_TOKEN = re.compile(r"\b(xox[abposr]-[\w-]+|xapp-[\w-]+|gh[pousr]_\w+|github_pat_\w+|sk-[\w-]{8,}|ya29\.[\w.-]+)")


def redact_line(text: str) -> str:
    """``text`` with anything shaped like a Slack, GitHub, OpenAI or Google token replaced."""
    return _TOKEN.sub("[redacted]", text)


async def flow_run_logs(flow_run_id: str, *, node: str | None = None, limit: int = 20) -> list[LogLine]:
    """The last ``limit`` log lines of a flow run (of one node's task runs with ``node``), oldest
    first, redacted."""
    async with embedded_prefect.client() as client:
        task_runs = await client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(flow_run_id)]))
        )
        names = {str(t.id): t.name for t in task_runs}
        logs = await client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[UUID(flow_run_id)])),
            sort=LogSort.TIMESTAMP_DESC,
            limit=200,
        )
    lines = []
    for log in logs:
        task = names.get(str(log.task_run_id)) if log.task_run_id else None
        node_id = task.split("[", 1)[0] if task else None
        if node is not None and node_id != node:
            continue
        lines.append(LogLine(log.timestamp, logging.getLevelName(log.level), node_id, redact_line(log.message)))
        if len(lines) == limit:
            break
    return list(reversed(lines))


__all__ = ["LogLine", "RemoteRun", "RunRecord", "RunRecordNotFoundError", "Runs", "reconcile", "redact_line"]


class Runs:
    """Runs of this Switchboard (``client.runs``).

    ``on_workers`` is the client's own: the runs it handed to workers while it follows them,
    so :meth:`cancel_on_workers` reaches them from any part of the process.
    """

    def __init__(self, engine: AsyncEngine | None, settings: Settings, on_workers: dict[str, RemoteRun]) -> None:
        self._engine = engine
        self._settings = settings
        self._on_workers = on_workers

    @property
    def _db(self) -> AsyncEngine:
        if self._engine is None:
            raise ClientClosedError
        return self._engine

    @property
    def remotely(self) -> bool:
        """Whether runs started for others (Slack, webhooks, the API) go to workers."""
        return self._settings.runs_remotely

    async def run(self, workflow: Runnable, inputs: Mapping[str, Any] | None = None, **options: Any) -> RunResult:
        """Run a workflow (a source, a :class:`Workflow` or a validated plan) in this process and
        return its result; ``options`` are :func:`switchboard.execution.run_here`'s. Invalid
        definitions and inputs raise before anything runs; a failed run returns ``failed``."""
        options.setdefault("engine", self._engine)
        return await run_here(workflow, inputs, settings=self._settings, **options)

    async def retry(self, run_id: str, **options: Any) -> RunResult:
        """Resume a failed run in this process (completed nodes are reused, not re-executed)."""
        options.setdefault("engine", self._engine)
        return await retry_here(run_id, settings=self._settings, **options)

    async def check_retryable(self, run_id: str) -> FlowRun:
        """The Prefect flow run of ``run_id`` if it can be retried; raises saying why not."""
        flow_run: FlowRun = await check_retryable(run_id)
        return flow_run

    async def submit(self, name: str, inputs: Mapping[str, Any] | None = None, **options: Any) -> RemoteRun:
        """Queue a run of the stored workflow ``name`` for the workers (see :func:`remote.submit`)."""
        return await remote.submit(self._db, name, inputs, **options)

    async def submit_retry(self, run_id: str, **options: Any) -> RemoteRun:
        """Queue the resumption of a failed run for the workers (see :func:`remote.submit_retry`)."""
        return await remote.submit_retry(self._db, run_id, **options)

    async def wait(
        self,
        run: RemoteRun,
        *,
        poll: float = 0.5,
        timeout: float | None = None,
        on_state: Callable[[FlowRun], None] | None = None,
    ) -> RunResult:
        """Wait for a run on the workers to end; its result (see :func:`remote.wait`)."""
        data = await remote.wait(self._db, run, poll=poll, timeout=timeout, on_state=on_state)
        return RunResult.from_dict(data)

    async def follow(self, run: RemoteRun, listen: Listener) -> RunResult:
        """Tell ``listen`` what a run on the workers does until it ends; return its result.

        While it is followed, :meth:`cancel` with its run id asks Prefect to cancel it.
        """
        self._on_workers[run.run_id] = run
        try:
            await remote.follow(run, listen)
            return await self.wait(run)
        finally:
            self._on_workers.pop(run.run_id, None)

    async def execute(
        self,
        name: str,
        inputs: Mapping[str, Any],
        *,
        version: int,
        run_id: str,
        trigger: str,
        triggered_by: str | None,
        listeners: Iterable[Listener] = (),
        slack_thread: tuple[str, str] | None = None,
        plan: Plan | None = None,
        authorize: Authorize | None = None,
    ) -> RunResult:
        """Run stored workflow ``name`` v``version`` where the settings say (here, or on the
        workers, followed to its end), telling ``listeners`` each node event.

        ``inputs`` must already be resolved against the workflow; ``plan``: its plan, if the
        caller built it already (saves reading and planning it again for a run here).
        ``authorize`` decides whether the user may run each sub-workflow the run calls: as they
        are called here; for a run on the workers, before it is queued, for the workflows it
        calls by name (:class:`SubWorkflowRefusedError` says which).
        """
        if self.remotely:
            if authorize is not None:
                store = WorkflowStore(self._db)
                workflow = (
                    plan.workflow
                    if plan is not None
                    else Workflow.model_validate((await store.get(name, version)).definition)
                )
                refusals = await refused_calls(workflow, stored_lookup(store), authorize)
                if refusals:
                    raise SubWorkflowRefusedError(f"workflow '{name}' cannot run for you: " + "; ".join(refusals))
            queued = await self.submit(
                name,
                inputs,
                version=version,
                trigger=trigger,
                triggered_by=triggered_by,
                run_id=run_id,
                slack_thread=slack_thread,
            )
            return await self.follow(queued, _fan_out(listeners))
        runnable: Runnable = plan if plan is not None else (await WorkflowStore(self._db).get(name, version)).definition
        return await self.run(
            runnable,
            inputs,
            trigger=trigger,
            version=version,
            listeners=listeners,
            run_id=run_id,
            triggered_by=triggered_by,
            slack_thread=slack_thread,
            authorize=authorize,
        )

    async def execute_retry(
        self,
        run_id: str,
        *,
        new_run_id: str,
        triggered_by: str | None,
        listeners: Iterable[Listener] = (),
        slack_thread: tuple[str, str] | None = None,
    ) -> RunResult:
        """Resume failed run ``run_id`` where the settings say, followed to its end."""
        if self.remotely:
            queued = await self.submit_retry(
                run_id, triggered_by=triggered_by, new_run_id=new_run_id, slack_thread=slack_thread
            )
            return await self.follow(queued, _fan_out(listeners))
        return await self.retry(
            run_id, listeners=listeners, new_run_id=new_run_id, triggered_by=triggered_by, slack_thread=slack_thread
        )

    def on_workers(self, run_id: str) -> RemoteRun | None:
        """The run on the workers with id ``run_id`` if this client is following it, else None."""
        return self._on_workers.get(run_id)

    async def cancel_on_workers(self, run_id: str) -> bool:
        """Ask Prefect to cancel ``run_id`` if this client follows it on the workers; False if not."""
        queued = self._on_workers.get(run_id)
        if queued is None:
            return False
        await remote.cancel(queued)
        return True

    async def list(
        self,
        *,
        workflow: str | None = None,
        workflows: builtins.list[str] | None = None,
        status: str | None = None,
        limit: int = 50,
    ) -> builtins.list[RunRecord]:
        """Run records, newest first; records left "running" are reconciled with Prefect first."""
        store = RunStore(self._db)
        await reconcile(store, await store.list(workflow=workflow, workflows=workflows, status="running", limit=limit))
        return await store.list(workflow=workflow, workflows=workflows, status=status, limit=limit)

    async def get(self, run_id: str) -> RunRecord:
        """One run record (reconciled with Prefect if it is still marked running);
        :class:`RunRecordNotFoundError` when there is none."""
        store = RunStore(self._db)
        record = await store.get(run_id)
        if await reconcile(store, [record]):
            record = await store.get(run_id)
        return record

    async def record(self, run_id: str) -> RunRecord:
        """One run record as stored (not reconciled: no Prefect call); :class:`RunRecordNotFoundError`."""
        return await RunStore(self._db).get(run_id)

    async def records(
        self, *, workflow: str | None = None, workflows: builtins.list[str] | None = None, limit: int = 50
    ) -> builtins.list[RunRecord]:
        """Run records as stored, newest first (not reconciled); ``workflow``/``workflows``: only theirs."""
        return await RunStore(self._db).list(workflow=workflow, workflows=workflows, limit=limit)

    async def result(self, run_id: str) -> dict[str, Any] | None:
        """The recorded run result of an ended run (node outputs included), or None."""
        return await RunStore(self._db).result(run_id)

    async def logs(self, flow_run_id: str, *, node: str | None = None, limit: int = 20) -> builtins.list[LogLine]:
        """The last log lines of a run's flow run, oldest first, redacted."""
        return await flow_run_logs(flow_run_id, node=node, limit=limit)


def _fan_out(listeners: Iterable[Listener]) -> Listener:
    every = list(listeners)

    def listen(event: Any) -> None:
        for listener in every:
            listener(event)

    return listen
