"""The database going away in the middle of a run (a real Postgres database made unreachable)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

import switchboard
from storage.db import create_engine
from storage.migrate import upgrade
from storage.runs import RunRecord
from tests.conftest import _postgres_admin, create_postgres_database, drop_postgres_database
from tests.helpers.polling import apoll_until


@pytest.fixture
async def postgres_url(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[str, str]]:
    name, url = await create_postgres_database("sb_fault")
    engine = create_engine(url)
    await upgrade(engine)
    await engine.dispose()
    monkeypatch.setenv("SWITCHBOARD_DATABASE_URL", url)
    try:
        yield url, name
    finally:
        await _postgres_admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await drop_postgres_database(name)


@pytest.mark.usefixtures("prefect_server")
async def test_a_run_whose_database_goes_away_fails_clearly_and_is_reconciled(postgres_url: tuple[str, str]) -> None:
    _, name = postgres_url
    definition = {"name": "outage", "nodes": [{"id": "slow", "type": "core.wait", "params": {"seconds": 3}}]}
    run = asyncio.ensure_future(switchboard.arun(definition))

    async def started() -> bool:  # once the run has recorded its start, it is inside its node
        return [r.status for r in await _list_runs("outage")] == ["running"]

    await apoll_until(started, message="the run to record its start")
    await _postgres_admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
    await _postgres_admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
    result = await run
    assert result.status == "failed"
    assert "could not write the run record to Switchboard's database" in (result.error or "")

    await _postgres_admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    records = await _list_runs("outage")
    assert [(r.id, r.status) for r in records] == [(result.run_id, "failed")], "no row left running"
    assert records[0].ended_at is not None


async def _list_runs(workflow: str) -> list[RunRecord]:
    async with switchboard.default_client() as client:
        return await client.runs.list(workflow=workflow)
