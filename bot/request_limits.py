"""A hard cap on request bodies, in front of every route of the bot's server (pure ASGI).

Every route of the bot reads its body before it can authenticate it (a signature covers the
body), so the cap has to hold before anything is read past it:

* a Content-Length over the cap gets **413** at once, without reading the body;
* otherwise the bytes are counted as the server hands them over, and the moment they pass the
  cap the app's read fails and the answer is 413: the rest is never read, and never more than
  the cap is held;
* every answer to a request whose body was not read to its end says ``Connection: close``, so
  the server closes the connection instead of reading and discarding the rest (a route that
  reads no body, such as ``GET /healthz``, cannot be made to drain one either).

The cap is ``SWITCHBOARD_MAX_REQUEST_BYTES`` (1 MiB by default).
"""

from __future__ import annotations

import json
import logging

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

_CLOSE = (b"connection", b"close")


class BodyTooLargeError(Exception):
    """Raised from ``receive`` once a body passes the cap; the middleware answers 413."""


class RequestBodyLimit:
    """ASGI middleware: bodies over ``max_bytes`` get 413 without being read."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        # the server has checked the header's syntax (digits only) before the app sees it
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            self._log(scope, f"declares {int(declared):,} bytes")
            await self._refuse(send)
            return

        read = 0
        unread = (declared is not None and declared != "0") or "transfer-encoding" in headers
        over = False
        answered = False

        async def capped_receive() -> Message:
            nonlocal read, unread, over
            message = await receive()
            if message["type"] == "http.request":
                read += len(message.get("body", b""))
                if read > self.max_bytes:
                    over = True
                    raise BodyTooLargeError(f"the request body is over {self.max_bytes} bytes")
                if not message.get("more_body", False):
                    unread = False
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal answered
            if over:
                return  # the app caught the error and answers anyway: the 413 is the answer
            if message["type"] == "http.response.start":
                answered = True
                if unread:
                    message = {**message, "headers": [*message.get("headers", []), _CLOSE]}
            await send(message)

        try:
            await self.app(scope, capped_receive, guarded_send)
        except BodyTooLargeError:
            if answered:  # a response had begun before the body was read: it cannot become a 413
                raise
        if over and not answered:
            self._log(scope, f"sent more than {self.max_bytes:,} bytes")
            await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps({"error": f"the request body is over the {self.max_bytes:,} bytes allowed"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    _CLOSE,  # the rest of the body stays unread: do not read it as the next request
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    def _log(scope: Scope, what: str) -> None:
        client = scope.get("client")
        logger.warning(
            "refused %s %r from %s: its body %s",
            scope.get("method"),
            str(scope.get("path", ""))[:200],
            client[0] if client else "unknown",
            what,
        )
