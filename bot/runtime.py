"""What the bot holds while it serves: one database engine, the Slack client, the runs it is
executing and their live messages.

Runs triggered from Slack execute in this process (as asyncio tasks) on the embedded or
configured Prefect API; each gets a :class:`~bot.threads.LiveThread`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.ext.asyncio import AsyncEngine

import switchboard
from bot.blocks import NodeLine, RunView
from bot.threads import ChannelPacer, LiveThread
from flows.model import Workflow
from flows.plan import build_plan
from flows.results import RunResult
from flows.runner import Listener, NodeEvent
from storage import audit
from storage.runs import RunRecordNotFoundError, RunStore
from storage.workflows import StoredVersion, WorkflowStore
from switchboard.api import new_run_id
from switchboard.settings import Settings

logger = logging.getLogger(__name__)


@dataclass
class StartedRun:
    run_id: str
    thread: LiveThread
    task: asyncio.Task[Any]


@dataclass
class BotRuntime:
    """Shared state of one bot process."""

    settings: Settings
    engine: AsyncEngine
    client: AsyncWebClient
    pacer: ChannelPacer = field(default_factory=ChannelPacer)
    running: dict[str, StartedRun] = field(default_factory=dict)

    @property
    def workflows(self) -> WorkflowStore:
        return WorkflowStore(self.engine)

    @property
    def runs(self) -> RunStore:
        return RunStore(self.engine)

    def prefect_ui_url(self, flow_run_id: str) -> str | None:
        """A link to the flow run in the Prefect UI, when a Prefect server is configured."""
        from prefect.settings import get_current_settings

        ui = get_current_settings().ui_url
        return f"{str(ui).rstrip('/')}/runs/flow-run/{flow_run_id}" if ui else None

    async def start_run(
        self,
        stored: StoredVersion,
        inputs: dict[str, Any],
        *,
        user: str | None,
        channel: str,
        trigger: str = "slack",
    ) -> StartedRun:
        """Post the run's message and start the run in the background.

        ``inputs`` must already be resolved (typed and validated) against the workflow.
        """
        plan = build_plan(stored.definition)
        view = RunView(run_id=new_run_id(), workflow=stored.name, version=stored.version, user=user, inputs=inputs)
        view.nodes = {node_id: NodeLine() for node_id in plan.order}

        async def call(listen: Listener) -> RunResult:
            return await switchboard.arun(
                plan,
                inputs,
                trigger=trigger,
                version=stored.version,
                listeners=[listen],
                run_id=view.run_id,
                triggered_by=f"slack:{user}" if user else None,
                engine=self.engine,
            )

        return await self._launch(view, channel, call)

    async def retry(self, run_id: str, *, user: str, channel: str) -> str | None:
        """Resume a failed run with a new live message; returns why not, or None when started."""
        try:
            record = await self.runs.get(run_id)
        except RunRecordNotFoundError:
            return f"No run `{run_id}`."
        view = RunView(
            run_id=new_run_id(), workflow=record.workflow, version=record.version, user=user, inputs=record.inputs
        )

        async def call(listen: Listener) -> RunResult:
            return await switchboard.aretry(
                run_id, listeners=[listen], new_run_id=view.run_id, triggered_by=f"slack:{user}", engine=self.engine
            )

        try:
            await switchboard.api.check_retryable(run_id)
        except (switchboard.NotRetryableError, switchboard.RunNotFoundError) as exc:
            return str(exc)
        await self._launch(view, channel, call)
        return None

    async def _launch(
        self, view: RunView, channel: str, call: Callable[[Listener], Awaitable[RunResult]]
    ) -> StartedRun:
        thread = LiveThread(self.client, self.pacer, channel, view)
        await thread.post()

        def listen(event: NodeEvent) -> None:
            if event.kind == "run_started" and event.flow_run_id:
                view.flow_run_url = self.prefect_ui_url(event.flow_run_id)
            thread.on_event(event)

        async def execute() -> None:
            try:
                result = await call(listen)
            except asyncio.CancelledError:
                await thread.fail("cancelled", "cancelled from Slack")
                raise
            except Exception as exc:  # the run could not start or record itself
                logger.exception("run %s of %s failed to run", view.run_id, view.workflow)
                await thread.fail("failed", f"{type(exc).__name__}: {exc}")
            else:
                await thread.finish(result)
            finally:
                self.running.pop(view.run_id, None)

        task = asyncio.create_task(execute(), name=f"run-{view.run_id}")
        started = StartedRun(view.run_id, thread, task)
        self.running[view.run_id] = started
        return started

    async def audit_refusal(self, user: str, action: str, workflow: str, detail: dict[str, Any] | None = None) -> None:
        """An audit-log row for an action a Slack user was not permitted."""
        await audit.append(
            self.engine, actor=f"slack:{user}", action=f"refused-{action}", target=workflow, detail=detail or {}
        )

    async def cancel(self, run_id: str) -> bool:
        """Cancel a run this process is executing; False if it is not running here."""
        started = self.running.get(run_id)
        if started is None:
            return False
        started.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await started.task
        return True

    async def close(self) -> None:
        """Wait for the runs in flight (a clean shutdown lets them finish)."""
        tasks = [started.task for started in self.running.values()]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


def workflow_of(stored: StoredVersion) -> Workflow:
    return Workflow.model_validate(stored.definition)
