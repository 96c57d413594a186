"""Socket Mode: the same Bolt app over Slack's WebSocket instead of a public HTTP endpoint.

``apps.connections.open`` (called with the app-level token, on the Web API base URL from
settings) returns a WebSocket URL; Slack sends envelopes over it (slash commands,
interactivity, events) and the bot acks each with its ``envelope_id``, plus the ack's payload
when there is one (a modal's ``response_action``). The app token authenticates the
connection, so Bolt checks no request signatures in this mode and the signing secret is
optional.

The client is slack_sdk's aiohttp one (through ``slack_bolt.adapter.socket_mode.aiohttp``):
aiohttp is already the runtime dependency of Bolt's async Web API client, the client runs in
our event loop, pings the connection and reconnects (a fresh ``apps.connections.open``) when
Slack asks it to or the link goes stale. The ``websockets`` variant would add a dependency for
nothing, and the builtin/websocket-client variants are threaded, not asyncio.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import aiohttp
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_sdk.errors import SlackApiError

from bot.app import BotConfigError, create_app
from bot.reporter import INTERVAL as REPORT_INTERVAL
from bot.runtime import BotRuntime
from bot.server import slack_client, start_background
from switchboard.database import open_engine
from switchboard.settings import Settings

logger = logging.getLogger(__name__)

APP_TOKEN_HELP = (
    "an app-level token (xapp-...) with the connections:write scope: the app's Basic Information page, "
    "App-Level Tokens; and turn Socket Mode on in the app's settings"
)


def app_token(settings: Settings) -> str:
    """The app-level token Socket Mode connects with, or a :class:`BotConfigError` saying what to set."""
    if settings.slack_app_token is None:
        raise BotConfigError(f"set SLACK_APP_TOKEN for --socket: {APP_TOKEN_HELP}")
    token = settings.slack_app_token.get_secret_value()
    if not token.startswith("xapp-"):
        raise BotConfigError(f"SLACK_APP_TOKEN is not an app-level token; it must start with xapp- ({APP_TOKEN_HELP})")
    return token


@contextlib.asynccontextmanager
async def socket_connection(runtime: BotRuntime, token: str) -> AsyncIterator[AsyncSocketModeHandler]:
    """The runtime's Bolt app connected over Socket Mode; disconnected and closed on exit.

    The first WebSocket URL is fetched here, so a refused token or an unreachable Web API is
    an error at start-up instead of the client's endless reconnect loop.
    """
    handler = AsyncSocketModeHandler(create_app(runtime, socket_mode=True), app_token=token, web_client=runtime.client)
    try:
        try:
            handler.client.wss_uri = await handler.client.issue_new_wss_url()
        except SlackApiError as exc:
            code = exc.response.get("error", "unknown_error")
            raise BotConfigError(
                f"Slack refused to open a Socket Mode connection ({code}); check {APP_TOKEN_HELP}"
            ) from None
        except aiohttp.ClientError as exc:
            url = runtime.settings.slack_api_url
            raise BotConfigError(
                f"could not reach Slack's Web API at {url} ({type(exc).__name__}); check SWITCHBOARD_SLACK_API_URL"
            ) from None
        await handler.connect_async()
        yield handler
    finally:
        await handler.close_async()


async def serve_socket(settings: Settings, *, report_interval: float = REPORT_INTERVAL) -> None:
    """Serve the bot over Socket Mode until cancelled.

    Like the HTTP server, it reports every ``report_interval`` seconds the end of runs it is not
    watching (:mod:`bot.reporter`: runs of an earlier bot process, crashed workers).

    On cancellation the WebSocket is closed first (no new commands), then the runs in flight
    finish and post their summaries, then the database engine is disposed.
    """
    token = app_token(settings)
    client = slack_client(settings)
    async with open_engine(settings) as engine:
        runtime = BotRuntime(settings=settings, engine=engine, client=client)
        background: list[asyncio.Task[None]] = []
        try:
            background = start_background(runtime, report_interval)  # Prefect starts while we connect
            async with socket_connection(runtime, token):
                logger.info("Switchboard bot connected to Slack over Socket Mode")
                await asyncio.Event().wait()
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await runtime.close()


async def _until_signalled(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main``; SIGINT or SIGTERM cancels it (a clean shutdown), a second one aborts that too."""
    task = asyncio.ensure_future(main)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        # Without loop signal handlers (Windows, or not the main thread) Ctrl-C still arrives as
        # KeyboardInterrupt through asyncio.run; only SIGTERM's clean shutdown is lost there.
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task


def run(settings: Settings) -> None:
    """``switchboard bot --socket``: serve over Socket Mode until interrupted."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(message)s")
    logging.getLogger("bot").setLevel(logging.INFO)  # Prefect's logging config may have set the root quieter
    asyncio.run(_until_signalled(serve_socket(settings)))
