"""The warm worker: a Prefect worker that runs Switchboard's flow runs inside its own process.

Prefect's process worker starts a new Python process for every flow run; importing Prefect,
Switchboard and the provider SDKs costs that process about 4 s on two cores before the first
node can run. :class:`WarmWorker` is that same worker (same ``process`` work pool, same
polling, limits, heartbeats and Prefect UI) with one change: flow runs of Switchboard's
``run-workflow`` flow are executed as asyncio tasks of the already warm worker process,
sharing one database connection pool. Anything else on the pool still gets its own process.

What a shared process changes, and how it is handled:

* **A killed worker takes its runs with it.** Each run's ``infrastructure_pid`` names the
  worker (``switchboard:<host>:<pid>:<worker>``). ``client.pool_runs(prefect).reap_orphans``
  (``switchboard/pool_runs.py``) — run by every warm worker when it starts and then every
  :data:`REAP_INTERVAL` seconds — marks Crashed the
  unfinished runs whose process is gone (same host) or whose worker stopped sending
  heartbeats (any host), with their runner subflows, and brings their run records up to
  date; the Slack bot then reports them. A worker restarted by systemd reaps its
  predecessor's runs at once.
* **Cancellation** (``/flow cancel``, the UI): the worker watches its runs for the
  ``Cancelling`` state and cancels the run's task; the flow run ends Cancelled.
* **Stopping** (SIGTERM, Ctrl-C): the worker stops taking runs, lets running ones finish for
  up to ``grace`` seconds, then marks what is left Crashed ("worker stopped") so that
  ``switchboard retry`` can finish it elsewhere.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import threading
from functools import partial
from typing import Any
from uuid import UUID

import anyio
import anyio.abc
from prefect.client.schemas.objects import FlowRun
from prefect.flow_engine import run_flow
from prefect.workers.process import ProcessJobConfiguration, ProcessWorker, ProcessWorkerResult

from deployments import entrypoint
from switchboard.client import Client
from switchboard.pool_runs import Owner, PoolRuns
from switchboard.settings import Settings
from switchboard.work_pool import CLEANUP_FLOW_NAME, FLOW_NAME, WORK_POOL, ensure_work_pool

logger = logging.getLogger(__name__)

#: The flows a warm worker runs in its own process, by Prefect flow name.
IN_PROCESS: dict[str, Any] = {
    FLOW_NAME: entrypoint.run_workflow_flow,
    CLEANUP_FLOW_NAME: entrypoint.cleanup_flow,
}

#: Seconds between two looks for runs whose worker died.
REAP_INTERVAL = 15.0
#: Seconds between two looks for cancellation requests for this worker's runs.
CANCEL_POLL = 1.0


class WarmWorker(ProcessWorker):
    """A process-pool worker that runs ``run-workflow`` flow runs in-process (see the module)."""

    type = "process"

    @classmethod
    def __dispatch_key__(cls) -> str:
        # Registered under its own key: Prefect's "process" worker type stays ProcessWorker.
        return "switchboard-warm"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.owner = Owner(socket.gethostname(), os.getpid(), self.name)
        self.draining = False
        #: The runs executing here, each an asyncio task (cancelled once, as the bot cancels
        #: its in-process runs: Prefect's engine records the end of a cancelled task).
        self.active: dict[UUID, asyncio.Task[Any]] = {}
        self._cancelled: set[UUID] = set()
        #: The pool's runs through Switchboard's client (set by :func:`serve`), for ending the
        #: runs cancelled here with their records.
        self.pool_runs: PoolRuns | None = None
        self._flow_names: dict[UUID, str] = {}

    async def get_and_submit_flow_runs(self) -> list[FlowRun]:
        if self.draining:
            return []
        return await super().get_and_submit_flow_runs()

    async def _runs_in_process(self, flow_run: FlowRun) -> bool:
        name = self._flow_names.get(flow_run.flow_id)
        if name is None:
            name = self._flow_names[flow_run.flow_id] = (await self.client.read_flow(flow_run.flow_id)).name
        return name in IN_PROCESS

    async def run(
        self,
        flow_run: FlowRun,
        configuration: ProcessJobConfiguration,
        task_status: anyio.abc.TaskStatus[int] | None = None,
    ) -> ProcessWorkerResult:
        if not await self._runs_in_process(flow_run):
            return await super().run(flow_run, configuration, task_status)
        flow = IN_PROCESS[self._flow_names[flow_run.flow_id]]
        execution = asyncio.create_task(
            run_flow(flow, flow_run=flow_run, return_type="state"),  # type: ignore[arg-type]
            name=f"flow-run-{flow_run.id}",
        )
        self.active[flow_run.id] = execution
        if task_status is not None:
            # Recorded as the run's infrastructure_pid: who runs it, for the reaper.
            task_status.started(self.owner.encode())  # type: ignore[arg-type]
        try:
            await asyncio.wait([execution])
        finally:
            self.active.pop(flow_run.id, None)
        if flow_run.id in self._cancelled:
            self._cancelled.discard(flow_run.id)
            if not self.draining and self.pool_runs is not None:
                await self.pool_runs.end([flow_run.id], "cancelled", "cancelled while running")
        elif not execution.cancelled() and execution.exception() is not None:
            logger.error("flow run %s ended with an error", flow_run.id, exc_info=execution.exception())
        return ProcessWorkerResult(status_code=0, identifier=self.owner.encode())

    def stop_run(self, flow_run_id: UUID) -> None:
        """Cancel the task of a run executing here."""
        execution = self.active.get(flow_run_id)
        if execution is not None and not execution.done():
            self._cancelled.add(flow_run_id)
            execution.cancel()

    async def kill_infrastructure(
        self, infrastructure_pid: str, configuration: ProcessJobConfiguration, grace_seconds: int = 30
    ) -> None:
        owner = Owner.decode(infrastructure_pid)
        if owner is None:
            await super().kill_infrastructure(infrastructure_pid, configuration, grace_seconds)
        # An in-process run: cancelled by cancel_requested.

    async def cancel_requested(self, pool_runs: PoolRuns) -> None:
        """Cancel the task of every run of this worker that someone asked to cancel."""
        for flow_run in await pool_runs.cancelling(list(self.active)):
            logger.info("cancelling flow run %s (%s) on request", flow_run.name, flow_run.id)
            self.stop_run(flow_run.id)


async def _every(seconds: float, work: Any, what: str) -> None:
    while True:
        try:
            await work()
        except Exception:
            logger.exception("%s failed; trying again in %.0f s", what, seconds)
        await asyncio.sleep(seconds)


STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


def hold_stop_signals() -> None:
    """Block SIGTERM and SIGINT in this thread (and the threads it starts from now on).

    Prefect's flow engine installs its own SIGTERM handler while a flow runs in the main
    thread (it raises ``TerminationSignal`` wherever the main thread is): with many flows in
    one process that would tear down whichever run happens to be executing. Blocked signals
    reach no handler; :func:`serve` takes them with ``sigwait`` in a thread of its own and
    stops the worker cleanly. Call it first thing, before any other thread exists. (Processes
    started from here inherit the mask: runs of other flows, which get their own process,
    stop on Prefect's SIGKILL after its grace period instead of SIGTERM.)
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


def _wait_for_stop_signal(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    while True:
        received = signal.sigwait(STOP_SIGNALS)
        if stop.is_set():
            logger.warning("already stopping (%s again): waiting for the runs in flight", signal.Signals(received).name)
            continue
        logger.info("%s: stopping", signal.Signals(received).name)
        loop.call_soon_threadsafe(stop.set)


async def serve(
    *,
    limit: int,
    name: str | None = None,
    grace: float = 30.0,
    reap_interval: float = REAP_INTERVAL,
    settings: Settings | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run a warm worker for the ``switchboard`` pool until SIGTERM or SIGINT (or ``stop`` is
    set: then no signal handlers are installed, for embedding in a running program)."""
    handle_signals = stop is None
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    if handle_signals:
        hold_stop_signals()
        threading.Thread(target=_wait_for_stop_signal, args=(loop, stop), name="stop-signals", daemon=True).start()
    worker = WarmWorker(work_pool_name=WORK_POOL, name=name, limit=limit, create_pool_if_not_found=False)
    async with Client(settings or Settings.from_env()) as switchboard_client, switchboard_client.prefect() as client:
        entrypoint.share_engine(switchboard_client.engine)
        pool_runs = worker.pool_runs = switchboard_client.pool_runs(client)
        try:
            await ensure_work_pool(client)
            crashed = await pool_runs.reap_orphans(worker.owner)
            if crashed:
                logger.warning("marked %d run(s) of stopped workers Crashed", len(crashed))
            async with anyio.create_task_group() as loops:
                loops.start_soon(partial(worker.start, printer=partial(print, flush=True)))
                # Prefect's worker cannot be cancelled halfway through its set-up (its cancel
                # scopes would be exited out of order): a stop waits for the set-up to end.
                while not getattr(worker, "is_setup", False):
                    await asyncio.sleep(0.05)
                loops.start_soon(_every, reap_interval, lambda: pool_runs.reap_orphans(worker.owner), "reaping")
                loops.start_soon(_every, CANCEL_POLL, lambda: worker.cancel_requested(pool_runs), "cancel polling")
                await stop.wait()
                await _drain(worker, pool_runs, grace)
                loops.cancel_scope.cancel()
        finally:
            entrypoint.share_engine(None)


async def _drain(worker: WarmWorker, pool_runs: PoolRuns, grace: float) -> None:
    worker.draining = True
    await _release_unstarted(worker, pool_runs)
    if worker.active:
        logger.info("stopping: waiting up to %.0f s for %d run(s) to finish", grace, len(worker.active))
    deadline = asyncio.get_running_loop().time() + grace
    while worker.active and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.2)
    left = list(worker.active)
    if not left:
        return
    logger.warning("stopping: %d run(s) did not finish in %.0f s; marking them Crashed", len(left), grace)
    for flow_run_id in left:
        worker.stop_run(flow_run_id)
    while worker.active and asyncio.get_running_loop().time() < deadline + 10:
        await asyncio.sleep(0.1)  # let the engines record their end before ours wins
    await pool_runs.end(left, "crashed", f"{worker.owner} stopped before the run ended (it was shut down)")


async def _release_unstarted(worker: WarmWorker, pool_runs: PoolRuns) -> None:
    """Give back the runs taken early that have not started (a scheduled run is taken up to
    ``PREFECT_WORKER_PREFETCH_SECONDS`` before its time): Scheduled again, for any worker."""
    unstarted = await pool_runs.not_started(list(worker.active))
    if not unstarted:
        return
    for flow_run in unstarted:
        worker.stop_run(flow_run.id)
    deadline = asyncio.get_running_loop().time() + 10
    while any(f.id in worker.active for f in unstarted) and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
    await pool_runs.give_back(unstarted)
    logger.info("stopping: gave back %d run(s) that had not started yet", len(unstarted))
