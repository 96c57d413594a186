"""Retention: delete run records, and their Prefect flow runs, that ended long ago.

``switchboard cleanup`` (run it from cron, a systemd timer or a Prefect schedule) calls
:meth:`Retention.cleanup` (``client.retention.cleanup``). Only ended runs are deleted; a run
still marked running is kept whatever its age. Each run's Prefect flow run (by ``flow_run_id``)
is deleted first; a record whose flow run could not be deleted (Prefect unreachable) is kept,
so the next clean-up tries again instead of losing the only pointer to it.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID

from prefect.exceptions import ObjectNotFound
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.models import utcnow
from storage.runs import RunRecord, RunStore
from switchboard import embedded_prefect
from switchboard.settings import Settings

#: Records fetched and deleted per transaction.
BATCH = 500
#: The most flow runs the Prefect API returns per page.
PREFECT_PAGE = 200
#: Prefect flow-run deletions in flight at once.
PREFECT_CONCURRENCY = 8

_AGE = re.compile(r"^\s*(\d+)\s*([wdhm])\s*$")
_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes"}


def parse_age(text: str) -> timedelta:
    """``30d``, ``12h``, ``90m`` (or ``2w``) as a timedelta; a ValueError names the expected form."""
    match = _AGE.match(text.lower())
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"{text!r} is not an age: use a positive number with d, h or m (30d, 12h, 90m)")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


@dataclass
class CleanupResult:
    """What a clean-up did (or, with ``dry_run``, would do)."""

    cutoff: datetime
    dry_run: bool
    runs_deleted: int = 0
    flow_runs_deleted: int = 0
    #: Flow runs Prefect no longer had (deleted there already).
    flow_runs_missing: int = 0
    #: Run ids kept because their flow run could not be deleted.
    failed: list[str] = field(default_factory=list)
    #: Runs older than the cutoff still marked running (never deleted).
    running_kept: int = 0

    def to_dict(self) -> dict[str, object]:
        return {
            "cutoff": self.cutoff.isoformat(),
            "dry_run": self.dry_run,
            "runs_deleted": self.runs_deleted,
            "flow_runs_deleted": self.flow_runs_deleted,
            "flow_runs_missing": self.flow_runs_missing,
            "failed": self.failed,
            "running_kept": self.running_kept,
        }


async def _delete_flow_runs(records: list[RunRecord], result: CleanupResult) -> list[str]:
    """Delete the records' flow runs; returns the run ids whose flow run is gone (or had none)."""
    gone = [r.id for r in records if not r.flow_run_id]
    with_flow_run = [r for r in records if r.flow_run_id]
    if not with_flow_run:
        return gone
    limit = asyncio.Semaphore(PREFECT_CONCURRENCY)
    async with embedded_prefect.client() as client:

        async def delete(record: RunRecord) -> None:
            assert record.flow_run_id is not None
            async with limit:
                try:
                    await client.delete_flow_run(UUID(record.flow_run_id))
                    result.flow_runs_deleted += 1
                except ObjectNotFound:
                    result.flow_runs_missing += 1
                except Exception:  # Prefect down or refusing: keep the record, try next time
                    result.failed.append(record.id)
                    return
            gone.append(record.id)

        await asyncio.gather(*(delete(r) for r in with_flow_run))
    return gone


class Retention:
    """Deleting runs that ended long ago (``client.retention``)."""

    def __init__(self, engine: AsyncEngine, settings: Settings, actor: str) -> None:
        self._engine = engine
        self._settings = settings
        self._actor = actor

    async def cleanup(
        self, older_than: timedelta | None = None, *, dry_run: bool = False, actor: str | None = None
    ) -> CleanupResult:
        """Delete run records that ended more than ``older_than`` ago (default
        ``retention_days``) and their Prefect flow runs; audited. ``dry_run``: count only."""
        age = older_than if older_than is not None else timedelta(days=self._settings.retention_days)
        result = CleanupResult(cutoff=utcnow() - age, dry_run=dry_run)
        store = RunStore(self._engine)
        result.running_kept = await store.count_running_since_before(result.cutoff)
        if dry_run:
            result.runs_deleted, result.flow_runs_deleted = await store.count_ended_before(result.cutoff)
            return result
        while batch := await store.ended_before(result.cutoff, limit=BATCH):
            gone = await _delete_flow_runs(batch, result)
            if gone:
                result.runs_deleted += await store.delete_ended(
                    gone,
                    actor=actor or self._actor,
                    detail={"cutoff": result.cutoff.isoformat(), "older_than": str(age), "run_ids": gone[:20]},
                )
            if result.failed or len(batch) < BATCH:
                break  # Prefect refused some deletions: the rest waits for the next clean-up
        if not result.failed:
            await _delete_deployment_runs(result)
        return result


async def _delete_deployment_runs(result: CleanupResult) -> None:
    """Delete the ended flow runs of Switchboard's deployments (``run-workflow``, which a
    worker's runs are subflows of, and ``switchboard-cleanup``) older than the cutoff."""
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterEndTime,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    from switchboard.work_pool import CLEANUP_FLOW_NAME, FLOW_NAME

    final = [StateType.COMPLETED, StateType.FAILED, StateType.CRASHED, StateType.CANCELLED]
    async with embedded_prefect.client() as client:
        while True:
            page = await client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=[FLOW_NAME, CLEANUP_FLOW_NAME])),
                flow_run_filter=FlowRunFilter(
                    end_time=FlowRunFilterEndTime(before_=result.cutoff),  # type: ignore[arg-type]
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=final)),
                ),
                limit=PREFECT_PAGE,
            )
            for flow_run in page:
                try:
                    await client.delete_flow_run(flow_run.id)
                    result.flow_runs_deleted += 1
                except ObjectNotFound:
                    result.flow_runs_missing += 1
            if len(page) < PREFECT_PAGE:
                return
