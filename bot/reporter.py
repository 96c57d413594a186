"""Finish the Slack messages of runs this bot process is not watching.

Every run the bot posts about has its message recorded (``runs.slack_channel/slack_message``)
and is marked reported once its final state is in the message. At start-up and then every
:data:`INTERVAL` seconds the bot looks at the runs not yet reported that it is not executing:

* a run Prefect knows has ended (completed, failed, cancelled, crashed — e.g. its worker died)
  gets its summary written into its message;
* a run executed in-process by an earlier bot process (no Prefect deployment) that is still
  "running" died with that process: it is marked crashed in Prefect and in its record, and
  reported so.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from prefect.states import Crashed
from slack_sdk.errors import SlackApiError

from bot.blocks import RunView, run_message
from bot.runtime import BotRuntime, WorkspaceNotInstalledError
from storage.runs import RunRecord
from switchboard import embedded_prefect
from switchboard.runs import reconcile

logger = logging.getLogger(__name__)

#: Seconds between two looks for runs to report (a crashed worker is reported within a minute).
INTERVAL = 15.0
CRASH_MESSAGE = "the bot process running it stopped before the run ended"


async def report_unwatched(runtime: BotRuntime) -> int:
    """Write the final state of every unwatched, ended run into its message; returns how many."""
    store = runtime.runs
    reported = 0
    for record in await store.unreported_slack():
        if record.id in runtime.running:
            continue
        if not record.is_final and await reconcile(store, [record]):
            record = await store.get(record.id)
        if not record.is_final and await _died_with_an_earlier_bot(record, runtime.started_at):
            await store.finished(record.id, status="crashed", error=CRASH_MESSAGE)
            record = await store.get(record.id)
        if record.is_final and await _write_summary(runtime, record):
            await store.mark_slack_reported(record.id)
            reported += 1
    return reported


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


async def _write_summary(runtime: BotRuntime, record: RunRecord) -> bool:
    assert record.slack_channel and record.slack_message
    view = RunView(
        run_id=record.id,
        workflow=record.workflow,
        version=record.version,
        user=(record.triggered_by or "").removeprefix("slack:") or None,
        inputs=record.inputs,
        status=record.status,
        error=record.error,
    )
    if record.ended_at is not None:
        view.duration_s = (record.ended_at - record.started_at).total_seconds()
    text, blocks = run_message(view)
    try:
        client = await runtime.client_for(record.slack_team)
    except WorkspaceNotInstalledError as exc:
        logger.warning("could not report run %s: %s", record.id, exc)
        return True  # the workspace removed the app: nothing can be updated there
    await asyncio.sleep(runtime.pacer.reserve(record.slack_channel))
    try:
        await client.chat_update(channel=record.slack_channel, ts=record.slack_message, text=text, blocks=blocks)
    except SlackApiError as exc:
        logger.warning("could not report run %s: %s", record.id, exc.response.get("error"))
        return exc.response.get("error") in ("message_not_found", "channel_not_found")  # nothing left to update
    return True


async def report_forever(runtime: BotRuntime, interval: float = INTERVAL) -> None:
    """Run :func:`report_unwatched` now and every ``interval`` seconds until cancelled."""
    while True:
        try:
            count = await report_unwatched(runtime)
            if count:
                logger.info("reported the end of %d run(s) started before or outside this process", count)
        except Exception:
            logger.exception("reporting unwatched runs failed; trying again in %.0f s", interval)
        await asyncio.sleep(interval)
