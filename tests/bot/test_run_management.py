"""Managing runs from Slack: the Retry button and /flow retry, /flow logs, cancelling."""

from __future__ import annotations

import itertools

import pytest

from storage.runs import RunStore
from tests.bot.test_commands import block_text
from tests.fakes.http import FakeHTTP, Reply
from tests.fakes.slack import block_action, interaction, slash_command
from tests.helpers.bot_server import Bot
from tests.helpers.polling import apoll_until


def flaky(url: str) -> dict:
    return {
        "name": "flaky",
        "nodes": [
            {"id": "first", "type": "text.template", "params": {"template": "ready"}},
            # a 404 is permanent (not retried); retries only cover a flaky local connection
            {
                "id": "call",
                "type": "http.request",
                "params": {"url": url},
                "needs": ["first"],
                "retries": 2,
                "retry_delay": 0,
            },
        ],
    }


async def test_a_failed_run_offers_retry_which_resumes_it(
    bot: Bot, fake_http: FakeHTTP, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bot.runtime.settings, "http_allow_hosts", "127.0.0.1")  # the bot's own settings govern its runs
    fake_http.script("GET", "/flaky", Reply(404, "not yet"), Reply(200, {"ok": True}))
    await bot.apply(flaky(fake_http.url("/flaky")))
    headers, body = slash_command("run flaky", channel="CF")
    await bot.post(headers, body)
    await apoll_until(lambda: bot.slack.channel_messages("CF"), message="the run message in CF")
    await bot.settle()
    (failed,) = bot.slack.channel_messages("CF")
    assert "failed" in block_text(failed.blocks)
    actions = next(b for b in failed.blocks if b["type"] == "actions")
    retry = next(e for e in actions["elements"] if e["action_id"] == "retry_run")
    failed_run = retry["value"]

    headers, body = interaction(block_action("retry_run", failed_run, user="U1", channel="CF", message_ts=failed.ts))
    assert (await bot.post(headers, body)).status_code == 200
    await apoll_until(lambda: len(bot.slack.channel_messages("CF")) == 2, message="the retried run's message")
    await bot.settle()
    resumed = next(m for m in bot.slack.channel_messages("CF") if m.ts != failed.ts)
    assert "completed" in block_text(resumed.blocks)
    assert len(fake_http.calls("/flaky")) == 2
    record = (await RunStore(bot.engine).list(limit=1))[0]
    assert (record.status, record.resumed_from, record.triggered_by) == ("completed", failed_run, "slack:U1")

    url = bot.slack.response_url("again")
    headers, body = slash_command(f"retry {record.id}", response_url=url, channel="CF")
    await bot.post(headers, body)
    await apoll_until(lambda: bot.slack.responses("again"), message="the answer to /flow retry")
    assert "only failed runs can be retried" in bot.slack.responses("again")[0]["text"]


async def test_logs_show_a_nodes_last_lines(bot: Bot) -> None:
    await bot.apply({"name": "chatty", "nodes": [{"id": "say", "type": "text.template", "params": {"template": "hi"}}]})
    headers, body = slash_command("run chatty", channel="CL")
    await bot.post(headers, body)
    await apoll_until(lambda: bot.slack.channel_messages("CL"), message="the run message in CL")
    await bot.settle()
    run_id = (await RunStore(bot.engine).list(limit=1))[0].id
    attempts = itertools.count()

    async def logs_with_the_end() -> str | None:  # Prefect ships logs to the API in batches: ask again
        name = f"logs{next(attempts)}"
        headers, body = slash_command(f"logs {run_id} say", response_url=bot.slack.response_url(name))
        await bot.post(headers, body)
        answers = await apoll_until(lambda: bot.slack.responses(name), message=f"the answer to /flow logs ({name})")
        text = str(answers[0]["text"])
        return text if "Finished in state Completed" in text else None

    text = await apoll_until(logs_with_the_end, interval=0.5, message="/flow logs to show the node's last line")
    assert f"log lines of run `{run_id}`, node `say`" in text
    assert "say" in text and "Finished in state Completed" in text


async def test_cancel_stops_a_running_run_and_says_so(bot: Bot) -> None:
    await bot.apply({"name": "slow", "nodes": [{"id": "nap", "type": "core.wait", "params": {"seconds": 30}}]})
    headers, body = slash_command("run slow", channel="CS")
    await bot.post(headers, body)
    await apoll_until(lambda: bot.runtime.running, message="the run to start")
    run_id = next(iter(bot.runtime.running))
    await apoll_until(lambda: bot.slack.channel_messages("CS"), message="the run message in CS")
    message = bot.slack.channel_messages("CS")[0]
    headers, body = interaction(block_action("cancel_run", run_id, channel="CS", message_ts=message.ts))
    assert (await bot.post(headers, body)).status_code == 200
    await apoll_until(lambda: not bot.runtime.running, timeout=15, message="the cancelled run to end")
    await apoll_until(
        lambda: "cancelled" in block_text(bot.slack.channel_messages("CS")[0].blocks),
        timeout=5,
        message="the run message to say cancelled",
    )


async def test_only_people_who_may_run_a_workflow_may_cancel_or_retry_it(bot: Bot) -> None:
    from storage.audit import entries

    await bot.apply(
        {
            "name": "guarded",
            "permissions": {"run": ["U1"], "read": ["U9"]},  # U9 may see its runs, not cancel them
            "nodes": [{"id": "nap", "type": "core.wait", "params": {"seconds": 30}}],
        }
    )
    headers, body = slash_command("run guarded", user="U1", channel="CG")
    await bot.post(headers, body)
    await apoll_until(lambda: bot.runtime.running, message="the run to start")
    run_id = next(iter(bot.runtime.running))
    # Its record (and the audit entry of the run) is written once its flow run starts.
    await apoll_until(lambda: RunStore(bot.engine).list(), message="the run's record")
    url = bot.slack.response_url("nope")
    headers, body = slash_command(f"cancel {run_id}", user="U9", response_url=url)
    await bot.post(headers, body)
    await apoll_until(lambda: bot.slack.responses("nope"), message="the refusal to cancel")
    assert "You may not run `guarded`, so you may not cancel its runs." in bot.slack.responses("nope")[0]["text"]
    assert run_id in bot.runtime.running
    assert [(e.actor, e.action) for e in await entries(bot.engine, limit=1)] == [("slack:U9", "refused-cancel")]
    headers, body = slash_command(f"cancel {run_id}", user="U1", response_url=bot.slack.response_url("yes"))
    await bot.post(headers, body)
    await apoll_until(lambda: bot.slack.responses("yes"), message="the answer to /flow cancel")
    assert bot.slack.responses("yes")[0]["text"] == f"Cancelled run `{run_id}`."
    assert run_id not in bot.runtime.running
