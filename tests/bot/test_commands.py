"""Slash commands over real HTTP: signatures, help, run with a live message, modal, refusals."""

from __future__ import annotations

import asyncio
import time

from storage.audit import entries
from storage.runs import RunStore
from tests.fakes.slack import interaction, sign, slash_command, view_submission
from tests.helpers.bot_server import Bot
from tests.helpers.polling import apoll_until

GREET = {
    "name": "greet",
    "description": "Say hello",
    "inputs": {
        "name": {"type": "string", "required": True, "description": "Who to greet"},
        "times": {"type": "integer", "default": 1},
    },
    "nodes": [
        {"id": "hello", "type": "text.template", "params": {"template": "Hello {{ inputs.name }}"}},
        {"id": "shout", "type": "text.template", "params": {"template": "{{ nodes.hello.output.text | upper }}"}},
    ],
}


def block_text(blocks: list[dict]) -> str:
    parts = []
    for block in blocks:
        if "text" in block and isinstance(block["text"], dict):
            parts.append(block["text"]["text"])
        for element in block.get("elements", []):
            if isinstance(element.get("text"), str):
                parts.append(element["text"])
    return "\n".join(parts)


async def test_unsigned_stale_and_forged_requests_get_401_and_run_nothing(bot: Bot) -> None:
    await bot.apply(GREET)
    headers, body = slash_command("run greet name=Ada")
    unsigned = {k: v for k, v in headers.items() if not k.startswith("X-Slack")}
    stale_headers, stale_body = slash_command("run greet name=Ada", timestamp=int(time.time()) - 600)
    forged_headers, forged_body = slash_command("run greet name=Ada", secret="not-the-secret")
    for h, b in ((unsigned, body), (stale_headers, stale_body), (forged_headers, forged_body)):
        response = await bot.post(h, b)
        assert response.status_code == 401
    # Nothing to poll for (a refused request starts nothing): a run, were one started, posts by now.
    await asyncio.sleep(0.2)
    assert bot.slack.calls("chat.postMessage") == []
    assert bot.runtime.running == {}


async def test_help_is_acknowledged_at_once_and_answered_ephemerally(bot: Bot) -> None:
    headers, body = slash_command("help", response_url=bot.slack.response_url("help"))
    started = time.perf_counter()
    response = await bot.post(headers, body)
    assert response.status_code == 200 and time.perf_counter() - started < 3
    await apoll_until(lambda: bot.slack.responses("help"), message="the answer to /flow help")
    (answer,) = bot.slack.responses("help")
    assert answer["response_type"] == "ephemeral"
    assert "/flow run NAME key=value" in answer["text"]


async def test_run_posts_a_live_message_that_ends_with_a_summary(bot: Bot) -> None:
    await bot.apply(GREET)
    headers, body = slash_command('run greet "name=Ada Lovelace"', user="U42", channel="C7")
    assert (await bot.post(headers, body)).status_code == 200
    await apoll_until(lambda: bot.slack.calls("chat.postMessage"), message="the run message")
    await bot.settle()
    (posted,) = bot.slack.calls("chat.postMessage")
    assert posted.args["channel"] == "C7"
    first = block_text(posted.args["blocks"])
    assert "*greet* v1" in first and "<@U42>" in first and '`name`="Ada Lovelace"' in first
    (message,) = bot.slack.channel_messages("C7")
    final = block_text(message.blocks)
    assert "completed" in final
    assert ":white_check_mark: `hello`" in final and ":white_check_mark: `shout`" in final
    assert "HELLO ADA LOVELACE" in final
    assert message.updates >= 1
    updates = [c for c in bot.slack.calls("chat.update") if c.args["channel"] == "C7"]
    assert all(c.args["ts"] == message.ts for c in updates)
    record = (await RunStore(bot.engine).list(limit=1))[0]
    assert (record.workflow, record.status, record.triggered_by, record.trigger) == (
        "greet",
        "completed",
        "slack:U42",
        "slack",
    )


async def test_missing_inputs_open_a_typed_modal_whose_submission_runs(bot: Bot) -> None:
    await bot.apply(GREET)
    headers, body = slash_command("run greet times=2", channel="C9", trigger_id="trig-9")
    assert (await bot.post(headers, body)).status_code == 200
    await apoll_until(lambda: bot.slack.calls("views.open"), message="the inputs modal")
    (opened,) = bot.slack.calls("views.open")
    assert opened.args["trigger_id"] == "trig-9"
    view = opened.args["view"]
    assert [b["block_id"] for b in view["blocks"]] == ["name"]
    assert view["blocks"][0]["element"]["type"] == "plain_text_input"

    bad = view_submission(
        view["callback_id"],
        {"name": {"value": {"type": "plain_text_input", "value": ""}}},
        private_metadata=view["private_metadata"],
    )
    headers, body = interaction(bad)
    answer = await bot.post(headers, body)
    assert answer.status_code == 200 and answer.json()["response_action"] == "errors"
    assert "name" in answer.json()["errors"]

    good = view_submission(
        view["callback_id"],
        {"name": {"value": {"type": "plain_text_input", "value": "Grace"}}},
        private_metadata=view["private_metadata"],
    )
    headers, body = interaction(good)
    assert (await bot.post(headers, body)).status_code == 200
    await apoll_until(lambda: bot.slack.channel_messages("C9"), message="the run message in C9")
    await bot.settle()
    (message,) = bot.slack.channel_messages("C9")
    assert "HELLO GRACE" in block_text(message.blocks)
    record = (await RunStore(bot.engine).list(limit=1))[0]
    assert record.inputs == {"name": "Grace", "times": 2}


async def test_bad_inputs_and_unknown_commands_say_what_to_type(bot: Bot) -> None:
    await bot.apply(GREET)
    for i, (text, expected) in enumerate(
        (
            ("run greet name=Ada times=many", "Type: `/flow run greet name=… times=…`"),
            ("run nope", "No workflow named `nope`. Known: `greet`"),
            ("frobnicate", "Try `/flow help`"),
            ("run greet name", "is not `key=value`"),
        )
    ):
        headers, body = slash_command(text, response_url=bot.slack.response_url(f"bad{i}"))
        assert (await bot.post(headers, body)).status_code == 200
        await apoll_until(lambda i=i: bot.slack.responses(f"bad{i}"), message=f"the answer to {text!r}")
        (answer,) = bot.slack.responses(f"bad{i}")
        assert answer["response_type"] == "ephemeral"
        assert expected in answer["text"], answer["text"]
    assert bot.slack.calls("chat.postMessage") == []


async def test_only_permitted_users_run_and_refusals_are_audited(bot: Bot) -> None:
    await bot.apply(GREET | {"permissions": {"run": ["U1", "SONCALL"], "read": ["U9"]}})  # U9 sees it
    bot.slack.groups["SONCALL"] = ["U5"]
    url = bot.slack.response_url("refused")
    headers, body = slash_command("run greet name=X", user="U9", response_url=url)
    await bot.post(headers, body)
    await apoll_until(lambda: bot.slack.responses("refused"), message="the refusal")
    (answer,) = bot.slack.responses("refused")
    assert "You may not run `greet`" in answer["text"]
    assert [(e.actor, e.action, e.target) for e in await entries(bot.engine, limit=1)] == [
        ("slack:U9", "refused-run", "greet")
    ]
    for user in ("U5", "UADMIN"):  # a group member, an admin
        headers, body = slash_command("run greet name=X", user=user, channel=f"C-{user}")
        await bot.post(headers, body)
    await apoll_until(lambda: len(bot.slack.calls("chat.postMessage")) == 2, message="the two permitted runs' messages")
    await bot.settle()
    assert sorted(c.args["channel"] for c in bot.slack.calls("chat.postMessage")) == ["C-U5", "C-UADMIN"]


async def test_a_replayed_request_is_ignored(bot: Bot) -> None:
    await bot.apply(GREET)
    headers, body = slash_command("run greet name=Once", channel="C3")
    first, second = await bot.post(headers, body), await bot.post(headers, body)
    assert (first.status_code, second.status_code) == (200, 200)
    # The replay guard drops the second before Bolt sees it: once the first run posted, settled
    # means done.
    await apoll_until(lambda: bot.slack.calls("chat.postMessage"), message="the first run's message")
    await bot.settle()
    assert len(bot.slack.calls("chat.postMessage")) == 1
    # a fresh signature of the same command is a new request
    headers = sign(body)
    await asyncio.sleep(1.1)  # Slack timestamps are whole seconds: a new one, so a new signature
    headers = sign(body)
    assert (await bot.post(headers, body)).status_code == 200
