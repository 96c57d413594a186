"""The audit log: who did what, when. Rows are written in the caller's transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from storage.db import sessionmaker
from storage.models import AuditRow


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    actor: str
    action: str
    target: str
    detail: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "detail": self.detail,
        }


async def record(session: AsyncSession, *, actor: str, action: str, target: str, detail: dict[str, Any]) -> None:
    """Add an audit row to ``session`` (committed with the change it describes)."""
    session.add(AuditRow(actor=actor, action=action, target=target, detail=detail))


async def entries(engine: AsyncEngine, *, limit: int = 100) -> list[AuditEntry]:
    """The newest ``limit`` entries, newest first."""
    async with sessionmaker(engine)() as session:
        rows = (await session.execute(select(AuditRow).order_by(AuditRow.id.desc()).limit(limit))).scalars()
        return [AuditEntry(r.at, r.actor, r.action, r.target, r.detail) for r in rows]


async def append(engine: AsyncEngine, *, actor: str, action: str, target: str, detail: dict[str, Any]) -> None:
    """Record an event that changes nothing else (a refused action), in its own transaction."""
    async with sessionmaker(engine)() as session, session.begin():
        await record(session, actor=actor, action=action, target=target, detail=detail)
