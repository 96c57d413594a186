"""ai.agent: a tool-calling loop against the fake OpenAI server (scripted tool calls), with a
node tool on the fake GitHub, a stored workflow as a tool, each call a task run of its own
under the agent's node on a real Prefect test server."""

from __future__ import annotations

import json
import sys
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client

import switchboard
from storage.runs import RunStore
from storage.workflows import WorkflowStore
from switchboard.client import Client
from switchboard.settings import Settings
from tests.fakes.github import FakeGitHub
from tests.fakes.http import FakeHTTP, Reply
from tests.fakes.openai import FakeOpenAI, completion, tool_calls
from tests.switchboard.test_subworkflows import task_runs_of

pytestmark = pytest.mark.usefixtures("prefect_server")

SQUARE: dict[str, Any] = {
    "name": "square",
    "description": "Square a whole number.",
    "inputs": {"n": {"type": "integer", "required": True, "description": "The number"}},
    "outputs": {"squared": "{{ nodes.sq.output.v }}"},
    "nodes": [{"id": "sq", "type": "core.set", "params": {"values": {"v": "{{ inputs.n * inputs.n }}"}}}],
}


@pytest.fixture
def ai(fake_http: FakeHTTP) -> FakeOpenAI:
    return FakeOpenAI(fake_http)


def resolver(fake_http: FakeHTTP) -> Any:
    async def resolve(name: str, kind: str | None, *, rejected: str | None = None) -> dict[str, Any]:
        base_url = FakeOpenAI(fake_http).base_url if kind == "openai" else FakeGitHub(fake_http).base_url
        return {"token": f"{kind}-token", "base_url": base_url}

    return resolve


def agent(params: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "name": "agent-demo",
        "nodes": [{"id": "think", "type": "ai.agent", "credential": "llm", "params": params}],
        **extra,
    }


TOOLS = [
    {"node": "github.read_file", "name": "read_file", "credential": "gh", "params": {"repo": "acme/api"}},
    {"workflow": "square"},
    {"mcp": {"command": [sys.executable, "-m", "tests.fakes.mcp_server"]}, "include": ["lookup_owner"]},
]


async def test_an_agent_calls_a_node_a_workflow_and_an_mcp_tool_and_answers_in_the_schema(
    ai: FakeOpenAI, fake_http: FakeHTTP, engine: Any
) -> None:
    github = FakeGitHub(fake_http)
    github.add_file("acme/api", "VERSION", b"4\n")
    await WorkflowStore(engine).apply(SQUARE, actor="test")
    ai.reply(
        tool_calls(("read_file", {"path": "VERSION"})),
        # Three calls at once (run in parallel), one of them with arguments that do not fit.
        tool_calls(("square", {"n": 4}), ("read_file", {"path": ""}), ("lookup_owner", {"component": "payments"})),
        completion('{"version": 4, "squared": 16}', prompt_tokens=30, completion_tokens=8),
    )
    schema = {
        "type": "object",
        "properties": {"version": {"type": "integer"}, "squared": {"type": "integer"}},
        "required": ["version", "squared"],
    }
    result = await Client(Settings(mcp_commands=sys.executable)).runs.run(
        agent({"prompt": "What is the version, squared?", "tools": TOOLS, "output_schema": schema}),
        engine=engine,
        credential_resolver=resolver(fake_http),
    )
    assert result.status == "completed", result.error
    out = result.nodes["think"].output
    assert out["json"] == {"version": 4, "squared": 16}
    assert out["model_calls"] == 3
    assert [(s["step"], s["tool"], s["status"]) for s in out["steps"]] == [
        (1, "read_file", "ok"),
        (2, "square", "ok"),
        (2, "read_file", "error"),
        (2, "lookup_owner", "ok"),
    ]
    assert out["steps"][0]["arguments"] == {"path": "VERSION"}
    assert '"content": "4\\n"' in out["steps"][0]["result"]
    assert "path: String should have at least 1 character" in out["steps"][2]["result"]

    # What the model was offered and sent back: schemas without the fixed params or the
    # credential, the tool results (and the error) as tool messages.
    first = ai.sent(0)
    offered = {tool["function"]["name"]: tool["function"] for tool in first["tools"]}
    assert set(offered) == {"read_file", "square", "lookup_owner"}
    assert set(offered["read_file"]["parameters"]["properties"]) == {"path", "ref"}
    assert offered["read_file"]["parameters"]["required"] == ["path"]
    assert offered["square"]["description"] == "Square a whole number."
    assert offered["square"]["parameters"]["properties"] == {"n": {"type": "integer", "description": "The number"}}
    assert "gh" not in json.dumps(first["tools"]) and "token" not in json.dumps(first)
    assert first["response_format"]["json_schema"]["schema"] == schema
    third = ai.sent(2)["messages"]
    tool_messages = {m["tool_call_id"]: json.loads(m["content"]) for m in third if m["role"] == "tool"}
    assert tool_messages["call_0"]["outputs"] == {"squared": 16}
    assert "error" in tool_messages["call_1"]
    assert tool_messages["call_2"] == {"component": "payments", "owner": "team-payments"}

    # Tokens of all three model calls, in the node's output and the run's usage.
    assert out["usage"]["total_tokens"] == 30 + 30 + 38
    assert result.usage["total_tokens"] == 98 and result.usage["calls"] == 3

    # The workflow tool ran as a recorded child of this run.
    children = [r for r in await RunStore(engine).list(limit=20) if r.parent_run_id == result.run_id]
    assert [(c.workflow, c.trigger, c.status) for c in children] == [("square", "workflow", "completed")]

    # Prefect: every tool call is a task run of its own whose parent is the agent's task run.
    assert result.flow_run_id is not None
    runs = await task_runs_of(result.flow_run_id, at_least=5)
    by_name = {r.name: r for r in runs}
    calls = {"agent.tool:read_file", "agent.tool:read_file #2", "agent.tool:square", "agent.tool:lookup_owner"}
    assert set(by_name) == {"think", *calls}
    think = by_name["think"]
    for name in calls:
        parents = [str(p.id) for p in by_name[name].task_inputs.get("__parents__", [])]
        assert parents == [str(think.id)], name
    assert by_name["agent.tool:read_file #2"].state.is_failed()
    assert by_name["agent.tool:square"].state.is_completed()
    async with get_client() as client:
        child_flow_run = await client.read_flow_run(UUID(str(children[0].flow_run_id)))
    assert child_flow_run.parent_task_run_id == by_name["agent.tool:square"].id, "the child nests under its call"


async def test_a_model_that_misbehaves_is_told_and_the_loop_goes_on(ai: FakeOpenAI, fake_http: FakeHTTP) -> None:
    ai.reply(
        tool_calls(("no_such_tool", {}), ("upper", "{not json"), ("upper", "[1, 2]")),
        tool_calls(("upper", {"text": "ok"})),
        completion("done"),
    )
    tools = [{"node": "text.template", "name": "upper", "params": {}}]
    result = await switchboard.arun(
        agent({"prompt": "go", "tools": tools}), credential_resolver=resolver(fake_http), record=False
    )
    assert result.status == "completed", result.error
    steps = result.nodes["think"].output["steps"]
    assert [s["status"] for s in steps] == ["error", "error", "error", "error"]
    assert "there is no tool 'no_such_tool' (tools: upper)" in steps[0]["result"]
    assert "the tool arguments" in steps[1]["result"]
    assert "must be a JSON object" in steps[2]["result"]
    assert "template: Field required" in steps[3]["result"]


async def test_max_steps_ends_the_loop_with_the_calls_taken(ai: FakeOpenAI, fake_http: FakeHTTP) -> None:
    ai.reply(*(tool_calls(("echo", {"template": f"step {i}"})) for i in range(3)))
    tools = [{"node": "text.template", "name": "echo"}]
    result = await switchboard.arun(
        agent({"prompt": "loop", "tools": tools, "max_steps": 3}),
        credential_resolver=resolver(fake_http),
        record=False,
    )
    assert result.status == "failed"
    assert result.nodes["think"].error == (
        "no final answer after 3 model calls (max_steps); the last tool calls: echo (ok), echo (ok), echo (ok)"
    )
    assert len(ai.requests()) == 3
    assert result.usage["calls"] == 3, "the failed node's tokens are counted"


async def test_an_answer_outside_the_output_schema_names_the_path(ai: FakeOpenAI, fake_http: FakeHTTP) -> None:
    ai.reply(completion('{"items": [{"id": "seven"}]}'))
    schema = {
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": {"type": "object", "properties": {"id": {"type": "integer"}}}}
        },
    }
    result = await switchboard.arun(
        agent({"prompt": "list", "output_schema": schema}), credential_resolver=resolver(fake_http), record=False
    )
    assert result.status == "failed"
    assert "the reply does not match output_schema at items/0/id: 'seven' is not of type 'integer'" in (
        result.nodes["think"].error or ""
    )


async def test_a_budget_stops_an_agent_between_steps(ai: FakeOpenAI, fake_http: FakeHTTP) -> None:
    ai.reply(tool_calls(("echo", {"template": "x"}), prompt_tokens=500, completion_tokens=20), completion("never"))
    result = await switchboard.arun(
        agent({"prompt": "go", "tools": [{"node": "text.template", "name": "echo"}]}, budget={"tokens": 600}),
        credential_resolver=resolver(fake_http),
        record=False,
    )
    assert result.status == "failed"
    assert result.error is not None and result.error.startswith("budget exceeded: 520 tokens spent")
    assert len(ai.requests()) == 1


@pytest.mark.parametrize(
    ("tools", "extra", "message"),
    [
        ([{"node": "core.approval"}], {}, "tools.0: core.approval cannot be a tool"),
        ([{"node": "core.if"}], {}, "tools.0: core.if joins or branches a workflow"),
        ([{"node": "github.read_file"}], {}, "tools.0: github.read_file needs `credential:`"),
        ([{"node": "text.template", "params": {"nope": 1}}], {}, "tools.0.params: text.template has no param(s) nope"),
        ([{"node": "no.such"}], {}, "tools.0: "),
        ([{"node": "text.template"}, {"node": "text.template"}], {}, "tools.1: two tools are named 'text_template'"),
        ([{"node": "text.template"}], {"approve": ["rm"]}, "approve: no tool named rm (tools: text_template)"),
        ([{"workflow": "missing"}], {}, "but this run has no database to find it in"),
    ],
)
async def test_bad_tools_fail_before_any_model_call(
    ai: FakeOpenAI, fake_http: FakeHTTP, tools: list[dict[str, Any]], extra: dict[str, Any], message: str
) -> None:
    result = await switchboard.arun(
        agent({"prompt": "go", "tools": tools, **extra}), credential_resolver=resolver(fake_http), record=False
    )
    assert result.status == "failed"
    assert message in (result.nodes["think"].error or ""), result.nodes["think"].error
    assert ai.requests() == []


def test_a_tool_of_no_known_kind_is_a_definition_error() -> None:
    with pytest.raises(switchboard.DefinitionError) as raised:
        switchboard.validate(agent({"prompt": "go", "tools": [{"script": "rm -rf /"}]}))
    assert "tools.0: a tool is `{node: TYPE, ...}`, `{workflow: NAME, ...}` or `{mcp: ...}`" in str(raised.value)


async def test_a_provider_error_fails_the_agent_node(ai: FakeOpenAI, fake_http: FakeHTTP) -> None:
    ai.reply(Reply(400, {"error": {"message": "tools are not supported by this model"}}))
    result = await switchboard.arun(
        agent({"prompt": "go", "tools": [{"node": "text.template"}]}),
        credential_resolver=resolver(fake_http),
        record=False,
    )
    assert result.status == "failed"
    assert "tools are not supported by this model" in (result.nodes["think"].error or "")
