"""Webhook triggers over real HTTP: signed requests run, anything else is refused and runs nothing."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from storage.runs import RunStore
from switchboard.settings import Settings
from switchboard.webhooks import WebhookSecrets, curl_example
from tests.bot.test_commands import GREET, block_text
from tests.fakes.slack import error
from tests.helpers.bot_server import Bot

NOTIFIED = {**GREET, "name": "greet-notify", "notify": {"channel": "C-OPS"}}


def signed(secret: str, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
    """The documented header format, computed here independently of switchboard.webhooks."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-Switchboard-Timestamp": stamp,
        "X-Switchboard-Signature": f"sha256={digest}",
    }


async def add_secret(bot: Bot, workflow: str) -> str:
    return await WebhookSecrets.on(bot.engine, bot.runtime.settings).add(workflow, actor="test")


async def run_rows(bot: Bot) -> list[Any]:
    return await RunStore(bot.engine).list(limit=50)


async def nothing_started(bot: Bot) -> None:
    """No run is running or recorded. Nothing to poll for: a run, were one started, shows by now."""
    await asyncio.sleep(0.3)
    assert bot.runtime.running == {}
    assert await run_rows(bot) == []


async def test_signed_request_runs_and_posts_to_the_notify_channel(bot: Bot) -> None:
    await bot.apply(NOTIFIED)
    secret = await add_secret(bot, "greet-notify")
    body = json.dumps({"name": "Ada", "times": 2}).encode()
    started = time.perf_counter()
    response = await bot.post(signed(secret, body), body, path="/hooks/greet-notify")
    assert response.status_code == 202, response.text
    assert time.perf_counter() - started < 2
    run_id = response.json()["run_id"]
    await bot.settle()

    record = await RunStore(bot.engine).get(run_id)
    assert (record.workflow, record.status, record.trigger, record.triggered_by) == (
        "greet-notify",
        "completed",
        "webhook",
        "webhook",
    )
    assert record.inputs == {"name": "Ada", "times": 2}
    (posted,) = bot.slack.calls("chat.postMessage")
    assert posted.args["channel"] == "C-OPS"
    assert "*greet-notify* v1" in block_text(posted.args["blocks"]) and f"run `{run_id}`" in block_text(
        posted.args["blocks"]
    )
    (message,) = bot.slack.channel_messages("C-OPS")
    final = block_text(message.blocks)
    assert "completed" in final and "HELLO ADA" in final


async def test_without_notify_the_run_completes_without_any_slack_message(bot: Bot) -> None:
    await bot.apply(GREET)
    secret = await add_secret(bot, "greet")
    body = b'{"name": "Grace"}'
    response = await bot.post(signed(secret, body), body, path="/hooks/greet")
    assert response.status_code == 202
    await bot.settle()
    record = await RunStore(bot.engine).get(response.json()["run_id"])
    assert (record.status, record.trigger, record.inputs) == ("completed", "webhook", {"name": "Grace", "times": 1})
    assert bot.slack.calls() == []


async def test_a_channel_slack_refuses_costs_the_message_not_the_run(bot: Bot) -> None:
    await bot.apply(NOTIFIED)
    secret = await add_secret(bot, "greet-notify")
    bot.slack.fail_next("chat.postMessage", error("channel_not_found"))
    body = b'{"name": "Ada"}'
    response = await bot.post(signed(secret, body), body, path="/hooks/greet-notify")
    assert response.status_code == 202
    await bot.settle()
    assert (await RunStore(bot.engine).get(response.json()["run_id"])).status == "completed"
    assert bot.slack.calls("chat.update") == []


async def test_unauthenticated_requests_get_401_and_run_nothing(bot: Bot) -> None:
    await bot.apply(NOTIFIED)
    secret = await add_secret(bot, "greet-notify")
    body = b'{"name": "Mallory"}'
    good = signed(secret, body)
    cases = {
        "no headers": {"Content-Type": "application/json"},
        "no signature": {k: v for k, v in good.items() if k != "X-Switchboard-Signature"},
        "no timestamp": {k: v for k, v in good.items() if k != "X-Switchboard-Timestamp"},
        "bad signature": {**good, "X-Switchboard-Signature": "sha256=" + "0" * 64},
        "not sha256=": {**good, "X-Switchboard-Signature": good["X-Switchboard-Signature"].removeprefix("sha256=")},
        "stale": signed(secret, body, timestamp=int(time.time()) - 400),
        "from the future": signed(secret, body, timestamp=int(time.time()) + 400),
        "timestamp not a number": {**good, "X-Switchboard-Timestamp": "yesterday"},
        "wrong secret": signed("not-the-secret", body),
        "body changed after signing": good,
    }
    expected = {
        "no headers": "missing X-Switchboard-Timestamp",
        "no signature": "missing X-Switchboard-Signature",
        "no timestamp": "missing X-Switchboard-Timestamp",
        "bad signature": "does not match",
        "not sha256=": "sha256=<hex>",
        "stale": "±300 s",
        "from the future": "±300 s",
        "timestamp not a number": "unix seconds",
        "wrong secret": "does not match",
        "body changed after signing": "does not match",
    }
    for case, headers in cases.items():
        sent = b'{"name": "Eve"}' if case == "body changed after signing" else body
        response = await bot.post(headers, sent, path="/hooks/greet-notify")
        assert response.status_code == 401, case
        assert expected[case] in response.json()["error"], (case, response.json())
        assert secret not in response.text
    await nothing_started(bot)
    assert bot.slack.calls() == []


async def test_a_workflow_without_a_secret_is_refused_like_a_wrong_signature_and_the_log_says_why(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    await bot.apply(GREET)
    body = b'{"name": "Ada"}'
    with caplog.at_level(logging.WARNING, logger="bot.webhooks"):
        response = await bot.post(signed("anything", body), body, path="/hooks/greet")
    assert response.status_code == 401
    assert "the signature does not match" in response.json()["error"]
    assert "no webhook secret for 'greet' (switchboard webhooks add NAME)" in caplog.text  # for the operator
    assert await run_rows(bot) == []


async def test_an_authenticated_request_for_a_workflow_that_is_gone_is_404(bot: Bot) -> None:
    store = WebhookSecrets.on(bot.engine, bot.runtime.settings).credentials
    await store.add("webhook:gone", provider="webhook", secret="left-behind", actor="test")  # the workflow never was
    body = b"{}"
    response = await bot.post(signed("left-behind", body), body, path="/hooks/gone")
    assert response.status_code == 404
    assert "no workflow named 'gone'" in response.json()["error"]
    unsigned = await bot.post({"Content-Type": "application/json"}, body, path="/hooks/gone")
    assert unsigned.status_code == 401


async def test_bad_bodies_get_400_naming_each_problem_and_run_nothing(bot: Bot) -> None:
    await bot.apply(GREET)
    secret = await add_secret(bot, "greet")

    async def send(body: bytes) -> dict[str, Any]:
        response = await bot.post(signed(secret, body), body, path="/hooks/greet")
        assert response.status_code == 400, response.text
        answer: dict[str, Any] = response.json()
        return answer

    # JSON types are real types: "3" is not an integer; a missing required input and an
    # unknown one are named too, all in one answer.
    answer = await send(b'{"times": "3", "colour": "red"}')
    fields = {p["field"]: p["message"] for p in answer["problems"]}
    assert set(fields) == {"inputs.times", "inputs.name", "inputs.colour"}
    assert "expected integer" in fields["inputs.times"]
    assert "required string input is missing" in fields["inputs.name"]
    assert "unknown input" in fields["inputs.colour"]
    assert "invalid inputs for workflow 'greet'" in answer["error"] and "inputs.times" in answer["error"]

    assert "the body is not valid JSON" in (await send(b"name=Ada"))["error"]
    assert "the body is a JSON array; send a JSON object" in (await send(b'["Ada"]'))["error"]
    assert "the body is a JSON string; send a JSON object" in (await send(b'"Ada"'))["error"]
    await asyncio.sleep(0.2)  # nothing to poll for: a run, were one started, would be recorded by now
    assert await run_rows(bot) == []


async def test_a_replayed_request_is_refused_with_409_and_the_first_run_id(bot: Bot) -> None:
    await bot.apply(GREET)
    secret = await add_secret(bot, "greet")
    body = b'{"name": "Ada"}'
    headers = signed(secret, body)
    first = await bot.post(headers, body, path="/hooks/greet")
    assert first.status_code == 202
    again = await bot.post(headers, body, path="/hooks/greet")
    assert again.status_code == 409
    assert again.json()["run_id"] == first.json()["run_id"]
    assert "accepted already" in again.json()["error"]
    await bot.settle()
    assert [r.id for r in await run_rows(bot)] == [first.json()["run_id"]]


async def test_an_idempotency_key_resent_with_a_fresh_signature_returns_the_first_run(bot: Bot) -> None:
    await bot.apply(GREET)
    secret = await add_secret(bot, "greet")
    body = b'{"name": "Ada"}'
    first = await bot.post({**signed(secret, body), "Idempotency-Key": "order-17"}, body, path="/hooks/greet")
    assert first.status_code == 202
    # The sender retries after a timeout: a new signature (another second), the same key and body.
    later = signed(secret, body, timestamp=int(time.time()) + 1)
    again = await bot.post({**later, "Idempotency-Key": "order-17"}, body, path="/hooks/greet")
    assert again.status_code == 200
    assert again.json() == {"run_id": first.json()["run_id"], "duplicate": True}
    assert again.headers["Idempotent-Replayed"] == "true"

    other = b'{"name": "Grace"}'
    conflict = await bot.post({**signed(secret, other), "Idempotency-Key": "order-17"}, other, path="/hooks/greet")
    assert conflict.status_code == 409
    assert conflict.json()["run_id"] == first.json()["run_id"]
    assert "another request" in conflict.json()["error"]

    bad = await bot.post({**signed(secret, other), "Idempotency-Key": "has blanks"}, other, path="/hooks/greet")
    assert bad.status_code == 400
    assert bad.json()["problems"][0]["field"] == "Idempotency-Key"
    await bot.settle()
    assert [r.id for r in await run_rows(bot)] == [first.json()["run_id"]]


async def test_a_copy_of_a_signed_request_with_its_key_returns_the_first_run(bot: Bot) -> None:
    await bot.apply(GREET)
    secret = await add_secret(bot, "greet")
    body = b'{"name": "Ada"}'
    headers = {**signed(secret, body), "Idempotency-Key": "k-1"}
    assert (await bot.post(headers, body, path="/hooks/greet")).status_code == 202
    # A copy of the same signed request: its key answers first, with the first run.
    replayed = await bot.post(headers, body, path="/hooks/greet")
    assert replayed.status_code == 200 and replayed.json()["run_id"] is not None
    fresh = {**signed(secret, body, timestamp=int(time.time()) + 2), "Idempotency-Key": "k-1"}
    again = await bot.post(fresh, body, path="/hooks/greet")
    assert again.status_code == 200 and again.json()["duplicate"] is True
    await bot.settle()
    assert len(await run_rows(bot)) == 1


async def test_a_key_that_came_with_a_refused_replay_stays_free(bot: Bot) -> None:
    await bot.apply(GREET)
    secret = await add_secret(bot, "greet")
    body = b'{"name": "Ada"}'
    headers = signed(secret, body)
    first = await bot.post(headers, body, path="/hooks/greet")
    assert first.status_code == 202
    # The same signed request, now with a key (headers outside the signature): the replay guard
    # refuses it, and the key must not stay bound to a run this request never started.
    refused = await bot.post({**headers, "Idempotency-Key": "k-2"}, body, path="/hooks/greet")
    assert refused.status_code == 409
    fresh = {**signed(secret, body, timestamp=int(time.time()) + 2), "Idempotency-Key": "k-2"}
    second = await bot.post(fresh, body, path="/hooks/greet")
    assert second.status_code == 202
    await bot.settle()
    assert {r.id for r in await run_rows(bot)} == {first.json()["run_id"], second.json()["run_id"]}


async def test_the_stored_secret_is_encrypted(bot: Bot, tmp_path: Path) -> None:
    await bot.apply(GREET)
    secret = await add_secret(bot, "greet")
    async with bot.engine.connect() as connection:
        rows = (await connection.execute(text("SELECT * FROM credentials"))).all()
    (row,) = rows
    assert "webhook:greet" in [str(v) for v in row]
    assert "webhook" in [str(v) for v in row]
    assert all(secret not in str(value) for value in row)
    assert secret.encode() not in (tmp_path / "bot.db").read_bytes()


@pytest.mark.skipif(not (shutil.which("curl") and shutil.which("openssl")), reason="needs curl and openssl")
async def test_the_printed_curl_example_is_accepted(bot: Bot) -> None:
    await bot.apply(GREET)
    secret = await add_secret(bot, "greet")
    script = curl_example("greet", secret, Settings(public_url=bot.url)).replace(
        "BODY='{}'", 'BODY=\'{"name": "from curl"}\''
    )
    done = await asyncio.to_thread(subprocess.run, ["bash", "-c", script], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    run_id = json.loads(done.stdout)["run_id"]
    await bot.settle()
    record = await RunStore(bot.engine).get(run_id)
    assert (record.status, record.inputs["name"]) == ("completed", "from curl")
