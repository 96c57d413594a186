"""The bot's HTTP server: Starlette routes under uvicorn.

``POST /slack/events`` takes slash commands, interactivity and events (Bolt verifies the
signature: bad, missing or stale ones get 401 before anything runs); ``GET /healthz`` says
whether the database answers. A request replayed inside Slack's five-minute window (same
signature and timestamp) is answered 200 and ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import uvicorn
from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot import connect
from bot.app import INSTALL_PATH, REDIRECT_PATH, BotConfigError, create_app
from bot.reporter import INTERVAL as REPORT_INTERVAL
from bot.reporter import report_forever
from bot.runtime import BotRuntime
from bot.webhooks import webhook_endpoint
from switchboard import embedded_prefect
from switchboard.database import open_engine
from switchboard.settings import Settings

logger = logging.getLogger(__name__)

#: Slack refuses requests older than this; a replay can only come inside it.
REPLAY_WINDOW_SECONDS = 300


@dataclass
class ReplayGuard:
    """Remembers the (signature, timestamp) of accepted requests for the replay window."""

    window: float = REPLAY_WINDOW_SECONDS
    _seen: dict[tuple[str, str], float] = field(default_factory=dict)

    def first_time(self, key: tuple[str, str]) -> bool:
        """True (and remembered) the first time ``key`` is seen inside the window."""
        now = time.monotonic()
        if len(self._seen) > 10_000:
            self._seen = {k: at for k, at in self._seen.items() if now - at < self.window}
        seen = self._seen.get(key)
        if seen is not None and now - seen < self.window:
            return False
        self._seen[key] = now
        return True

    def forget(self, key: tuple[str, str]) -> None:
        self._seen.pop(key, None)


def start_background(runtime: BotRuntime, report_interval: float = REPORT_INTERVAL) -> list[asyncio.Task[None]]:
    """What a bot process runs beside its listeners: the embedded Prefect server (when no Prefect
    API is configured) started at once and awaited off the event loop, then the reporter of
    runs it is not watching."""
    embedded_prefect.start()

    async def prefect_then_reports() -> None:
        try:
            await embedded_prefect.ready()
        except embedded_prefect.EmbeddedPrefectError as exc:
            logger.error("%s; runs cannot start until the bot is restarted", exc)
            return
        await report_forever(runtime, report_interval)

    return [asyncio.create_task(prefect_then_reports(), name="prefect-and-reports")]


def slack_client(settings: Settings) -> AsyncWebClient:
    """The bot's Web API client: with the single workspace's token, or, in multi-workspace mode,
    without one (each workspace's token comes from the installation store)."""
    if settings.slack_multi_workspace:
        return AsyncWebClient(base_url=settings.slack_api_url)
    if settings.slack_bot_token is None:
        raise BotConfigError("set SLACK_BOT_TOKEN (xoxb-..., the app's OAuth & Permissions page)")
    return AsyncWebClient(token=settings.slack_bot_token.get_secret_value(), base_url=settings.slack_api_url)


def create_web_app(runtime: BotRuntime, *, report_interval: float = REPORT_INTERVAL) -> Starlette:
    """The ASGI app for a runtime (whose engine the caller owns); every ``report_interval``
    seconds it reports the end of runs it is not watching (:mod:`bot.reporter`)."""
    bolt = create_app(runtime)
    handler = AsyncSlackRequestHandler(bolt)
    guard = ReplayGuard()

    async def slack_install(request: Request) -> Response:
        return await handler.handle(request)  # Bolt's OAuth flow: the install redirect, the callback

    async def slack_events(request: Request) -> Response:
        key = (request.headers.get("x-slack-signature", ""), request.headers.get("x-slack-request-timestamp", ""))
        if all(key) and not guard.first_time(key):
            logger.warning("ignored a replayed Slack request (timestamp %s)", key[1])
            return Response(status_code=200)
        response = await handler.handle(request)
        if response.status_code == 401:
            guard.forget(key)  # only verified requests count as seen
        return response

    async def healthz(request: Request) -> Response:
        prefect = embedded_prefect.status()
        try:
            async with runtime.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception as exc:
            return JSONResponse({"ok": False, "database": type(exc).__name__, "prefect": prefect}, status_code=503)
        if prefect == "failed":  # runs cannot start; commands still answer
            body = {"ok": False, "prefect": prefect, "error": embedded_prefect.error(), "running": len(runtime.running)}
            return JSONResponse(body, status_code=503)
        # "starting": the embedded Prefect server is coming up; commands are answered meanwhile
        # and runs wait for it.
        return JSONResponse({"ok": True, "prefect": prefect, "running": len(runtime.running)})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        background = start_background(runtime, report_interval)
        try:
            yield
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await runtime.close()

    return Starlette(
        routes=[
            Route("/slack/events", slack_events, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            *(
                [Route(path, slack_install, methods=["GET"]) for path in (INSTALL_PATH, REDIRECT_PATH)]
                if runtime.settings.slack_multi_workspace
                else []
            ),
            *connect.routes(runtime),
            Route("/hooks/{workflow}", webhook_endpoint(runtime), methods=["POST"]),
        ],
        lifespan=lifespan,
    )


async def serve(settings: Settings, *, host: str = "127.0.0.1", port: int = 3000) -> None:
    """Serve the bot until interrupted."""
    async with open_engine(settings) as engine:
        runtime = BotRuntime(settings=settings, engine=engine, client=slack_client(settings))
        web = create_web_app(runtime)
        config = uvicorn.Config(web, host=host, port=port, log_level="info", lifespan="on")
        server = uvicorn.Server(config)
        logger.info("Switchboard bot on http://%s:%d/slack/events", host, port)
        if settings.slack_multi_workspace:
            logger.info("workspaces install the app from http://%s:%d%s", host, port, INSTALL_PATH)
        await server.serve()


def run(settings: Settings, *, host: str, port: int) -> None:
    asyncio.run(serve(settings, host=host, port=port))
