"""The per-run services and the one registry of runs executing in this process.

A run needs process-local things that cannot travel as flow parameters: the HTTP guard's
allow list, the credential resolver, listeners, the recorder, memory and file backends. An
in-process caller (``switchboard.execution``) registers them under the run id before it
calls the flow; a flow started by a worker finds none and runs with the defaults.

Every run executing here has exactly one :class:`ActiveRun` in :data:`runs`, from
registration (or the flow's start) until the caller takes the result (or the flow ends): the
services, the executing state the node tasks read, and the result are its fields, so one
run's state has one owner and one lifetime, and nothing of a finished run stays behind.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from flows import rate_limits
from flows.events import Listener, NodeEvent
from flows.expressions import DEFAULT_LIMITS, RenderLimits
from flows.plan import Plan
from flows.results import RunResult
from flows.usage import DEFAULT_PRICES, Meter, PriceTable
from nodes.context import CredentialResolver, FilesBackend, MemoryBackend, RunInfo, WorkflowCaller
from nodes.http_guard import DEFAULT_MAX_RESPONSE_BYTES, AllowList

logger = logging.getLogger("switchboard.runner")

#: Default bound on node tasks running at once in one run.
DEFAULT_MAX_PARALLEL = 64


class RunRecorder(Protocol):
    """Where a run's record goes (``storage.runs.RunStore`` in Switchboard): written when the
    run starts and when it ends, never per node."""

    async def started(
        self,
        *,
        run_id: str,
        flow_run_id: str | None,
        workflow: str,
        version: int | None,
        trigger: str,
        triggered_by: str | None,
        inputs: dict[str, Any],
        resumed_from: str | None = None,
        parent_run_id: str | None = None,
    ) -> None: ...

    async def finished(
        self, run_id: str, *, status: str, error: str | None, result: Mapping[str, Any] | None = None
    ) -> None: ...


class RunRecordError(RuntimeError):
    """The run record could not be written (the database is down or refused)."""


@dataclass
class RunServices:
    """Process-local things a run needs that cannot travel as flow parameters."""

    allow_hosts: AllowList = field(default_factory=AllowList)
    #: The most bytes of a response body the run's HTTP client reads (SWITCHBOARD_HTTP_MAX_RESPONSE_BYTES).
    http_max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    credential_resolver: CredentialResolver | None = None
    listeners: list[Listener] = field(default_factory=list)
    template_env: dict[str, str] = field(default_factory=dict)
    #: At most this many node tasks run at once in one run (for_each items included).
    max_parallel: int = DEFAULT_MAX_PARALLEL
    #: A plan already built by the caller (saves planning twice in-process).
    plan: Plan | None = None
    #: Records the run in Switchboard's database; None for unrecorded runs (benchmarks).
    recorder: RunRecorder | None = None
    #: Who started the run (a Slack user id, ``cli:<user>``), for the record and the audit log.
    triggered_by: str | None = None
    #: Chat memory and key-value state for the memory.* and state.* nodes.
    memory: MemoryBackend | None = None
    #: The file store for nodes that produce or read files.
    files: FilesBackend | None = None
    #: Where per-credential rate limits are kept (``flows.rate_limits``): auto, prefect, local, off.
    rate_limits: rate_limits.Backend = "auto"
    #: ``(channel, ts)`` of the run's Slack message (runs the bot started), for ``thread: run``.
    slack_thread: tuple[str, str] | None = None
    #: How long a node's templates may render and how large what they build may be
    #: (``SWITCHBOARD_TEMPLATE_TIMEOUT`` / ``SWITCHBOARD_TEMPLATE_MAX_SIZE``); a node's own
    #: ``timeout`` shortens the time.
    render_limits: RenderLimits = DEFAULT_LIMITS
    #: Runs the stored workflows a ``core.workflow`` node calls (None: the run has no database).
    workflow_caller: WorkflowCaller | None = None
    #: The run whose ``core.workflow`` node started this one, for the record.
    parent_run_id: str | None = None
    #: Model prices for the run's usage cost and ``budget: {usd}`` (SWITCHBOARD_PRICES).
    prices: PriceTable = DEFAULT_PRICES
    #: Executables an ``ai.agent`` may start as stdio MCP servers (SWITCHBOARD_MCP_COMMANDS).
    mcp_commands: frozenset[str] = frozenset()
    #: The meter of the run that started this one as a sub-workflow: what this run spends is
    #: counted there too, and that run's budget holds this one.
    usage_parent: Meter | None = None


@dataclass
class RunState:
    """What the node tasks of an executing run share: its plan, identity and HTTP client."""

    services: RunServices
    plan: Plan
    run: RunInfo
    http: httpx.AsyncClient
    #: ``http``'s guarded transport, lent to SDK clients that build their own (MCP over HTTP).
    transport: httpx.AsyncBaseTransport | None = None
    #: Attempts so far per task label (a node, or ``node[i]`` for a ``for_each`` item).
    attempts: dict[str, int] = field(default_factory=dict)
    #: One pause (``core.approval``) at a time: a flow run has one state.
    pause_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    #: What the run's model calls spent, and its budget.
    meter: Meter = field(default_factory=Meter)

    def emit(self, event: NodeEvent) -> None:
        """Tell every listener; a listener that raises is logged, the run goes on."""
        for listener in self.services.listeners:
            try:
                listener(event)
            except Exception:
                logger.exception("run listener failed on %s", event)


@dataclass
class ActiveRun:
    """One run in this process, from registration to the caller taking its result."""

    services: RunServices
    #: Registered by an in-process caller, who takes the result; else the flow's own entry.
    registered: bool
    #: Set while the flow executes the plan.
    state: RunState | None = None
    #: Set when the flow finished with a result, for a registered caller.
    result: RunResult | None = None


class RunRegistry:
    """The runs of this process, by run id (one entry per run, one lifetime)."""

    def __init__(self) -> None:
        self._runs: dict[str, ActiveRun] = {}

    def register(self, run_id: str, services: RunServices) -> None:
        """Attach process-local services to a run about to start in this process; the caller
        must call :meth:`take_result` afterwards, whatever happened (it frees the entry)."""
        if run_id in self._runs:
            raise ValueError(f"run {run_id} is already registered in this process")
        self._runs[run_id] = ActiveRun(services=services, registered=True)

    @contextmanager
    def executing(self, run_id: str) -> Iterator[ActiveRun]:
        """The run's entry while its flow executes (made here for a run nobody registered);
        the flow's own entry is gone when it ends, a registered one waits for its caller."""
        entry = self._runs.get(run_id)
        if entry is None:
            entry = self._runs[run_id] = ActiveRun(services=RunServices(), registered=False)
        try:
            yield entry
        finally:
            entry.state = None
            if not entry.registered:
                self._runs.pop(run_id, None)

    def state(self, run_id: str) -> RunState:
        """The executing state of a run (for its node tasks)."""
        entry = self._runs.get(run_id)
        if entry is None or entry.state is None:
            raise RuntimeError(f"run {run_id} is not executing in this process")
        return entry.state

    def take_result(self, run_id: str) -> RunResult | None:
        """The result of a registered run, once; its entry is gone afterwards."""
        entry = self._runs.pop(run_id, None)
        return entry.result if entry is not None else None

    def __len__(self) -> int:
        return len(self._runs)

    def __contains__(self, run_id: object) -> bool:
        return run_id in self._runs


#: The runs executing in this process.
runs = RunRegistry()
