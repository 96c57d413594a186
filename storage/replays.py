"""The replay guard: signed requests already accepted, shared by every bot process.

A signed request (a webhook, a Slack request) is valid for a few minutes after it was signed;
inside that window a copy of it would pass every check again. The first process to accept a
request claims its key here, and a claim is one ``INSERT ... ON CONFLICT`` statement, so of
two processes racing on the same request exactly one wins: the database decides, not each
process's memory.

Only a SHA-256 of each key is stored, with the unix second after which the request no longer
passes its own timestamp check (``expires_at``), and, for webhooks, the run it started. A row
whose time is over is taken over by a new claim, and rows are pruned (an indexed range
delete) at most every :attr:`ReplayGuard.PRUNE_EVERY_SECONDS` per process, once they are
:attr:`ReplayGuard.PRUNE_GRACE_SECONDS` past their time: a process whose clock runs ahead must
not delete a row another process still needs.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from sqlalchemy import BigInteger, Index, String, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Mapped, mapped_column

from storage.models import Base


class ReplayRow(Base):
    """One accepted signed request (``key_hash``: SHA-256 of its key, hex)."""

    __tablename__ = "replay_guard"
    __table_args__ = (Index("ix_replay_guard_expires_at", "expires_at"),)

    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: Unix seconds (an integer compares the same on every database, with no time zone).
    expires_at: Mapped[int] = mapped_column(BigInteger)
    #: The run the request started (webhooks), to answer a replay with it.
    run_id: Mapped[str | None] = mapped_column(String(32), default=None)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ReplayGuard:
    """The ``replay_guard`` table."""

    #: How often one process deletes rows whose time is over.
    PRUNE_EVERY_SECONDS = 60.0
    #: How long after its time a row is kept anyway (clock differences between bot hosts).
    PRUNE_GRACE_SECONDS = 600

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._pruned_at = float("-inf")

    async def claim(self, key: str, *, until: int, run_id: str | None = None, now: float | None = None) -> bool:
        """True if this is the first claim of ``key`` (or the earlier one's time is over): the
        caller then handles the request; False if another claim holds it.

        ``until``: the unix second after which the request fails its own timestamp check.
        """
        now = time.time() if now is None else now
        if time.monotonic() - self._pruned_at > self.PRUNE_EVERY_SECONDS:
            await self.prune(now=now)
        table = ReplayRow.__table__
        insert: Any = (postgresql if self.engine.dialect.name == "postgresql" else sqlite).insert(table)
        statement = insert.values(key_hash=hash_key(key), expires_at=until, run_id=run_id)
        statement = statement.on_conflict_do_update(
            index_elements=[table.c.key_hash],
            set_={"expires_at": statement.excluded.expires_at, "run_id": statement.excluded.run_id},
            where=table.c.expires_at < int(now),  # only an expired claim is taken over
        )
        async with self.engine.begin() as connection:
            result = await connection.execute(statement)
        return bool(result.rowcount == 1)

    async def holder(self, key: str) -> str | None:
        """The run id the claim of ``key`` recorded (None: none, or no claim)."""
        async with self.engine.connect() as connection:
            found = await connection.execute(select(ReplayRow.run_id).where(ReplayRow.key_hash == hash_key(key)))
        return found.scalar()

    async def release(self, key: str) -> None:
        """Forget the claim of ``key``: the request it stood for did nothing after all."""
        async with self.engine.begin() as connection:
            await connection.execute(delete(ReplayRow).where(ReplayRow.key_hash == hash_key(key)))

    async def prune(self, *, now: float | None = None) -> int:
        """Delete rows well past their time; returns how many."""
        self._pruned_at = time.monotonic()
        cutoff = int(time.time() if now is None else now) - self.PRUNE_GRACE_SECONDS
        async with self.engine.begin() as connection:
            result = await connection.execute(delete(ReplayRow).where(ReplayRow.expires_at < cutoff))
        return int(getattr(result, "rowcount", 0) or 0)
