"""The audit log from the client: read it, and record what changed nothing else (refusals)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from storage import audit
from storage.audit import AuditEntry

__all__ = ["Audit", "AuditEntry"]


class Audit:
    """Who did what, when (``client.audit``)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def entries(self, limit: int = 100) -> list[AuditEntry]:
        """The newest ``limit`` entries, newest first."""
        return await audit.entries(self._engine, limit=limit)

    async def append(self, *, actor: str, action: str, target: str, detail: dict[str, Any] | None = None) -> None:
        """Record an event that changes nothing else (a refused action), in its own transaction."""
        await audit.append(self._engine, actor=actor, action=action, target=target, detail=detail or {})
