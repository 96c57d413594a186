"""`switchboard cleanup`: old run records and their Prefect flow runs go, recent and running stay."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from storage.audit import entries
from storage.db import sessionmaker
from storage.models import RunRow, utcnow
from storage.runs import RunRecordNotFoundError, RunStore
from switchboard.cli import app
from switchboard.retention import parse_age

pytestmark = pytest.mark.both_databases  # retention deletes, on both backends

runner = CliRunner()


@flow(name="cleanup-test")
def placeholder() -> None:
    """Only its flow runs are used: created through the API, never executed."""


async def invoke(*args: str) -> Any:
    """The CLI in a thread: it runs its own event loop."""
    return await asyncio.to_thread(runner.invoke, app, ["cleanup", *args])


async def flow_run() -> str:
    async with get_client() as client:
        return str((await client.create_flow_run(placeholder, name=f"cleanup-{uuid.uuid4().hex[:6]}")).id)


async def flow_run_exists(flow_run_id: str) -> bool:
    async with get_client() as client:
        try:
            await client.read_flow_run(UUID(flow_run_id))
        except ObjectNotFound:
            return False
        return True


async def add_run(
    store: RunStore, *, ended_ago: timedelta | None, started_ago: timedelta, flow_run_id: str | None
) -> str:
    """A run record with the given age; ``ended_ago`` None: still running."""
    run_id = uuid.uuid4().hex
    await store.started(
        run_id=run_id,
        flow_run_id=flow_run_id,
        workflow="old-news",
        version=1,
        trigger="cli",
        triggered_by="cli:test",
        inputs={},
    )
    if ended_ago is not None:
        await store.finished(run_id, status="completed", error=None)
    now = utcnow()
    async with sessionmaker(store.engine)() as session, session.begin():
        await session.execute(
            update(RunRow)
            .where(RunRow.id == run_id)
            .values(started_at=now - started_ago, ended_at=now - ended_ago if ended_ago is not None else None)
        )
    return run_id


async def exists(store: RunStore, run_id: str) -> bool:
    try:
        await store.get(run_id)
    except RunRecordNotFoundError:
        return False
    return True


@pytest.mark.usefixtures("prefect_server")
async def test_old_runs_go_from_both_places_recent_and_running_ones_stay(
    engine: AsyncEngine, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWITCHBOARD_DATABASE_URL", database_url)
    monkeypatch.delenv("SWITCHBOARD_RETENTION_DAYS", raising=False)
    store = RunStore(engine)
    day = timedelta(days=1)
    old_flow_runs = [await flow_run(), await flow_run()]
    old = [
        await add_run(store, ended_ago=40 * day, started_ago=40 * day, flow_run_id=old_flow_runs[0]),
        await add_run(store, ended_ago=31 * day, started_ago=32 * day, flow_run_id=old_flow_runs[1]),
        await add_run(store, ended_ago=45 * day, started_ago=45 * day, flow_run_id=None),
    ]
    recent_flow_run, running_flow_run = await flow_run(), await flow_run()
    recent = await add_run(store, ended_ago=day, started_ago=day, flow_run_id=recent_flow_run)
    # Started long ago, never ended: kept whatever its age.
    running = await add_run(store, ended_ago=None, started_ago=60 * day, flow_run_id=running_flow_run)
    audits_before = len(await entries(engine, limit=1000))

    dry = await invoke("--older-than", "30d", "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout) | {"cutoff": None} == {
        "cutoff": None,
        "dry_run": True,
        "runs_deleted": 3,
        "flow_runs_deleted": 2,
        "flow_runs_missing": 0,
        "failed": [],
        "running_kept": 1,
    }
    assert all([await exists(store, r) for r in [*old, recent, running]])
    assert all([await flow_run_exists(f) for f in [*old_flow_runs, recent_flow_run, running_flow_run]])
    assert len(await entries(engine, limit=1000)) == audits_before, "a dry run changes nothing"

    text = await invoke()  # SWITCHBOARD_RETENTION_DAYS defaults to 30
    assert text.exit_code == 0, text.output
    assert "deleted 3 run record(s) and 2 Prefect flow run(s) that ended before" in text.stdout
    assert "kept 1 older run(s) still marked running" in text.stdout
    assert [await exists(store, r) for r in old] == [False, False, False]
    assert [await flow_run_exists(f) for f in old_flow_runs] == [False, False]
    assert await exists(store, recent) and await exists(store, running)
    assert await flow_run_exists(recent_flow_run) and await flow_run_exists(running_flow_run)

    after = await entries(engine, limit=1000)
    assert len(after) == audits_before + 1
    audit = after[0]
    assert (audit.action, audit.target, audit.actor[:4]) == ("cleanup", "3 run record(s)", "cli:")
    assert audit.detail["runs_deleted"] == 3 and set(audit.detail["run_ids"]) == set(old)

    again = json.loads((await invoke("--json")).stdout)
    assert (again["runs_deleted"], again["flow_runs_deleted"]) == (0, 0)
    assert len(await entries(engine, limit=1000)) == audits_before + 1, "nothing deleted, nothing audited"


@pytest.mark.usefixtures("prefect_server")
async def test_age_units_the_setting_and_flow_runs_already_gone(
    engine: AsyncEngine, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWITCHBOARD_DATABASE_URL", database_url)
    store = RunStore(engine)
    gone_flow_run = await flow_run()
    hours_old = await add_run(
        store, ended_ago=timedelta(hours=13), started_ago=timedelta(hours=14), flow_run_id=gone_flow_run
    )
    fresh = await add_run(store, ended_ago=timedelta(minutes=30), started_ago=timedelta(minutes=31), flow_run_id=None)
    async with get_client() as client:
        await client.delete_flow_run(UUID(gone_flow_run))

    monkeypatch.setenv("SWITCHBOARD_RETENTION_DAYS", "1")
    assert json.loads((await invoke("--json")).stdout)["runs_deleted"] == 0, "13 hours is less than 1 day"

    result = json.loads((await invoke("--older-than", "12h", "--json")).stdout)
    assert (result["runs_deleted"], result["flow_runs_deleted"], result["flow_runs_missing"]) == (1, 0, 1)
    assert not await exists(store, hours_old) and await exists(store, fresh)

    result = json.loads((await invoke("--older-than", "20m", "--json")).stdout)
    assert result["runs_deleted"] == 1 and not await exists(store, fresh)


def test_ages_parse_and_bad_ones_are_usage_errors() -> None:
    assert parse_age("30d") == timedelta(days=30)
    assert parse_age("12h") == timedelta(hours=12)
    assert parse_age("90m") == timedelta(minutes=90)
    assert parse_age("2w") == timedelta(weeks=2)
    for bad in ("30", "0d", "-1d", "1y", "d"):
        with pytest.raises(ValueError, match="use a positive number with d, h or m"):
            parse_age(bad)
    result = runner.invoke(app, ["cleanup", "--older-than", "soon"])
    assert result.exit_code == 2 and "'soon' is not an age" in result.output
