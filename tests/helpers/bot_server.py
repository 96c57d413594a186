"""A real bot server on 127.0.0.1 (uvicorn in the test's event loop) talking to a fake Slack.

:func:`serve_bots` is what the ``bot`` and ``two_bots`` fixtures (:mod:`tests.helpers.fixtures`)
run: bot servers on one migrated database, sharing one fake Slack and one home (so one secret
key). :func:`serve_runtime` starts one more server on the same settings (or other ones), and
:func:`serve_web` serves a runtime a test built itself (multi-workspace mode, say).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from pydantic import SecretStr
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.runtime import BotRuntime
from bot.server import create_web_app
from storage.db import create_engine
from storage.migrate import upgrade
from storage.workflows import WorkflowStore
from switchboard.settings import Settings
from tests.fakes.http import FakeHTTP
from tests.fakes.slack import BOT_TOKEN, SIGNING_SECRET, FakeSlack
from tests.helpers.polling import apoll_until
from tests.helpers.processes import free_port


@dataclass
class Bot:
    """The running bot, its fake Slack and its database."""

    url: str
    slack: FakeSlack
    runtime: BotRuntime
    engine: AsyncEngine
    http: httpx.AsyncClient

    async def post(self, headers: dict[str, str], body: bytes, path: str = "/slack/events") -> httpx.Response:
        """Send ``body`` with ``headers`` to ``path`` as Slack (or a webhook sender) would."""
        return await self.http.post(self.url + path, headers=headers, content=body)

    async def apply(self, definition: dict[str, Any]) -> None:
        """Store ``definition`` as a new version of its workflow."""
        await WorkflowStore(self.engine).apply(definition, actor="test")

    async def settle(self, timeout: float = 60.0) -> None:
        """Wait until every run the bot started has ended and its message was finalised."""
        await apoll_until(
            lambda: not (self.runtime.running or self.runtime.launching),
            timeout=timeout,
            message=f"the bot's runs to end (still going: {list(self.runtime.running)})",
        )


def slack_side_client() -> httpx.AsyncClient:
    """The HTTP client that plays Slack's side against a test bot.

    It drops idle connections after 1 s: uvicorn closes them after 5 s (timeout_keep_alive),
    and httpx's default keep-alive is also 5 s, so a request sent just as the server closed the
    connection failed with ReadError (seen once under load).
    """
    return httpx.AsyncClient(timeout=30, limits=httpx.Limits(keepalive_expiry=1.0))


def bot_settings(tmp_path: Path, slack: FakeSlack, database_url: str, **overrides: Any) -> Settings:
    """Single-workspace settings for a bot on ``database_url`` talking to ``slack``."""
    return Settings(
        home=tmp_path,
        database_url=database_url,
        slack_bot_token=SecretStr(BOT_TOKEN),
        slack_signing_secret=SecretStr(SIGNING_SECRET),
        slack_api_url=slack.api_url,
        **overrides,
    )


@contextlib.asynccontextmanager
async def serve_web(runtime: BotRuntime, port: int | None = None) -> AsyncIterator[str]:
    """Serve ``runtime``'s web app on ``port`` (default: a free one) until exit; yields its URL.

    On exit the runtime is closed, then the server stopped. The reporter's interval is an hour:
    tests call the reporter themselves.
    """
    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_web_app(runtime, report_interval=3600), host="127.0.0.1", port=port, log_level="warning")
    )
    serving = asyncio.create_task(server.serve())

    def started() -> bool:
        if serving.done():
            serving.result()  # the server failed to start: raise its error
        return bool(server.started)

    try:
        await apoll_until(started, interval=0.01, message=f"the bot's server to listen on port {port}")
        yield f"http://127.0.0.1:{port}"
    finally:
        await runtime.close()
        server.should_exit = True
        await serving


@contextlib.asynccontextmanager
async def serve_runtime(settings: Settings, slack: FakeSlack, http: httpx.AsyncClient) -> AsyncIterator[Bot]:
    """A bot server with its own engine and runtime on ``settings``' (already migrated) database,
    as a separate bot process would have; stopped on exit."""
    engine = create_engine(settings.effective_database_url)
    client = AsyncWebClient(token=BOT_TOKEN, base_url=slack.api_url)
    runtime = BotRuntime(settings=settings, engine=engine, client=client)
    try:
        async with serve_web(runtime) as url:
            yield Bot(url, slack, runtime, engine, http)
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def serve_bots(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch, count: int = 1
) -> AsyncIterator[list[Bot]]:
    """``count`` bot servers on free ports, on ``database_url`` (migrated here), sharing one fake
    Slack and one home (so one secret key), as bot processes behind a load balancer would."""
    monkeypatch.setenv("SWITCHBOARD_HOME", str(tmp_path))  # runs read Settings() too: same home, same key
    monkeypatch.setenv("SWITCHBOARD_DATABASE_URL", database_url)
    monkeypatch.setenv("SWITCHBOARD_FILES_DIR", str(tmp_path / "files"))
    fake = FakeHTTP().start()
    slack = FakeSlack(fake)
    migrating = create_engine(database_url)
    await upgrade(migrating)
    await migrating.dispose()
    settings = bot_settings(tmp_path, slack, database_url, slack_admins="UADMIN")
    try:
        async with slack_side_client() as http, contextlib.AsyncExitStack() as stack:
            yield [await stack.enter_async_context(serve_runtime(settings, slack, http)) for _ in range(count)]
    finally:
        fake.stop()


@contextlib.asynccontextmanager
async def serve_bot(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Bot]:
    """One bot server (see :func:`serve_bots`)."""
    async with serve_bots(tmp_path, database_url, monkeypatch) as (running,):
        yield running
