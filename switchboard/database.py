"""Opening Switchboard's configured database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncEngine

from storage.db import create_engine, ensure_schema
from storage.migrate import upgrade
from switchboard.settings import Settings


@asynccontextmanager
async def open_engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """An engine on ``settings.effective_database_url``, schema checked (SQLite migrates itself)."""
    engine = create_engine(settings.effective_database_url)
    try:
        await ensure_schema(engine)
        yield engine
    finally:
        await engine.dispose()


async def upgrade_database(settings: Settings) -> str | None:
    """Migrate the configured database to the current schema; returns the revision."""
    engine = create_engine(settings.effective_database_url)
    try:
        return await upgrade(engine)
    finally:
        await engine.dispose()
