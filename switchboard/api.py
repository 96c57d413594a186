"""The Python conveniences: load, validate, run and retry workflows without holding a client.

``switchboard.run(...)`` and the other functions here use a :func:`~switchboard.client.default_client`
(settings from the environment) for one call. Applications, and every front end, hold a
:class:`switchboard.Client` with their own settings instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from flows.model import Workflow, load_definition
from flows.plan import Plan, build_plan
from flows.results import RunResult
from switchboard.client import Client, default_client
from switchboard.execution import (
    FAILURE_TRIGGER,
    NotRetryableError,
    Runnable,
    RunNotFoundError,
    WorkflowSource,
    failure_input,
    new_run_id,
)


def load(source: WorkflowSource) -> Workflow:
    """Load a workflow from a YAML/JSON path, YAML/JSON text, a dict, or a Workflow.

    Raises :class:`flows.model.DefinitionError` listing every structural problem.
    """
    return load_definition(source)


def validate(source: WorkflowSource) -> Plan:
    """Load and fully validate a workflow (types, params, references, cycles).

    Returns the plan; raises :class:`DefinitionError` listing every problem.
    """
    return build_plan(source)


async def arun(
    workflow: Runnable, inputs: Mapping[str, Any] | None = None, *, client: Client | None = None, **options: Any
) -> RunResult:
    """Run a workflow in this process and return its :class:`RunResult` (``client.runs.run``).

    Invalid definitions raise :class:`DefinitionError`; invalid inputs raise
    :class:`flows.model.InputError` — both before anything runs. A workflow that fails
    returns a result with ``status == "failed"``; it does not raise. With ``record=False``
    the run leaves no record and needs no database. ``options`` are
    :func:`switchboard.execution.run_here`'s (``trigger``, ``listeners``, ``inputs_are_text``...).
    """
    options.setdefault("trigger", "api")
    # Not opened: the run opens the database for itself (unless record=False or given an engine).
    return await (client or default_client()).runs.run(workflow, inputs, **options)


def run(workflow: Runnable, inputs: Mapping[str, Any] | None = None, **options: Any) -> RunResult:
    """Synchronous :func:`arun` (not from inside a running event loop: use ``await arun``)."""
    _refuse_inside_loop("run")
    return asyncio.run(arun(workflow, inputs, **options))


async def aretry(run_id: str, *, client: Client | None = None, **options: Any) -> RunResult:
    """Resume a failed run: same definition and inputs; completed nodes are not re-executed.

    The resumed run gets a new run id (``new_run_id``, or a fresh one). Completed nodes reuse
    their persisted outputs and are reported ``cached: true``; failed, failure-skipped and
    downstream nodes run.
    """
    return await (client or default_client()).runs.retry(run_id, **options)


def retry(run_id: str, **options: Any) -> RunResult:
    """Synchronous :func:`aretry`."""
    _refuse_inside_loop("retry")
    return asyncio.run(aretry(run_id, **options))


def _refuse_inside_loop(name: str) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise RuntimeError(f"switchboard.{name}() cannot run inside an event loop; use `await switchboard.a{name}(...)`")


__all__ = [
    "FAILURE_TRIGGER",
    "NotRetryableError",
    "RunNotFoundError",
    "aretry",
    "arun",
    "failure_input",
    "load",
    "new_run_id",
    "retry",
    "run",
    "validate",
]
