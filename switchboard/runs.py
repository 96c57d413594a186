"""Run records from Python: list them, kept in step with Prefect."""

from __future__ import annotations

from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from storage.runs import RunRecord, RunStore
from switchboard.database import open_engine

#: Prefect's final state types and the run status they mean.
_FINAL = {"COMPLETED": "completed", "FAILED": "failed", "CRASHED": "crashed", "CANCELLED": "cancelled"}


async def _reconcile(store: RunStore, records: list[RunRecord]) -> bool:
    """Bring records still marked running up to date with their Prefect flow runs.

    A run whose process died (or whose database went away) before it could record its end is
    left "running"; Prefect knows how it ended. Returns whether anything changed.
    """
    open_runs = {r.flow_run_id: r for r in records if not r.is_final and r.flow_run_id}
    if not open_runs:
        return False
    async with get_client() as client:
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
        await _reconcile(store, await store.list(workflow=workflow, status="running", limit=limit))
        return await store.list(workflow=workflow, status=status, limit=limit)


async def get_run(run_id: str) -> RunRecord:
    """One run record (reconciled with Prefect if it is still marked running)."""
    async with open_engine() as engine:
        store = RunStore(engine)
        record = await store.get(run_id)
        if await _reconcile(store, [record]):
            record = await store.get(run_id)
        return record
