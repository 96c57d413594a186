"""Runs the bot is not watching still get their end reported: after a restart, or when Prefect
says they ended elsewhere."""

from __future__ import annotations

from datetime import timedelta

from prefect.client.orchestration import get_client
from prefect.states import Running

from bot.reporter import CRASH_MESSAGE, report_unwatched
from flows.runner import run_workflow
from storage.runs import RunRecord, RunStore
from tests.bot.test_commands import block_text
from tests.helpers.bot_server import Bot
from tests.helpers.polling import apoll_until


async def orphan(bot: Bot, run_id: str, channel: str, *, state: object = None) -> str:
    """A run an earlier bot process started and posted about, then died: its flow run is
    still Running in Prefect and its record still says running."""
    async with get_client() as client:
        flow_run = await client.create_flow_run(
            run_workflow, parameters={"definition": {}, "inputs": {}, "run_id": run_id}, state=state or Running()
        )
    store = RunStore(bot.engine)
    await store.started(
        run_id=run_id,
        flow_run_id=str(flow_run.id),
        workflow="greet",
        version=1,
        trigger="slack",
        triggered_by="slack:U1",
        inputs={"name": "Ada"},
    )
    posted = await bot.runtime.client.chat_postMessage(channel=channel, text="greet v1: running", blocks=[])
    await store.attach_slack(run_id, channel=channel, message_ts=posted["ts"])
    return str(flow_run.id)


async def test_a_run_that_died_with_the_previous_bot_is_reported_crashed(bot: Bot) -> None:
    flow_run_id = await orphan(bot, "orphan1", "CR")
    bot.runtime.started_at += timedelta(seconds=5)  # this bot process started after the run

    assert await report_unwatched(bot.runtime) == 1

    (message,) = bot.slack.channel_messages("CR")
    text = block_text(message.blocks)
    assert "crashed" in text and CRASH_MESSAGE in text
    record = await RunStore(bot.engine).get("orphan1")
    assert (record.status, record.error) == ("crashed", CRASH_MESSAGE)
    assert record.slack_reported_at is not None
    async with get_client() as client:
        state = (await client.read_flow_run(flow_run_id)).state  # type: ignore[arg-type]
    assert state is not None and state.type.value == "CRASHED"
    assert await report_unwatched(bot.runtime) == 0, "reported once"


async def test_a_run_that_ended_while_nobody_watched_gets_its_summary(bot: Bot) -> None:
    await orphan(bot, "ended1", "CE")
    await RunStore(bot.engine).finished("ended1", status="completed", error=None)
    assert await report_unwatched(bot.runtime) == 1
    (message,) = bot.slack.channel_messages("CE")
    assert "completed" in block_text(message.blocks) and "took" in block_text(message.blocks)


async def test_a_run_started_by_this_process_is_left_alone(bot: Bot) -> None:
    await orphan(bot, "young1", "CY")  # started after this process: it may be running elsewhere
    bot.runtime.started_at -= timedelta(seconds=60)
    assert await report_unwatched(bot.runtime) == 0
    assert (await RunStore(bot.engine).get("young1")).status == "running"


async def test_runs_the_bot_watched_are_marked_reported(bot: Bot) -> None:
    from tests.bot.test_commands import GREET
    from tests.fakes.slack import slash_command

    await bot.apply(GREET)
    headers, body = slash_command("run greet name=Ada", channel="CW")
    await bot.post(headers, body)
    await apoll_until(lambda: bot.slack.channel_messages("CW"), message="the run message in CW")
    await bot.settle()

    async def reported() -> RunRecord | None:  # marked once the summary is in the message, after the run ends
        record = (await RunStore(bot.engine).list(limit=1))[0]
        return record if record.slack_reported_at is not None else None

    record = await apoll_until(reported, message="the run to be marked reported")
    assert (record.slack_channel, record.slack_message) == ("CW", bot.slack.channel_messages("CW")[0].ts)
    assert await report_unwatched(bot.runtime) == 0


async def test_a_summary_slack_refused_is_written_by_the_reporter_later(bot: Bot) -> None:
    from tests.bot.test_commands import GREET
    from tests.fakes.slack import error, slash_command

    await bot.apply(GREET)
    bot.slack.fail_next("chat.update", *[error("service_unavailable")] * 20)  # Slack is down
    headers, body = slash_command("run greet name=Ada", channel="CD")
    await bot.post(headers, body)
    await apoll_until(lambda: bot.slack.channel_messages("CD"), message="the run message in CD")
    await bot.settle()
    (message,) = bot.slack.channel_messages("CD")
    assert "completed" not in block_text(message.blocks)  # the summary never arrived
    record = (await RunStore(bot.engine).list(limit=1))[0]
    assert (record.status, record.slack_reported_at) == ("completed", None)

    bot.slack.clear_failures("chat.update")  # Slack is back
    bot.runtime.started_at += timedelta(seconds=60)
    assert await report_unwatched(bot.runtime) == 1
    assert "completed" in block_text(bot.slack.channel_messages("CD")[0].blocks)
    assert (await RunStore(bot.engine).get(record.id)).slack_reported_at is not None
