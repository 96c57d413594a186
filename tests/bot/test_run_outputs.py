"""The run message in Slack ends with the workflow's outputs, redacted and trimmed."""

from __future__ import annotations

from storage.audit import entries
from storage.runs import RunStore
from switchboard.credentials import credential_store
from tests.fakes.http import FakeHTTP
from tests.fakes.openai import FakeOpenAI, completion
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


CHILD = {
    "name": "secret-child",
    "permissions": {"run": ["U1"]},
    "outputs": {"said": "{{ nodes.say.output.text }}"},
    "nodes": [{"id": "say", "type": "text.template", "params": {"template": "from the child"}}],
}
PARENT = {
    "name": "open-parent",
    "outputs": {"child": "{{ nodes.call.output.outputs.said }}"},
    "nodes": [{"id": "call", "type": "core.workflow", "params": {"workflow": "secret-child"}}],
}


async def test_a_sub_workflow_runs_only_for_users_who_may_run_it(bot: Bot) -> None:
    await bot.apply(CHILD)
    await bot.apply(PARENT)
    for user, channel in (("U1", "C-ok"), ("U2", "C-no")):
        headers, body = slash_command("run open-parent", user=user, channel=channel)
        assert (await bot.post(headers, body)).status_code == 200
    await apoll_until(lambda: len(bot.slack.calls("chat.postMessage")) == 2, message="both runs' messages")
    await bot.settle()

    def final(channel: str) -> str:
        texts = [t for m in bot.slack.channel_messages(channel) for t in _texts(m.blocks)]
        return "\n".join(texts) if any(t.startswith(("*Outputs*", "*Error:*")) for t in texts) else ""

    allowed = await apoll_until(lambda: final("C-ok"), message="the permitted run's summary")
    assert '`child` = "from the child"' in allowed
    (child,) = [r for r in await RunStore(bot.engine).list(limit=10) if r.workflow == "secret-child"]
    assert bot.runtime.prefect_ui is not None
    link = f"{bot.runtime.prefect_ui.rstrip('/')}/v2/runs/flow-run/{child.flow_run_id}"
    (call_line,) = [line for line in allowed.splitlines() if "`call`" in line]
    assert call_line.endswith(f"— ↳ `secret-child` v1 <{link}|run {child.id}> :white_check_mark: completed"), (
        "the parent's message shows the child as one node, with its status, linking to it"
    )
    refused = await apoll_until(lambda: final("C-no"), message="the refused run's summary")
    assert (
        "may not run workflow &#x27;secret-child&#x27;" in refused or "may not run workflow 'secret-child'" in refused
    )
    assert "slack:U2 is not in its run permissions" in refused
    records = await RunStore(bot.engine).list(limit=10)
    assert sorted((r.workflow, r.triggered_by, r.status) for r in records) == [
        ("open-parent", "slack:U1", "completed"),
        ("open-parent", "slack:U2", "failed"),
        ("secret-child", "slack:U1", "completed"),
    ]
    refusals = [e for e in await entries(bot.engine, limit=20) if e.action == "refused-run"]
    assert [(e.actor, e.target, e.detail) for e in refusals] == [
        ("slack:U2", "secret-child", {"called_by": "open-parent"})
    ]


async def test_children_of_a_for_each_are_one_line_counting_them_by_status(bot: Bot) -> None:
    await bot.apply(CHILD)
    failing = {"name": "sometimes", "nodes": [{"id": "boom", "type": "core.fail", "params": {"message": "no"}}]}
    await bot.apply(failing)
    many = {
        "name": "many-children",
        "nodes": [
            {
                "id": "each",
                "type": "core.workflow",
                "for_each": ["secret-child", "sometimes", "secret-child"],
                "params": {"workflow": "{{ item }}"},
                "on_error": "continue",
            }
        ],
    }
    await bot.apply(many)
    headers, body = slash_command("run many-children", user="U1", channel="C-many")
    assert (await bot.post(headers, body)).status_code == 200
    await bot.settle()

    def each_line() -> str | None:
        texts = [t for m in bot.slack.channel_messages("C-many") for t in _texts(m.blocks)]
        lines = [line for text in texts for line in text.splitlines() if "`each`" in line and "↳" in line]
        return lines[0] if lines else None

    line = await apoll_until(each_line, message="the for_each node's line naming its children")
    assert "↳ 3 child runs (2 completed, 1 failed): `secret-child` v1 <" in line, line
    assert line.count("/runs/flow-run/") == 3 and ":x: failed" in line


async def test_the_final_message_says_what_the_models_spent(bot: Bot, fake_http: FakeHTTP) -> None:
    ai = FakeOpenAI(fake_http)
    ai.reply(completion("A haiku.", model="gpt-4o-mini", prompt_tokens=1_200, completion_tokens=300))
    await credential_store(bot.engine, bot.runtime.settings).add(
        "llm", provider="openai", secret="sk-test", base_url=ai.base_url, actor="test"
    )
    await bot.apply(
        {
            "name": "poet",
            "nodes": [{"id": "ask", "type": "ai.chat", "credential": "llm", "params": {"prompt": "a haiku"}}],
        }
    )
    headers, body = slash_command("run poet", user="U1", channel="C-ai")
    assert (await bot.post(headers, body)).status_code == 200

    def footer() -> str:
        blocks = [b for m in bot.slack.channel_messages("C-ai") for b in m.blocks if b.get("type") == "context"]
        texts = [element["text"] for block in blocks for element in block["elements"]]
        return next((text for text in texts if "models:" in text), "")

    shown = await apoll_until(footer, message="the run message's model usage")
    assert "models: 1,500 tokens (1,200 prompt, 300 completion) · $0.00036" in shown
    (record,) = await RunStore(bot.engine).list(workflow="poet")
    assert (record.total_tokens, record.cost_usd) == (1_500, 0.00036)
