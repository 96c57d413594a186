"""The fixtures every test directory shares (registered by ``pytest_plugins`` in
``tests/conftest.py``): real bot servers on a fake Slack, and real ``switchboard`` processes."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.helpers import prefect_db
from tests.helpers.bot_server import Bot, serve_bot, serve_bots
from tests.helpers.processes import Processes


@pytest.fixture
async def bot(tmp_path: Path, prefect_server: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Bot]:
    """The bot over HTTP on a free port, with a fresh SQLite database and a fake Slack."""
    async with serve_bot(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", monkeypatch) as running:
        yield running


@pytest.fixture
async def two_bots(
    tmp_path: Path, prefect_server: str, monkeypatch: pytest.MonkeyPatch, database_url: str
) -> AsyncIterator[tuple[Bot, Bot]]:
    """Two bot servers on one database (a SQLite file, or Postgres)."""
    async with serve_bots(tmp_path, database_url, monkeypatch, count=2) as (first, second):
        yield first, second


@pytest.fixture
async def processes(tmp_path: Path, migrated_prefect_database: Path) -> AsyncIterator[Processes]:
    """Real ``switchboard`` processes (see :class:`Processes`) with their own Prefect home,
    Switchboard home and SQLite database under ``tmp_path``; all stopped at the end. Both
    Prefect homes a server may use (PREFECT_HOME, and the embedded default's under
    SWITCHBOARD_HOME) start with an already migrated Prefect database."""
    for prefect_home in (tmp_path / "prefect", tmp_path / "home" / "prefect"):
        prefect_db.seed(prefect_home, migrated_prefect_database)
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "PREFECT_PROFILES_PATH")}
    env |= {
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "SWITCHBOARD_HOME": str(tmp_path / "home"),
        "SWITCHBOARD_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'switchboard.db'}",
    }
    started = Processes(env, tmp_path)
    try:
        yield started
    finally:
        await started.stop_all()
