"""``switchboard mcp`` as a real process, driven by the official ``mcp`` client over stdio:
it lists the exposed workflows and runs one, returning its outputs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from storage.runs import RunStore
from storage.workflows import WorkflowStore
from tests.bot.test_mcp import HIDDEN, SQUARE


@pytest.mark.usefixtures("prefect_server")
async def test_the_stdio_server_lists_exposed_workflows_and_runs_one(
    engine: Any, database_url: str, prefect_server: str, tmp_path: Path
) -> None:
    for definition in (SQUARE, HIDDEN):
        await WorkflowStore(engine).apply(definition, actor="test")
    server = StdioServerParameters(
        command=sys.executable,
        args=["-m", "switchboard.cli", "mcp"],
        env={
            "SWITCHBOARD_DATABASE_URL": database_url,
            "SWITCHBOARD_HOME": str(tmp_path / "home"),
            "PREFECT_API_URL": prefect_server,
            "PREFECT_HOME": str(tmp_path / "prefect"),
        },
    )
    with (tmp_path / "stderr.log").open("w") as errlog:
        async with stdio_client(server, errlog=errlog) as (read, write), ClientSession(read, write) as client:
            await client.initialize()
            listed = await client.list_tools()
            assert [tool.name for tool in listed.tools] == ["square"]
            called = await client.call_tool("square", {"n": 12})
            bad = await client.call_tool("square", {})
    assert not called.isError, called.content
    assert called.structuredContent is not None and called.structuredContent["outputs"] == {"squared": "144"}
    assert bad.isError and "invalid arguments for square" in bad.content[0].text  # type: ignore[union-attr]
    record = await RunStore(engine).get(called.structuredContent["run_id"])
    assert (record.trigger, record.status) == ("mcp", "completed")
    assert record.triggered_by is not None and record.triggered_by.startswith("cli:")
