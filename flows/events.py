"""What a run tells its listeners while it executes: one :class:`NodeEvent` per step.

Listeners are plain callables (the CLI's progress lines, the bot's live Slack message, the
approval poster); a listener that raises is logged and skipped, never fails the run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from flows.results import NodeResult

#: ``run_started`` comes once per run, before any node, with the Prefect flow-run id (its
#: ``node_id`` and ``label`` are empty); the others come per node (or ``for_each`` item).
#: ``waiting``: the node paused the flow run for a person's answer (``request`` says what).
#: ``tool``: an ``ai.agent`` node's tool call started or ended (``request``: ``{tool, status}``
#: with status running, completed or failed; ``label`` is its task run's name).
EventKind = Literal["run_started", "started", "retrying", "waiting", "tool", "finished"]


@dataclass(frozen=True)
class NodeEvent:
    """Progress of one node, delivered to run listeners (CLI progress, Slack threads)."""

    run_id: str
    node_id: str
    kind: EventKind
    label: str
    attempt: int = 0
    result: NodeResult | None = None
    flow_run_id: str | None = None
    #: For ``waiting``: what is asked (``core.approval``: message, approvers, allow_self,
    #: timeout) and the pause ``key`` an answer must name (``flows.pauses.answer``).
    request: dict[str, Any] | None = None


Listener = Callable[[NodeEvent], None]
