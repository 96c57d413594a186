"""``/mcp`` on the bot's server, driven by the official ``mcp`` client over streamable HTTP:
exposed workflows are tools, a call runs one (recorded with trigger ``mcp``), API tokens guard
it, and two bot processes on one database answer the same (no session state in a process)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from storage.audit import entries
from storage.runs import RunStore
from tests.bot.test_api import token
from tests.helpers.bot_server import Bot

SQUARE: dict[str, Any] = {
    "name": "square",
    "description": "Square a whole number.",
    "expose": ["mcp"],
    "inputs": {"n": {"type": "integer", "required": True, "description": "The number"}},
    "outputs": {"squared": "{{ nodes.calc.output.text }}"},
    "nodes": [{"id": "calc", "type": "text.template", "params": {"template": "{{ inputs.n * inputs.n }}"}}],
}
HIDDEN: dict[str, Any] = {**SQUARE, "name": "hidden", "expose": []}
NOT_FOR_U1: dict[str, Any] = {**SQUARE, "name": "restricted", "permissions": {"run": ["U9"]}}
BROKEN: dict[str, Any] = {
    "name": "broken",
    "expose": ["mcp"],
    "nodes": [{"id": "stop", "type": "core.fail", "params": {"message": "it broke"}}],
}


@contextlib.asynccontextmanager
async def session(bot: Bot, secret: str) -> AsyncIterator[ClientSession]:
    async with (
        httpx.AsyncClient(headers={"Authorization": f"Bearer {secret}"}, timeout=60) as http,
        streamable_http_client(f"{bot.url}/mcp", http_client=http) as (read, write, _),
        ClientSession(read, write) as client,
    ):
        await client.initialize()
        yield client


async def test_exposed_workflows_are_tools_any_replica_runs(two_bots: tuple[Bot, Bot]) -> None:
    first, second = two_bots
    for definition in (SQUARE, HIDDEN, NOT_FOR_U1, BROKEN):
        await first.apply(definition)
    secret = await token(first, "agent", "run", owner="U1")

    async with session(first, secret) as client:
        listed = await client.list_tools()
    tools = {tool.name: tool for tool in listed.tools}
    assert set(tools) == {"square", "broken"}, "unexposed and not-permitted workflows are not listed"
    assert tools["square"].description == "Square a whole number."
    assert tools["square"].inputSchema["properties"] == {"n": {"type": "integer", "description": "The number"}}
    assert tools["square"].inputSchema["required"] == ["n"]

    async with session(second, secret) as client:  # another process, no session shared
        called = await client.call_tool("square", {"n": 7})
        unknown = await client.call_tool("hidden", {"n": 1})
        bad = await client.call_tool("square", {"n": "seven"})
        failed = await client.call_tool("broken", {})
    assert not called.isError, called.content
    assert called.structuredContent is not None
    assert called.structuredContent["outputs"] == {"squared": "49"}
    record = await RunStore(second.engine).get(called.structuredContent["run_id"])
    assert (record.workflow, record.trigger, record.triggered_by, record.status) == (
        "square",
        "mcp",
        "slack:U1",
        "completed",
    )
    assert unknown.isError and "no tool 'hidden'" in unknown.content[0].text  # type: ignore[union-attr]
    assert bad.isError and "invalid arguments for square" in bad.content[0].text  # type: ignore[union-attr]
    assert failed.isError and "failed" in failed.content[0].text  # type: ignore[union-attr]
    assert "it broke" in failed.content[0].text  # type: ignore[union-attr]


async def test_a_bad_token_is_401_and_a_read_token_403(bot: Bot) -> None:
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}
    headers = {"Accept": "application/json, text/event-stream"}
    for presented in (None, "sbt_not-a-token"):
        sent = headers | ({"Authorization": f"Bearer {presented}"} if presented else {})
        refused = await bot.http.post(f"{bot.url}/mcp", json=initialize, headers=sent)
        assert refused.status_code == 401, refused.text
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    reader = await token(bot, "reader", "read")
    forbidden = await bot.http.post(
        f"{bot.url}/mcp", json=initialize, headers=headers | {"Authorization": f"Bearer {reader}"}
    )
    assert forbidden.status_code == 403 and "needs run" in forbidden.json()["error"]["message"]
    assert any(e.action == "refused-api" for e in await entries(bot.engine, limit=20))
