"""What the Slack bot keeps in Switchboard's database, through the client (``client.slack``).

The bot never opens a session or imports ``storage``: it asks this part for the installed
workspaces (and Bolt's install-state store), the pending ``/flow connect`` authorizations, the
replay guard that drops a Slack request or webhook seen before, and the run records of the
messages it posted: attach a message to its run, find the runs whose end is not in their
message yet, and settle a run that died with an earlier bot process.
"""

from __future__ import annotations

from datetime import datetime

from prefect.states import Crashed
from sqlalchemy.ext.asyncio import AsyncEngine

from storage import health
from storage.crypto import load_keyring
from storage.oauth_states import STATE_TTL, OAuthStateStore, PendingAuthorization
from storage.replays import ReplayGuard
from storage.runs import RunRecord, RunStore
from storage.slack_installations import SlackInstallationStore, SlackInstallStateStore
from switchboard import embedded_prefect
from switchboard.runs import reconcile
from switchboard.settings import Settings

__all__ = [
    "CRASH_MESSAGE",
    "STATE_TTL",
    "OAuthStateStore",
    "PendingAuthorization",
    "ReplayGuard",
    "SlackInstallStateStore",
    "SlackInstallationStore",
    "SlackRecords",
]

#: The error of an in-process run whose bot process stopped before it ended.
CRASH_MESSAGE = "the bot process running it stopped before the run ended"


class SlackRecords:
    """The bot's records (``client.slack``)."""

    def __init__(self, engine: AsyncEngine, settings: Settings) -> None:
        self._engine = engine
        self._settings = settings

    def installations(self) -> SlackInstallationStore:
        """The workspaces that installed the app, with their bot tokens (encrypted)."""
        secret = self._settings.secret_key.get_secret_value() if self._settings.secret_key else None
        return SlackInstallationStore(self._engine, load_keyring(secret, self._settings.home_dir))

    def install_states(self) -> SlackInstallStateStore:
        """Bolt's OAuth state store for ``/slack/install``."""
        return SlackInstallStateStore(self._engine)

    def oauth_states(self) -> OAuthStateStore:
        """Pending ``/flow connect`` authorizations (one-time states)."""
        return OAuthStateStore(self._engine)

    def replays(self) -> ReplayGuard:
        """Requests seen before (Slack retries, replayed webhooks), across bot processes."""
        return ReplayGuard(self._engine)

    async def ping(self) -> None:
        """One database round trip (``/healthz``); raises when the database does not answer."""
        await health.ping(self._engine)

    async def attach_message(self, run_id: str, *, channel: str, ts: str, team: str | None = None) -> None:
        """Remember the run's Slack message; :class:`RunRecordNotFoundError` if it has no record yet."""
        await RunStore(self._engine).attach_slack(run_id, channel=channel, message_ts=ts, team=team)

    async def mark_reported(self, run_id: str) -> None:
        """The run's final state is in its message."""
        await RunStore(self._engine).mark_slack_reported(run_id)

    async def unreported(self) -> list[RunRecord]:
        """Runs with a Slack message whose end is not in it yet."""
        return await RunStore(self._engine).unreported_slack()

    async def settle(self, record: RunRecord, *, bot_started_at: datetime) -> RunRecord:
        """Bring an unreported run's record up to date: from Prefect when its flow run ended,
        and as crashed when it ran in-process in a bot process older than ``bot_started_at``
        (Prefect's flow run is marked Crashed too)."""
        store = RunStore(self._engine)
        if not record.is_final and await reconcile(store, [record]):
            record = await store.get(record.id)
        if not record.is_final and await _died_with_an_earlier_bot(record, bot_started_at):
            await store.finished(record.id, status="crashed", error=CRASH_MESSAGE)
            record = await store.get(record.id)
        return record


async def _died_with_an_earlier_bot(record: RunRecord, since: datetime) -> bool:
    """An in-process run (no deployment) started before this process cannot still be running."""
    if record.started_at.replace(tzinfo=since.tzinfo) >= since or not record.flow_run_id:
        return False
    async with embedded_prefect.client() as client:
        flow_run = await client.read_flow_run(record.flow_run_id)  # type: ignore[arg-type]
        if flow_run.deployment_id is not None or flow_run.parent_task_run_id is not None:
            return False  # a worker runs it (as a subflow); Prefect will say when it ends or crashes
        if flow_run.state is None or not flow_run.state.is_final():
            await client.set_flow_run_state(flow_run.id, Crashed(message=CRASH_MESSAGE), force=True)
    return True
