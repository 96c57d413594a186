"""What ``switchboard doctor`` asks the database: does it answer, at which migration, which
secrets it holds (still encrypted: the caller tries to decrypt them with its key ring)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.db import sessionmaker
from storage.migrate import current_revision
from storage.models import CredentialRow
from storage.slack_installations import SlackInstallationRow


@dataclass(frozen=True)
class SealedSecret:
    """One encrypted secret as stored: who it is (``label``), its provider and key id."""

    label: str
    provider: str | None
    key_id: str
    secret: str


async def ping(engine: AsyncEngine) -> None:
    """One round trip (``SELECT 1``); raises what the driver raises when the database is down."""
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


async def schema_revision(engine: AsyncEngine) -> str | None:
    """The migration the database is at (None: not migrated at all)."""
    async with engine.connect() as connection:
        revision: str | None = await connection.run_sync(current_revision)
        return revision


async def sealed_secrets(engine: AsyncEngine) -> list[SealedSecret]:
    """Every stored credential and Slack installation, encrypted as stored."""
    async with sessionmaker(engine)() as session:
        credentials = (
            await session.execute(
                select(
                    CredentialRow.name,
                    CredentialRow.owner,
                    CredentialRow.provider,
                    CredentialRow.key_id,
                    CredentialRow.secret,
                )
            )
        ).all()
        installations = (
            await session.execute(
                select(SlackInstallationRow.team_id, SlackInstallationRow.key_id, SlackInstallationRow.secret)
            )
        ).all()
    return [
        SealedSecret(row.name + (f" (owner {row.owner})" if row.owner else ""), row.provider, row.key_id, row.secret)
        for row in credentials
    ] + [
        SealedSecret(f"Slack installation {row.team_id or 'enterprise'}", None, row.key_id, row.secret)
        for row in installations
    ]
