"""An ``ai.agent``'s tool calls as Prefect task runs of their own, nested under the agent's node.

A node's code never sees Prefect (it calls ``NodeContext.run_tool``); the runner hands each
node call a :class:`ToolTasks`, which runs every call as the task ``agent.tool`` with the run
name ``agent.tool:<tool>`` (``#2``, ``#3`` for later calls of the same tool in one node call,
so each call's sub-workflow, if any, has its own resume root), the tool's retries (transient
errors only, as nodes) and timeout. Called from inside the node's task run, Prefect records the
agent's task run as the parent of each tool task run. Each call is told to the run's listeners
(``tool`` events: the Slack message shows the calls as they happen).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.states import State

from flows.events import NodeEvent
from flows.services import RunState
from nodes.errors import TransientError

TASK_NAME = "agent.tool"


def _retry_only_transient(task: Any, task_run: TaskRun, state: State[Any]) -> bool:
    return isinstance(state.data, TransientError | TimeoutError)


@task(
    name=TASK_NAME,
    task_run_name="{label}",
    retry_condition_fn=_retry_only_transient,
    persist_result=False,
    cache_policy=NO_CACHE,
)
async def tool_task(label: str, call: Callable[[], Awaitable[Any]]) -> Any:
    """One tool call of an agent."""
    return await call()


@functools.lru_cache(maxsize=256)
def _variant(retries: int, timeout: float | None) -> Any:
    return tool_task.with_options(retries=retries, timeout_seconds=timeout)


@dataclass
class ToolTasks:
    """``NodeContext.tool_runner`` for one node call."""

    state: RunState
    node_id: str
    attempt: int
    calls: dict[str, int] = field(default_factory=dict)

    async def __call__(
        self, name: str, call: Callable[[], Awaitable[Any]], *, retries: int, timeout: float | None
    ) -> Any:
        count = self.calls[name] = self.calls.get(name, 0) + 1
        label = f"{TASK_NAME}:{name}" + (f" #{count}" if count > 1 else "")
        self._tell(label, name, "running")
        try:
            result = await _variant(retries, timeout)(label=label, call=call)
        except BaseException:
            self._tell(label, name, "failed")
            raise
        self._tell(label, name, "completed")
        return result

    def _tell(self, label: str, name: str, status: str) -> None:
        state = self.state
        state.emit(
            NodeEvent(
                state.run.id,
                self.node_id,
                "tool",
                label,
                self.attempt,
                flow_run_id=state.run.flow_run_id,
                request={"tool": name, "status": status},
            )
        )
