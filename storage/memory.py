"""Chat memory (turns per session key) and key-value state (per workflow or named scope)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.db import retry_conflicts, sessionmaker
from storage.models import MemoryMessageRow, StateRow, utcnow


class StateValueError(ValueError):
    """A stored value cannot take the operation (e.g. incrementing text)."""


@dataclass(frozen=True)
class Message:
    role: str
    content: str
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"role": self.role, "content": self.content, "at": self.at.isoformat()}


def _alive(row: StateRow | None, now: datetime) -> bool:
    if row is None:
        return False
    expires = row.expires_at
    if expires is not None and expires.tzinfo is None:  # SQLite hands back naive datetimes
        expires = expires.replace(tzinfo=UTC)
    return expires is None or expires > now


class MemoryStore:
    """Backs the memory.* and state.* nodes."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sessions = sessionmaker(engine)

    async def append(self, session: str, role: str, content: str) -> int:
        """Add a turn; returns how many turns the session now has."""
        async with self.sessions() as db, db.begin():
            db.add(MemoryMessageRow(session=session, role=role, content=content))
            await db.flush()
            count = await db.scalar(select(func.count()).where(MemoryMessageRow.session == session))
        return int(count or 0)

    async def history(self, session: str, limit: int) -> list[Message]:
        """The last ``limit`` turns of a session, oldest first."""
        async with self.sessions() as db:
            rows = (
                await db.execute(
                    select(MemoryMessageRow)
                    .where(MemoryMessageRow.session == session)
                    .order_by(MemoryMessageRow.id.desc())
                    .limit(limit)
                )
            ).scalars()
            messages = [Message(r.role, r.content, r.at) for r in rows]
        return list(reversed(messages))

    async def get(self, scope: str, key: str) -> tuple[bool, Any]:
        """``(found, value)``; an expired value is not found."""
        async with self.sessions() as db:
            row = await db.get(StateRow, (scope, key))
            return (True, row.value) if row is not None and _alive(row, utcnow()) else (False, None)

    async def set(self, scope: str, key: str, value: Any, ttl: float | None = None) -> Any:
        expires = utcnow() + timedelta(seconds=ttl) if ttl else None

        async def write() -> Any:
            async with self.sessions() as db, db.begin():
                row = await db.get(StateRow, (scope, key), with_for_update=True)
                if row is None:
                    db.add(StateRow(scope=scope, key=key, value=value, expires_at=expires))
                else:
                    row.value, row.expires_at, row.updated_at = value, expires, utcnow()
            return value

        return await retry_conflicts(write, what=f"state {key!r}")

    async def incr(self, scope: str, key: str, by: float) -> Any:
        """Add ``by`` to a number (missing or expired counts as 0), atomically across runs."""

        async def write() -> Any:
            async with self.sessions() as db, db.begin():
                now = utcnow()
                row = await db.get(StateRow, (scope, key), with_for_update=True)
                current = row.value if row is not None and _alive(row, now) else 0
                if isinstance(current, bool) or not isinstance(current, int | float):
                    raise StateValueError(f"state {key!r} holds {type(current).__name__} {current!r}, not a number")
                value = current + by
                if row is None:
                    db.add(StateRow(scope=scope, key=key, value=value))
                else:
                    row.value, row.updated_at = value, now
                    if not _alive(row, now):
                        row.expires_at = None
            return value

        return await retry_conflicts(write, what=f"state {key!r}")
