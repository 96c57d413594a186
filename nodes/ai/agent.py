"""ai.agent: a tool-calling loop on any OpenAI-compatible server.

The model is offered the node's ``tools``; each turn it either answers or asks for tool calls,
which run (in parallel when it asks for several), each as its own task run under the agent's
node, and their results go back to it; the loop ends with a final answer or after
``max_steps`` model calls. Tools are built once per node call from the ``tools`` entries:

* ``{node: TYPE, params: {...}, credential?}``: a node type; the params given are fixed, the
  others are the tool's arguments (from the node's Params model). The credential stays here:
  the model sees only the arguments' schema.
* ``{workflow: NAME, version?}``: a stored workflow, run as a sub-workflow (recorded,
  permission-checked); its declared inputs are the arguments, its ``outputs`` the result.
* ``{mcp: {command: [...]} | {url: URL}, include?, exclude?}``: the tools of an MCP server
  (:mod:`nodes.ai.mcp_tools`).

A tool that fails (bad arguments included) answers the model with the error, and the loop goes
on; so does a call listed in ``approve`` that a person rejects in Slack. Everything the model
sends is untrusted: arguments are parsed bounded, names must be offered tools, results sent
back are trimmed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from nodes import safe_json
from nodes.ai import mcp_tools, transport
from nodes.ai.fallback import MODELS_DESCRIPTION, Fallback, Models, first_answer
from nodes.ai.mcp_tools import McpToolSpec
from nodes.approval import MAX_TIMEOUT, ApprovalOutput, slack_ids
from nodes.context import InputTimeoutError, NodeContext
from nodes.errors import NodeConfigError, NodeError
from nodes.params import Params
from nodes.registry import REGISTRY, node
from nodes.subworkflow import WORKFLOW_NAME

#: The name a model calls a tool by (OpenAI's rule for function names).
TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_TOOLS = 64
MAX_STEPS = 50
#: Tool calls one model reply may ask for; the rest are answered with an error.
MAX_CALLS_PER_STEP = 16
#: Characters of a tool's result sent back to the model (the rest is cut, and it is told so).
MAX_RESULT_CHARS = 16_000
#: Characters of a tool's result kept in the node's ``steps`` (a preview).
PREVIEW_CHARS = 300
#: The largest arguments a model may send for one call.
MAX_ARGUMENT_BYTES = 256 * 1024
#: Node types that cannot be tools: they pause the run, call workflows, or are agents themselves.
NOT_TOOLS = frozenset({"ai.agent", "core.approval", "core.workflow", "core.wait"})


class _Tool(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, description="What the model calls the tool (default from the type).")
    description: str | None = Field(default=None, max_length=2_000, description="What the tool does, for the model.")
    retries: int = Field(default=0, ge=0, le=10, description="Retries of a call that fails transiently.")
    timeout: float | None = Field(default=60.0, gt=0, le=3_600, description="Seconds one call may take.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and not TOOL_NAME.match(value):
            raise ValueError("a tool name is 1-64 letters, digits, `_` or `-`")
        return value


class NodeToolSpec(_Tool):
    node: str = Field(description="The node type the tool runs (e.g. github.get_file).")
    params: dict[str, Any] = Field(default_factory=dict, description="Fixed params; the model fills the others.")
    credential: str | None = Field(default=None, description="The stored credential the node uses.")


class WorkflowToolSpec(_Tool):
    workflow: str = Field(pattern=WORKFLOW_NAME, max_length=100, description="The stored workflow the tool runs.")
    version: int | None = Field(default=None, ge=1, description="A stored version (default: the latest).")
    timeout: float | None = Field(default=600.0, gt=0, le=24 * 3_600, description="Seconds one call may take.")


class AgentParams(Params):
    prompt: str = Field(min_length=1, description="The user message: what the agent is asked to do.")
    system: str | None = Field(default=None, description="A system message placed first.")
    model: Models = Field(default="gpt-4o-mini", description=MODELS_DESCRIPTION)
    tools: list[NodeToolSpec | WorkflowToolSpec | McpToolSpec] = Field(
        default_factory=list,
        max_length=MAX_TOOLS,
        description="What the agent may call: `{node: TYPE, params, credential}`, `{workflow: NAME, version}` or "
        "`{mcp: {command: [...]} | {url, credential}, include, exclude, prefix}`.",
    )
    max_steps: int = Field(default=8, ge=1, le=MAX_STEPS, description="Most model calls before giving up.")
    output_schema: dict[str, Any] | None = Field(
        default=None, description="JSON Schema of the final answer; the parsed answer is `json`."
    )
    memory_session: str | None = Field(
        default=None, description="Continue this chat memory session: earlier turns are sent, this turn is kept."
    )
    temperature: float | None = Field(default=None, ge=0, le=2, description="Sampling temperature.")
    approve: list[str] = Field(
        default_factory=list, description="Tool names whose calls wait for a person's approval in Slack first."
    )
    approvers: list[str] = Field(
        default_factory=list,
        description="Who may approve those calls (as core.approval's `approvers`; empty: the workflow's).",
    )
    approval_timeout: int = Field(
        default=3600, ge=1, le=MAX_TIMEOUT, description="Seconds to wait for an approval; then the call is refused."
    )

    @field_validator("approvers")
    @classmethod
    def _slack_ids(cls, approvers: list[str]) -> list[str]:
        return slack_ids(approvers)

    @model_validator(mode="before")
    @classmethod
    def _tool_kinds(cls, data: Any) -> Any:
        """Say which kind of tool an entry is meant to be, not both unions' complaints."""
        tools = data.get("tools") if isinstance(data, dict) else None
        if isinstance(tools, list):
            for index, entry in enumerate(tools):
                if not isinstance(entry, dict) or len({"node", "workflow", "mcp"} & set(entry)) != 1:
                    raise ValueError(
                        f"tools.{index}: a tool is `{{node: TYPE, ...}}`, `{{workflow: NAME, ...}}` or `{{mcp: ...}}`"
                    )
        return data


class Step(BaseModel):
    step: int = Field(description="The model call (1-based) that asked for the tool call.")
    tool: str = Field(description="The tool called.")
    arguments: Any = Field(description="The arguments the model gave.")
    result: str = Field(description="A preview of what the tool returned (or its error).")
    status: str = Field(description="ok, error or rejected.")
    duration_ms: float = Field(description="How long the call took.")


class AgentOutput(BaseModel):
    text: str = Field(description="The final answer's text.")
    json_: Any = Field(default=None, alias="json", description="The parsed final answer, with `output_schema`.")
    steps: list[Step] = Field(description="Every tool call, in the order they were asked for.")
    usage: dict[str, int] = Field(description="Token usage summed over the agent's model calls.")
    model: str = Field(description="The model that gave the final answer.")
    fallbacks: list[Fallback] = Field(default_factory=list, description="Models passed over (transient failures).")
    model_calls: int = Field(description="How many model calls the agent made.")

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


@dataclasses.dataclass
class Tool:
    """One tool as the model sees it, and how to call it."""

    name: str
    description: str
    parameters: dict[str, Any]
    invoke: Callable[[dict[str, Any]], Awaitable[Any]]
    retries: int = 0
    timeout: float | None = None

    def schema(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }


class ToolArgumentsError(NodeError):
    """The model's arguments do not fit the tool (sent back to it to correct)."""


def _default_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text)[:64]


def _node_tool(ctx: NodeContext, spec: NodeToolSpec, index: int) -> Tool:
    where = f"tools.{index}"
    if spec.node in NOT_TOOLS:
        raise NodeConfigError(f"{where}: {spec.node} cannot be a tool (use `workflow:` for stored workflows)")
    try:
        node_spec = REGISTRY.get(spec.node)
    except LookupError as exc:
        raise NodeConfigError(f"{where}: {exc}") from None
    if node_spec.wants_upstream or node_spec.ports is not None:
        raise NodeConfigError(f"{where}: {spec.node} joins or branches a workflow; it cannot be a tool")
    if node_spec.credential and not spec.credential:
        raise NodeConfigError(f"{where}: {spec.node} needs `credential:` (a stored {node_spec.credential} credential)")
    fixed = dict(spec.params)
    unknown = sorted(set(fixed) - set(node_spec.params_model.model_fields))
    if unknown:
        raise NodeConfigError(f"{where}.params: {spec.node} has no param(s) {', '.join(unknown)}")
    schema = node_spec.params_schema()
    properties = {k: v for k, v in (schema.get("properties") or {}).items() if k not in fixed}
    parameters: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "required": [k for k in schema.get("required") or [] if k not in fixed],
        "additionalProperties": False,
    }
    if "$defs" in schema:
        parameters["$defs"] = schema["$defs"]
    name = spec.name or _default_name(spec.node)
    tool_ctx = dataclasses.replace(
        ctx,
        node_id=f"{ctx.node_id}.{name}",
        credential_name=spec.credential,
        credential_kind=node_spec.credential,
        upstream={},
        tool_runner=None,
    )

    async def invoke(arguments: dict[str, Any]) -> Any:
        try:
            params = node_spec.params_model.model_validate({**arguments, **fixed})
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '(arguments)'}: {err['msg']}"
                for err in exc.errors(include_url=False)
            )
            raise ToolArgumentsError(f"the arguments do not fit {spec.node}: {problems}") from None
        return await node_spec.invoke(tool_ctx, params)

    return Tool(
        name=name,
        description=spec.description or node_spec.description.strip() or spec.node,
        parameters=parameters,
        invoke=invoke,
        retries=spec.retries,
        timeout=spec.timeout,
    )


async def _workflow_tool(ctx: NodeContext, spec: WorkflowToolSpec, index: int) -> Tool:
    try:
        described = await ctx.describe_workflow(spec.workflow, version=spec.version)
    except NodeError as exc:
        raise NodeConfigError(f"tools.{index}: {exc}", node_id=ctx.node_id) from None
    version = described.get("version")

    async def invoke(arguments: dict[str, Any]) -> Any:
        ran = await ctx.run_workflow(spec.workflow, version=version, inputs=arguments)
        return {"outputs": ran.get("outputs", {}), "run_id": ran.get("run_id")}

    return Tool(
        name=spec.name or _default_name(spec.workflow),
        description=spec.description or described.get("description") or f"Run the workflow {spec.workflow}.",
        parameters=described.get("inputs") or {"type": "object", "properties": {}},
        invoke=invoke,
        retries=spec.retries,
        timeout=spec.timeout,
    )


async def _mcp_tools(ctx: NodeContext, spec: McpToolSpec, index: int, stack: contextlib.AsyncExitStack) -> list[Tool]:
    where = f"tools.{index}"
    # The session gets a stack of its own until it is up: the SDK reports a failed connection
    # by cancelling the call in progress and raising the cause when its context closes.
    server = contextlib.AsyncExitStack()
    try:
        async with asyncio.timeout(mcp_tools.CONNECT_TIMEOUT):
            session = await mcp_tools.open_session(ctx, spec.mcp, where, server)
            listed = await mcp_tools.list_tools(session)
    except BaseException as exc:
        failure: BaseException = exc
        try:
            await server.aclose()
        except BaseException as closing:
            failure = closing
        if isinstance(failure, NodeError):
            raise failure from None
        if isinstance(failure, asyncio.CancelledError):
            raise  # the node itself was cancelled
        if isinstance(failure, TimeoutError):
            raise NodeConfigError(
                f"{where}: the MCP server did not start and list its tools within {mcp_tools.CONNECT_TIMEOUT:.0f} s"
            ) from None
        raise NodeConfigError(f"{where}: could not reach the MCP server: {_reason(failure)}") from None
    stack.push_async_exit(server)
    names = {tool.name for tool in listed}
    missing = sorted(set(spec.include or []) - names)
    if missing:
        raise NodeConfigError(f"{where}.include: the server has no tool(s) {', '.join(missing)}")
    tools = []
    for tool in listed:
        if (spec.include is not None and tool.name not in spec.include) or tool.name in spec.exclude:
            continue
        tools.append(
            Tool(
                name=_default_name(f"{spec.prefix}_{tool.name}" if spec.prefix else tool.name),
                description=(tool.description or tool.name)[:2_000],
                parameters=mcp_tools.schema_of(tool),
                invoke=mcp_tools.caller(session, tool.name, spec.timeout),
                retries=spec.retries,
                timeout=spec.timeout,
            )
        )
    return tools


def _innermost(exc: BaseException) -> BaseException:
    """The first exception inside (nested) groups: the SDK wraps connection errors in task groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _reason(exc: BaseException) -> str:
    inner = _innermost(exc)
    return f"{type(inner).__name__}: {inner}"[:500]


async def build_tools(ctx: NodeContext, params: AgentParams, stack: contextlib.AsyncExitStack) -> dict[str, Tool]:
    """The node's tools by name; a problem with any entry fails the node before a model call.
    MCP sessions stay open on ``stack`` for the node's calls."""
    tools: dict[str, Tool] = {}
    for index, spec in enumerate(params.tools):
        if isinstance(spec, NodeToolSpec):
            made = [_node_tool(ctx, spec, index)]
        elif isinstance(spec, WorkflowToolSpec):
            made = [await _workflow_tool(ctx, spec, index)]
        else:
            made = await _mcp_tools(ctx, spec, index, stack)
        for tool in made:
            if tool.name in tools:
                raise NodeConfigError(f"tools.{index}: two tools are named {tool.name!r}; give one a `name:`")
            tools[tool.name] = tool
        if len(tools) > MAX_TOOLS:
            raise NodeConfigError(f"tools: more than {MAX_TOOLS} tools (use `include:` to pick an MCP server's)")
    unknown = sorted(set(params.approve) - set(tools))
    if unknown:
        raise NodeConfigError(f"approve: no tool named {', '.join(unknown)} (tools: {', '.join(tools) or 'none'})")
    return tools


def _json_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    if len(text) > MAX_RESULT_CHARS:
        return text[:MAX_RESULT_CHARS] + f"… [cut: {len(text):,} characters in all]"
    return text


def _preview(text: str) -> str:
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


class _Loop:
    """One agent node call: its messages, steps and tools."""

    def __init__(self, ctx: NodeContext, params: AgentParams, tools: dict[str, Tool]) -> None:
        self.ctx, self.params, self.tools = ctx, params, tools
        self.steps: list[Step] = []
        self.usage: dict[str, int] = {}
        self.fallbacks: list[Fallback] = []

    async def ask(self, models: Models, messages: list[dict[str, Any]], **options: Any) -> Any:
        schemas = [tool.schema() for tool in self.tools.values()]
        if schemas:
            options["tools"] = schemas
        extra = json.dumps(schemas) if schemas else ""
        response = await first_answer(
            self.ctx,
            models,
            lambda on, model: transport.chat_completion(on, model, messages, prompt_extra=extra, **options),
            self.fallbacks,
        )
        for key, count in transport.usage(response).items():
            self.usage[key] = self.usage.get(key, 0) + count
        return response

    async def call(self, step: int, call: Any) -> tuple[str, Step]:
        """Run one tool call the model asked for; returns what goes back to it, and the step."""
        started = time.perf_counter()
        name = str(getattr(call.function, "name", "") or "")[:64]
        raw = getattr(call.function, "arguments", "") or "{}"
        arguments: Any = raw
        status = "ok"
        try:
            tool = self.tools.get(name)
            if tool is None:
                raise ToolArgumentsError(f"there is no tool {name!r} (tools: {', '.join(self.tools) or 'none'})")
            try:
                arguments = safe_json.loads(raw, what="the tool arguments", max_bytes=MAX_ARGUMENT_BYTES, max_depth=32)
            except safe_json.UnsafeJSONError as exc:
                raise ToolArgumentsError(str(exc)) from None
            if not isinstance(arguments, dict):
                raise ToolArgumentsError("the arguments must be a JSON object")
            refusal = await self._approval(tool, arguments) if name in self.params.approve else None
            if refusal is not None:
                status, text = "rejected", json.dumps({"error": refusal}, ensure_ascii=False)
            else:
                try:
                    result = await self.ctx.run_tool(
                        name, functools.partial(tool.invoke, arguments), retries=tool.retries, timeout=tool.timeout
                    )
                except TimeoutError:
                    raise NodeError(f"the call took longer than its timeout ({tool.timeout} s)") from None
                text = _json_text(result)
        except NodeError as exc:
            status, text = "error", json.dumps({"error": str(exc)}, ensure_ascii=False)
        took = (time.perf_counter() - started) * 1000
        if status != "ok":
            self.ctx.logger.info("%s: tool %s %s: %s", self.ctx.node_id, name, status, _preview(text))
        shown = arguments if isinstance(arguments, dict) else _preview(str(arguments))
        return text, Step(
            step=step, tool=name, arguments=shown, result=_preview(text), status=status, duration_ms=round(took, 3)
        )

    async def _approval(self, tool: Tool, arguments: dict[str, Any]) -> str | None:
        """Ask for approval of a call in Slack: None when approved, else why it was not made."""
        shown = json.dumps(arguments, indent=2, ensure_ascii=False, default=str)
        if len(shown) > 2_500:
            shown = shown[:2_500] + "\n…"
        request = {
            "kind": "approval",
            "message": f"The agent `{self.ctx.node_id}` wants to call `{tool.name}` with:\n```{shown}```",
            "approvers": self.params.approvers,
            "allow_self": False,
            "tool": tool.name,
        }
        try:
            timeout = self.params.approval_timeout
            answer = await self.ctx.wait_for_input(ApprovalOutput, request=request, timeout=timeout)
        except InputTimeoutError:
            return f"nobody approved the call within {self.params.approval_timeout} s; it was not made"
        if answer.approved:
            return None
        why = f": {answer.comment}" if answer.comment else ""
        return f"the call was rejected by {answer.by}{why}; it was not made"


def _check_output_schema(schema: dict[str, Any] | None) -> None:
    if schema is not None:
        transport.check_schema(schema, field="output_schema")


def _final(text: str, schema: dict[str, Any] | None) -> Any:
    if schema is None:
        return None
    try:
        return transport.parse_json_reply(text, schema)
    except NodeError as exc:
        raise NodeError(str(exc).replace("json_schema", "output_schema")) from None


@node("ai.agent", credential="openai")
async def agent(ctx: NodeContext, params: AgentParams) -> AgentOutput:
    """Let a model work towards an answer with tools: node types, stored workflows.

    Each tool call is its own task run under this node (`agent.tool:<name>`); a failing tool
    answers the model with its error and the loop goes on. Calls to tools listed in `approve`
    wait for a person's approval in Slack first. The loop stops at a final answer (checked
    against `output_schema` when given) or fails after `max_steps` model calls.
    """
    _check_output_schema(params.output_schema)
    try:
        async with contextlib.AsyncExitStack() as stack:
            return await _run(ctx, params, await build_tools(ctx, params, stack))
    except BaseExceptionGroup as group:  # an MCP session that failed while the agent ran
        first = _innermost(group)
        if isinstance(first, NodeError):
            raise first from None
        raise NodeError(f"an MCP server connection failed: {_reason(first)}", node_id=ctx.node_id) from None


async def _run(ctx: NodeContext, params: AgentParams, tools: dict[str, Tool]) -> AgentOutput:
    messages = await transport.conversation(
        ctx, params.prompt, system=params.system, memory_session=params.memory_session
    )
    options: dict[str, Any] = {}
    if params.temperature is not None:
        options["temperature"] = params.temperature
    if params.output_schema is not None:
        options["response_format"] = transport.json_schema_format(params.output_schema, name="answer")
    loop = _Loop(ctx, params, tools)
    for step in range(1, params.max_steps + 1):
        response = await loop.ask(params.model, messages, **options)
        message = response.choices[0].message
        calls = list(getattr(message, "tool_calls", None) or [])
        if not calls:
            text = message.content or ""
            data = _final(text, params.output_schema)
            await transport.remember(ctx, params.memory_session, params.prompt, text)
            return AgentOutput(
                text=text,
                json=data,
                steps=loop.steps,
                usage=loop.usage,
                model=response.model,
                model_calls=step,
                fallbacks=loop.fallbacks,
            )
        messages.append(
            {
                "role": "assistant",
                "content": message.content,
                "tool_calls": [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.function.name, "arguments": call.function.arguments},
                    }
                    for call in calls
                ],
            }
        )
        answered = await asyncio.gather(*(loop.call(step, call) for call in calls[:MAX_CALLS_PER_STEP]))
        for call, (text, record) in zip(calls, answered, strict=False):
            loop.steps.append(record)
            messages.append({"role": "tool", "tool_call_id": call.id, "content": text})
        for call in calls[MAX_CALLS_PER_STEP:]:
            refused = f"at most {MAX_CALLS_PER_STEP} tool calls at once; this one was not made"
            messages.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps({"error": refused})})
    taken = ", ".join(f"{s.tool} ({s.status})" for s in loop.steps[-10:]) or "no tool calls"
    raise NodeError(
        f"no final answer after {params.max_steps} model calls (max_steps); the last tool calls: {taken}",
        node_id=ctx.node_id,
    )
