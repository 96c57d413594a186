"""The run message in Slack ends with the workflow's outputs, redacted and trimmed."""

from __future__ import annotations

from tests.fakes.slack import slash_command
from tests.helpers.bot_server import Bot
from tests.helpers.polling import apoll_until

REPORT = {
    "name": "report",
    "inputs": {"name": {"type": "string", "required": True}},
    "outputs": {
        "greeting": "{{ nodes.hello.output.text }}",
        "length": "{{ nodes.hello.output.text | length }}",
        "api_token": "{{ 'hunter2' }}",
    },
    "nodes": [{"id": "hello", "type": "text.template", "params": {"template": "Hello {{ inputs.name }}"}}],
}


def _texts(blocks: list[dict]) -> list[str]:
    return [block["text"]["text"] for block in blocks if isinstance(block.get("text"), dict)]


async def test_the_final_message_lists_the_outputs(bot: Bot) -> None:
    await bot.apply(REPORT)
    headers, body = slash_command("run report name=Ada", user="U1", channel="C9")
    assert (await bot.post(headers, body)).status_code == 200
    await bot.settle()

    def outputs_shown() -> list[str]:
        messages = bot.slack.channel_messages("C9")
        return [text for message in messages for text in _texts(message.blocks) if text.startswith("*Outputs*")]

    # The final edit of the message may land just after the run leaves the bot's run list.
    (outputs,) = await apoll_until(outputs_shown, message="the run message's outputs section")
    (message,) = bot.slack.channel_messages("C9")
    assert outputs.splitlines()[1:] == ['`greeting` = "Hello Ada"', "`length` = 9", '`api_token` = "[redacted]"']
    assert "hunter2" not in str(message.blocks)
