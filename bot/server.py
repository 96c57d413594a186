"""The bot's HTTP server: Starlette routes under uvicorn.

``POST /slack/events`` takes slash commands, interactivity and events; ``GET /healthz`` says
whether the database answers; ``/api/v1`` is the HTTP API (:mod:`bot.api`) and
``POST /hooks/{workflow}`` the webhook triggers (:mod:`bot.webhooks`). In front of every
route, :mod:`bot.request_limits` refuses a body over ``SWITCHBOARD_MAX_REQUEST_BYTES`` with
413 without reading it. A Slack request is then checked by signature (bad, missing or stale:
401, before anything runs), then by shape (a signed body Bolt could not read: 400), see
:mod:`bot.slack_requests`. A request replayed inside Slack's five-minute window (same
signature), to this bot process or to another one on the same database, is answered 200 and
ignored (:mod:`storage.replays`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import uvicorn
from slack_bolt.adapter.starlette.async_handler import (
    AsyncSlackRequestHandler,
    to_async_bolt_request,
    to_starlette_response,
)
from slack_sdk.web.async_client import AsyncWebClient
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from bot import connect
from bot.api import PREFIX as API_PREFIX
from bot.api import create_api
from bot.app import INSTALL_PATH, REDIRECT_PATH, BotConfigError, create_app
from bot.mcp import MCP_PATH, McpEndpoint
from bot.reporter import INTERVAL as REPORT_INTERVAL
from bot.reporter import report_forever
from bot.request_limits import RequestBodyLimit
from bot.runtime import BotRuntime
from bot.slack_requests import MalformedSlackRequestError, is_ssl_check, parse_body, signature_ok
from bot.slack_requests import replay_expiry as slack_replay_expiry
from bot.slack_requests import replay_key as slack_replay_key
from bot.webhooks import webhook_endpoint
from switchboard import embedded_prefect
from switchboard.database import open_engine
from switchboard.settings import Settings

logger = logging.getLogger(__name__)


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
    replays = runtime.core.slack.replays()
    signing_secret = runtime.settings.slack_signing_secret
    max_bytes = runtime.settings.max_request_bytes

    async def slack_install(request: Request) -> Response:
        return await handler.handle(request)  # Bolt's OAuth flow: the install redirect, the callback

    async def slack_events(request: Request) -> Response:
        body = await request.body()  # at most max_bytes (RequestBodyLimit)
        timestamp = request.headers.get("x-slack-request-timestamp")
        signature = request.headers.get("x-slack-signature")
        signed = signing_secret is not None and signature_ok(
            signing_secret.get_secret_value(), body, timestamp=timestamp, signature=signature
        )
        if not signed:
            # Bolt answers Slack's certificate probe unsigned (and runs nothing); all else is 401,
            # whatever the body: an unsigned sender learns nothing about how it would be read.
            return await _dispatch(request, body) if _ssl_probe(request, body) else _invalid_request()
        try:
            parse_body(body, request.headers.get("content-type"), max_bytes=max_bytes)
        except MalformedSlackRequestError as exc:
            logger.warning("refused a malformed Slack request: %s", exc)
            return JSONResponse({"error": str(exc)}, status_code=400)
        if timestamp is None or signature is None:  # signature_ok refused those: for the type checker
            return _invalid_request()
        key = slack_replay_key(signature)
        if not await replays.claim(key, until=slack_replay_expiry(timestamp)):
            logger.warning("ignored a replayed Slack request (timestamp %s)", timestamp)
            return Response(status_code=200)
        response = await _dispatch(request, body)
        if response.status_code == 401:
            await replays.release(key)  # only requests Bolt verified too count as seen
        return response

    def _ssl_probe(request: Request, body: bytes) -> bool:
        try:
            return is_ssl_check(parse_body(body, request.headers.get("content-type"), max_bytes=max_bytes))
        except MalformedSlackRequestError:
            return False

    async def _dispatch(request: Request, body: bytes) -> Response:
        try:
            bolt_request = to_async_bolt_request(request, body)
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            # Bolt reads ids (team, user, channel, enterprise) out of the payload while building
            # the request, outside its error handling; a signed payload of another shape is 400.
            logger.warning("refused a Slack request Bolt cannot read (%s)", type(exc).__name__)
            return JSONResponse({"error": "the payload does not have the shape of a Slack request"}, status_code=400)
        return to_starlette_response(await bolt.async_dispatch(bolt_request))

    async def healthz(request: Request) -> Response:
        prefect = embedded_prefect.status()
        try:
            await runtime.core.slack.ping()
        except Exception as exc:
            return JSONResponse({"ok": False, "database": type(exc).__name__, "prefect": prefect}, status_code=503)
        if prefect == "failed":  # runs cannot start; commands still answer
            body = {"ok": False, "prefect": prefect, "error": embedded_prefect.error(), "running": len(runtime.running)}
            return JSONResponse(body, status_code=503)
        # "starting": the embedded Prefect server is coming up; commands are answered meanwhile
        # and runs wait for it.
        return JSONResponse({"ok": True, "prefect": prefect, "running": len(runtime.running)})

    mcp = McpEndpoint(runtime)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        background = start_background(runtime, report_interval)
        try:
            async with mcp.running():
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
            Mount(API_PREFIX, app=create_api(runtime)),
            Route(MCP_PATH, mcp, methods=["GET", "POST", "DELETE"]),
        ],
        lifespan=lifespan,
        middleware=[Middleware(RequestBodyLimit, max_bytes=max_bytes)],
    )


def _invalid_request() -> Response:
    """Bolt's own answer to a request that is not signed by Slack."""
    return JSONResponse({"error": "invalid request"}, status_code=401)


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
