"""The HTTP API: Switchboard for programs, on the bot's server under ``/api/v1``.

::

    GET  /api/v1/workflows                  the workflows the token may read
    GET  /api/v1/workflows/{name}           inputs, outputs, versions
    POST /api/v1/workflows/{name}/runs      {"inputs": {...}, "version"?: N, "wait"?: seconds}
    GET  /api/v1/runs?workflow=&status=&limit=
    GET  /api/v1/runs/{id}                  the run result shape, with outputs and usage
    POST /api/v1/runs/{id}/cancel
    POST /api/v1/runs/{id}/retry
    GET  /api/v1/openapi.json               the OpenAPI 3.1 document
    GET  /api/v1/docs                       the same, as a page (no scripts, works offline)

Calls carry an API token (``switchboard tokens create``; :mod:`bot.api.callers`); errors have
one shape and every answer a request id (:mod:`bot.api.errors`); bodies are capped like every
route of the bot (:mod:`bot.request_limits`). docs/api.md is the user's guide.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.types import ASGIApp

from bot.api.callers import RateLimiter
from bot.api.docs import docs_page
from bot.api.errors import RequestIds, install_error_handlers
from bot.api.routes import router
from bot.runtime import BotRuntime

PREFIX = "/api/v1"
VERSION = "1"


def create_api(runtime: BotRuntime) -> ASGIApp:
    """The API as an ASGI app to mount at :data:`PREFIX` on the bot's server."""
    api = FastAPI(
        title="Switchboard API",
        version=VERSION,
        description=(
            "Start and follow Switchboard workflow runs. Authenticate with `Authorization: Bearer <token>` "
            "(`switchboard tokens create NAME --scope read|run|admin`). Errors are "
            '`{"error": {"code", "message", "problems"?, "request_id"}}`.'
        ),
        openapi_url="/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    api.state.runtime = runtime
    api.state.limiter = RateLimiter(runtime.settings.api_rate_limit)
    api.state.max_bytes = runtime.settings.max_request_bytes
    install_error_handlers(api)
    api.include_router(router)
    api.add_api_route("/docs", docs_page(api), methods=["GET"], include_in_schema=False)
    return RequestIds(api)
