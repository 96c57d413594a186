"""``switchboard bot --socket``: the same Bolt app over a Socket Mode WebSocket (a local fake)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from bot.socket_mode import serve_socket
from storage.db import create_engine
from storage.migrate import upgrade
from storage.runs import RunStore
from storage.workflows import WorkflowStore
from switchboard.cli import app as cli
from switchboard.settings import Settings
from tests.bot.test_commands import GREET, block_text
from tests.fakes.http import FakeHTTP
from tests.fakes.slack import BOT_TOKEN, FakeSlack, block_action, view_submission
from tests.fakes.slack_socket import FakeSocketMode
from tests.helpers.polling import apoll_until

APP_TOKEN = "xapp-1-A0APP-1-fake"


@dataclass
class SocketBot:
    """``serve_socket`` running as a task, its fake Slack (Web API + WebSocket) and database."""

    slack: FakeSlack
    socket: FakeSocketMode
    engine: AsyncEngine
    task: asyncio.Task[None]


@pytest.fixture
async def socket_bot(tmp_path: Path, prefect_server: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[SocketBot]:
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    monkeypatch.setenv("SWITCHBOARD_DATABASE_URL", database_url)
    monkeypatch.setenv("SWITCHBOARD_FILES_DIR", str(tmp_path / "files"))
    fake = FakeHTTP().start()
    slack = FakeSlack(fake)
    socket = await FakeSocketMode(slack).start()
    engine = create_engine(database_url)
    await upgrade(engine)
    settings = Settings(
        home=tmp_path,
        database_url=database_url,
        slack_bot_token=SecretStr(BOT_TOKEN),
        slack_signing_secret=None,  # Socket Mode needs none
        slack_app_token=SecretStr(APP_TOKEN),
        slack_api_url=slack.api_url,
    )
    task = asyncio.create_task(serve_socket(settings))
    try:
        await socket.wait_connected()
        yield SocketBot(slack, socket, engine, task)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await socket.stop()
        await engine.dispose()
        fake.stop()


async def test_connects_through_apps_connections_open_with_the_app_token(socket_bot: SocketBot) -> None:
    (opened,) = socket_bot.slack.calls("apps.connections.open")
    assert opened.token == APP_TOKEN
    (connection,) = socket_bot.socket.connections
    assert connection.query["ticket"] == "fake-ticket"
    assert not connection.closed.is_set()


async def test_a_run_command_is_acked_and_its_live_message_ends_completed(socket_bot: SocketBot) -> None:
    await WorkflowStore(socket_bot.engine).apply(GREET, actor="test")
    ack = await socket_bot.socket.send_command("run greet name=Ada", user="U42", channel="C7")
    assert ack == {"envelope_id": "env-1"}
    assert socket_bot.socket.received == [ack]

    def completed() -> bool:
        messages = socket_bot.slack.channel_messages("C7")
        return bool(messages) and "completed" in block_text(messages[0].blocks)

    await apoll_until(completed, timeout=60, message="the run message to say completed")
    (posted,) = socket_bot.slack.calls("chat.postMessage")
    assert posted.token == BOT_TOKEN and posted.args["channel"] == "C7"
    first = block_text(posted.args["blocks"])
    assert "*greet* v1" in first and "<@U42>" in first
    (message,) = socket_bot.slack.channel_messages("C7")
    assert message.updates >= 1 and all(call.args["ts"] == message.ts for call in socket_bot.slack.calls("chat.update"))
    final = block_text(message.blocks)
    assert ":white_check_mark: `hello`" in final and "HELLO ADA" in final
    runs = RunStore(socket_bot.engine)
    (record,) = await runs.list(limit=5)
    assert (record.workflow, record.status, record.triggered_by) == ("greet", "completed", "slack:U42")


async def test_help_over_the_socket_is_acked_then_answered_on_the_response_url(socket_bot: SocketBot) -> None:
    ack = await socket_bot.socket.send_command("help", response_url=socket_bot.slack.response_url("help"))
    assert set(ack) == {"envelope_id"}  # an empty ack: Bolt answers through respond()
    await apoll_until(lambda: socket_bot.slack.responses("help"), timeout=10, message="the answer to /flow help")
    (answer,) = socket_bot.slack.responses("help")
    assert answer["response_type"] == "ephemeral"
    assert "/flow run NAME key=value" in answer["text"]


async def test_modal_errors_travel_back_in_the_ack_payload(socket_bot: SocketBot) -> None:
    await WorkflowStore(socket_bot.engine).apply(GREET, actor="test")
    await socket_bot.socket.send_command("run greet times=2", channel="C9", trigger_id="trig-9")
    await apoll_until(lambda: socket_bot.slack.calls("views.open"), timeout=10, message="the inputs modal")
    view = socket_bot.slack.calls("views.open")[0].args["view"]
    empty = view_submission(
        view["callback_id"],
        {"name": {"value": {"type": "plain_text_input", "value": ""}}},
        private_metadata=view["private_metadata"],
    )
    ack = await socket_bot.socket.send_interactive(empty)
    assert ack["payload"]["response_action"] == "errors"
    assert "name" in ack["payload"]["errors"]
    assert socket_bot.slack.channel_messages("C9") == []


async def test_a_button_click_over_the_socket_is_acked_and_answered(socket_bot: SocketBot) -> None:
    click = block_action("cancel_run", "run-that-is-not-here", response_url=socket_bot.slack.response_url("cancel"))
    ack = await socket_bot.socket.send_interactive(click)
    assert set(ack) == {"envelope_id"}
    await apoll_until(lambda: socket_bot.slack.responses("cancel"), timeout=10, message="the answer to the click")
    (answer,) = socket_bot.slack.responses("cancel")
    assert answer["text"] == "No run `run-that-is-not-here` that you can see."  # U1 is no admin
    assert answer["response_type"] == "ephemeral"


async def test_reconnects_with_a_fresh_url_when_slack_says_disconnect(socket_bot: SocketBot) -> None:
    await socket_bot.socket.send_disconnect()
    await socket_bot.socket.wait_connected(count=2)
    await apoll_until(
        lambda: len(socket_bot.socket.open_connections) == 1, timeout=10, message="the old connection to close"
    )
    assert len(socket_bot.slack.calls("apps.connections.open")) == 2
    ack = await socket_bot.socket.send_command("help", response_url=socket_bot.slack.response_url("again"))
    assert "envelope_id" in ack
    await apoll_until(lambda: socket_bot.slack.responses("again"), timeout=10, message="the answer after reconnecting")


async def test_cancelling_the_server_closes_the_socket(socket_bot: SocketBot) -> None:
    connection = socket_bot.socket.connections[-1]
    socket_bot.task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await socket_bot.task
    await asyncio.wait_for(connection.closed.wait(), 5)


def test_cli_socket_without_an_app_token_says_what_to_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SLACK_APP_TOKEN", "SWITCHBOARD_SLACK_APP_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SWITCHBOARD_HOME", str(tmp_path))
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    result = CliRunner().invoke(cli, ["bot", "--socket"])
    assert result.exit_code == 2, result.output
    assert "set SLACK_APP_TOKEN" in result.output and "xapp-" in result.output
    assert list(tmp_path.iterdir()) == []  # refused before opening any database


def test_cli_socket_with_a_bot_token_as_app_token_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_HOME", str(tmp_path))
    monkeypatch.setenv("SLACK_APP_TOKEN", BOT_TOKEN)
    result = CliRunner().invoke(cli, ["bot", "--socket"])
    assert result.exit_code == 2, result.output
    assert "must start with xapp-" in result.output
    assert BOT_TOKEN not in result.output


async def test_a_refused_app_token_is_a_clear_startup_error(tmp_path: Path, fake_http: FakeHTTP) -> None:
    slack = FakeSlack(fake_http)  # no socket_url: apps.connections.open answers an error
    settings = Settings(
        home=tmp_path,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
        slack_bot_token=SecretStr(BOT_TOKEN),
        slack_app_token=SecretStr(APP_TOKEN),
        slack_api_url=slack.api_url,
    )
    from bot.app import BotConfigError

    with pytest.raises(BotConfigError, match=r"Slack refused to open a Socket Mode connection \(not_configured\)"):
        await asyncio.wait_for(serve_socket(settings), 20)


async def test_the_cli_serves_over_the_socket_until_sigterm(tmp_path: Path, fake_http: FakeHTTP) -> None:
    slack = FakeSlack(fake_http)
    socket = await FakeSocketMode(slack).start()
    env = {
        **os.environ,
        "SWITCHBOARD_HOME": str(tmp_path),
        "SWITCHBOARD_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
        "SWITCHBOARD_SLACK_API_URL": slack.api_url,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_APP_TOKEN": APP_TOKEN,
    }
    env.pop("SLACK_SIGNING_SECRET", None)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "switchboard.cli", "bot", "--socket", env=env, stderr=asyncio.subprocess.PIPE
    )
    try:
        await socket.wait_connected(timeout=60)
        ack = await socket.send_command("help", response_url=slack.response_url("cli"))
        assert set(ack) == {"envelope_id"}
        await apoll_until(lambda: slack.responses("cli"), timeout=10, message="the CLI bot's answer to /flow help")
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode == 0, stderr.decode()
        assert socket.open_connections == []
        assert APP_TOKEN not in stderr.decode() and BOT_TOKEN not in stderr.decode()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await socket.stop()
