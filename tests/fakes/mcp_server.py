"""A real MCP server, built with the official ``mcp`` SDK, for the agent's MCP tools.

``python -m tests.fakes.mcp_server`` serves it over stdio; :func:`serve_http` serves it over
streamable HTTP on 127.0.0.1 (stateless, behind a bearer token) in the test's event loop.

Tools: ``lookup_owner`` (structured result), ``add``, ``explode`` (a tool error), ``environment``
(what the server process can see of its environment: the child's isolation is tested with it).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from mcp.server.fastmcp import FastMCP
from starlette.types import ASGIApp, Receive, Scope, Send

from tests.helpers.processes import free_port

TOKEN = "mcp-test-token"
OWNERS = {"payments": "team-payments", "search": "team-discovery"}


def build(*, stateless: bool = False) -> FastMCP:
    server = FastMCP("switchboard-fake", stateless_http=stateless, json_response=stateless)

    @server.tool()
    def lookup_owner(component: str) -> dict[str, Any]:
        """Who owns a component."""
        return {"component": component, "owner": OWNERS.get(component, "unowned")}

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two whole numbers."""
        return a + b

    @server.tool()
    def explode() -> str:
        """Always fails."""
        raise ValueError("the fake tool exploded")

    @server.tool()
    def environment(name: str) -> str:
        """The value of an environment variable in the server's process ('<unset>' if none)."""
        return os.environ.get(name, "<unset>")

    return server


class _BearerOnly:
    """401 for any request without the test token (what a protected MCP endpoint answers)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = dict(scope.get("headers") or [])
            if headers.get(b"authorization") != f"Bearer {TOKEN}".encode():
                start = {"type": "http.response.start", "status": 401, "headers": [(b"content-type", b"text/plain")]}
                await send(start)
                await send({"type": "http.response.body", "body": b"unauthorized"})
                return
        await self.app(scope, receive, send)


@contextlib.asynccontextmanager
async def serve_http() -> AsyncIterator[str]:
    """The server over streamable HTTP until exit; yields its endpoint URL (``.../mcp``)."""
    port = free_port()
    app = _BearerOnly(build(stateless=True).streamable_http_app())
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    serving = asyncio.create_task(server.serve())
    try:
        for _ in range(500):
            if server.started:
                break
            if serving.done():
                serving.result()
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        server.should_exit = True
        await serving


if __name__ == "__main__":
    build().run("stdio")
