"""What the bot holds while it serves: one database engine, the Slack client, the runs it is
executing and their live messages.

With one workspace (``SLACK_BOT_TOKEN``) every post goes through :attr:`BotRuntime.client`. In
multi-workspace mode (``SLACK_CLIENT_ID`` and ``SLACK_CLIENT_SECRET``) that client has no token:
each run posts with its own workspace's bot token (the listener's client, or
:meth:`BotRuntime.client_for` from the installation store).

Runs triggered from Slack and webhooks execute in this process (as asyncio tasks) or, when
``Settings.runs_remotely`` (``SWITCHBOARD_EXECUTION``; by default: ``PREFECT_API_URL`` is set),
on workers: they become flow runs of the ``run-workflow`` deployment and the bot follows them
through Prefect. Either way the run goes through the process's :class:`switchboard.Client`
(:meth:`switchboard.runs.Runs.execute`), which decides; each gets a
:class:`~bot.threads.LiveThread`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.blocks import NodeLine, RunView, escape, flow_run_link
from bot.permissions import Access
from bot.threads import ChannelPacer, LiveThread
from flows.events import Listener, NodeEvent
from flows.model import Workflow
from flows.plan import build_plan
from flows.results import RunResult
from nodes.subworkflow import WORKFLOW_NODE
from switchboard.client import Client
from switchboard.errors import RunRecordNotFoundError
from switchboard.execution import NotRetryableError, RunNotFoundError, new_run_id
from switchboard.runs import RunRecord
from switchboard.settings import Settings
from switchboard.slack_records import SlackInstallationStore
from switchboard.workflows import StoredVersion

logger = logging.getLogger(__name__)

#: How often the bot tries to attach a run's Slack message to its record (0.5 s apart).
ATTACH_TRIES = 20


class WorkspaceNotInstalledError(LookupError):
    """No bot token for that Slack workspace (multi-workspace mode): it has not installed the app."""


@dataclass
class StartedRun:
    run_id: str
    workflow: str
    thread: LiveThread | None  # None: an unattended run without a notify channel
    task: asyncio.Task[Any]


@dataclass
class BotRuntime:
    """Shared state of one bot process."""

    settings: Settings
    engine: AsyncEngine
    client: AsyncWebClient
    pacer: ChannelPacer = field(default_factory=ChannelPacer)
    running: dict[str, StartedRun] = field(default_factory=dict)
    #: Runs whose message is being posted and that are not in :attr:`running` yet.
    launching: int = 0
    #: When this process started: unfinished in-process runs from before it died with an earlier one.
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    #: Also told every node event of the runs started here, with the run's live thread (None:
    #: the run has no message); ``bot.approvals`` posts its buttons from a ``waiting`` event.
    event_hooks: list[Callable[[LiveThread | None, NodeEvent], None]] = field(default_factory=list)
    #: The installed workspaces (multi-workspace mode only; None: one workspace, one token).
    installations: SlackInstallationStore | None = None
    #: Runs on workers this process stopped following because it is shutting down: they go
    #: on there, and the next bot process reports their end.
    abandoned: set[str] = field(default_factory=set)

    _core: Client = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._core = Client(self.settings, engine=self.engine, actor="slack")
        if self.installations is None and self.settings.slack_multi_workspace:
            self.installations = self.core.slack.installations()

    @property
    def core(self) -> Client:
        """Switchboard itself: workflows, runs, credentials and the bot's records, on
        :attr:`engine`, with the runtime's :attr:`settings` (replacing them reconfigures it)."""
        if self._core.settings is not self.settings:
            self._core.settings = self.settings
        return self._core

    async def client_for(self, team: str | None) -> AsyncWebClient:
        """The client that posts in Slack workspace ``team``.

        One workspace: :attr:`client`. Several: a client with ``team``'s bot token from the
        installation store (``team`` None: the only installed workspace); raises
        :class:`WorkspaceNotInstalledError` when there is none.
        """
        if self.installations is None:
            return self.client
        team = team or await self.only_team()
        token = await self.installations.bot_token(team)
        if token is None:
            raise WorkspaceNotInstalledError(f"Slack workspace {team} has not installed the app (/slack/install)")
        return AsyncWebClient(token=token, base_url=self.client.base_url, timeout=self.client.timeout)

    async def only_team(self) -> str:
        """The one installed workspace, for runs not started from Slack (webhooks, schedules)."""
        teams = await self.installations.teams() if self.installations is not None else []
        if len(teams) != 1:
            raise WorkspaceNotInstalledError(
                f"{len(teams)} Slack workspaces installed the app: a run not started from Slack "
                "cannot tell which one to post in"
            )
        return teams[0]

    def prefect_ui_url(self, flow_run_id: str) -> str | None:
        """A link to the flow run in the Prefect UI, when a Prefect server is configured."""
        return flow_run_link(self.prefect_ui, flow_run_id)

    @property
    def prefect_ui(self) -> str | None:
        """The Prefect UI's address, when a Prefect server is configured."""
        from prefect.settings import get_current_settings

        ui = get_current_settings().ui_url
        return str(ui) if ui else None

    async def start_run(
        self,
        stored: StoredVersion,
        inputs: dict[str, Any],
        *,
        user: str | None,
        channel: str,
        trigger: str = "slack",
        client: AsyncWebClient | None = None,
        team: str | None = None,
        thread_ts: str | None = None,
    ) -> StartedRun:
        """Post the run's message and start the run in the background.

        ``inputs`` must already be resolved (typed and validated) against the workflow.
        ``client`` posts the run's messages (default :attr:`client`; a listener's client carries
        its workspace's token); ``team`` is that workspace, remembered with the run; ``thread_ts``
        posts the message as a reply in that thread (a mention).
        """
        view, call = self._fresh_run(stored, inputs, user=user, trigger=trigger, triggered_by=None, client=client)
        return await self._launch(view, channel, call, client=client, team=team, thread_ts=thread_ts)

    def _fresh_run(
        self,
        stored: StoredVersion,
        inputs: dict[str, Any],
        *,
        user: str | None,
        trigger: str,
        triggered_by: str | None,
        run_id: str | None = None,
        client: AsyncWebClient | None = None,
    ) -> tuple[RunView, Callable[[Listener, tuple[str, str] | None], Awaitable[RunResult]]]:
        """The view of a new run of ``stored`` (every node queued) and the call that runs it.

        A run a Slack user started may call only the sub-workflows that user may run."""
        plan = build_plan(stored.definition)
        view = RunView(
            run_id=run_id or new_run_id(), workflow=stored.name, version=stored.version, user=user, inputs=inputs
        )
        view.nodes = {node_id: NodeLine() for node_id in plan.order}
        view.calls = frozenset(node.id for node in plan.workflow.nodes if node.type == WORKFLOW_NODE)
        view.prefect_ui = self.prefect_ui

        who = triggered_by or (f"slack:{user}" if user else None)
        authorize = self._sub_workflow_check(user, stored.name, client) if user else None

        async def call(listen: Listener, slack_thread: tuple[str, str] | None) -> RunResult:
            return await self.core.runs.execute(
                stored.name,
                inputs,
                version=stored.version,
                run_id=view.run_id,
                trigger=trigger,
                triggered_by=who,
                listeners=[listen],
                slack_thread=slack_thread,
                plan=plan,
                authorize=authorize,
            )

        return view, call

    def _sub_workflow_check(
        self, user: str, caller: str, client: AsyncWebClient | None
    ) -> Callable[[str], Awaitable[str | None]]:
        """Whether ``user`` may run each workflow ``caller`` calls: their ``permissions.run``,
        as for ``/flow run`` (a workflow that is not stored is left to the run to report)."""

        async def authorize(name: str) -> str | None:
            policy = await self.policy(name)
            if policy is None or await self.access(user, client).may_run(policy):
                return None
            await self.audit_refusal(user, "run", name, {"called_by": caller})
            return f"slack:{user} is not in its run permissions"

        return authorize

    async def retry(
        self,
        run_id: str,
        *,
        user: str,
        channel: str,
        client: AsyncWebClient | None = None,
        team: str | None = None,
    ) -> str | None:
        """Resume a failed run with a new live message; returns why not (Slack mrkdwn), or None
        when started.

        Only someone who may run the workflow may retry its runs; someone who may not even read
        it is told the same as for a run that does not exist (refusals audited). ``client`` and
        ``team`` as for :meth:`start_run`.
        """
        access = self.access(user, client)
        record = await self.visible_run(run_id, access, action="retry")
        if record is None:
            return no_visible_run(run_id)
        if not await access.may_run(await self.policy(record.workflow)):
            await self.audit_refusal(user, "retry", record.workflow, {"run_id": run_id})
            return f"You may not run `{escape(record.workflow)}`, so you may not retry its runs."
        try:
            await self.start_retry(
                record, triggered_by=f"slack:{user}", user=user, channel=channel, client=client, team=team
            )
        except (NotRetryableError, RunNotFoundError) as exc:
            return escape(str(exc))
        return None

    async def start_retry(
        self,
        record: RunRecord,
        *,
        triggered_by: str,
        user: str | None = None,
        channel: str | None = None,
        client: AsyncWebClient | None = None,
        team: str | None = None,
    ) -> StartedRun:
        """Resume the failed run ``record`` as a new run, with a live message in ``channel``
        (None: none); the caller has checked who may. Raises :class:`NotRetryableError` or
        :class:`RunNotFoundError` (from Prefect) when it cannot be resumed."""
        await self.core.runs.check_retryable(record.id)
        view = RunView(
            run_id=new_run_id(), workflow=record.workflow, version=record.version, user=user, inputs=record.inputs
        )

        async def call(listen: Listener, slack_thread: tuple[str, str] | None) -> RunResult:
            return await self.core.runs.execute_retry(
                record.id,
                new_run_id=view.run_id,
                triggered_by=triggered_by,
                listeners=[listen],
                slack_thread=slack_thread,
            )

        return await self._launch(view, channel, call, client=client, team=team)

    async def _launch(
        self,
        view: RunView,
        channel: str | None,
        call: Callable[[Listener, tuple[str, str] | None], Awaitable[RunResult]],
        *,
        post_first: bool = True,
        client: AsyncWebClient | None = None,
        team: str | None = None,
        thread_ts: str | None = None,
    ) -> StartedRun:
        """Run ``call`` in the background with a live message in ``channel`` (None: no message).

        ``post_first``: post before returning (a Slack user waits to see it), or from the run's
        task (webhooks and schedules answer at once; a channel Slack refuses costs the message,
        not the run). ``client`` posts it (default :attr:`client`) in workspace ``team``.
        """
        thread = LiveThread(client or self.client, self.pacer, channel, view, thread_ts=thread_ts) if channel else None
        self.launching += 1
        try:
            if thread and post_first:
                await thread.post()
            slack_thread = (thread.channel, thread.root or "") if thread and post_first else None
        except BaseException:
            self.launching -= 1
            raise
        attaching: list[asyncio.Task[None]] = []

        def listen(event: NodeEvent) -> None:
            if event.kind == "run_started" and event.flow_run_id:
                view.flow_run_url = self.prefect_ui_url(event.flow_run_id)
                if thread is not None and thread.ts is not None:
                    attaching.append(asyncio.create_task(self._attach(view.run_id, thread.channel, thread.ts, team)))
            if thread is not None:
                thread.on_event(event)
            for hook in self.event_hooks:
                hook(thread, event)

        async def execute() -> None:
            nonlocal slack_thread
            try:
                if thread is not None and not post_first:
                    slack_thread = await _post_quietly(thread)
                result = await call(listen, slack_thread)
            except asyncio.CancelledError:
                if thread is not None and view.run_id not in self.abandoned:
                    await thread.fail("cancelled", "cancelled from Slack")
                raise
            except Exception as exc:  # the run could not start or record itself
                logger.exception("run %s of %s failed to run", view.run_id, view.workflow)
                if thread is not None:
                    await thread.fail("failed", f"{type(exc).__name__}: {exc}")
            else:
                if thread is not None:
                    await thread.finish(result)
            finally:
                self.running.pop(view.run_id, None)
            if attaching:
                await asyncio.gather(*attaching)
                if thread is not None and thread.last_update_ok:  # else the reporter writes it later
                    await self.core.slack.mark_reported(view.run_id)

        task = asyncio.create_task(execute(), name=f"run-{view.run_id}")
        started = StartedRun(view.run_id, view.workflow, thread, task)
        self.running[view.run_id] = started
        self.launching -= 1
        return started

    async def start_unattended(
        self,
        stored: StoredVersion,
        inputs: dict[str, Any],
        *,
        trigger: str,
        triggered_by: str | None = None,
        run_id: str | None = None,
        user: str | None = None,
    ) -> StartedRun:
        """Start a run no Slack user asked for in Slack (a webhook, a schedule, an API call) and
        return at once.

        ``inputs`` must already be resolved against the workflow. The live message goes to the
        workflow's ``notify: {channel}`` if it has one; it is posted from the run's task, so a
        busy channel never delays the caller, and a channel the bot cannot post in costs the
        message, not the run. Without ``notify`` the run has no Slack message. The run is
        recorded with ``trigger`` and ``triggered_by`` (default: the trigger's name), under
        ``run_id`` if given (a webhook claims its replay key with the id before starting).
        ``user``: the Slack user the caller acts as (an API token's owner), whose permissions
        govern the sub-workflows the run calls.
        """
        notify = workflow_of(stored).notify
        channel, client, team = notify.channel if notify else None, self.client, None
        if channel and self.installations is not None:
            try:
                team = await self.only_team()
                client = await self.client_for(team)
            except WorkspaceNotInstalledError as exc:
                logger.warning("a %s run of %s has no Slack message: %s", trigger, stored.name, exc)
                channel = None
        view, call = self._fresh_run(
            stored, inputs, user=user, trigger=trigger, triggered_by=triggered_by or trigger, run_id=run_id
        )
        return await self._launch(view, channel, call, post_first=False, client=client, team=team)

    async def _attach(self, run_id: str, channel: str, ts: str | None, team: str | None = None) -> None:
        if ts is None:
            return
        # A worker writes the record of a run it executes just after the runner's flow run
        # appears in Prefect: give it a few seconds.
        for attempt in range(1, ATTACH_TRIES + 1):
            try:
                await self.core.slack.attach_message(run_id, channel=channel, ts=ts, team=team)
                return
            except RunRecordNotFoundError:
                if attempt < ATTACH_TRIES:
                    await asyncio.sleep(0.5)
                    continue
                logger.warning("could not remember the Slack message of run %s: it has no record", run_id)
            except Exception:
                logger.warning("could not remember the Slack message of run %s", run_id, exc_info=True)
                return

    def access(self, user: str, client: AsyncWebClient | None = None) -> Access:
        """What ``user`` may do, for one request; ``client`` (of the user's workspace, default
        :attr:`client`) reads user groups and channel members, each once."""
        return Access.of(user, client or self.client, self.settings.slack_admin_ids)

    async def policy(self, name: str) -> Workflow | None:
        """The latest stored version of workflow ``name``, whose permissions govern all its runs
        (archived or not, whatever version they ran); None when no such workflow is stored."""
        return await self.core.workflows.policy(name)

    async def visible_run(self, run_id: str, access: Access, *, action: str = "read") -> RunRecord | None:
        """The record of run ``run_id`` if ``access`` may read its workflow; else None, exactly as
        for a run that does not exist, with an audit row ``refused-<action>`` (target: the
        workflow, or the run id when there is no such run)."""
        try:
            record: RunRecord | None = await self.core.runs.record(run_id)
        except RunRecordNotFoundError:
            record = None
        if record is not None and await access.may_read(await self.policy(record.workflow)):
            return record
        target = record.workflow if record is not None else run_id[:100]
        await self.audit_refusal(access.user, action, target, {"run_id": run_id[:100]})
        return None

    async def latest_visible_run(self, access: Access) -> RunRecord | None:
        """The newest run ``access`` may read (admins: the newest run)."""
        if access.is_admin:
            records = await self.core.runs.records(limit=1)
        else:
            names = [summary.name for summary in await self.core.workflows.list(include_archived=True)]
            readable = [name for name in names if await access.may_read(await self.policy(name))]
            records = await self.core.runs.records(limit=1, workflows=readable) if readable else []
        return records[0] if records else None

    async def audit_refusal(self, user: str, action: str, workflow: str, detail: dict[str, Any] | None = None) -> None:
        """An audit-log row for an action a Slack user was not permitted."""
        await self.core.audit.append(actor=f"slack:{user}", action=f"refused-{action}", target=workflow, detail=detail)

    async def may_run(self, user: str, workflow: str, *, client: AsyncWebClient | None = None) -> bool:
        """Whether ``user`` may run (and so retry or cancel runs of) ``workflow``; ``client`` (of
        the user's workspace, default :attr:`client`) reads user groups and channel members."""
        return await self.access(user, client).may_run(await self.policy(workflow))

    async def cancel(self, run_id: str, *, user: str | None = None, client: AsyncWebClient | None = None) -> str | None:
        """Cancel a run this process is executing; returns why not (Slack mrkdwn), or None when
        cancelled.

        With ``user``, only someone who may run the workflow may cancel it, and only they learn
        whether the run is running here: someone who may not read the workflow is told the same
        for a running, an ended and an unknown run (refusals audited). ``client`` as for
        :meth:`may_run`.
        """
        started = self.running.get(run_id)
        if user is not None:
            why_not = await self._cancel_refusal(run_id, started, self.access(user, client))
            if why_not is not None:
                return why_not
        if started is None:
            return f"Run `{escape(run_id[:100])}` is not running here."
        if await self.core.runs.cancel_on_workers(run_id):
            return None  # on a worker: Prefect cancels it there; the run's task sees it end
        started.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await started.task
        return None

    async def _cancel_refusal(self, run_id: str, started: StartedRun | None, access: Access) -> str | None:
        """Why ``access`` may not cancel ``run_id`` (audited), or None: decided before anything
        about the run's state is said."""
        if started is None:
            record = await self.visible_run(run_id, access, action="cancel")
            if record is None:
                return no_visible_run(run_id)
            name = record.workflow
            workflow = await self.policy(name)
        else:  # its record may not be written yet
            name = started.workflow
            workflow = await self.policy(name)
            if not await access.may_read(workflow):
                await self.audit_refusal(access.user, "cancel", name, {"run_id": run_id})
                return no_visible_run(run_id)
        if not await access.may_run(workflow):
            await self.audit_refusal(access.user, "cancel", name, {"run_id": run_id})
            return f"You may not run `{escape(name)}`, so you may not cancel its runs."
        return None

    async def close(self) -> None:
        """Wait for the in-process runs in flight (a clean shutdown lets them finish); stop
        following the runs on workers, which go on there (the next bot reports their end)."""
        for run_id, started in list(self.running.items()):
            if self.core.runs.on_workers(run_id):
                self.abandoned.add(run_id)
                started.task.cancel()
        tasks = [started.task for started in self.running.values()]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


async def _post_quietly(thread: LiveThread | None) -> tuple[str, str] | None:
    """Post an unattended run's message; ``(channel, ts)``, or None (no channel, or Slack refused)."""
    if thread is None:
        return None
    try:
        return thread.channel, await thread.post()
    except Exception as exc:  # a missing channel or a Slack outage must not stop the run
        logger.warning(
            "run %s: could not post to %s (%s); it runs without a message", thread.view.run_id, thread.channel, exc
        )
        return None


def no_visible_run(run_id: str) -> str:
    """The answer for a run that does not exist, and for one the user may not read: the same."""
    return f"No run `{escape(run_id[:100])}` that you can see."


def workflow_of(stored: StoredVersion) -> Workflow:
    return Workflow.model_validate(stored.definition)
