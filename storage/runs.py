"""Run records: one row per run, written when it starts and when it ends (O(1) per run)."""

from __future__ import annotations

import builtins
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.audit import record
from storage.db import sessionmaker
from storage.models import RunRow, utcnow

#: Statuses after which a run does not change any more.
FINAL_STATUSES = frozenset({"completed", "failed", "cancelled", "crashed"})


class RunRecordNotFoundError(LookupError):
    """No run record with that id."""


@dataclass(frozen=True)
class RunRecord:
    id: str
    flow_run_id: str | None
    workflow: str
    version: int | None
    trigger: str
    triggered_by: str | None
    inputs: dict[str, Any]
    status: str
    error: str | None
    resumed_from: str | None
    started_at: datetime
    ended_at: datetime | None
    slack_channel: str | None = None
    slack_thread: str | None = None
    slack_message: str | None = None
    slack_reported_at: datetime | None = None
    slack_team: str | None = None
    parent_run_id: str | None = None
    #: Tokens the run's model calls spent, and their estimated cost (None: none made or priced).
    total_tokens: int | None = None
    cost_usd: float | None = None

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.id,
            "flow_run_id": self.flow_run_id,
            "workflow": self.workflow,
            "version": self.version,
            "trigger": self.trigger,
            "triggered_by": self.triggered_by,
            "inputs": self.inputs,
            "status": self.status,
            "error": self.error,
            "resumed_from": self.resumed_from,
            "parent_run_id": self.parent_run_id,
            "total_tokens": self.total_tokens,
            "cost_usd": self.cost_usd,
            "started_at": self.started_at.isoformat(),
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
        }


def _record(row: RunRow) -> RunRecord:
    return RunRecord(
        id=row.id,
        flow_run_id=row.flow_run_id,
        workflow=row.workflow,
        version=row.version,
        trigger=row.trigger,
        triggered_by=row.triggered_by,
        inputs=row.inputs,
        status=row.status,
        error=row.error,
        resumed_from=row.resumed_from,
        started_at=row.started_at,
        ended_at=row.ended_at,
        slack_channel=row.slack_channel,
        slack_thread=row.slack_thread,
        slack_message=row.slack_message,
        slack_reported_at=row.slack_reported_at,
        slack_team=row.slack_team,
        parent_run_id=row.parent_run_id,
        total_tokens=row.total_tokens,
        cost_usd=row.cost_usd,
    )


def _spent(usage: Any) -> tuple[int | None, float | None]:
    """Total tokens and cost from a run result's ``usage`` (either None when it lacks them)."""
    if not isinstance(usage, Mapping):
        return None, None
    tokens, cost = usage.get("total_tokens"), usage.get("cost_usd")
    return (
        tokens if isinstance(tokens, int) and not isinstance(tokens, bool) else None,
        float(cost) if isinstance(cost, int | float) and not isinstance(cost, bool) else None,
    )


class RunStore:
    """The ``runs`` table."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sessions = sessionmaker(engine)

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
        parent_run_id: str | None = None,
    ) -> None:
        """Record a run that has just started (status ``running``), and audit it."""
        async with self.sessions() as session, session.begin():
            session.add(
                RunRow(
                    id=run_id,
                    flow_run_id=flow_run_id,
                    workflow=workflow,
                    version=version,
                    trigger=trigger,
                    triggered_by=triggered_by,
                    inputs=inputs,
                    status="running",
                    resumed_from=resumed_from,
                    parent_run_id=parent_run_id,
                )
            )
            action = "retry" if resumed_from else "run"
            label = f"{workflow} v{version}" if version is not None else workflow
            await record(
                session,
                actor=triggered_by or f"{trigger}:unknown",
                action=action,
                target=f"{label} run {run_id}",
                detail={
                    key: value
                    for key, value in (("resumed_from", resumed_from), ("parent_run_id", parent_run_id))
                    if value
                },
            )

    async def finished(
        self, run_id: str, *, status: str, error: str | None, result: Mapping[str, Any] | None = None
    ) -> None:
        """Record how a run ended (and its run result, when the runner has one)."""
        async with self.sessions() as session, session.begin():
            row = await session.get(RunRow, run_id, with_for_update=True)
            if row is None:
                raise RunRecordNotFoundError(f"no run record {run_id!r}")
            row.status = status
            row.error = error
            row.ended_at = utcnow()
            if result is not None:
                # JSON-safe whatever the node outputs hold (the CLI prints them the same way).
                row.result = json.loads(json.dumps(dict(result), default=str))
                row.total_tokens, row.cost_usd = _spent(result.get("usage"))

    async def result(self, run_id: str) -> dict[str, Any] | None:
        """The run result recorded when the run ended (None: not ended, or ended without one)."""
        async with self.sessions() as session:
            found = await session.execute(select(RunRow.result).where(RunRow.id == run_id))
            return found.scalar_one_or_none()

    async def attach_slack(self, run_id: str, *, channel: str, message_ts: str, team: str | None = None) -> None:
        """Remember the run's Slack message (so its end is reported even after a bot restart);
        ``team``: its workspace, when the bot serves several."""
        async with self.sessions() as session, session.begin():
            row = await session.get(RunRow, run_id, with_for_update=True)
            if row is None:
                raise RunRecordNotFoundError(f"no run record {run_id!r}")
            row.slack_channel, row.slack_message, row.slack_thread = channel, message_ts, message_ts
            row.slack_team = team

    async def mark_slack_reported(self, run_id: str) -> None:
        """The run's final state is in its Slack message."""
        async with self.sessions() as session, session.begin():
            row = await session.get(RunRow, run_id, with_for_update=True)
            if row is not None:
                row.slack_reported_at = utcnow()

    async def unreported_slack(self, *, limit: int = 200) -> list[RunRecord]:
        """Runs with a Slack message whose final state has not been written into it, oldest first."""
        query = (
            select(RunRow)
            .where(RunRow.slack_message.is_not(None), RunRow.slack_reported_at.is_(None))
            .order_by(RunRow.started_at)
            .limit(limit)
        )
        async with self.sessions() as session:
            return [_record(row) for row in (await session.execute(query)).scalars()]

    async def get(self, run_id: str) -> RunRecord:
        async with self.sessions() as session:
            row = await session.get(RunRow, run_id)
            if row is None:
                raise RunRecordNotFoundError(f"no run with id {run_id!r} (see `switchboard runs`)")
            return _record(row)

    async def for_flow_runs(self, flow_run_ids: builtins.list[str]) -> builtins.list[RunRecord]:
        """The records of these Prefect flow runs (a run's record names its runner flow run)."""
        if not flow_run_ids:
            return []
        async with self.sessions() as session:
            query = select(RunRow).where(RunRow.flow_run_id.in_(flow_run_ids))
            return [_record(row) for row in (await session.execute(query)).scalars()]

    async def list(
        self,
        *,
        workflow: str | None = None,
        status: str | None = None,
        limit: int = 50,
        workflows: builtins.list[str] | None = None,
    ) -> list[RunRecord]:
        """Newest first; ``workflows``: only runs of these workflows."""
        query = select(RunRow).order_by(RunRow.started_at.desc(), RunRow.id).limit(limit)
        if workflow:
            query = query.where(RunRow.workflow == workflow)
        if workflows is not None:
            query = query.where(RunRow.workflow.in_(workflows))
        if status:
            query = query.where(RunRow.status == status)
        async with self.sessions() as session:
            return [_record(row) for row in (await session.execute(query)).scalars()]

    async def ended_before(self, cutoff: datetime, *, limit: int = 500) -> builtins.list[RunRecord]:
        """Runs that ended (a final status) before ``cutoff``, oldest first; running ones never."""
        query = (
            select(RunRow)
            .where(RunRow.status.in_(FINAL_STATUSES), RunRow.ended_at.is_not(None), RunRow.ended_at < cutoff)
            .order_by(RunRow.ended_at, RunRow.id)
            .limit(limit)
        )
        async with self.sessions() as session:
            return [_record(row) for row in (await session.execute(query)).scalars()]

    async def count_ended_before(self, cutoff: datetime) -> tuple[int, int]:
        """How many runs :meth:`ended_before` would return without a limit, and how many of them
        have a Prefect flow run."""
        query = select(func.count(), func.count(RunRow.flow_run_id)).where(
            RunRow.status.in_(FINAL_STATUSES), RunRow.ended_at.is_not(None), RunRow.ended_at < cutoff
        )
        async with self.sessions() as session:
            runs, flow_runs = (await session.execute(query)).one()
            return int(runs), int(flow_runs)

    async def count_running_since_before(self, cutoff: datetime) -> int:
        """Runs still marked running that started before ``cutoff`` (kept by a clean-up)."""
        query = select(func.count()).select_from(RunRow).where(RunRow.status == "running", RunRow.started_at < cutoff)
        async with self.sessions() as session:
            return int((await session.execute(query)).scalar_one())

    async def delete_ended(self, run_ids: builtins.list[str], *, actor: str, detail: dict[str, Any]) -> int:
        """Delete the ended runs among ``run_ids`` and audit it in the same transaction; returns
        how many were deleted. A run still running is never deleted."""
        async with self.sessions() as session, session.begin():
            deleted = 0
            if run_ids:
                result = await session.execute(
                    delete(RunRow).where(RunRow.id.in_(run_ids), RunRow.status.in_(FINAL_STATUSES))
                )
                deleted = int(result.rowcount or 0)
            await record(
                session,
                actor=actor,
                action="cleanup",
                target=f"{deleted} run record(s)",
                detail={**detail, "runs_deleted": deleted},
            )
            return deleted
