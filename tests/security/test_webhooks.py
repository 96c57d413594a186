"""Attacks on webhook and Slack request authentication (issue 11 items 8 and 18).

* A signed request is one run: no other spelling of its timestamp is accepted, and the replay
  guard is in the database, so a replay to another bot process is refused too (409 with the
  first run's id), and two processes racing on one request start one run.
* Slack requests replayed to another bot process are ignored as well.
* Before authentication, ``/hooks/NAME`` does not tell a missing workflow from one without a
  webhook secret, nor from one whose secret the sender does not have.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from storage.runs import RunStore
from switchboard import webhooks
from switchboard.webhooks import SignatureError
from tests.bot.test_commands import GREET
from tests.bot.test_webhooks import add_secret, signed
from tests.fakes.slack import slash_command
from tests.helpers.bot_server import Bot
from tests.helpers.polling import apoll_until

pytestmark = pytest.mark.both_databases  # replay claims race on both backends

NOW = 1_796_000_000
BODY = b'{"name": "Ada"}'


def respellings(stamp: str) -> dict[str, str | bytes]:
    """Other texts that Python's int() reads as the same number of seconds."""
    arabic = stamp.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    return {
        "leading zero": "0" + stamp,
        "two leading zeros": "00" + stamp,
        "plus sign": "+" + stamp,
        "underscore": stamp[:1] + "_" + stamp[1:],
        "leading space": " " + stamp,
        "trailing space": stamp + " ",
        "trailing newline": stamp + "\n",
        "arabic-indic digits": arabic,
        "fullwidth digits": stamp.translate(str.maketrans("0123456789", "０１２３４５６７８９")),
        "utf-8 bytes of arabic digits": arabic.encode(),
    }


def test_verify_accepts_only_the_canonical_spelling_of_the_signed_timestamp() -> None:
    secret = "s3cret"
    signature = webhooks.signature(secret, NOW, BODY)
    assert webhooks.verify(secret, timestamp=str(NOW), signature_header=signature, body=BODY, now=NOW) == NOW
    for case, spelling in respellings(str(NOW)).items():
        if isinstance(spelling, bytes):
            continue
        with pytest.raises(SignatureError, match="unix seconds") as refused:
            webhooks.verify(secret, timestamp=spelling, signature_header=signature, body=BODY, now=NOW)
        assert "digits" in str(refused.value), case
    for nonsense in ("0", "-1", "-0", "1e9", "1796000000.0", "0x6b0c1e80", "9" * 40):
        with pytest.raises(SignatureError):
            webhooks.verify(secret, timestamp=nonsense, signature_header=signature, body=BODY, now=NOW)


async def test_a_respelled_timestamp_does_not_replay_a_signed_request(bot: Bot) -> None:
    await bot.apply(GREET)
    secret = await add_secret(bot, "greet")
    headers = signed(secret, BODY)
    first = await bot.post(headers, BODY, path="/hooks/greet")
    assert first.status_code == 202, first.text
    for case, spelling in respellings(headers["X-Switchboard-Timestamp"]).items():
        replay: dict[str, Any] = {**headers, "X-Switchboard-Timestamp": spelling}
        try:
            response = await bot.http.post(bot.url + "/hooks/greet", headers=replay, content=BODY)
        except (httpx.LocalProtocolError, UnicodeEncodeError):
            continue  # the client cannot send that text (a newline; non-ASCII str): verify() covers it
        # The server strips blanks around header values: those spellings arrive canonical and
        # are the same request again (409); every other spelling is not a valid timestamp.
        assert response.status_code in (401, 409), (case, response.status_code, response.text)
        if response.status_code == 409:
            assert response.json()["run_id"] == first.json()["run_id"], case
    await bot.settle()
    assert [run.id for run in await RunStore(bot.engine).list(limit=50)] == [first.json()["run_id"]]


async def test_a_replay_to_another_bot_process_is_refused_with_the_first_run_id(two_bots: tuple[Bot, Bot]) -> None:
    one, other = two_bots
    await one.apply(GREET)
    secret = await add_secret(one, "greet")
    headers = signed(secret, BODY)
    first = await one.post(headers, BODY, path="/hooks/greet")
    assert first.status_code == 202, first.text
    again = await other.post(headers, BODY, path="/hooks/greet")
    assert again.status_code == 409, again.text
    assert again.json()["run_id"] == first.json()["run_id"]
    await one.settle()
    await other.settle()
    assert [run.id for run in await RunStore(one.engine).list(limit=50)] == [first.json()["run_id"]]


async def test_two_processes_racing_on_one_signed_request_start_one_run(two_bots: tuple[Bot, Bot]) -> None:
    one, other = two_bots
    await one.apply(GREET)
    secret = await add_secret(one, "greet")
    headers = signed(secret, BODY)
    answers = await asyncio.gather(
        *(server.post(headers, BODY, path="/hooks/greet") for _ in range(4) for server in (one, other))
    )
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [202] + [409] * 7, [a.text for a in answers]
    (accepted,) = [a for a in answers if a.status_code == 202]
    assert {a.json()["run_id"] for a in answers} == {accepted.json()["run_id"]}
    await one.settle()
    await other.settle()
    assert len(await RunStore(one.engine).list(limit=50)) == 1


async def test_a_slack_request_replayed_to_another_bot_process_is_ignored(two_bots: tuple[Bot, Bot]) -> None:
    one, other = two_bots
    headers, body = slash_command("help", response_url=one.slack.response_url("help"))
    assert (await one.post(headers, body)).status_code == 200
    assert (await other.post(headers, body)).status_code == 200
    await apoll_until(lambda: one.slack.responses("help"), message="the answer to /flow help")
    await asyncio.sleep(0.5)  # room for a second answer, were the replay handled (nothing to poll for)
    assert len(one.slack.responses("help")) == 1


async def test_before_authentication_a_missing_workflow_looks_like_one_without_a_secret(bot: Bot) -> None:
    await bot.apply(GREET)  # "greet": no webhook secret
    await bot.apply({**GREET, "name": "greet-hooked"})
    await add_secret(bot, "greet-hooked")
    fresh = signed("a-guessed-secret", BODY)
    requests: dict[str, dict[str, str]] = {
        "unsigned": {"Content-Type": "application/json"},
        "signed with a guess": fresh,
        "stale": signed("a-guessed-secret", BODY, timestamp=int(time.time()) - 900),
    }
    for case, headers in requests.items():
        answers = {
            name: await bot.post(headers, BODY, path=f"/hooks/{name}")
            for name in ("no-such-workflow", "greet", "greet-hooked")
        }
        bodies = {name: (a.status_code, a.json()) for name, a in answers.items()}
        assert bodies["no-such-workflow"] == bodies["greet"], (case, bodies)
        assert bodies["greet"] == bodies["greet-hooked"], (case, bodies)
        assert bodies["greet"][0] == 401, (case, bodies)
        assert "greet" not in str(bodies["greet"][1]), (case, bodies)
    assert await RunStore(bot.engine).list(limit=50) == []
