"""The API's error shape and request ids.

Every error is ``{"error": {"code", "message", "problems"?, "request_id"}}`` with an HTTP status
that says the class of problem; ``code`` is a stable word a client can branch on. Every
response, error or not, carries ``X-Request-Id``: the client's own when it sent a sane one (1-64
letters, digits, ``.``, ``_``, ``-``), else a fresh one. The bot's log names it, so a user's
report of a failed call can be found.
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-Id"
_SANE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
#: The code of each status an error may have when nothing more specific is said.
_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "rate_limited",
    500: "internal",
    503: "unavailable",
}


class ApiError(Exception):
    """An answer other than success: ``status``, a ``code``, a ``message`` for people, and
    optionally ``problems`` (``[{"field", "message"}]``), ``headers`` and ``extra`` fields."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        problems: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or _CODES.get(status, "error")
        self.message = message
        self.problems = problems
        self.headers = headers or {}
        self.extra = extra


def request_id(request: Request) -> str:
    """This request's id (set by :class:`RequestIds`)."""
    return str(request.scope.get("state", {}).get("request_id", ""))


def error_response(request: Request, error: ApiError) -> JSONResponse:
    body: dict[str, Any] = {"code": error.code, "message": error.message, **error.extra}
    if error.problems is not None:
        body["problems"] = error.problems
    body["request_id"] = request_id(request)
    return JSONResponse({"error": body}, status_code=error.status, headers=error.headers)


def _field(location: tuple[Any, ...] | list[Any]) -> str:
    """``("body", "inputs", "count")`` -> ``inputs.count``; ``("query", "limit")`` -> ``limit``."""
    parts = [str(part) for part in location[1:]] if location and location[0] in ("body", "query", "path") else []
    return ".".join(parts) or ".".join(str(part) for part in location)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error in the API's shape: ours, FastAPI's validation errors, Starlette's
    HTTP errors (an unknown route, a wrong method) and anything unexpected (500, logged)."""

    async def on_api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return error_response(request, exc)

    async def on_invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        problems = [{"field": _field(e.get("loc", ())), "message": str(e.get("msg", ""))} for e in exc.errors()]
        listed = "; ".join(f"{p['field']}: {p['message']}" for p in problems[:5])
        return error_response(request, ApiError(422, f"invalid request: {listed}", problems=problems))

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        message = exc.detail if isinstance(exc.detail, str) else "request refused"
        return error_response(request, ApiError(exc.status_code, message, headers=dict(exc.headers or {})))

    async def on_crash(request: Request, exc: Exception) -> Response:
        logger.error("API request %s %s failed", request_id(request), request.url.path, exc_info=exc)
        return error_response(request, ApiError(500, "the server failed on this request; its log names the request id"))

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_invalid)
    app.add_exception_handler(HTTPException, on_http_error)
    app.add_exception_handler(Exception, on_crash)


class RequestIds:
    """ASGI middleware: give each request an id and send it back as ``X-Request-Id``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), "")
        rid = given if _SANE_ID.fullmatch(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                message = {**message, "headers": [*headers, (b"x-request-id", rid.encode())]}
            await send(message)

        await self.app(scope, receive, send_with_id)
