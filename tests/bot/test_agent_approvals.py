"""An ai.agent's `approve:` tool calls wait for a Slack button, one approval per call; a
rejection goes back to the model as the tool's result. The live message shows the calls."""

from __future__ import annotations

import json
from typing import Any

from bot.approvals import APPROVE, REJECT
from switchboard.credentials import credential_store
from tests.bot.test_approvals import approval_message, click, collect_results, run_message, until_paused
from tests.bot.test_commands import block_text
from tests.fakes.http import FakeHTTP
from tests.fakes.openai import FakeOpenAI, completion, tool_calls
from tests.fakes.slack import Message, slash_command
from tests.helpers.bot_server import Bot
from tests.helpers.polling import apoll_until

PUBLISHER: dict[str, Any] = {
    "name": "publisher",
    "nodes": [
        {
            "id": "think",
            "type": "ai.agent",
            "credential": "llm",
            "params": {
                "prompt": "Publish the release notes.",
                "tools": [{"node": "text.template", "name": "publish"}, {"node": "text.template", "name": "draft"}],
                "approve": ["publish"],
                "approvers": ["UBOSS"],
                "approval_timeout": 120,
            },
        }
    ],
}


def approvals(bot: Bot, channel: str) -> list[Message]:
    return [m for m in bot.slack.channel_messages(channel) if m.thread_ts is not None]


async def test_each_approved_tool_call_waits_for_its_own_button(bot: Bot, fake_http: FakeHTTP) -> None:
    ai = FakeOpenAI(fake_http)
    ai.reply(
        tool_calls(("draft", {"template": "notes v1"})),
        tool_calls(("publish", {"template": "notes v1"})),
        tool_calls(("publish", {"template": "notes v1, again"})),
        completion("Published once; the second was rejected."),
    )
    await credential_store(bot.engine, bot.runtime.settings).add(
        "llm", provider="openai", secret="sk-test", base_url=ai.base_url, actor="test"
    )
    await bot.apply(PUBLISHER)
    results = collect_results(bot)
    headers, body = slash_command("run publisher", user="U1", channel="C-agent")
    assert (await bot.post(headers, body)).status_code == 200

    first: Message = await apoll_until(lambda: (approvals(bot, "C-agent") or [None])[0], message="the first approval")
    shown = block_text(first.blocks)
    assert "The agent `think` wants to call `publish` with:" in shown and '"template": "notes v1"' in shown
    await until_paused(bot)
    assert len(ai.requests()) == 2, "the model waits while the call is asked about"
    await click_first(bot, APPROVE, first, user="UBOSS")

    def second_approval() -> Message | None:
        asked = approvals(bot, "C-agent")
        return asked[1] if len(asked) > 1 else None

    second = await apoll_until(second_approval, message="the second approval")
    assert '"template": "notes v1, again"' in block_text(second.blocks)
    live = block_text(run_message(bot, "C-agent").blocks)
    assert ":wrench: 2 tool calls · `publish` completed" in live, live
    await click_first(bot, REJECT, second, user="UBOSS", comment="once is enough")
    await bot.settle()

    out = results["think"].output
    assert out["text"] == "Published once; the second was rejected."
    steps = [(s["tool"], s["status"]) for s in out["steps"]]
    assert steps == [("draft", "ok"), ("publish", "ok"), ("publish", "rejected")]
    told = [m for m in ai.sent(3)["messages"] if m["role"] == "tool"][-1]
    assert json.loads(told["content"]) == {"error": "the call was rejected by UBOSS: once is enough; it was not made"}
    assert approval_message(bot, "C-agent") is not None


async def click_first(bot: Bot, action_id: str, message: Message, *, user: str, comment: str | None = None) -> None:
    """Remember the message's buttons (they go once it is answered), then click one."""
    from tests.bot.test_approvals import button_values

    buttons = next(b for b in message.blocks if b["type"] == "actions")["elements"]
    button_values[(message.channel, message.ts)] = buttons[0]["value"]
    await click(bot, action_id, message, user=user, comment=comment)
