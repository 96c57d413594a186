"""Schedules -> Prefect deployments against the session's real Prefect server and a real database.

The Prefect server is shared by the whole test session: every test names its workflows
uniquely and asserts only on its own deployments.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import TaskRun
from prefect.client.schemas.responses import DeploymentResponse
from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule
from prefect.exceptions import ObjectNotFound
from typer.testing import CliRunner

from deployments.entrypoint import cleanup_flow, run_workflow_flow
from deployments.sync import ENTRYPOINT, MANAGED_TAG, WORK_POOL, deploy, deployment_name
from storage.runs import RunRecordNotFoundError, RunStore
from switchboard import default_client
from switchboard.cli import app
from switchboard.errors import WorkflowNotFoundError
from switchboard.retention import CleanupResult
from switchboard.workflows import ApplyResult
from tests.helpers.polling import apoll_until

runner = CliRunner()


class _Switchboard:
    """Each call on a client built from the environment, as the CLI and the bot build theirs."""

    WorkflowNotFoundError = WorkflowNotFoundError

    async def apply(self, source: Any) -> ApplyResult:
        async with default_client() as client:
            return await client.workflows.apply(source)

    async def deploy(self, name: str | None = None) -> Any:
        async with default_client() as client:
            return await deploy(client, name)

    async def archive(self, name: str) -> None:
        async with default_client() as client:
            await client.workflows.archive(name)


stored_workflows = _Switchboard()


async def cleanup(older_than: Any, *, actor: str) -> CleanupResult:
    async with default_client() as client:
        return await client.retention.cleanup(older_than, actor=actor)


@pytest.fixture
def database(engine: Any, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The migrated test database, configured as Switchboard's database."""
    monkeypatch.setenv("SWITCHBOARD_DATABASE_URL", database_url)
    return engine


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def definition(name: str, schedule: dict[str, Any] | None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": name,
        "description": "Greets on a schedule.",
        "inputs": {"who": {"type": "string", "required": True}, "times": {"type": "integer", "default": 1}},
        "nodes": [{"id": "greet", "type": "text.template", "params": {"template": "hello {{ inputs.who }}"}}],
    }
    if schedule is not None:
        data["schedule"] = schedule
    return data


async def read(name: str) -> DeploymentResponse:
    async with get_client() as client:
        return await client.read_deployment_by_name(f"run-workflow/{deployment_name(name)}")


async def exists(name: str) -> bool:
    async with get_client() as client:
        found = await client.read_deployments()
    return any(d.name == deployment_name(name) for d in found)


def actions(report: Any, name: str) -> list[str]:
    return [c.action for c in report.changes if c.workflow == name]


pytestmark = pytest.mark.usefixtures("prefect_server", "database")


async def test_deploy_creates_then_is_idempotent_updates_pauses_and_removes() -> None:
    name = unique("nightly")
    cron = {"cron": "0 9 * * 1-5", "timezone": "Europe/Berlin", "inputs": {"who": "team"}}
    await stored_workflows.apply(definition(name, cron))

    first = await stored_workflows.deploy(name)
    assert actions(first, name) == ["created"]
    deployment = await read(name)
    assert deployment.work_pool_name == WORK_POOL
    assert deployment.entrypoint == ENTRYPOINT
    assert MANAGED_TAG in deployment.tags
    assert deployment.parameters == {"name": name, "version": 1, "inputs": {"who": "team"}, "trigger": "schedule"}
    assert not deployment.paused
    [schedule] = deployment.schedules
    assert isinstance(schedule.schedule, CronSchedule) and schedule.active
    assert (schedule.schedule.cron, schedule.schedule.timezone) == ("0 9 * * 1-5", "Europe/Berlin")

    again = await stored_workflows.deploy(name)
    assert actions(again, name) == ["unchanged"] and not again.changed
    assert (await read(name)).updated == deployment.updated

    # A new schedule (and so a new version) updates the same deployment in place.
    await stored_workflows.apply(definition(name, {"interval": 30, "timezone": "UTC", "inputs": {"who": "ops"}}))
    updated = await stored_workflows.deploy(name)
    [change] = updated.changes
    assert change.action == "updated" and {"schedule", "parameters"} <= set(change.changed)
    after = await read(name)
    assert after.id == deployment.id
    assert after.parameters["version"] == 2 and after.parameters["inputs"] == {"who": "ops"}
    [schedule] = after.schedules
    assert isinstance(schedule.schedule, IntervalSchedule)
    assert schedule.schedule.interval == timedelta(seconds=30)
    assert actions(await stored_workflows.deploy(name), name) == ["unchanged"]

    # paused: true pauses the deployment; only the pause changed.
    await stored_workflows.apply(definition(name, {"interval": 30, "inputs": {"who": "ops"}, "paused": True}))
    paused = await stored_workflows.deploy(name)
    assert actions(paused, name) == ["updated"]  # the version parameter changed too
    assert (await read(name)).paused
    assert actions(await stored_workflows.deploy(name), name) == ["unchanged"]

    # Removing the schedule (a new version without it) removes the deployment.
    await stored_workflows.apply(definition(name, None))
    removed = await stored_workflows.deploy(name)
    assert actions(removed, name) == ["removed"]
    assert not await exists(name)
    assert (await stored_workflows.deploy(name)).changes == []


async def test_pause_alone_is_reported_as_paused_and_resumed(database: Any) -> None:
    """A deployment paused by hand in the UI is resumed: Prefect must match the definition."""
    name = unique("hourly")
    await stored_workflows.apply(definition(name, {"cron": "0 * * * *", "inputs": {"who": "x"}}))
    await stored_workflows.deploy(name)
    async with get_client() as client:
        await client.pause_deployment((await read(name)).id)
    report = await stored_workflows.deploy(name)
    assert [(c.action, c.changed) for c in report.changes] == [("resumed", ("paused",))]
    assert not (await read(name)).paused


async def test_archived_and_unknown_workflows() -> None:
    name = unique("archived")
    await stored_workflows.apply(definition(name, {"cron": "0 * * * *", "inputs": {"who": "x"}}))
    await stored_workflows.deploy(name)
    await stored_workflows.archive(name)
    assert actions(await stored_workflows.deploy(name), name) == ["removed"]
    with pytest.raises(stored_workflows.WorkflowNotFoundError):
        await stored_workflows.deploy(unique("never-stored"))


def test_cli_deploy_table_and_apply_hint(tmp_path: Path) -> None:
    name = unique("cli")
    path = tmp_path / "wf.yaml"
    path.write_text(yaml.safe_dump(definition(name, {"cron": "30 6 * * *", "inputs": {"who": "cli"}})))

    applied = runner.invoke(app, ["apply", str(path)])
    assert applied.exit_code == 0, applied.output
    assert f"run `switchboard deploy {name}`" in applied.stdout

    created = runner.invoke(app, ["deploy"])
    assert created.exit_code == 0, created.output
    row = next(line for line in created.stdout.splitlines() if name in line and "│" in line)
    assert "created" in row and "v1" in row and "cron 30 6 * * *" in row

    again = runner.invoke(app, ["deploy", name])
    assert "unchanged" in again.stdout and "in sync: nothing changed" in again.stdout

    as_json = json.loads(runner.invoke(app, ["deploy", name, "--json"]).stdout)
    assert as_json["changed"] is False
    assert [(d["workflow"], d["action"]) for d in as_json["deployments"]] == [(name, "unchanged")]

    path.write_text(yaml.safe_dump(definition(name, None)))
    redeployed = runner.invoke(app, ["apply", str(path), "--deploy"])
    assert redeployed.exit_code == 0, redeployed.output
    assert f"stored {name} v2" in redeployed.stdout
    row = next(line for line in redeployed.stdout.splitlines() if name in line and "│" in line)
    assert "removed" in row

    missing = runner.invoke(app, ["deploy", unique("nope")])
    assert missing.exit_code == 2 and "no stored workflow named" in missing.stderr


async def test_entry_flow_runs_a_stored_workflow_and_records_it(database: Any) -> None:
    name = unique("entry")
    await stored_workflows.apply(definition(name, None))
    await stored_workflows.apply(definition(name, {"interval": 60, "inputs": {"who": "v2"}}))

    result = await run_workflow_flow(name=name, version=1, inputs={"who": "world"}, trigger="schedule")

    assert result["status"] == "completed" and result["version"] == 1
    assert result["nodes"]["greet"]["output"] == {"text": "hello world"}
    record = await RunStore(database).get(result["run_id"])
    assert (record.workflow, record.version, record.trigger, record.status) == (name, 1, "schedule", "completed")
    assert record.flow_run_id == result["flow_run_id"]

    # The runner ran as a subflow of the entry flow run, its node as a Prefect task run.
    async with get_client() as client:
        flow_run = await client.read_flow_run(result["flow_run_id"])
        assert flow_run.parent_task_run_id is not None
        task_runs = await _task_runs(client, result["flow_run_id"])
    assert [t.name for t in task_runs] == ["greet"]

    latest = await run_workflow_flow(name=name, inputs={"who": "again"})
    assert latest["version"] == 2 and latest["nodes"]["greet"]["output"] == {"text": "hello again"}
    assert (await RunStore(database).get(latest["run_id"])).trigger == "deployment"


async def _task_runs(client: Any, flow_run_id: str) -> list[TaskRun]:
    # Task-run rows are written asynchronously from events, and a row's first version may
    # carry Prefect's default run name (`greet-18a`): wait for their final states.
    async def task_runs() -> list[TaskRun] | None:
        runs: list[TaskRun] = await client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[uuid.UUID(flow_run_id)]))
        )
        return runs if runs and all(r.state is not None and r.state.is_final() for r in runs) else None

    return await apoll_until(task_runs, interval=0.2, message=f"the task runs of flow run {flow_run_id}")


async def test_deploy_keeps_the_on_demand_and_the_cleanup_deployments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_CLEANUP_SCHEDULE", "15 3 * * *")
    await stored_workflows.deploy()
    async with get_client() as client:
        generic = await client.read_deployment_by_name("run-workflow/run-workflow")
        cleanup = await client.read_deployment_by_name("switchboard-cleanup/daily")
    assert (generic.work_pool_name, generic.entrypoint, generic.schedules) == (WORK_POOL, ENTRYPOINT, [])
    [schedule] = cleanup.schedules
    assert isinstance(schedule.schedule, CronSchedule)
    assert (schedule.schedule.cron, schedule.schedule.timezone) == ("15 3 * * *", "UTC")
    assert cleanup.entrypoint == "deployments.entrypoint.cleanup_flow" and cleanup.work_pool_name == WORK_POOL

    again = await stored_workflows.deploy()
    assert (again.generic, again.cleanup) == ("unchanged", "unchanged")

    monkeypatch.setenv("SWITCHBOARD_CLEANUP_SCHEDULE", "0 4 * * 0")
    assert (await stored_workflows.deploy()).cleanup == "updated"
    monkeypatch.setenv("SWITCHBOARD_CLEANUP_SCHEDULE", "off")
    assert (await stored_workflows.deploy()).cleanup == "removed"
    async with get_client() as client:
        assert not [d for d in await client.read_deployments() if d.name == "daily"]
    monkeypatch.setenv("SWITCHBOARD_CLEANUP_SCHEDULE", "15 3 * * *")
    assert (await stored_workflows.deploy()).cleanup == "created"


async def test_the_cleanup_flow_deletes_records_and_both_flow_runs_of_old_worker_runs(database: Any) -> None:
    name = unique("old")
    await stored_workflows.apply(definition(name, None))
    old = await run_workflow_flow(name=name, inputs={"who": "then"})
    async with get_client() as client:
        runner = await client.read_flow_run(old["flow_run_id"])
        parent_id = (await client.read_task_run(runner.parent_task_run_id)).flow_run_id  # type: ignore[arg-type]
    # The scenario, not a wait: the old run (its flow runs end a moment after it returns) is
    # well before the cutoff, the recent one after it.
    await asyncio.sleep(1.5)
    cutoff = datetime.now(UTC)
    await asyncio.sleep(0.5)
    recent = await run_workflow_flow(name=name, inputs={"who": "now"})

    # The scheduled flow with the default retention (30 days) deletes neither.
    assert (await cleanup_flow())["runs_deleted"] == 0
    result = await cleanup(datetime.now(UTC) - cutoff, actor="test")
    assert result.runs_deleted == 1 and not result.failed
    store = RunStore(database)
    with pytest.raises(RunRecordNotFoundError):
        await store.get(old["run_id"])
    assert (await store.get(recent["run_id"])).status == "completed"
    async with get_client() as client:
        for gone in (old["flow_run_id"], parent_id):
            with pytest.raises(ObjectNotFound):
                await client.read_flow_run(gone)
        assert (await client.read_flow_run(recent["flow_run_id"])).state.is_completed()  # type: ignore[union-attr]
