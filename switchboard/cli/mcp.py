"""``switchboard mcp``: Switchboard's exposed workflows as an MCP server over stdio.

For MCP clients on this machine (Claude Desktop, Cursor, an agent framework): each workflow
whose definition says ``expose: [mcp]`` is a tool, and a call runs it here, recorded with
trigger ``mcp`` as the local user (the CLI's permissions: all of them). stdout carries the
protocol, so nothing else is printed there; Prefect's console logs are silenced (they still
reach the Prefect API).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from flows.model import InputError
from switchboard.cli.output import quiet_prefect_console
from switchboard.cli.root import app
from switchboard.cli.session import run_settings
from switchboard.client import Client
from switchboard.mcp_server import MCP_TRIGGER, ExposedWorkflow, ToolCallError, ToolRun, build_server, exposed


async def _serve(client: Client) -> None:
    from mcp.server.stdio import stdio_server

    async def list_exposed() -> list[ExposedWorkflow]:
        found = []
        for summary in await client.workflows.list():
            policy = await client.workflows.policy(summary.name)
            if policy is not None and exposed(policy):
                found.append(ExposedWorkflow(summary.name, policy))
        return found

    async def run_exposed(item: ExposedWorkflow, arguments: dict[str, Any]) -> ToolRun:
        stored = await client.workflows.get(item.name)
        try:
            result = await client.runs.run(
                stored.definition,
                arguments,
                trigger=MCP_TRIGGER,
                version=stored.version,
                triggered_by=client.actor,
                engine=client.engine,
            )
        except InputError as exc:
            problems = "; ".join(str(problem) for problem in exc.problems)
            raise ToolCallError(f"invalid arguments for {item.name}: {problems}") from None
        return ToolRun(result.run_id, result.status, result.outputs, result.error)

    server = build_server(list_exposed, run_exposed)
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


@app.command()
def mcp() -> None:
    """Serve the workflows marked `expose: [mcp]` as MCP tools over stdio (for MCP clients)."""
    settings = run_settings()
    quiet_prefect_console(False)

    async def go() -> None:
        async with Client(settings) as client:
            await _serve(client)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(go())
