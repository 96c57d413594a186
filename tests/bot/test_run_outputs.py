"""The run message in Slack ends with the workflow's outputs, redacted and trimmed."""

from __future__ import annotations

from tests.bot.conftest import Bot
from tests.fakes.slack import slash_command

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
    (message,) = bot.slack.channel_messages("C9")
    (outputs,) = [text for text in _texts(message.blocks) if text.startswith("*Outputs*")]
    assert outputs.splitlines()[1:] == ['`greeting` = "Hello Ada"', "`length` = 9", '`api_token` = "[redacted]"']
    assert "hunter2" not in str(message.blocks)
