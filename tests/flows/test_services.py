"""One registry entry per run, one lifetime: nothing of a finished run stays in the process."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

import switchboard
from flows.runner import WorkflowFailed, run_workflow
from flows.services import RunServices, runs

pytestmark = pytest.mark.usefixtures("prefect_server")


@switchboard.node("test.explode")
async def explode(ctx: switchboard.NodeContext) -> dict[str, Any]:
    """Raise a bug-like error (test only)."""
    raise RuntimeError("boom")


def _workflow(node_type: str = "core.set") -> dict[str, Any]:
    params: dict[str, Any] = {"values": {"a": 1}} if node_type == "core.set" else {}
    return {"name": "services-test", "nodes": [{"id": "step", "type": node_type, "params": params}]}


async def test_runs_through_the_api_leave_no_entry_behind() -> None:
    before = len(runs)
    completed = await switchboard.arun(_workflow())
    failed = await switchboard.arun(_workflow("test.explode"))
    assert (completed.status, failed.status) == ("completed", "failed")
    assert failed.nodes["step"].error == "RuntimeError: boom"
    assert len(runs) == before
    assert completed.run_id not in runs and failed.run_id not in runs


async def test_a_registered_run_hands_its_result_to_the_caller_once() -> None:
    run_id = uuid.uuid4().hex
    seen: list[str] = []
    runs.register(run_id, RunServices(listeners=[lambda event: seen.append(event.kind)]))
    output = await run_workflow(definition=_workflow(), inputs={}, run_id=run_id)
    assert output["status"] == "completed"
    assert run_id in runs, "the result waits for the caller that registered the run"
    result = runs.take_result(run_id)
    assert result is not None and result.nodes["step"].output == {"a": 1}
    assert seen[0] == "run_started" and seen[-1] == "finished"
    assert runs.take_result(run_id) is None and run_id not in runs


async def test_a_run_nobody_registered_runs_with_defaults_and_leaves_nothing() -> None:
    """What a worker does: the deployment's flow starts a run no caller registered."""
    run_id = uuid.uuid4().hex
    output = await run_workflow(definition=_workflow(), inputs={}, run_id=run_id)
    assert output["nodes"]["step"]["output"] == {"a": 1}
    assert run_id not in runs

    failing = uuid.uuid4().hex
    with pytest.raises(WorkflowFailed, match="boom"):
        await run_workflow(definition=_workflow("test.explode"), inputs={}, run_id=failing)
    assert failing not in runs


async def test_a_flow_that_fails_before_its_nodes_still_frees_its_entry() -> None:
    run_id = uuid.uuid4().hex
    runs.register(run_id, RunServices())
    with pytest.raises(Exception, match="unknown node type"):
        await run_workflow(definition=_workflow("no.such.node"), inputs={}, run_id=run_id)
    assert runs.take_result(run_id) is None
    assert run_id not in runs


def test_a_run_id_registers_once_and_unknown_runs_are_named() -> None:
    run_id = uuid.uuid4().hex
    runs.register(run_id, RunServices())
    try:
        with pytest.raises(ValueError, match="already registered"):
            runs.register(run_id, RunServices())
        with pytest.raises(RuntimeError, match=f"run {run_id} is not executing in this process"):
            runs.state(run_id)
    finally:
        runs.take_result(run_id)
    assert run_id not in runs
