"""The work pool's flow runs as the warm workers see them: who runs each, which are orphaned,
and ending, cancelling or handing back runs — with their records kept true.

A warm worker writes who runs a flow run into its ``infrastructure_pid`` (:class:`Owner`).
The warm worker process (``deployments/warm_worker.py``) manages its processes and signals;
everything that reads or sets flow-run states, or touches the run records, is here, so the
worker is a front end like the others.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from uuid import UUID

from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterParentFlowRunId,
    FlowRunFilterState,
    FlowRunFilterStateType,
    WorkPoolFilter,
    WorkPoolFilterName,
)
from prefect.client.schemas.objects import FlowRun, State, StateType
from prefect.settings import get_current_settings
from prefect.states import Cancelled, Crashed, Scheduled
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.runs import RunStore
from switchboard.work_pool import WORK_POOL

logger = logging.getLogger("switchboard.workers")

#: Prefix of the ``infrastructure_pid`` of a run executed by a warm worker.
INFRA_PREFIX = "switchboard:"
#: A worker is dead once it missed this many heartbeats (Prefect's own offline rule).
MISSED_HEARTBEATS = 3
#: Flow-run states a run can be in while a worker owns it.
_UNFINISHED = [StateType.PENDING, StateType.RUNNING, StateType.PAUSED, StateType.CANCELLING]
_PAGE = 200
#: The most levels of flow runs :meth:`PoolRuns.end` walks below a deployment run: its runner
#: subflow, then the sub-workflow runs nested under the runner's nodes, and theirs.
MAX_NESTING = 32


@dataclass(frozen=True)
class Owner:
    """The worker process executing a run, as written into its ``infrastructure_pid``."""

    host: str
    pid: int
    worker: str

    def encode(self) -> str:
        """The ``infrastructure_pid`` value naming this owner."""
        return f"{INFRA_PREFIX}{self.host}:{self.pid}:{self.worker}"

    @classmethod
    def decode(cls, value: str | None) -> Owner | None:
        """The owner an ``infrastructure_pid`` names, or None (not a warm worker's run)."""
        if not value or not value.startswith(INFRA_PREFIX):
            return None
        host, _, rest = value.removeprefix(INFRA_PREFIX).partition(":")
        pid, _, worker = rest.partition(":")
        if not pid.isdigit():
            return None
        return cls(host, int(pid), worker)

    def __str__(self) -> str:
        return f"worker {self.worker} (process {self.pid} on {self.host})"


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class PoolRuns:
    """The flow runs of Switchboard's work pool (``client.pool_runs(prefect)``)."""

    def __init__(self, engine: AsyncEngine, prefect: PrefectClient) -> None:
        self._records = RunStore(engine)
        self._prefect = prefect

    async def unfinished(self) -> list[FlowRun]:
        """Every flow run of the pool a worker may still own (pending, running, paused, cancelling)."""
        found: list[FlowRun] = []
        while True:
            page = await self._prefect.read_flow_runs(
                flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=_UNFINISHED))),
                work_pool_filter=WorkPoolFilter(name=WorkPoolFilterName(any_=[WORK_POOL])),
                limit=_PAGE,
                offset=len(found),
            )
            found.extend(page)
            if len(page) < _PAGE:
                return found

    async def dead_workers(self, now: datetime) -> dict[str, str]:
        """Workers of the pool that missed :data:`MISSED_HEARTBEATS` heartbeats -> why."""
        default_interval = get_current_settings().worker.heartbeat_seconds
        dead: dict[str, str] = {}
        for worker in await self._prefect.read_workers_for_work_pool(WORK_POOL):
            interval = worker.heartbeat_interval_seconds or default_interval
            beat = worker.last_heartbeat_time
            if beat is None or now - beat > timedelta(seconds=MISSED_HEARTBEATS * interval):
                dead[worker.name] = f"last heartbeat {beat:%H:%M:%S} UTC" if beat else "it never sent a heartbeat"
        return dead

    async def reap_orphans(self, me: Owner | None = None) -> list[UUID]:
        """Mark Crashed the unfinished runs whose warm worker is gone; returns their flow-run ids.

        A run is orphaned when its worker process on this host no longer exists, or when its
        worker (on any host) has missed :data:`MISSED_HEARTBEATS` heartbeats. Its runner
        subflows are marked Crashed too and the run records reconciled, so Slack and
        ``switchboard runs`` say so. ``me`` (the calling worker) is alive by definition.
        """
        host = me.host if me else socket.gethostname()
        owned = [
            (flow_run, owner)
            for flow_run in await self.unfinished()
            if (owner := Owner.decode(flow_run.infrastructure_pid)) is not None
        ]
        if not owned:
            return []
        dead_workers = await self.dead_workers(datetime.now(UTC))
        crashed: list[UUID] = []
        for flow_run, owner in owned:
            if me is not None and owner == me:
                continue
            if owner.host == host and not process_alive(owner.pid):
                why = "its process is gone"
            elif owner.worker in dead_workers and not (owner.host == host and process_alive(owner.pid)):
                why = f"it stopped sending heartbeats ({dead_workers[owner.worker]})"
            else:
                continue
            await self.end([flow_run.id], "crashed", f"{owner} stopped before the run ended: {why}")
            logger.warning("flow run %s (%s) crashed: %s stopped (%s)", flow_run.name, flow_run.id, owner, why)
            crashed.append(flow_run.id)
        return crashed

    async def end(self, flow_run_ids: list[UUID], status: Literal["crashed", "cancelled"], message: str) -> None:
        """End these deployment flow runs, the flow runs below them (the runner subflow, and
        the sub-workflow runs nested under its nodes) and the runs' records as ``status``
        (Prefect Crashed or Cancelled) with ``message``; whatever completed stays so."""
        open_children: list[UUID] = []
        level = flow_run_ids
        for _ in range(MAX_NESTING):
            children = await self._prefect.read_flow_runs(
                flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=level))
            )
            level = [c.id for c in children if c.state is None or not c.state.is_completed()]
            if not level:
                break
            open_children.extend(level)
        state: State[Any] = Crashed(message=message) if status == "crashed" else Cancelled(message=message)
        for flow_run_id in [*open_children, *flow_run_ids]:
            await self._prefect.set_flow_run_state(flow_run_id, state.model_copy(), force=True)
        for record in await self._records.for_flow_runs([str(c) for c in open_children]):
            if record.status != "completed":
                await self._records.finished(record.id, status=status, error=message)

    async def cancelling(self, flow_run_ids: list[UUID]) -> list[FlowRun]:
        """Those of these flow runs someone asked to cancel."""
        if not flow_run_ids:
            return []
        return await self._prefect.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(any_=flow_run_ids),
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.CANCELLING])),
            )
        )

    async def not_started(self, flow_run_ids: list[UUID]) -> list[FlowRun]:
        """Those of these flow runs that are still Scheduled or Pending (taken, not begun)."""
        found = []
        for flow_run_id in flow_run_ids:
            flow_run = await self._prefect.read_flow_run(flow_run_id)
            if flow_run.state is not None and flow_run.state.type in (StateType.SCHEDULED, StateType.PENDING):
                found.append(flow_run)
        return found

    async def give_back(self, flow_runs: list[FlowRun]) -> None:
        """Make these flow runs Scheduled again at their expected time, for any worker."""
        for flow_run in flow_runs:
            when = flow_run.expected_start_time or datetime.now(UTC)
            await self._prefect.set_flow_run_state(flow_run.id, Scheduled(scheduled_time=when), force=True)
