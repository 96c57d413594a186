"""Slack runs on a worker: with execution "remote" the bot queues a flow run of the
run-workflow deployment and follows it through Prefect.

A warm worker (:func:`deployments.warm_worker.serve`) runs in the test's event loop against
the session's Prefect server; the bot and the worker share only Prefect and the database.
The live message follows the run, approval buttons come from the question the paused run
published in Prefect, and `/flow cancel` cancels the run on the worker.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.settings import temporary_settings

from deployments.processes import worker_settings
from deployments.warm_worker import Owner, serve
from storage.runs import RunStore
from switchboard import remote
from switchboard.credentials import credential_store
from switchboard.settings import Settings
from tests.bot.test_approvals import APPROVE, DEPLOY, click, run_message, start
from tests.bot.test_commands import block_text
from tests.fakes.slack import BOT_TOKEN, slash_command
from tests.helpers.bot_server import Bot
from tests.helpers.polling import apoll_until

SLOW: dict[str, Any] = {
    "name": "slow",
    "nodes": [
        {"id": "first", "type": "text.template", "params": {"template": "on it"}},
        {"id": "nap", "type": "core.wait", "needs": ["first"], "params": {"seconds": 120}},
    ],
}


@pytest.fixture
async def worker(bot: Bot) -> AsyncIterator[None]:
    """A warm worker in this event loop, and the bot sending its runs to workers."""
    bot.runtime.settings = bot.runtime.settings.model_copy(update={"execution": "remote"})
    stop = asyncio.Event()
    with temporary_settings(updates=worker_settings({})):
        serving = asyncio.create_task(serve(limit=4, name="bot-test-worker", grace=5, stop=stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(serving, 30)
        for started in list(bot.runtime.running.values()):  # a failed test must not hang the bot's close
            started.task.cancel()


def message_text(bot: Bot, channel: str) -> str:
    """The run message's text so far ("" before it is posted)."""
    posted = [m for m in bot.slack.channel_messages(channel) if m.thread_ts is None]
    return block_text(posted[0].blocks) if posted else ""


async def start_slow(bot: Bot, channel: str) -> str:
    """Run ``slow`` from Slack in ``channel``; its run id once its long node shows as running."""
    await bot.apply(SLOW)
    headers, body = slash_command("run slow", user="U1", channel=channel)
    assert (await bot.post(headers, body)).status_code == 200
    await apoll_until(
        lambda: ":arrows_counterclockwise: `nap`" in message_text(bot, channel), timeout=60, message="nap to run"
    )
    (run_id,) = list(bot.runtime.running)
    return run_id


async def deployment_flow_run(run_id: str) -> Any:
    """The run-workflow flow run that executed the Switchboard run ``run_id``."""
    async with get_client() as client:
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

        (flow_run,) = await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[f"switchboard-request:{run_id}"]))
        )
        return flow_run


@pytest.mark.usefixtures("worker")
async def test_a_slack_run_on_a_worker_is_followed_and_its_approval_answered(bot: Bot) -> None:
    await bot.apply(DEPLOY)
    asked = await start(bot, user="U1", channel="C1")  # the question reached Slack from Prefect
    assert "Ship 1.2 to production?" in block_text(asked.blocks)
    await apoll_until(
        lambda: ":hourglass_flowing_sand: `ask`" in block_text(run_message(bot, "C1").blocks),
        message="`ask` waiting in the run message",
    )

    await click(bot, APPROVE, asked, user="UBOSS", comment="ship it")
    await bot.settle(timeout=90)
    final = block_text(run_message(bot, "C1").blocks)
    assert "*completed*" in final and "shipped 1.2, approved by UBOSS" in final

    (record,) = await RunStore(bot.engine).list(limit=5)
    assert record.status == "completed" and record.triggered_by == "slack:U1"
    assert (record.slack_channel, record.slack_message) == ("C1", run_message(bot, "C1").ts)
    flow_run = await deployment_flow_run(record.id)
    assert flow_run.deployment_id is not None and flow_run.state.is_completed()
    owner = Owner.decode(flow_run.infrastructure_pid)
    assert owner is not None and owner.worker == "bot-test-worker"


@pytest.mark.usefixtures("worker")
async def test_cancelling_a_run_on_a_worker_cancels_it_there(bot: Bot) -> None:
    run_id = await start_slow(bot, "C2")

    headers, body = slash_command(f"cancel {run_id}", user="U1", channel="C2")
    assert (await bot.post(headers, body)).status_code == 200
    await bot.settle(timeout=60)
    assert "*cancelled*" in block_text(run_message(bot, "C2").blocks)
    record = await RunStore(bot.engine).get(run_id)
    assert record.status == "cancelled"
    flow_run = await deployment_flow_run(run_id)
    assert flow_run.state.is_cancelled()
    async with get_client() as client:
        runner = await client.read_flow_run(UUID(record.flow_run_id))
    assert runner.state is not None and runner.state.is_cancelled()


@pytest.mark.usefixtures("worker")
async def test_cancelling_a_parent_on_a_worker_cancels_the_child_it_runs(bot: Bot) -> None:
    await bot.apply({"name": "slow-child", "nodes": [{"id": "nap", "type": "core.wait", "params": {"seconds": 120}}]})
    await bot.apply(
        {
            "name": "waits-on-child",
            "nodes": [{"id": "call", "type": "core.workflow", "params": {"workflow": "slow-child"}}],
        }
    )
    headers, body = slash_command("run waits-on-child", user="U1", channel="C3")
    assert (await bot.post(headers, body)).status_code == 200

    async def child_running() -> list[Any] | None:
        records = await RunStore(bot.engine).list(limit=10)
        return [r for r in records if r.workflow == "slow-child" and r.status == "running"] or None

    (child,) = await apoll_until(child_running, timeout=60, message="the child run to start on the worker")
    (run_id,) = list(bot.runtime.running)
    headers, body = slash_command(f"cancel {run_id}", user="U1", channel="C3")
    assert (await bot.post(headers, body)).status_code == 200
    await bot.settle(timeout=60)
    assert "*cancelled*" in block_text(run_message(bot, "C3").blocks)
    records = {r.workflow: r for r in await RunStore(bot.engine).list(limit=10)}
    assert (records["waits-on-child"].status, records["slow-child"].status) == ("cancelled", "cancelled")
    async with get_client() as client:
        child_flow_run = await client.read_flow_run(UUID(str(child.flow_run_id)))
    assert child_flow_run.state is not None and child_flow_run.state.is_cancelled(), child_flow_run.state


@pytest.mark.usefixtures("worker")
async def test_a_node_on_the_worker_replies_in_the_runs_slack_thread(bot: Bot) -> None:
    store = credential_store(bot.engine, Settings())
    await store.add("slack-bot", provider="slack", secret=BOT_TOKEN, base_url=bot.slack.api_url, actor="test")
    await bot.apply(
        {
            "name": "announce",
            "nodes": [
                {
                    "id": "reply",
                    "type": "slack.post_message",
                    "credential": "slack-bot",
                    "params": {"channel": "C0ELSEWHERE", "text": "shipped from a worker", "thread": "run"},
                }
            ],
        }
    )
    headers, body = slash_command("run announce", user="U42", channel="C9")
    assert (await bot.post(headers, body)).status_code == 200
    await apoll_until(lambda: bot.runtime.running, timeout=10, message="the run to start")
    await bot.settle(timeout=60)

    run_ts = bot.slack.channel_messages("C9")[0].ts
    (threaded,) = [m for m in bot.slack.channel_messages("C9") if m.thread_ts]
    assert (threaded.thread_ts, threaded.text) == (run_ts, "shipped from a worker")
    assert "*completed*" in message_text(bot, "C9")
    (record,) = await RunStore(bot.engine).list(limit=5)
    assert (await deployment_flow_run(record.id)).deployment_id is not None


@pytest.mark.usefixtures("worker")
async def test_a_bot_shutting_down_leaves_runs_on_workers_running(bot: Bot) -> None:
    run_id = await start_slow(bot, "C3")
    queued = bot.runtime.core.runs.on_workers(run_id)
    assert queued is not None

    await asyncio.wait_for(bot.runtime.close(), 10)  # does not wait for the worker's run

    assert not bot.runtime.running
    assert "cancelled" not in message_text(bot, "C3")  # the next bot process reports its end
    record = await RunStore(bot.engine).get(run_id)
    assert record.status == "running" and record.slack_reported_at is None
    flow_run = await deployment_flow_run(run_id)
    assert flow_run.state is not None and flow_run.state.is_running()
    await remote.cancel(queued)
