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

from slack_sdk.errors import SlackApiError

from bot.blocks import RunView, run_message
from bot.runtime import BotRuntime, WorkspaceNotInstalledError
from switchboard.runs import RunRecord
from switchboard.slack_records import CRASH_MESSAGE

logger = logging.getLogger(__name__)

#: Seconds between two looks for runs to report (a crashed worker is reported within a minute).
INTERVAL = 15.0
__all__ = ["CRASH_MESSAGE", "INTERVAL", "report_forever", "report_unwatched"]


async def report_unwatched(runtime: BotRuntime) -> int:
    """Write the final state of every unwatched, ended run into its message; returns how many."""
    records = runtime.core.slack
    reported = 0
    for record in await records.unreported():
        if record.id in runtime.running:
            continue
        record = await records.settle(record, bot_started_at=runtime.started_at)
        if record.is_final and await _write_summary(runtime, record):
            await records.mark_reported(record.id)
            reported += 1
    return reported


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
