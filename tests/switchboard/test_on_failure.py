"""`on_failure`: a failed run starts the named stored workflow with the failure as its input."""

from __future__ import annotations

import logging
from typing import Any

import pytest

import switchboard
from storage.audit import entries
from storage.runs import RunStore
from storage.workflows import WorkflowStore

HANDLER: dict[str, Any] = {
    "name": "notify-oncall",
    "inputs": {"failure": {"type": "object", "required": True}},
    "nodes": [
        {
            "id": "page",
            "type": "text.template",
            "params": {"template": "{{ inputs.failure.workflow }} failed at {{ inputs.failure.failed_nodes | list }}"},
        }
    ],
}


def failing(on_failure: str) -> dict[str, Any]:
    return {
        "name": "deploy-api",
        "on_failure": on_failure,
        "nodes": [
            {"id": "build", "type": "text.template", "params": {"template": "built"}},
            {"id": "ship", "type": "core.fail", "needs": ["build"], "params": {"message": "registry down"}},
        ],
    }


pytestmark = pytest.mark.usefixtures("prefect_server")


async def test_a_failed_run_starts_its_on_failure_workflow_with_the_failure(engine: Any) -> None:
    store = WorkflowStore(engine)
    await store.apply(HANDLER, actor="test")
    stored = (await store.apply(failing("notify-oncall"), actor="test")).version

    result = await switchboard.arun(failing("notify-oncall"), version=stored, engine=engine)

    assert result.status == "failed"
    records = await RunStore(engine).list(limit=10)
    (handled,) = [r for r in records if r.workflow == "notify-oncall"]
    assert (handled.trigger, handled.triggered_by, handled.status) == (
        "on_failure",
        f"on_failure:{result.run_id}",
        "completed",
    )
    failure = handled.inputs["failure"]
    assert (failure["run_id"], failure["workflow"], failure["status"]) == (result.run_id, "deploy-api", "failed")
    assert failure["failed_nodes"] == {"ship": "registry down"} and "registry down" in failure["error"]
    output = (await RunStore(engine).result(handled.id) or {})["nodes"]["page"]["output"]
    assert output == {"text": "deploy-api failed at ['ship']"}


async def test_a_handler_that_fails_itself_does_not_start_a_chain(engine: Any) -> None:
    # Its own handler (it accepts a failure): one handler run, which fails too, and no more.
    looping = failing("deploy-api") | {"inputs": {"failure": {"type": "object"}}}
    await WorkflowStore(engine).apply(looping, actor="test")

    result = await switchboard.arun(looping, engine=engine)

    assert result.status == "failed"
    records = await RunStore(engine).list(limit=10)
    assert sorted(r.trigger for r in records) == ["api", "on_failure"]  # the handler ran once, no more


async def test_a_missing_handler_is_logged_and_audited(engine: Any, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="switchboard.execution"):
        result = await switchboard.arun(failing("nobody-home"), engine=engine)
    assert result.status == "failed" and result.error
    assert "on_failure workflow 'nobody-home' did not start" in caplog.text
    (entry,) = [e for e in await entries(engine, limit=10) if e.action == "on-failure-not-started"]
    assert (entry.actor, entry.target) == (f"on_failure:{result.run_id}", "nobody-home")


def test_on_failure_must_name_a_workflow() -> None:
    with pytest.raises(switchboard.DefinitionError, match="on_failure"):
        switchboard.validate(failing("Not A Name"))
