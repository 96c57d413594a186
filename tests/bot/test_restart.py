"""A bot process killed mid-run: the next bot process reports the run crashed in its message.

Real processes: `switchboard bot` started twice on one database and one Prefect server, the
first killed with SIGKILL while a run is in flight.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prefect.client.orchestration import get_client

from bot.reporter import CRASH_MESSAGE
from storage.db import create_engine
from storage.migrate import upgrade
from storage.runs import RunStore
from storage.workflows import WorkflowStore
from tests.bot.test_commands import block_text
from tests.fakes.http import FakeHTTP
from tests.fakes.slack import BOT_TOKEN, SIGNING_SECRET, FakeSlack, slash_command
from tests.helpers.polling import apoll_until
from tests.helpers.processes import free_port

SLOW = {"name": "slow", "nodes": [{"id": "nap", "type": "core.wait", "params": {"seconds": 120}}]}


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[str]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    engine = create_engine(url)
    await upgrade(engine)
    await WorkflowStore(engine).apply(SLOW, actor="test")
    await engine.dispose()
    yield url


async def start_bot(env: dict[str, str], port: int) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "switchboard.cli",
        "bot",
        "--port",
        str(port),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )

    async def healthy() -> bool:
        try:
            async with httpx.AsyncClient() as client:
                return (await client.get(f"http://127.0.0.1:{port}/healthz", timeout=1)).status_code == 200
        except httpx.HTTPError:
            return False

    await apoll_until(healthy, timeout=60, interval=0.2, message="the bot to answer /healthz")
    return process


async def test_a_run_cut_off_by_a_killed_bot_is_reported_crashed_by_the_next_one(
    prefect_server: str, tmp_path: Path, database: str
) -> None:
    fake = FakeHTTP().start()
    slack = FakeSlack(fake)
    env = {
        **os.environ,
        "PREFECT_API_URL": prefect_server,
        "SWITCHBOARD_EXECUTION": "local",  # runs in the bot's process, which is killed
        "SWITCHBOARD_HOME": str(tmp_path),
        "SWITCHBOARD_DATABASE_URL": database,
        "SWITCHBOARD_SLACK_API_URL": slack.api_url,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
    }
    port = free_port()
    engine = create_engine(database)
    runs = RunStore(engine)
    first = await start_bot(env, port)
    second = None
    try:
        headers, body = slash_command("run slow", channel="CK")
        async with httpx.AsyncClient() as client:
            assert (
                await client.post(f"http://127.0.0.1:{port}/slack/events", headers=headers, content=body)
            ).status_code == 200

        async def attached() -> Any:
            records = await runs.list(limit=1)
            return records[0] if records and records[0].slack_message else None

        record = await apoll_until(
            attached, timeout=60, interval=0.2, message="the run to start and remember its message"
        )
        first.send_signal(signal.SIGKILL)
        await first.wait()
        assert (await runs.get(record.id)).status == "running"

        second = await start_bot(env, port)

        async def crashed() -> bool:
            message = slack.message("CK", record.slack_message)
            # The message first, then the record is marked reported: wait for both.
            reported = (await runs.get(record.id)).slack_reported_at is not None
            return "crashed" in block_text(message.blocks) and reported

        await apoll_until(crashed, timeout=30, interval=0.2, message="the new bot to report the run")
        text = block_text(slack.message("CK", record.slack_message).blocks)
        assert CRASH_MESSAGE in text
        final = await runs.get(record.id)
        assert (final.status, final.error) == ("crashed", CRASH_MESSAGE) and final.slack_reported_at is not None
        async with get_client() as client:
            state = (await client.read_flow_run(final.flow_run_id)).state  # type: ignore[arg-type]
        assert state is not None and state.type.value == "CRASHED"
    finally:
        for process in (first, second):
            if process is not None and process.returncode is None:
                process.kill()
                await process.wait()
        await engine.dispose()
        fake.stop()
