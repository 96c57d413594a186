"""Idempotency keys: the run a request with an ``Idempotency-Key`` started, shared by every bot
process on the database.

A client that sends the same request twice with the same key (a retry after a timeout, a
redelivery) must get the first run back, not a second one. The first request to arrive claims
the key with one ``INSERT ... ON CONFLICT DO NOTHING`` (of two racing processes exactly one
wins); the row holds the SHA-256 of the key (scoped by the caller), the SHA-256 of the request
it came with, the run it started and when it expires. A later request with the key gets that
run if it carries the same request, and is refused if it carries another one.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, Index, String, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Mapped, mapped_column

from storage.models import Base


class IdempotencyRow(Base):
    """One claimed key (both hashes: SHA-256, hex)."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("ix_idempotency_keys_expires_at", "expires_at"),)

    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    run_id: Mapped[str] = mapped_column(String(32))
    #: Unix seconds.
    expires_at: Mapped[int] = mapped_column(BigInteger)


def sha256(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


@dataclass(frozen=True)
class Claim:
    """How claiming a key went: ``won`` (start the run), else the earlier run and whether the
    earlier request was this one."""

    won: bool
    run_id: str
    same_request: bool = True


class IdempotencyKeys:
    """The ``idempotency_keys`` table."""

    #: How often one process deletes expired keys.
    PRUNE_EVERY_SECONDS = 300.0

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._pruned_at = float("-inf")

    async def claim(self, key: str, *, request: bytes, run_id: str, ttl: int, now: float | None = None) -> Claim:
        """Claim ``key`` for ``run_id``, or learn which run holds it.

        ``request`` is what makes two requests the same (the caller's canonical form of it);
        ``ttl``: how many seconds the key holds. An expired holder is replaced.
        """
        now = time.time() if now is None else now
        if time.monotonic() - self._pruned_at > self.PRUNE_EVERY_SECONDS:
            await self.prune(now=now)
        key_hash, request_hash = sha256(key), sha256(request)
        table = IdempotencyRow.__table__
        insert: Any = (postgresql if self.engine.dialect.name == "postgresql" else sqlite).insert(table)
        statement = insert.values(
            key_hash=key_hash, request_hash=request_hash, run_id=run_id, expires_at=int(now) + ttl
        )
        statement = statement.on_conflict_do_update(
            index_elements=[table.c.key_hash],
            set_={
                "request_hash": statement.excluded.request_hash,
                "run_id": statement.excluded.run_id,
                "expires_at": statement.excluded.expires_at,
            },
            where=table.c.expires_at < int(now),  # only an expired key is taken over
        )
        async with self.engine.begin() as connection:
            result = await connection.execute(statement)
            if result.rowcount == 1:
                return Claim(won=True, run_id=run_id)
            found = await connection.execute(
                select(IdempotencyRow.run_id, IdempotencyRow.request_hash).where(IdempotencyRow.key_hash == key_hash)
            )
            held = found.one()
        return Claim(won=False, run_id=held.run_id, same_request=held.request_hash == request_hash)

    async def release(self, key: str) -> None:
        """Forget ``key``: the request that claimed it started nothing after all."""
        async with self.engine.begin() as connection:
            await connection.execute(delete(IdempotencyRow).where(IdempotencyRow.key_hash == sha256(key)))

    async def prune(self, *, now: float | None = None) -> int:
        """Delete expired keys; returns how many."""
        self._pruned_at = time.monotonic()
        cutoff = int(time.time() if now is None else now)
        async with self.engine.begin() as connection:
            result = await connection.execute(delete(IdempotencyRow).where(IdempotencyRow.expires_at < cutoff))
        return int(getattr(result, "rowcount", 0) or 0)
