"""The self-approval rule holds from the moment an approval exists (issue 11 item 12).

The bot learns a paused run's approval from a ``waiting`` event and then reads the workflow
before it asks in Slack. The race is reproduced deterministically on PostgreSQL: the test
holds an exclusive lock on the ``workflows`` table, so the bot's read of the workflow waits
(observable in ``pg_locks``), and the run's starter — one of the node's approvers — clicks
Approve with the approval's id during that window.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bot.approvals import APPROVE
from bot.threads import LiveThread
from flows.events import NodeEvent
from flows.results import NodeResult
from tests.conftest import create_postgres_database, drop_postgres_database
from tests.fakes.slack import block_action, interaction, slash_command
from tests.helpers.bot_server import Bot, serve_bot
from tests.helpers.polling import apoll_until

GATE: dict[str, Any] = {
    "name": "gate",
    "nodes": [
        {
            "id": "ask",
            "type": "core.approval",
            "params": {"message": "Ship it?", "approvers": ["UBOSS"], "timeout": 120},
        },
        {"id": "after", "type": "core.set", "params": {"values": {"shipped": True}}, "needs": ["ask"]},
    ],
}


@pytest.fixture
async def pg_bot(
    tmp_path: Path, prefect_server: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Bot, str]]:
    """The bot on a fresh PostgreSQL database, and its name (its locks are what the test holds)."""
    name, url = await create_postgres_database("sb_race")
    try:
        async with serve_bot(tmp_path, url, monkeypatch) as running:
            yield running, name
    finally:
        await drop_postgres_database(name)


async def test_the_starter_cannot_approve_in_the_window_before_the_question_is_posted(pg_bot: tuple[Bot, str]) -> None:
    bot, database = pg_bot
    await bot.apply(GATE)
    waiting: list[NodeEvent] = []
    results: dict[str, NodeResult] = {}

    def hook(thread: LiveThread | None, event: NodeEvent) -> None:
        if event.kind == "waiting":
            waiting.append(event)
        elif event.kind == "finished" and event.result is not None:
            results[event.node_id] = event.result

    bot.runtime.event_hooks.append(hook)
    lock = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:5432/{database}")
    try:
        headers, body = slash_command("run gate", user="UBOSS", channel="CG")
        assert (await bot.post(headers, body)).status_code == 200
        await apoll_until(lambda: bot.slack.channel_messages("CG"), timeout=60, message="the run message")
        # From here the bot reads the workflow only to ask the question: make that read wait.
        transaction = lock.transaction()
        await transaction.start()
        await lock.execute("LOCK TABLE workflows IN ACCESS EXCLUSIVE MODE")
        await apoll_until(lambda: waiting, timeout=60, message="the approval's waiting event")
        await apoll_until(
            lambda: lock.fetchval("SELECT count(*) FROM pg_locks WHERE NOT granted"),
            timeout=60,
            message="the bot's blocked read",
        )
        assert not [m for m in bot.slack.channel_messages("CG") if m.thread_ts]  # not asked yet

        (event,) = waiting
        assert event.request is not None
        approval_id = f"{event.run_id}:{event.request['key']}"
        click = block_action(APPROVE, approval_id, user="UBOSS", channel="CG")
        assert (await bot.post(*interaction(click))).status_code == 200

        def told() -> list[str]:
            return [c.args["text"] for c in bot.slack.calls("chat.postEphemeral") if c.args.get("user") == "UBOSS"]

        await apoll_until(lambda: told() or "ask" in results, timeout=60, message="an answer to the click")
        assert "ask" not in results, f"the starter's own click resumed the run: {results['ask'].output}"
        assert told() == ["This approval is not ready yet: try again in a moment."]
        await transaction.rollback()
    finally:
        await lock.close()

    asked = await apoll_until(
        lambda: [m for m in bot.slack.channel_messages("CG") if m.thread_ts],
        timeout=60,
        message="the approval question",
    )
    assert "(not <@UBOSS>)" in asked[0].blocks[1]["elements"][0]["text"]
    click = block_action(APPROVE, approval_id, user="UBOSS", channel="CG", message_ts=asked[0].ts)
    assert (await bot.post(*interaction(click))).status_code == 200
    await apoll_until(lambda: len(told()) == 2, timeout=60, message="the self-approval refusal")
    assert told()[1].startswith("You started this run, so someone else must approve it")
    assert "ask" not in results

    admin = block_action(APPROVE, approval_id, user="UADMIN", channel="CG", message_ts=asked[0].ts)
    assert (await bot.post(*interaction(admin))).status_code == 200
    await bot.settle()
    assert results["ask"].output == {"approved": True, "by": "UADMIN", "comment": None}
