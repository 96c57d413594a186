"""API tokens: who may call the HTTP API, stored by the SHA-256 of the token, never the token.

A token is 32 random bytes (see :mod:`switchboard.tokens`), so a plain SHA-256 is as good as a
slow password hash here: nothing short of guessing 256 bits finds the token from its hash.
A lookup goes by that hash (an indexed, equality match on a value the caller cannot steer
towards a stored one), and the caller compares the found hash again in constant time.

Revoking keeps the row (``revoked_at``), so a revoked token is told apart from an unknown
one in the audit log; creating a token under a revoked token's name replaces that row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import JSON, DateTime, String, select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Mapped, mapped_column

from storage.audit import record
from storage.db import sessionmaker
from storage.models import Base, utcnow


class ApiTokenError(LookupError):
    """No such token, or one by that name exists already."""


class ApiTokenRow(Base):
    """One API token (``token_hash``: SHA-256 of the token, hex)."""

    __tablename__ = "api_tokens"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scope: Mapped[str] = mapped_column(String(16))
    #: The workflows the token is limited to (empty: every workflow).
    workflows: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: The Slack user the token acts as for workflow permissions and credentials.
    owner: Mapped[str | None] = mapped_column(String(32), default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(100), default=None)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)


@dataclass(frozen=True)
class StoredToken:
    """An API token as stored (no secret: only its hash, which is never shown)."""

    name: str
    token_hash: str
    scope: str
    workflows: tuple[str, ...]
    owner: str | None
    created_at: datetime
    created_by: str | None
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


def _stored(row: ApiTokenRow) -> StoredToken:
    return StoredToken(
        name=row.name,
        token_hash=row.token_hash,
        scope=row.scope,
        workflows=tuple(row.workflows or ()),
        owner=row.owner,
        created_at=row.created_at,
        created_by=row.created_by,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )


class ApiTokenStore:
    """The ``api_tokens`` table; changes are audited in the same transaction."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.sessions = sessionmaker(engine)

    async def create(
        self,
        name: str,
        *,
        token_hash: str,
        scope: str,
        workflows: list[str],
        owner: str | None,
        expires_at: datetime | None,
        actor: str,
    ) -> StoredToken:
        """Store a new token; :class:`ApiTokenError` when a live token has that name."""
        async with self.sessions() as session, session.begin():
            existing = await session.get(ApiTokenRow, name, with_for_update=True)
            if existing is not None and existing.revoked_at is None:
                raise ApiTokenError(
                    f"an API token named {name!r} exists already; "
                    f"`switchboard tokens revoke {name}` first, or choose another name"
                )
            if existing is not None:
                await session.delete(existing)
                await session.flush()
            row = ApiTokenRow(
                name=name,
                token_hash=token_hash,
                scope=scope,
                workflows=workflows,
                owner=owner,
                created_by=actor,
                expires_at=expires_at,
            )
            session.add(row)
            detail = {"scope": scope, "workflows": workflows, "owner": owner}
            detail["expires_at"] = expires_at.isoformat() if expires_at else None
            await record(session, actor=actor, action="create-api-token", target=name, detail=detail)
            await session.flush()
            return _stored(row)

    async def list(self) -> list[StoredToken]:
        """Every token, revoked ones too, by name."""
        async with self.sessions() as session:
            rows = await session.execute(select(ApiTokenRow).order_by(ApiTokenRow.name))
            return [_stored(row) for row in rows.scalars()]

    async def by_hash(self, token_hash: str) -> StoredToken | None:
        """The token whose hash is ``token_hash`` (revoked and expired ones included)."""
        async with self.sessions() as session:
            found = await session.execute(select(ApiTokenRow).where(ApiTokenRow.token_hash == token_hash))
            row = found.scalar_one_or_none()
            return _stored(row) if row is not None else None

    async def revoke(self, name: str, *, actor: str) -> None:
        """Revoke a live token at once; :class:`ApiTokenError` when there is none by that name."""
        async with self.sessions() as session, session.begin():
            row = await session.get(ApiTokenRow, name, with_for_update=True)
            if row is None or row.revoked_at is not None:
                raise ApiTokenError(f"no live API token named {name!r} (see `switchboard tokens list`)")
            row.revoked_at = utcnow()
            await record(session, actor=actor, action="revoke-api-token", target=name, detail={})

    async def touch(self, name: str, at: datetime) -> None:
        """Remember when the token was last used."""
        async with self.sessions() as session, session.begin():
            await session.execute(update(ApiTokenRow).where(ApiTokenRow.name == name).values(last_used_at=at))
