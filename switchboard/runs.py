"""Run records from Python: list them, kept in step with Prefect."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterFlowRunId
from prefect.client.schemas.sorting import LogSort

from storage.runs import RunRecord, RunStore
from switchboard import embedded_prefect
from switchboard.database import open_engine

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


async def list_runs(*, workflow: str | None = None, status: str | None = None, limit: int = 50) -> list[RunRecord]:
    """Run records, newest first; records left "running" are reconciled with Prefect first."""
    async with open_engine() as engine:
        store = RunStore(engine)
        await reconcile(store, await store.list(workflow=workflow, status="running", limit=limit))
        return await store.list(workflow=workflow, status=status, limit=limit)


async def get_run(run_id: str) -> RunRecord:
    """One run record (reconciled with Prefect if it is still marked running)."""
    async with open_engine() as engine:
        store = RunStore(engine)
        record = await store.get(run_id)
        if await reconcile(store, [record]):
            record = await store.get(run_id)
        return record


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
