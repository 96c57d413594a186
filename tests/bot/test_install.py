"""Multi-workspace mode over real HTTP: the install flow, tokens encrypted on our database, each
workspace's commands answered with its own bot token; single-workspace settings unchanged."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import text

import switchboard
from bot.app import bot_scopes
from bot.reporter import report_unwatched
from bot.runtime import BotRuntime, WorkspaceNotInstalledError
from bot.server import slack_client
from storage.crypto import parse_keys
from storage.db import create_engine
from storage.migrate import upgrade
from storage.runs import RunStore
from storage.slack_installations import SlackInstallationStore
from switchboard.settings import Settings
from tests.bot.test_commands import GREET, block_text
from tests.fakes.http import FakeHTTP
from tests.fakes.slack import BOT_TOKEN, CLIENT_ID, CLIENT_SECRET, SIGNING_SECRET, TEAM, FakeSlack, sign, slash_command
from tests.helpers.bot_server import Bot, serve_web, slack_side_client
from tests.helpers.polling import apoll_until
from tests.helpers.processes import free_port

COOKIE = "slack-app-oauth-state"
SECOND = "T0SECOND"


@pytest.fixture
async def multi_bot(tmp_path: Path, prefect_server: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Bot]:
    """The bot in multi-workspace mode (client id and secret, no bot token) on a free port."""
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    monkeypatch.setenv("SWITCHBOARD_HOME", str(tmp_path))
    monkeypatch.setenv("SWITCHBOARD_DATABASE_URL", database_url)
    monkeypatch.setenv("SWITCHBOARD_FILES_DIR", str(tmp_path / "files"))
    fake = FakeHTTP().start()
    slack = FakeSlack(fake)
    engine = create_engine(database_url)
    await upgrade(engine)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = Settings(
        home=tmp_path,
        database_url=database_url,
        slack_signing_secret=SecretStr(SIGNING_SECRET),
        slack_client_id=CLIENT_ID,
        slack_client_secret=SecretStr(CLIENT_SECRET),
        slack_api_url=slack.api_url,
        slack_oauth_url=slack.authorize_url,
        public_url=url,
    )
    assert settings.slack_multi_workspace and settings.slack_bot_token is None
    runtime = BotRuntime(settings=settings, engine=engine, client=slack_client(settings))
    try:
        async with slack_side_client() as http, serve_web(runtime, port):
            yield Bot(url, slack, runtime, engine, http)
    finally:
        await engine.dispose()
        fake.stop()


def query_of(url: str) -> dict[str, str]:
    return {key: values[-1] for key, values in parse_qs(urlsplit(url).query).items()}


async def install(bot: Bot, team: str | None = None) -> tuple[str, httpx.Response]:
    """A browser installing the app: the bot's install URL, Slack's authorize page, the callback.

    Returns the state and the callback's response (the cookie the install set is sent back)."""
    start = await bot.http.get(bot.url + "/slack/install", params={"team": team} if team else None)
    assert start.status_code == 302
    authorize = start.headers["location"]
    state = query_of(authorize)["state"]
    assert f"{COOKIE}={state}" in start.headers["set-cookie"]
    approved = await bot.http.get(authorize)
    assert approved.status_code == 302
    callback = approved.headers["location"]
    assert callback.startswith(bot.url + "/slack/oauth_redirect?")
    return state, await bot.http.get(callback, headers={"Cookie": f"{COOKIE}={state}"})


async def test_install_redirects_to_slack_with_client_id_scopes_and_a_state(multi_bot: Bot) -> None:
    response = await multi_bot.http.get(multi_bot.url + "/slack/install")
    assert response.status_code == 302
    location = response.headers["location"]
    assert location.startswith(multi_bot.slack.authorize_url + "?")
    query = query_of(location)
    assert query["client_id"] == CLIENT_ID
    assert query["scope"].split(",") == bot_scopes()
    assert "chat:write" in query["scope"].split(",") and "commands" in query["scope"].split(",")
    assert query["redirect_uri"] == multi_bot.url + "/slack/oauth_redirect"
    assert len(query["state"]) >= 32
    async with multi_bot.engine.connect() as connection:
        stored = (await connection.execute(text("SELECT state_hash, provider FROM oauth_states"))).all()
    assert [row.provider for row in stored] == ["slack-install"]
    assert query["state"] not in stored[0].state_hash  # only its hash is kept


async def test_callback_stores_the_installation_encrypted_and_a_state_works_once(multi_bot: Bot) -> None:
    state, response = await install(multi_bot)
    assert response.status_code == 200
    assert "Thank you!" in response.text and f"slack://app?team={TEAM}" in response.text

    (exchange,) = multi_bot.slack.calls("oauth.v2.access")
    assert exchange.args["redirect_uri"] == multi_bot.url + "/slack/oauth_redirect"
    (token,) = multi_bot.slack.tokens_of(TEAM)[1:]  # the fake's first token is the single-workspace one
    async with multi_bot.engine.connect() as connection:
        rows = (await connection.execute(text("SELECT * FROM slack_installations"))).mappings().all()
        states = (await connection.execute(text("SELECT count(*) FROM oauth_states"))).scalar()
    (row,) = rows
    assert row["team_id"] == TEAM and row["user_id"] == f"U{TEAM}ADMIN"
    assert token not in " ".join(str(value) for value in row.values())
    assert "chat:write" in str(row["details"])
    assert states == 0  # consumed

    store = multi_bot.runtime.installations
    assert isinstance(store, SlackInstallationStore)
    bot = await store.async_find_bot(enterprise_id=None, team_id=TEAM)
    assert bot is not None and bot.bot_token == token and bot.bot_id == "BBOT" and "commands" in bot.bot_scopes

    again = await multi_bot.http.get(
        multi_bot.url + "/slack/oauth_redirect",
        params={"code": "another-code", "state": state},
        headers={"Cookie": f"{COOKIE}={state}"},
    )
    assert again.status_code == 401
    assert len(multi_bot.slack.calls("oauth.v2.access")) == 1  # refused before any exchange


async def test_each_workspace_runs_with_its_own_token_and_strangers_are_told_to_install(multi_bot: Bot) -> None:
    await multi_bot.apply(GREET)
    for team in (TEAM, SECOND):
        _, response = await install(multi_bot, team)
        assert response.status_code == 200
    (first,) = multi_bot.slack.tokens_of(TEAM)[1:]
    (second,) = multi_bot.slack.tokens_of(SECOND)

    for team, channel in ((TEAM, "C1"), (SECOND, "C2")):
        headers, body = slash_command("run greet name=Ada", team=team, channel=channel, user="U7")
        assert (await multi_bot.post(headers, body)).status_code == 200
        await apoll_until(
            lambda c=channel: multi_bot.slack.channel_messages(c), message=f"the run message in {channel}"
        )
    await multi_bot.settle()

    posts = {call.args["channel"]: call for call in multi_bot.slack.calls("chat.postMessage")}
    assert posts["C1"].token == first and posts["C1"].team == TEAM
    assert posts["C2"].token == second and posts["C2"].team == SECOND
    for call in multi_bot.slack.calls("chat.update"):
        assert call.token == (first if call.args["channel"] == "C1" else second)
    for channel in ("C1", "C2"):
        (message,) = multi_bot.slack.channel_messages(channel)
        assert "completed" in block_text(message.blocks)
    records = {record.slack_channel: record for record in await RunStore(multi_bot.engine).list()}
    assert records["C1"].slack_team == TEAM and records["C2"].slack_team == SECOND

    posted = len(multi_bot.slack.calls("chat.postMessage"))
    headers, body = slash_command(
        "run greet name=Ada", team="T0NEVER", channel="C3", response_url=multi_bot.slack.response_url("never")
    )
    assert (await multi_bot.post(headers, body)).status_code == 200
    await apoll_until(lambda: multi_bot.slack.responses("never"), message="the answer in an uninstalled workspace")
    (refusal,) = multi_bot.slack.responses("never")
    assert "not installed in this workspace" in refusal["text"]
    assert f"{multi_bot.url}/slack/install" in refusal["text"]
    await asyncio.sleep(0.2)  # nothing to poll for: a run, were one started, would have posted by now
    assert len(multi_bot.slack.calls("chat.postMessage")) == posted
    assert multi_bot.runtime.running == {}
    assert len(await RunStore(multi_bot.engine).list()) == 2


async def test_the_reporter_finds_a_runs_workspace_token_after_a_restart(multi_bot: Bot) -> None:
    await multi_bot.apply(GREET)
    await install(multi_bot, SECOND)
    (second,) = multi_bot.slack.tokens_of(SECOND)
    # A run an earlier bot process posted in SECOND's channel and never finished reporting.
    store = RunStore(multi_bot.engine)
    await store.started(
        run_id="r-earlier",
        flow_run_id=None,
        workflow="greet",
        version=1,
        trigger="slack",
        triggered_by="slack:U7",
        inputs={"name": "Ada"},
    )
    await store.finished("r-earlier", status="completed", error=None)
    client = await multi_bot.runtime.client_for(SECOND)
    posted = await client.chat_postMessage(channel="C9", text="running")
    await store.attach_slack("r-earlier", channel="C9", message_ts=str(posted["ts"]), team=SECOND)

    assert await report_unwatched(multi_bot.runtime) == 1
    (update,) = multi_bot.slack.calls("chat.update")
    assert update.token == second and update.args["channel"] == "C9"
    assert "completed" in block_text(multi_bot.slack.message("C9", str(posted["ts"])).blocks)

    with pytest.raises(WorkspaceNotInstalledError):
        await multi_bot.runtime.client_for("T0NEVER")


async def test_single_workspace_settings_keep_one_token_and_no_install_routes(bot: Bot) -> None:
    assert not bot.runtime.settings.slack_multi_workspace and bot.runtime.installations is None
    assert await bot.runtime.client_for("TANY") is bot.runtime.client
    assert (await bot.http.get(bot.url + "/slack/install")).status_code in (404, 405)
    await bot.apply(GREET)
    headers, body = slash_command("run greet name=Ada", channel="C5")
    assert (await bot.post(headers, body)).status_code == 200
    await apoll_until(lambda: bot.slack.channel_messages("C5"), message="the run message in C5")
    await bot.settle()
    assert {call.token for call in bot.slack.calls() if call.method.startswith("chat.")} == {BOT_TOKEN}
    (record,) = await RunStore(bot.engine).list()
    assert record.slack_channel == "C5" and record.slack_team == TEAM


async def test_uninstalling_forgets_the_workspace_token(multi_bot: Bot) -> None:
    await multi_bot.apply(GREET)
    await install(multi_bot, SECOND)
    event = {
        "token": "deprecated-verification-token",
        "team_id": SECOND,
        "api_app_id": "A0APP",
        "event": {"type": "app_uninstalled", "event_ts": str(time.time())},
        "type": "event_callback",
        "event_id": "Ev1",
        "event_time": int(time.time()),
    }
    body = json.dumps(event).encode()
    headers = {**sign(body), "Content-Type": "application/json"}
    assert (await multi_bot.post(headers, body)).status_code == 200
    store = multi_bot.runtime.installations
    assert store is not None

    async def forgotten() -> bool:
        return await store.bot_token(SECOND) is None

    await apoll_until(forgotten, message="the uninstalled workspace's token to be forgotten")
    assert await store.teams() == []
    headers, command = slash_command(
        "run greet name=Ada", team=SECOND, response_url=multi_bot.slack.response_url("gone")
    )
    assert (await multi_bot.post(headers, command)).status_code == 200
    await apoll_until(lambda: multi_bot.slack.responses("gone"), message="the answer after the uninstall")
    assert "not installed" in multi_bot.slack.responses("gone")[0]["text"]
    assert multi_bot.slack.calls("chat.postMessage") == []


async def test_rotating_the_secret_key_reencrypts_the_workspace_tokens(
    multi_bot: Bot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await install(multi_bot, SECOND)
    (token,) = multi_bot.slack.tokens_of(SECOND)
    old = (tmp_path / "secret.key").read_text().strip()
    new = Fernet.generate_key().decode()
    monkeypatch.setenv("SWITCHBOARD_SECRET_KEY", f"{new},{old}")
    async with switchboard.default_client() as client:
        assert await client.credentials.rotate_key(actor="test") == 1
    only_new = SlackInstallationStore(multi_bot.engine, parse_keys(new))
    assert await only_new.bot_token(SECOND) == token
