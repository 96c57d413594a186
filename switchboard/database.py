"""Opening Switchboard's configured database from the Python API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncEngine

from storage.db import create_engine, ensure_schema
from switchboard.settings import Settings


@asynccontextmanager
async def open_engine(settings: Settings | None = None) -> AsyncIterator[AsyncEngine]:
    """An engine on ``SWITCHBOARD_DATABASE_URL``, schema checked (SQLite migrates itself)."""
    engine = create_engine((settings or Settings()).effective_database_url)
    try:
        await ensure_schema(engine)
        yield engine
    finally:
        await engine.dispose()
