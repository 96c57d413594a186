"""``@Switchboard run NAME key=value`` in a channel and in a DM, over real HTTP with signed
Events API deliveries: the same parser, refusals and live message as ``/flow run``, replying
in the mentioning message's thread; redeliveries start nothing."""

from __future__ import annotations

from typing import Any

from storage.runs import RunStore
from tests.bot.test_commands import GREET, block_text
from tests.fakes.slack import event_callback, mention
from tests.helpers.bot_server import Bot
from tests.helpers.polling import apoll_until

PRIVATE: dict[str, Any] = {**GREET, "name": "private-greet", "permissions": {"run": ["U9"]}}


async def handled_after(bot: Bot, user: str) -> None:
    """Send ``user``'s "hello" last and wait for its help reply: the events before it were handled."""
    before = len(ephemerals(bot, user))
    headers, body = mention("hello", user=user, event_id=f"Ev-hello-{before}")
    assert (await bot.post(headers, body)).status_code == 200
    await apoll_until(lambda: len(ephemerals(bot, user)) > before, message="the help reply")
    await bot.settle()


async def _finished(bot: Bot, workflow: str) -> list[Any] | None:
    records = await RunStore(bot.engine).list(workflow=workflow)
    return records if records and all(r.is_final for r in records) else None


def ephemerals(bot: Bot, user: str) -> list[dict[str, Any]]:
    return [c.args for c in bot.slack.calls("chat.postEphemeral") if c.args.get("user") == user]


async def test_a_mention_runs_the_workflow_in_its_thread_once(bot: Bot) -> None:
    await bot.apply(GREET)
    name = next(iter(GREET["inputs"]))
    headers, body = mention(f"run {GREET['name']} {name}=Ada", channel="C-m", ts="1700000000.000200", event_id="Ev1")
    assert (await bot.post(headers, body)).status_code == 200
    await bot.settle()

    def final() -> Any:
        posted = bot.slack.channel_messages("C-m")
        return posted[0] if posted and "completed" in block_text(posted[0].blocks) else None

    message = await apoll_until(final, message="the mention's run message")
    assert message.thread_ts == "1700000000.000200", "the run message replies in the mention's thread"
    (record,) = await RunStore(bot.engine).list(workflow=GREET["name"])
    assert (record.trigger, record.triggered_by, record.inputs[name]) == ("slack", "slack:U1", "Ada")

    # Slack delivering the same event again (a slow ack) starts nothing.
    again_headers, again = mention(f"run {GREET['name']} {name}=Ada", channel="C-m", event_id="Ev1")
    assert (await bot.post(again_headers, again)).status_code == 200
    await handled_after(bot, "U1")
    assert len(await RunStore(bot.engine).list(workflow=GREET["name"])) == 1


async def test_a_dm_runs_and_refusals_are_the_slash_commands(bot: Bot) -> None:
    await bot.apply(GREET)
    await bot.apply(PRIVATE)
    name = next(iter(GREET["inputs"]))
    dm = {"type": "message", "channel_type": "im", "user": "U1", "channel": "D1", "ts": "1700000000.000300"}

    for event_id, text in (("Ev2", f"run {GREET['name']} {name}=Bo"), ("Ev3", "run private-greet"), ("Ev4", "hello")):
        headers, body = event_callback({**dm, "text": text, "ts": f"17000000{event_id[-1]}.0"}, event_id=event_id)
        assert (await bot.post(headers, body)).status_code == 200
    await bot.settle()
    await apoll_until(lambda: len(ephemerals(bot, "U1")) >= 2, message="the refusal and the help")
    texts = [e["text"] for e in ephemerals(bot, "U1")]
    assert "No workflow named `private-greet`. Known: `greet`" in texts, "as /flow run: unreadable is unknown"
    assert any("Mention me with `run NAME key=value" in t for t in texts), texts
    assert all(e["thread_ts"] for e in ephemerals(bot, "U1")), "replies go in the thread"
    # Bolt acknowledges first and handles the event after: wait for the run's record.
    (record,) = await apoll_until(lambda: _finished(bot, GREET["name"]), message="the DM's run to be recorded as ended")
    assert record.inputs[name] == "Bo"
    assert await RunStore(bot.engine).list(workflow="private-greet") == []

    # The bot's own messages and edits in the DM are not commands.
    for extra in ({"bot_id": "B1"}, {"subtype": "message_changed"}):
        headers, body = event_callback({**dm, "text": f"run {GREET['name']} {name}=X", **extra}, event_id=str(extra))
        assert (await bot.post(headers, body)).status_code == 200
    await handled_after(bot, "U1")
    assert len(await RunStore(bot.engine).list(workflow=GREET["name"])) == 1


async def test_missing_inputs_are_listed_since_a_mention_has_no_form(bot: Bot) -> None:
    await bot.apply(GREET)
    headers, body = mention(f"run {GREET['name']}", user="U2", event_id="Ev9")
    assert (await bot.post(headers, body)).status_code == 200
    (refusal,) = await apoll_until(lambda: ephemerals(bot, "U2"), message="the missing inputs")
    assert "do not fit" in refusal["text"] and next(iter(GREET["inputs"])) in refusal["text"]
    assert bot.slack.calls("views.open") == []
