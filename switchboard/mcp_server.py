"""Switchboard as an MCP server: stored workflows that opt in (``expose: [mcp]``) as MCP tools.

A tool is a workflow: its name, its description, its declared inputs as the input schema; a
call runs the workflow's latest version and answers with its ``outputs`` (structured, and as
JSON text), or an error result saying how the run failed. The front ends give the two things
that differ between them: which workflows the caller may see and how a run is started and
waited for — ``switchboard mcp`` (stdio: the local user, runs in the process) and ``/mcp`` on
the bot's server (streamable HTTP: an API token's owner, runs where the bot runs them). The
server keeps no state between requests (stateless streamable HTTP, JSON responses), so any
number of bot processes behind a load balancer answer the same.

Built on the official ``mcp`` SDK's low-level server (the tool list changes with the stored
workflows, so tools are not registered one by one).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from flows.model import Workflow

#: The trigger recorded on runs started through the MCP server.
MCP_TRIGGER = "mcp"
#: The most workflows listed as tools.
MAX_TOOLS = 500


@dataclass(frozen=True)
class ExposedWorkflow:
    """A workflow the caller may run through MCP."""

    name: str
    workflow: Workflow


@dataclass(frozen=True)
class ToolRun:
    """How a tool call's run ended."""

    run_id: str
    status: str
    outputs: dict[str, Any]
    error: str | None = None


#: The workflows the caller may run that opt in to MCP, by name.
ListExposed = Callable[[], Awaitable[list[ExposedWorkflow]]]
#: Runs an exposed workflow with the arguments (checked against its inputs there) and waits for it.
RunExposed = Callable[[ExposedWorkflow, dict[str, Any]], Awaitable[ToolRun]]


class ToolCallError(Exception):
    """A tool call that cannot run (unknown tool, bad arguments, not permitted): the message is
    the error result the client sees."""


def exposed(workflow: Workflow) -> bool:
    return "mcp" in workflow.expose


def build_server(list_exposed: ListExposed, run_exposed: RunExposed, *, name: str = "switchboard") -> Any:
    """The MCP server (``mcp.server.lowlevel.Server``) over the two callables."""
    import mcp.types as types
    from mcp.server.lowlevel import Server

    server: Any = Server(name, instructions="Run Switchboard workflows: each tool is one stored workflow.")

    @server.list_tools()
    async def list_tools() -> list[types.Tool]:
        return [
            types.Tool(
                name=item.name,
                description=item.workflow.description or f"Run the Switchboard workflow {item.name}.",
                inputSchema=item.workflow.inputs_schema(),
            )
            for item in (await list_exposed())[:MAX_TOOLS]
        ]

    # Inputs are checked by the workflow itself (resolve_inputs, every problem named), against
    # the version that runs, not against a tool list cached by an earlier request.
    @server.call_tool(validate_input=False)
    async def call_tool(tool: str, arguments: dict[str, Any] | None) -> Any:
        by_name = {item.name: item for item in await list_exposed()}
        item = by_name.get(tool)
        if item is None:
            raise ToolCallError(f"no tool {tool[:100]!r}: no exposed workflow of that name that you may run")
        ran = await run_exposed(item, dict(arguments or {}))
        if ran.status != "completed":
            return types.CallToolResult(
                content=[
                    types.TextContent(
                        type="text", text=f"run {ran.run_id} {ran.status}: {ran.error or 'no error given'}"
                    )
                ],
                isError=True,
            )
        return {"run_id": ran.run_id, "outputs": ran.outputs}

    return server
