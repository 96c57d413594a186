"""slack.post_message against the fake Slack Web API over real HTTP (and through the real bot)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import nodes.slack  # noqa: F401 - registers slack.post_message
import switchboard
from nodes.context import NodeContext
from nodes.errors import AuthError, ProviderError, TransientError
from storage.runs import RunStore
from switchboard.credentials import credential_store
from switchboard.settings import Settings
from tests.fakes.http import FakeHTTP
from tests.fakes.slack import BOT_TOKEN, FakeSlack, error, ratelimited, slash_command
from tests.helpers.bot_server import Bot
from tests.nodes.context import call_node, make_context

BLOCKS = [
    {"type": "header", "text": {"type": "plain_text", "text": "Deploy finished"}},
    {"type": "section", "text": {"type": "mrkdwn", "text": "*api* v42 is live"}},
]


@pytest.fixture
def slack(fake_http: FakeHTTP) -> FakeSlack:
    return FakeSlack(fake_http)


def ctx_for(slack: FakeSlack, token: str = BOT_TOKEN) -> NodeContext:
    return make_context(credential={"token": token, "base_url": slack.api_url})


def resolver_for(slack: FakeSlack) -> Any:
    async def resolve(name: str, kind: str | None, *, rejected: str | None = None) -> dict[str, Any]:
        assert (name, kind) == ("slack-bot", "slack")
        return {"token": BOT_TOKEN, "base_url": slack.api_url}

    return resolve


def workflow(params: dict[str, Any], **options: Any) -> dict[str, Any]:
    node = {"id": "say", "type": "slack.post_message", "credential": "slack-bot", "params": params, **options}
    return {"name": "slack-test", "nodes": [node]}


# -- happy paths ---------------------------------------------------------------------------


async def test_post_message_sends_text_and_blocks_with_the_bot_token(slack: FakeSlack) -> None:
    out = await call_node(
        "slack.post_message", {"channel": "C0DEPLOY", "text": "Deploy finished", "blocks": BLOCKS}, ctx_for(slack)
    )

    (posted,) = slack.calls("chat.postMessage")
    assert posted.token == BOT_TOKEN
    assert posted.args == {"channel": "C0DEPLOY", "text": "Deploy finished", "blocks": BLOCKS}
    (request,) = [r for r in slack.http.requests if r.path == "/api/chat.postMessage"]
    assert request.headers["authorization"] == f"Bearer {BOT_TOKEN}"
    assert request.headers["content-type"].startswith("application/json")
    (message,) = slack.channel_messages("C0DEPLOY")
    assert out == {"channel": "C0DEPLOY", "ts": message.ts, "thread_ts": None}
    assert message.blocks == BLOCKS and message.thread_ts is None


async def test_thread_run_without_a_run_thread_posts_top_level(slack: FakeSlack) -> None:
    out = await call_node(
        "slack.post_message", {"channel": "C1", "text": "from the CLI", "thread": "run"}, ctx_for(slack)
    )

    (posted,) = slack.calls("chat.postMessage")
    assert "thread_ts" not in posted.args
    assert out["channel"] == "C1" and out["thread_ts"] is None


async def test_thread_run_replies_in_the_slack_thread_of_a_bot_started_run(bot: Bot) -> None:
    store = credential_store(bot.engine, Settings())
    await store.add("slack-bot", provider="slack", secret=BOT_TOKEN, base_url=bot.slack.api_url, actor="test")
    await bot.apply(
        {
            "name": "announce",
            "inputs": {"what": {"type": "string", "required": True}},
            "nodes": [
                {
                    "id": "reply",
                    "type": "slack.post_message",
                    "credential": "slack-bot",
                    "params": {"channel": "C0ELSEWHERE", "text": "Shipped {{ inputs.what }}", "thread": "run"},
                }
            ],
        }
    )

    headers, body = slash_command('run announce "what=the api"', user="U42", channel="C7")
    assert (await bot.post(headers, body)).status_code == 200
    for _ in range(200):
        if bot.slack.calls("chat.postMessage"):
            break
        await asyncio.sleep(0.02)
    await bot.settle()

    run_message, reply = bot.slack.calls("chat.postMessage")
    run_ts = bot.slack.channel_messages("C7")[0].ts
    assert run_message.args["channel"] == "C7" and "thread_ts" not in run_message.args
    assert reply.args == {"channel": "C7", "text": "Shipped the api", "thread_ts": run_ts}
    assert bot.slack.channel_messages("C0ELSEWHERE") == []
    (threaded,) = [m for m in bot.slack.channel_messages("C7") if m.thread_ts]
    assert threaded.thread_ts == run_ts and threaded.text == "Shipped the api"
    record = (await RunStore(bot.engine).list(limit=1))[0]
    assert (record.workflow, record.status) == ("announce", "completed")


# -- errors ---------------------------------------------------------------------------------


async def test_ratelimited_is_transient_with_retry_after(slack: FakeSlack) -> None:
    slack.fail_next("chat.postMessage", ratelimited(retry_after=7))
    with pytest.raises(TransientError) as caught:
        await call_node("slack.post_message", {"channel": "C1", "text": "hi"}, ctx_for(slack))
    assert (caught.value.status, caught.value.retry_after) == (429, 7.0)
    assert "ratelimited" in str(caught.value)


@pytest.mark.usefixtures("prefect_server")
async def test_a_429_is_retried_in_a_workflow_after_retry_after(slack: FakeSlack) -> None:
    slack.fail_next("chat.postMessage", ratelimited(retry_after=1))
    result = await switchboard.arun(
        workflow({"channel": "C1", "text": "eventually"}, retries=2, retry_delay=0),
        credential_resolver=resolver_for(slack),
        record=False,
    )

    node = result.nodes["say"]
    assert (result.status, node.status, node.attempts) == ("completed", "completed", 2)
    first, second = [r.at for r in slack.http.requests if r.path == "/api/chat.postMessage"]
    assert second - first >= 0.9, "Retry-After: 1 is honoured"
    (message,) = slack.channel_messages("C1")
    assert node.output == {"channel": "C1", "ts": message.ts, "thread_ts": None}


@pytest.mark.usefixtures("prefect_server")
async def test_channel_not_found_is_permanent_and_names_the_channel(slack: FakeSlack) -> None:
    slack.fail_next("chat.postMessage", error("channel_not_found"))
    result = await switchboard.arun(
        workflow({"channel": "C0MISSING", "text": "hello?"}, retries=3, retry_delay=0),
        credential_resolver=resolver_for(slack),
        record=False,
    )

    node = result.nodes["say"]
    assert (result.status, node.status, node.attempts) == ("failed", "failed", 1)
    assert node.error == (
        "slack: channel_not_found (channel 'C0MISSING'): no such channel for the bot: "
        "use the channel id (C…) or name, and invite the bot to a private channel"
    )
    assert len(slack.calls("chat.postMessage")) == 1


async def test_invalid_auth_says_which_credential_to_reconnect(slack: FakeSlack) -> None:
    with pytest.raises(AuthError, match=r"invalid_auth.*reconnect credential 'test-credential'") as caught:
        await call_node("slack.post_message", {"channel": "C1", "text": "hi"}, ctx_for(slack, token="xoxb-revoked"))
    assert "xoxb-revoked" not in str(caught.value)
    assert len(slack.calls("chat.postMessage")) == 1 and slack.channel_messages("C1") == []


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (error("not_in_channel"), "not_in_channel (channel 'C1'): the bot is not in that channel: invite it"),
        (error("missing_scope", needed="chat:write.public"), "add the chat:write.public scope"),
        (
            error("invalid_blocks", response_metadata={"messages": ["[ERROR] must provide a string [/blocks/0]"]}),
            "Slack rejected `blocks` ([ERROR] must provide a string [/blocks/0])",
        ),
    ],
)
async def test_other_slack_errors_are_provider_errors_with_a_hint(slack: FakeSlack, reply: Any, expected: str) -> None:
    slack.fail_next("chat.postMessage", reply)
    with pytest.raises(ProviderError) as caught:
        await call_node("slack.post_message", {"channel": "C1", "text": "hi", "blocks": BLOCKS}, ctx_for(slack))
    assert type(caught.value) is ProviderError
    assert expected in str(caught.value)
