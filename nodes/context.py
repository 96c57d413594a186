"""What a running node can reach: run info, a shared HTTP client, a logger, credentials.

Node code never reads settings or environment variables; everything it may use arrives here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import httpx
from pydantic import BaseModel

from nodes.errors import NodeConfigError
from nodes.http_guard import DEFAULT_MAX_RESPONSE_BYTES


@dataclass(frozen=True)
class RunInfo:
    """The run a node belongs to (also the ``run`` name in templates)."""

    id: str
    workflow: str
    version: int | None
    trigger: str
    flow_run_id: str | None = None
    #: ``(channel, ts)`` of the run's Slack message when the bot started it (replies thread there).
    slack_thread: tuple[str, str] | None = None

    def as_template_value(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "workflow": self.workflow,
            "version": self.version,
            "trigger": self.trigger,
        }


class CredentialResolver(Protocol):
    """Resolves a credential name to its secret material for a provider kind.

    With ``rejected`` (an access token the provider just refused with 401), an OAuth
    credential is refreshed first, unless another node already replaced that token; a
    credential that cannot be refreshed raises :class:`~nodes.errors.AuthError`.
    """

    async def __call__(self, name: str, provider: str | None, *, rejected: str | None = None) -> Mapping[str, Any]: ...


class MemoryBackend(Protocol):
    """Chat memory and key-value state (``storage.memory.MemoryStore`` in Switchboard)."""

    async def append(self, session: str, role: str, content: str) -> int: ...

    async def history(self, session: str, limit: int) -> list[Any]: ...

    async def get(self, scope: str, key: str) -> tuple[bool, Any]: ...

    async def set(self, scope: str, key: str, value: Any, ttl: float | None = None) -> Any: ...

    async def incr(self, scope: str, key: str, by: float) -> Any: ...


M = TypeVar("M", bound=BaseModel)


class InputTimeoutError(Exception):
    """Nobody answered a paused run in time (raised by ``NodeContext.wait_for_input``)."""


class InputWaiter(Protocol):
    """Pauses the run until a person answers (``flows.pauses.Pauser``: Prefect's pause with
    typed input); ``request`` tells the run's listeners what is asked."""

    async def __call__(self, model: type[M], *, request: Mapping[str, Any], timeout: int) -> M: ...


class FilesBackend(Protocol):
    """The file store (``storage.files.FileStore`` in Switchboard)."""

    async def save(self, content: bytes, *, name: str, mime: str | None = None) -> dict[str, Any]: ...

    async def load(self, file_id: str) -> tuple[dict[str, Any], bytes]: ...


class WorkflowCaller(Protocol):
    """Runs a stored workflow as a child of the calling node's run (``core.workflow``).

    ``version`` None is the latest at the time of the call; returns ``{"run_id", "status",
    "outputs"}`` of the child run, or raises a :class:`~nodes.errors.NodeError` saying why it
    could not start or why it failed. :meth:`describe` says what a call would take (an
    ``ai.agent``'s workflow tools), refusing as a call would (unknown, not permitted)."""

    async def __call__(
        self, ctx: NodeContext, *, workflow: str, version: int | None, inputs: Mapping[str, Any]
    ) -> dict[str, Any]: ...

    async def describe(self, ctx: NodeContext, *, workflow: str, version: int | None) -> dict[str, Any]:
        """``{"name", "version", "description", "inputs": JSON Schema of its declared inputs}``."""
        ...


class ToolRunner(Protocol):
    """Runs one tool call of an ``ai.agent`` as its own Prefect task run under the agent's
    node (``flows.tool_tasks``), with ``retries`` (transient errors only) and ``timeout``."""

    async def __call__(
        self, name: str, call: Callable[[], Awaitable[Any]], *, retries: int, timeout: float | None
    ) -> Any: ...


class UsageMeter(Protocol):
    """Counts a run's model tokens and holds it to its budget (``flows.usage.Meter``)."""

    def before_call(self, model: str, *, prompt_tokens: int) -> None: ...

    def record(self, model: str, usage: Mapping[str, Any]) -> None: ...


@dataclass
class NodeContext:
    """Handed to every node call by the runner."""

    node_id: str
    run: RunInfo
    http: httpx.AsyncClient
    logger: logging.Logger | logging.LoggerAdapter[Any]
    attempt: int = 1
    credential_name: str | None = None
    #: Outputs of the upstream nodes that were not skipped (only for join nodes).
    upstream: Mapping[str, Any] = field(default_factory=dict)
    credential_resolver: CredentialResolver | None = None
    credential_kind: str | None = None
    memory_backend: MemoryBackend | None = None
    files_backend: FilesBackend | None = None
    #: Pauses the run for a person's answer (core.approval); set by the runner.
    input_waiter: InputWaiter | None = None
    #: The most bytes of a response body a node reads from ``http`` (the operator's
    #: SWITCHBOARD_HTTP_MAX_RESPONSE_BYTES; the guarded transport enforces it on the wire too).
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    #: Runs stored workflows as children of this run (``core.workflow``); set by Switchboard.
    workflow_caller: WorkflowCaller | None = None
    #: Counts the run's model tokens and enforces its budget; set by the runner.
    usage_meter: UsageMeter | None = None
    #: Runs an agent's tool calls as task runs; None: they run inline (tests, other callers).
    tool_runner: ToolRunner | None = None
    #: The run's guarded HTTP transport (``http``'s), for SDK clients that build their own client.
    http_transport: httpx.AsyncBaseTransport | None = None
    #: Executables an agent may start as stdio MCP servers (SWITCHBOARD_MCP_COMMANDS).
    mcp_commands: frozenset[str] = frozenset()

    def before_model_call(self, model: str, *, prompt_tokens: int) -> None:
        """Call before each model request: raises :class:`~nodes.errors.BudgetExceeded` when a
        call with about ``prompt_tokens`` of prompt would take the run past its budget."""
        if self.usage_meter is not None:
            self.usage_meter.before_call(model, prompt_tokens=prompt_tokens)

    def record_usage(self, model: str, usage: Mapping[str, Any]) -> None:
        """Call after each model response with the tokens it reported (``prompt_tokens``,
        ``completion_tokens``, ``total_tokens``): they go into the run's ``usage`` and cost."""
        if self.usage_meter is not None:
            self.usage_meter.record(model, usage)

    @property
    def memory(self) -> MemoryBackend:
        """Chat memory and key-value state; only runs with a database have them."""
        if self.memory_backend is None:
            raise NodeConfigError(
                f"node '{self.node_id}' needs Switchboard's database (memory and state), "
                "but this run was started without one",
                node_id=self.node_id,
            )
        return self.memory_backend

    @property
    def files(self) -> FilesBackend:
        """The file store; only runs with a database have it."""
        if self.files_backend is None:
            raise NodeConfigError(
                f"node '{self.node_id}' needs Switchboard's file store, but this run was started without one",
                node_id=self.node_id,
            )
        return self.files_backend

    async def run_workflow(self, workflow: str, *, version: int | None, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """Run the stored workflow ``workflow`` as a child of this run and wait for it."""
        if self.workflow_caller is None:
            raise NodeConfigError(
                f"node '{self.node_id}' runs the stored workflow '{workflow}', but this run has no "
                "database to find it in (run it recorded, from the CLI, the bot or a worker)",
                node_id=self.node_id,
            )
        return await self.workflow_caller(self, workflow=workflow, version=version, inputs=inputs)

    async def describe_workflow(self, workflow: str, *, version: int | None) -> dict[str, Any]:
        """What running the stored workflow ``workflow`` takes (see :class:`WorkflowCaller`)."""
        if self.workflow_caller is None:
            raise NodeConfigError(
                f"node '{self.node_id}' uses the stored workflow '{workflow}', but this run has no "
                "database to find it in (run it recorded, from the CLI, the bot or a worker)",
                node_id=self.node_id,
            )
        return await self.workflow_caller.describe(self, workflow=workflow, version=version)

    async def run_tool(
        self, name: str, call: Callable[[], Awaitable[Any]], *, retries: int = 0, timeout: float | None = None
    ) -> Any:
        """Await ``call()`` as one tool call: a task run of its own when the runner gives one."""
        if self.tool_runner is None:
            if timeout is None:
                return await call()
            async with asyncio.timeout(timeout):
                return await call()
        return await self.tool_runner(name, call, retries=retries, timeout=timeout)

    async def wait_for_input(self, model: type[M], *, request: Mapping[str, Any], timeout: int) -> M:
        """Pause the run until someone answers with a ``model``; raises
        :class:`InputTimeoutError` after ``timeout`` seconds."""
        if self.input_waiter is None:
            raise NodeConfigError(
                f"node '{self.node_id}' waits for an answer, but this run cannot pause "
                "(run it with Switchboard's runner)",
                node_id=self.node_id,
            )
        return await self.input_waiter(model, request=request, timeout=timeout)

    async def credential(self, *, rejected: str | None = None) -> Mapping[str, Any]:
        """The decrypted credential named by the node's ``credential`` field.

        ``rejected``: the access token the provider just refused; an OAuth credential is then
        refreshed (once across concurrent nodes). Transports do this through
        :func:`nodes.auth.with_token`; node code rarely needs it.
        """
        if not self.credential_name:
            raise NodeConfigError(
                f"node '{self.node_id}' needs a credential: set `credential:` to a stored "
                f"{self.credential_kind or ''} credential name".replace("  ", " "),
                node_id=self.node_id,
            )
        if self.credential_resolver is None:
            raise NodeConfigError(
                f"node '{self.node_id}' uses credential '{self.credential_name}', but this run has no credential store",
                node_id=self.node_id,
            )
        return await self.credential_resolver(self.credential_name, self.credential_kind, rejected=rejected)

    async def named_credential(self, name: str) -> Mapping[str, Any]:
        """A stored credential other than the node's own (an agent tool's), of any provider."""
        if self.credential_resolver is None:
            raise NodeConfigError(
                f"node '{self.node_id}' uses credential '{name}', but this run has no credential store",
                node_id=self.node_id,
            )
        return await self.credential_resolver(name, None)

    def token_of(self, credential: Mapping[str, Any]) -> tuple[str, str | None]:
        """A credential's token (or OAuth access token) and its ``base_url``, for provider clients."""
        token = credential.get("access_token") or credential.get("token")
        if not token:
            raise NodeConfigError(
                f"credential '{self.credential_name}' has no token or access_token", node_id=self.node_id
            )
        base_url = credential.get("base_url")
        return str(token), str(base_url) if base_url else None

    async def api_key(self) -> tuple[str, str | None]:
        """The credential's token (or OAuth access token) and its ``base_url``."""
        return self.token_of(await self.credential())
