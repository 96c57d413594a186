"""Who may read what through the Slack bot, forged inputs-form submissions, refused cancels
and OAuth states used at another provider's callback (issue 11 items 10, 11 and 18).

Everything goes through the real bot server over signed HTTP with the fake Slack; the tests
assert on what Slack received (ephemeral answers, posts, modal acks) and on audit rows.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from storage.audit import AuditEntry, entries
from storage.runs import RunRecord
from tests.bot.conftest import Bot
from tests.bot.conftest import bot as bot  # the fixtures of tests/bot, for pytest to find here
from tests.bot.test_connect import Provider, authorize, command, link_of
from tests.bot.test_connect import github as github
from tests.bot.test_connect import provider_http as provider_http
from tests.fakes.slack import block_action, interaction, slash_command

#: Fails with its input in the error: what a reader of the run would learn.
PAYROLL: dict[str, Any] = {
    "name": "payroll",
    "inputs": {"salary": {"type": "string", "required": True}},
    "permissions": {"run": ["U1"]},
    "nodes": [{"id": "pay", "type": "core.fail", "params": {"message": "salary {{ inputs.salary }} rejected"}}],
}
HELLO: dict[str, Any] = {
    "name": "hello",
    "nodes": [{"id": "say", "type": "text.template", "params": {"template": "hi"}}],
}
SLOW: dict[str, Any] = {
    "name": "slow-payroll",
    "permissions": {"run": ["U1"]},
    "nodes": [{"id": "nap", "type": "core.wait", "params": {"seconds": 60}}],
}
FORM: dict[str, Any] = {
    "name": "guarded",
    "inputs": {"name": {"type": "string", "required": True}},
    "permissions": {"run": ["U1"]},
    "nodes": [{"id": "hello", "type": "text.template", "params": {"template": "Hello {{ inputs.name }}"}}],
}

_names = itertools.count()


async def until(condition: Any, *, what: str, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def ask(bot: Bot, text: str, *, user: str, channel: str = "C1") -> str:
    """Type ``/flow text`` as ``user``; the (single, ephemeral) answer's text."""
    name = f"answer{next(_names)}"
    headers, body = slash_command(text, user=user, channel=channel, response_url=bot.slack.response_url(name))
    assert (await bot.post(headers, body)).status_code == 200
    await until(lambda: bot.slack.responses(name), what=f"the answer to {text!r}")
    (answer,) = bot.slack.responses(name)
    assert answer["response_type"] == "ephemeral", answer
    return str(answer["text"])


async def click(bot: Bot, action_id: str, value: str, *, user: str) -> str:
    """Click a run button as ``user``; the ephemeral answer's text."""
    name = f"click{next(_names)}"
    payload = block_action(action_id, value, user=user, response_url=bot.slack.response_url(name))
    headers, body = interaction(payload)
    assert (await bot.post(headers, body)).status_code == 200
    await until(lambda: bot.slack.responses(name), what=f"the answer to the {action_id} click")
    (answer,) = bot.slack.responses(name)
    assert answer["response_type"] == "ephemeral", answer
    return str(answer["text"])


async def run_to_end(bot: Bot, text: str, *, user: str, channel: str) -> RunRecord:
    headers, body = slash_command(text, user=user, channel=channel)
    assert (await bot.post(headers, body)).status_code == 200
    await until(lambda: bot.slack.channel_messages(channel), what=f"the message of {text!r}")
    await bot.settle()
    return (await bot.runtime.runs.list(limit=1))[0]


async def audit_rows(bot: Bot, action: str) -> list[AuditEntry]:
    return [e for e in await entries(bot.engine, limit=500) if e.action == action]


async def test_an_oauth_state_is_consumed_only_at_the_callback_of_its_provider(bot: Bot, github: Provider) -> None:
    link = link_of(await command(bot, "connect github"))
    callback = await authorize(bot, link)  # .../oauth/github/callback?code=...&state=...
    elsewhere = await bot.http.get(callback.replace("/oauth/github/", "/oauth/gdrive/"))
    assert elsewhere.status_code == 400 and "expired" in elsewhere.text
    page = await bot.http.get(callback)  # the state still works where it was made for
    assert page.status_code == 200 and "GitHub is connected" in page.text
