"""``/mcp`` on the bot's server: Switchboard's exposed workflows as an MCP server over
streamable HTTP (:mod:`switchboard.mcp_server`), for API tokens with ``run`` scope.

Every request presents ``Authorization: Bearer sbt_...`` and is authenticated, rate-limited
and audited exactly as an ``/api/v1`` call (:mod:`bot.api.callers`): no token or a bad one is
401, a token without ``run`` scope 403. The tools listed are the workflows marked
``expose: [mcp]`` that the token covers and its owner may run; a call starts the run as the
bot starts any unattended run (here or on workers), recorded with trigger ``mcp`` and
the token's owner (``slack:U…``, else ``api:<token>``) as ``triggered_by``, and answers when
it ended. The SDK's session manager runs stateless with JSON responses: no session lives in
this process, so any bot replica answers any request.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextvars import ContextVar
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from bot.api.callers import Caller, RateLimiter, authenticate
from bot.api.errors import ApiError
from bot.runtime import BotRuntime, workflow_of
from flows.model import InputError
from switchboard.errors import RunRecordNotFoundError
from switchboard.execution import new_run_id
from switchboard.mcp_server import MCP_TRIGGER, ExposedWorkflow, ToolCallError, ToolRun, build_server, exposed

MCP_PATH = "/mcp"
_CALLER: ContextVar[Caller] = ContextVar("switchboard_mcp_caller")


class McpEndpoint:
    """The ASGI app at ``/mcp``; :meth:`running` is its part of the server's lifespan."""

    def __init__(self, runtime: BotRuntime) -> None:
        from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

        self.runtime = runtime
        self.limiter = RateLimiter(runtime.settings.api_rate_limit)
        self.server = build_server(self._list, self._run)
        self.manager = StreamableHTTPSessionManager(app=self.server, stateless=True, json_response=True)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        async with self.manager.run():
            yield

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            caller = await authenticate(request, self.runtime, self.limiter)
            caller.require_scope("run", "the MCP server")
        except ApiError as exc:
            body = {"error": {"code": exc.code, "message": exc.message}}
            await JSONResponse(body, status_code=exc.status, headers=exc.headers)(scope, receive, send)
            return
        bound = _CALLER.set(caller)
        try:
            await self.manager.handle_request(scope, receive, send)
        finally:
            _CALLER.reset(bound)

    async def _list(self) -> list[ExposedWorkflow]:
        caller = _CALLER.get()
        found = []
        for summary in await self.runtime.core.workflows.list():
            policy = await caller.readable(summary.name)
            if policy is None or not exposed(policy):
                continue
            if caller.access is not None and not await caller.access.may_run(policy):
                continue
            found.append(ExposedWorkflow(summary.name, policy))
        return found

    async def _run(self, item: ExposedWorkflow, arguments: dict[str, Any]) -> ToolRun:
        caller, runtime = _CALLER.get(), self.runtime
        stored = await runtime.core.workflows.get(item.name)
        try:
            inputs = workflow_of(stored).resolve_inputs(arguments)
        except InputError as exc:
            problems = "; ".join(str(problem) for problem in exc.problems)
            raise ToolCallError(f"invalid arguments for {item.name}: {problems}") from None
        run_id = new_run_id()
        started = await runtime.start_unattended(
            stored, inputs, trigger=MCP_TRIGGER, triggered_by=caller.actor, run_id=run_id, user=caller.token.owner
        )
        # Shielded: a client that hangs up stops waiting, not the run.
        with contextlib.suppress(Exception):
            await asyncio.shield(started.task)
        try:
            record = await runtime.core.runs.get(run_id)
        except RunRecordNotFoundError:
            raise ToolCallError(f"the run of {item.name} did not start (run {run_id}); see the bot's log") from None
        result = await runtime.core.runs.result(run_id) or {}
        return ToolRun(run_id, record.status, dict(result.get("outputs") or {}), record.error)
