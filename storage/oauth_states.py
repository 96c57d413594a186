"""Pending OAuth authorizations: the ``state`` of each ``/flow connect`` link.

Only a SHA-256 of the state is stored, so the table alone cannot complete anyone's
authorization. A state is used once: :meth:`OAuthStateStore.consume` deletes it, and a state
older than :data:`STATE_TTL` is refused (and purged).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import DateTime, Index, String, delete, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Mapped, mapped_column

from storage.db import sessionmaker
from storage.models import Base, utcnow

#: How long a connect link works.
STATE_TTL = timedelta(minutes=10)


class OAuthStateRow(Base):
    """One pending authorization (``state_hash`` is the SHA-256 of the state, hex)."""

    __tablename__ = "oauth_states"
    __table_args__ = (Index("ix_oauth_states_created_at", "created_at"),)

    state_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    slack_user: Mapped[str] = mapped_column(String(100))
    slack_team: Mapped[str | None] = mapped_column(String(40))
    provider: Mapped[str] = mapped_column(String(40))
    credential: Mapped[str] = mapped_column(String(100))
    code_verifier: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


@dataclass(frozen=True)
class PendingAuthorization:
    """Who asked to connect what; ``code_verifier`` is the PKCE secret for the token request."""

    slack_user: str
    slack_team: str | None
    provider: str
    credential: str
    code_verifier: str
    created_at: datetime


def hash_state(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class OAuthStateStore:
    """The ``oauth_states`` table."""

    def __init__(self, engine: AsyncEngine, *, ttl: timedelta = STATE_TTL) -> None:
        self.sessions = sessionmaker(engine)
        self.ttl = ttl

    async def create(
        self, *, slack_user: str, provider: str, credential: str, slack_team: str | None = None
    ) -> tuple[str, PendingAuthorization]:
        """A new random state (returned once, stored only hashed) and its pending authorization."""
        state = secrets.token_urlsafe(32)
        row = OAuthStateRow(
            state_hash=hash_state(state),
            slack_user=slack_user,
            slack_team=slack_team,
            provider=provider,
            credential=credential,
            code_verifier=secrets.token_urlsafe(48),
            created_at=utcnow(),
        )
        async with self.sessions() as session, session.begin():
            await session.execute(delete(OAuthStateRow).where(OAuthStateRow.created_at < utcnow() - self.ttl))
            session.add(row)
        return state, _pending(row)

    async def consume(self, state: str, *, provider: str | None = None) -> PendingAuthorization | None:
        """The authorization ``state`` stands for, deleting it; None if unknown, used or expired.

        ``provider``: only a state issued for that provider counts (others are left alone).
        """
        key = hash_state(state)
        query = select(OAuthStateRow).where(OAuthStateRow.state_hash == key)
        if provider is not None:
            query = query.where(OAuthStateRow.provider == provider)
        async with self.sessions() as session, session.begin():
            row = (await session.execute(query)).scalar()
            if row is None:
                return None
            deleted = await session.execute(delete(OAuthStateRow).where(OAuthStateRow.state_hash == key))
            if getattr(deleted, "rowcount", 0) != 1:
                return None  # a concurrent callback consumed it first
        if utcnow() - _aware(row.created_at) > self.ttl:
            return None
        return _pending(row)


def _pending(row: OAuthStateRow) -> PendingAuthorization:
    return PendingAuthorization(
        slack_user=row.slack_user,
        slack_team=row.slack_team,
        provider=row.provider,
        credential=row.credential,
        code_verifier=row.code_verifier,
        created_at=_aware(row.created_at),
    )
