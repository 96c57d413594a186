"""ai.agent with MCP tools: a real MCP server (the SDK's, tests/fakes/mcp_server.py) over
stdio and over streamable HTTP, called by the SDK's client from inside the agent's tool tasks."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest

from switchboard.client import Client
from switchboard.settings import Settings
from tests.fakes import mcp_server
from tests.fakes.http import FakeHTTP
from tests.fakes.openai import FakeOpenAI, completion, tool_calls
from tests.switchboard.test_subworkflows import task_runs_of

pytestmark = pytest.mark.usefixtures("prefect_server")

STDIO = [sys.executable, "-m", "tests.fakes.mcp_server"]


@pytest.fixture
def ai(fake_http: FakeHTTP) -> FakeOpenAI:
    return FakeOpenAI(fake_http)


def resolver(ai: FakeOpenAI, mcp_token: str = mcp_server.TOKEN) -> Any:
    async def resolve(name: str, kind: str | None, *, rejected: str | None = None) -> dict[str, Any]:
        if name == "mcp-cred":
            return {"token": mcp_token}
        return {"token": "sk-test", "base_url": ai.base_url}

    return resolve


def agent(tool: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "mcp-agent",
        "nodes": [
            {"id": "think", "type": "ai.agent", "credential": "llm", "params": {"prompt": "go", "tools": [tool]}}
        ],
    }


async def run(ai: FakeOpenAI, definition: dict[str, Any], settings: Settings, **options: Any) -> Any:
    return await Client(settings).runs.run(definition, credential_resolver=resolver(ai, **options), record=False)


async def test_stdio_tools_are_listed_called_in_tasks_and_see_only_their_own_environment(
    ai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWITCHBOARD_SECRET_KEY", "a-secret-the-child-must-not-see")
    ai.reply(
        tool_calls(
            ("lookup_owner", {"component": "payments"}),
            ("explode", {}),
            ("environment", {"name": "SWITCHBOARD_SECRET_KEY"}),
            ("environment", {"name": "GREETING"}),
        ),
        completion("payments belongs to team-payments"),
    )
    tool = {
        "mcp": {"command": STDIO, "env": {"GREETING": "hello"}},
        "include": ["lookup_owner", "explode", "environment"],
    }
    result = await run(ai, agent(tool), Settings(mcp_commands=sys.executable))
    assert result.status == "completed", result.error
    steps = result.nodes["think"].output["steps"]
    assert [(s["tool"], s["status"]) for s in steps] == [
        ("lookup_owner", "ok"),
        ("explode", "error"),
        ("environment", "ok"),
        ("environment", "ok"),
    ]
    told = {m["tool_call_id"]: m["content"] for m in ai.sent(1)["messages"] if m["role"] == "tool"}
    assert json.loads(told["call_0"]) == {"component": "payments", "owner": "team-payments"}
    assert "the fake tool exploded" in json.loads(told["call_1"])["error"]
    assert json.loads(told["call_2"]) == {"result": "<unset>"}, "the server does not inherit the worker's environment"
    assert json.loads(told["call_3"]) == {"result": "hello"}

    offered = {t["function"]["name"]: t["function"] for t in ai.sent(0)["tools"]}
    assert set(offered) == {"lookup_owner", "explode", "environment"}, "include picks the server's tools"
    assert offered["lookup_owner"]["parameters"]["required"] == ["component"]
    assert offered["lookup_owner"]["description"] == "Who owns a component."

    runs = await task_runs_of(str(result.flow_run_id), at_least=5)
    assert {"agent.tool:lookup_owner", "agent.tool:explode"} <= {r.name for r in runs}


async def test_a_command_the_operator_did_not_allow_is_not_started(ai: FakeOpenAI) -> None:
    result = await run(ai, agent({"mcp": {"command": STDIO}}), Settings(mcp_commands="npx"))
    assert result.status == "failed"
    error = result.nodes["think"].error or ""
    assert f"MCP server command {sys.executable!r} is not allowed here (allowed: npx)" in error
    assert "SWITCHBOARD_MCP_COMMANDS" in error
    assert ai.requests() == []


async def test_http_tools_go_through_the_ssrf_guard_with_the_credentials_token(ai: FakeOpenAI) -> None:
    async with mcp_server.serve_http() as url:
        tool = {"mcp": {"url": url, "credential": "mcp-cred"}, "prefix": "fake", "exclude": ["environment"]}

        blocked = await run(ai, agent(tool), Settings())
        assert blocked.status == "failed"
        assert "could not reach the MCP server" in (blocked.nodes["think"].error or "")
        assert "127.0.0.1" in (blocked.nodes["think"].error or "")

        allowed = Settings(http_allow_hosts="127.0.0.1")
        refused = await run(ai, agent(tool), allowed, mcp_token="wrong")
        assert refused.status == "failed" and "401" in (refused.nodes["think"].error or "")

        ai.reply(tool_calls(("fake_add", {"a": 2, "b": 40})), completion("42"))
        result = await run(ai, agent(tool), allowed)
    assert result.status == "completed", result.error
    assert set(t["function"]["name"] for t in ai.sent(0)["tools"]) == {"fake_lookup_owner", "fake_add", "fake_explode"}
    (step,) = result.nodes["think"].output["steps"]
    assert (step["tool"], step["status"], step["arguments"]) == ("fake_add", "ok", {"a": 2, "b": 40})
    told = next(m for m in ai.sent(1)["messages"] if m["role"] == "tool")
    assert json.loads(told["content"]) == {"result": 42}


@pytest.mark.parametrize(
    ("server", "message"),
    [
        ({"command": STDIO, "url": "http://x"}, "one of them"),
        ({}, "one of them"),
        ({"url": "file:///etc/passwd"}, "url: an http:// or https:// address"),
        ({"url": "http://x", "env": {"A": "b"}}, "only a stdio server"),
        ({"command": STDIO, "env": {"BAD NAME": "x"}}, "is not an environment variable name"),
    ],
)
def test_bad_mcp_entries_are_definition_errors(server: dict[str, Any], message: str) -> None:
    import switchboard

    with pytest.raises(switchboard.DefinitionError) as raised:
        switchboard.validate(agent({"mcp": server}))
    assert message in str(raised.value)
