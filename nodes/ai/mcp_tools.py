"""An ``ai.agent``'s MCP tools: the tools of an MCP server, over stdio or streamable HTTP, with
the official ``mcp`` SDK's client (no protocol code here).

``{mcp: {command: [ARGV...], env: {...}} | {url: URL, credential?}, include?, exclude?}``:

* **stdio** starts the server as a child process. A workflow author names the command, so only
  executables the operator allows (``SWITCHBOARD_MCP_COMMANDS``: ``npx``, ``uvx``, a full path)
  may be started, and the child gets the SDK's minimal environment (``PATH``, ``HOME``...) plus
  the entry's ``env``, never the worker's own variables (its secrets).
* **HTTP** connects through the run's SSRF guard (``SWITCHBOARD_HTTP_ALLOW_HOSTS`` for private
  addresses), with a stored credential's token as a bearer token when ``credential`` is given.

One session per agent node call: opened before the first model call (its tools are listed
then), used by every call, closed when the node ends. Tools are named ``<prefix>_<tool>`` when a
``prefix`` is given; ``include``/``exclude`` pick them by the server's names.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, model_validator

from nodes.context import NodeContext
from nodes.errors import NodeConfigError, NodeError

if TYPE_CHECKING:
    from mcp import ClientSession

#: Settings named in refusals (node code never reads them).
COMMANDS_SETTING = "SWITCHBOARD_MCP_COMMANDS"
#: The most tools taken from one server, and pages of its tool list read.
MAX_TOOLS_PER_SERVER = 128
MAX_LIST_PAGES = 10
#: Seconds to connect, start the session and list the tools.
CONNECT_TIMEOUT = 30.0
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class McpServerSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    command: list[str] | None = Field(
        default=None, min_length=1, max_length=100, description="The server's command line (stdio)."
    )
    env: dict[str, str] = Field(default_factory=dict, max_length=100, description="Variables for a stdio server.")
    url: str | None = Field(default=None, max_length=2_000, description="The server's streamable HTTP endpoint.")
    credential: str | None = Field(default=None, description="A stored credential whose token is the bearer token.")

    @model_validator(mode="after")
    def _one_transport(self) -> McpServerSpec:
        if (self.command is None) == (self.url is None):
            raise ValueError("an MCP server is `{command: [ARGV...]}` (stdio) or `{url: URL}` (HTTP), one of them")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ValueError("url: an http:// or https:// address")
        if self.command is None and self.env:
            raise ValueError("env: only a stdio server (`command`) takes environment variables")
        bad = [name for name in self.env if not _ENV_NAME.match(name)]
        if bad:
            raise ValueError(f"env: {bad[0]!r} is not an environment variable name")
        return self


class McpToolSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mcp: McpServerSpec = Field(description="The MCP server: `{command: [...], env}` or `{url, credential}`.")
    include: list[str] | None = Field(default=None, max_length=MAX_TOOLS_PER_SERVER, description="Only these tools.")
    exclude: list[str] = Field(default_factory=list, max_length=MAX_TOOLS_PER_SERVER, description="Not these tools.")
    prefix: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9_-]{1,20}$", description="Prefix of the tools' names (`<prefix>_<tool>`)."
    )
    retries: int = Field(default=0, ge=0, le=10, description="Retries of a call that fails transiently.")
    timeout: float = Field(default=60.0, gt=0, le=3_600, description="Seconds one call may take.")


class _Borrowed(httpx.AsyncBaseTransport):
    """The run's guarded transport, lent to the MCP client: its client closes, the transport stays."""

    def __init__(self, transport: httpx.AsyncBaseTransport) -> None:
        self._transport = transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._transport.handle_async_request(request)

    async def aclose(self) -> None:
        return None


def _check_command(ctx: NodeContext, argv: list[str], where: str) -> None:
    allowed = ctx.mcp_commands
    executable = argv[0]
    if executable not in allowed and os.path.basename(executable) not in {a for a in allowed if "/" not in a}:
        shown = ", ".join(sorted(allowed)) or "none"
        raise NodeConfigError(
            f"{where}: MCP server command {executable!r} is not allowed here (allowed: {shown}); "
            f"the operator allows commands with {COMMANDS_SETTING}",
            node_id=ctx.node_id,
        )
    if "/" in executable and executable not in allowed:
        raise NodeConfigError(
            f"{where}: {executable!r} is a path; {COMMANDS_SETTING} must name that path to allow it",
            node_id=ctx.node_id,
        )


async def open_session(ctx: NodeContext, spec: McpServerSpec, where: str, stack: contextlib.AsyncExitStack) -> Any:
    """An initialized ``mcp.ClientSession`` on ``spec``'s server, closed with ``stack``."""
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client
    from mcp.client.streamable_http import streamable_http_client

    if spec.command is not None:
        _check_command(ctx, spec.command, where)
        params = StdioServerParameters(command=spec.command[0], args=spec.command[1:], env=dict(spec.env) or None)
        read, write = await stack.enter_async_context(stdio_client(params, errlog=_null_errlog()))
    else:
        assert spec.url is not None
        headers: dict[str, str] = {}
        if spec.credential:
            secret = await ctx.named_credential(spec.credential)
            token = secret.get("access_token") or secret.get("token")
            if not token:
                raise NodeConfigError(f"{where}: credential {spec.credential!r} has no token", node_id=ctx.node_id)
            headers["Authorization"] = f"Bearer {token}"
        transport = ctx.http_transport
        # The SDK's own client settings (long reads for server-sent events), on the run's guard.
        http = await stack.enter_async_context(
            httpx.AsyncClient(
                transport=_Borrowed(transport) if transport is not None else None,
                headers=headers,
                timeout=httpx.Timeout(30.0, read=300.0),
                trust_env=False,
                follow_redirects=False,
            )
        )
        read, write, _ = await stack.enter_async_context(streamable_http_client(spec.url, http_client=http))
    session: ClientSession = await stack.enter_async_context(ClientSession(read, write))
    await session.initialize()
    return session


def _null_errlog() -> Any:
    """Where a stdio server's stderr goes: nowhere (it may print anything, secrets included)."""
    return open(os.devnull, "w")


async def list_tools(session: Any) -> list[Any]:
    """The server's tools (every page, bounded)."""
    tools: list[Any] = []
    cursor: str | None = None
    for _ in range(MAX_LIST_PAGES):
        listed = await session.list_tools(cursor) if cursor else await session.list_tools()
        tools.extend(listed.tools)
        cursor = listed.nextCursor
        if not cursor or len(tools) >= MAX_TOOLS_PER_SERVER:
            break
    return tools[:MAX_TOOLS_PER_SERVER]


def result_of(result: Any) -> Any:
    """What an MCP tool call returns, as JSON-ready data: its structured content, else its text
    (a tool error raises, so the model is told it failed)."""
    texts = [str(getattr(block, "text", "")) for block in result.content if getattr(block, "type", "") == "text"]
    others = [getattr(block, "type", "?") for block in result.content if getattr(block, "type", "") != "text"]
    if result.isError:
        raise NodeError("; ".join(texts) or "the MCP tool reported an error")
    if result.structuredContent is not None:
        return result.structuredContent
    text = "\n".join(texts)
    if others:
        text += f"\n[{len(others)} non-text content block(s) left out: {', '.join(sorted(set(others)))}]"
    return text


def caller(session: Any, name: str, timeout: float) -> Callable[[dict[str, Any]], Awaitable[Any]]:
    """Calls the server's tool ``name`` on ``session``."""

    async def call(arguments: dict[str, Any]) -> Any:
        from mcp.shared.exceptions import McpError

        try:
            result = await session.call_tool(name, arguments, read_timeout_seconds=timedelta(seconds=timeout))
        except McpError as exc:
            raise NodeError(f"the MCP server refused the call: {exc.error.message}") from None
        return result_of(result)

    return call


def schema_of(tool: Any) -> dict[str, Any]:
    schema = tool.inputSchema if isinstance(tool.inputSchema, dict) else {}
    if schema.get("type") != "object":
        schema = {"type": "object", "properties": {}}
    return json.loads(json.dumps(schema))
