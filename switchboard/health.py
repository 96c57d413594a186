"""Probing the configured database without migrating it, for ``switchboard doctor`` and
``/healthz``: whether it answers, its migration, the secrets it holds (encrypted)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncEngine

from storage import health
from storage.db import create_engine
from storage.health import SealedSecret
from storage.migrate import head_revision, is_known_revision
from switchboard.settings import Settings

__all__ = ["DatabaseProbe", "SealedSecret", "head_revision", "is_known_revision", "probe_database"]


class DatabaseProbe:
    """Questions to one database engine that change nothing."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._engine.dialect.name

    async def ping(self) -> None:
        """One round trip; raises when the database does not answer."""
        await health.ping(self._engine)

    async def revision(self) -> str | None:
        """The migration the database is at (None: none)."""
        return await health.schema_revision(self._engine)

    async def sealed_secrets(self) -> list[SealedSecret]:
        """Every stored credential and Slack installation, still encrypted."""
        return await health.sealed_secrets(self._engine)


@asynccontextmanager
async def probe_database(settings: Settings) -> AsyncIterator[DatabaseProbe]:
    """A probe on ``settings``' database; the schema is neither checked nor migrated."""
    engine = create_engine(settings.effective_database_url)
    try:
        yield DatabaseProbe(engine)
    finally:
        await engine.dispose()
