"""Stored workflows: immutable, numbered versions; a new version only when the content changes."""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import yaml
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from storage.audit import record
from storage.db import retry_conflicts, sessionmaker
from storage.models import WorkflowRow, WorkflowVersionRow, utcnow


class WorkflowNotFoundError(LookupError):
    """No stored workflow (or version) by that name."""


@dataclass(frozen=True)
class StoredVersion:
    name: str
    version: int
    checksum: str
    definition: dict[str, Any]
    created_at: datetime
    created_by: str | None
    note: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "checksum": self.checksum,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "note": self.note,
            "definition": self.definition,
        }


@dataclass(frozen=True)
class WorkflowSummary:
    name: str
    description: str | None
    latest_version: int
    updated_at: datetime
    archived: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "latest_version": self.latest_version,
            "updated_at": self.updated_at.isoformat(),
            "archived": self.archived,
        }


@dataclass(frozen=True)
class ApplyResult:
    name: str
    version: int
    created: bool


class _DryRun(Exception):
    """Raised inside a folder's transaction to roll it back after computing its changes."""


ChangeKind = Literal["created", "new version", "unchanged", "archived"]


@dataclass(frozen=True)
class FolderChange:
    """What applying a folder does (or would do) to one stored workflow."""

    name: str
    change: ChangeKind
    version: int

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "change": self.change, "version": self.version}


def checksum(definition: dict[str, Any]) -> str:
    """A stable hash of a definition's content (key order and formatting do not matter)."""
    canonical = json.dumps(definition, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _version(row: WorkflowVersionRow, name: str) -> StoredVersion:
    return StoredVersion(
        name=name,
        version=row.version,
        checksum=row.checksum,
        definition=row.definition,
        created_at=row.created_at,
        created_by=row.created_by,
        note=row.note,
    )


class WorkflowStore:
    """Workflows and their versions in Switchboard's database."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sessions = sessionmaker(engine)

    async def _workflow(self, session: AsyncSession, name: str, *, for_update: bool = False) -> WorkflowRow | None:
        query = select(WorkflowRow).where(WorkflowRow.name == name)
        if for_update:
            query = query.with_for_update()
        return (await session.execute(query)).scalar_one_or_none()

    async def apply(
        self, definition: dict[str, Any], *, actor: str, note: str | None = None, action: str = "apply"
    ) -> ApplyResult:
        """Store ``definition`` as the next version unless it equals the latest one.

        Concurrent applies of different content get consecutive versions; a conflict (two
        writers creating the same version) is retried, never lost or duplicated.
        """
        name = definition["name"]

        async def write() -> ApplyResult:
            async with self.sessions() as session, session.begin():
                return await self._apply_in(session, definition, actor=actor, note=note, action=action)

        return await retry_conflicts(write, what=f"workflow {name!r}")

    async def apply_all(
        self, definitions: list[dict[str, Any]], *, actor: str, prune: bool = False, dry_run: bool = False
    ) -> list[FolderChange]:
        """Store every definition as :meth:`apply` would, in one transaction (all or nothing);
        with ``prune``, archive the stored workflows not among them; with ``dry_run``, say what
        would change and change nothing."""

        async def write() -> list[FolderChange]:
            changes: list[FolderChange] = []
            with contextlib.suppress(_DryRun):  # a dry run rolled its transaction back
                await self._apply_all_in(definitions, changes, actor=actor, prune=prune, dry_run=dry_run)
            return changes

        return await retry_conflicts(write, what="the workflows of a folder")

    async def _apply_all_in(
        self, definitions: list[dict[str, Any]], changes: list[FolderChange], *, actor: str, prune: bool, dry_run: bool
    ) -> None:
        async with self.sessions() as session, session.begin():
            for definition in definitions:
                applied = await self._apply_in(session, definition, actor=actor, note=None, action="apply")
                kind: ChangeKind = (
                    "unchanged" if not applied.created else "created" if applied.version == 1 else "new version"
                )
                changes.append(FolderChange(applied.name, kind, applied.version))
            if prune:
                named = {definition["name"] for definition in definitions}
                stored = (await session.execute(select(WorkflowRow).where(WorkflowRow.archived_at.is_(None)))).scalars()
                for row in sorted(stored, key=lambda r: r.name):
                    if row.name not in named:
                        row.archived_at = utcnow()
                        await record(session, actor=actor, action="archive", target=row.name, detail={"pruned": True})
                        changes.append(FolderChange(row.name, "archived", row.latest_version))
            if dry_run:
                raise _DryRun

    async def _apply_in(
        self, session: AsyncSession, definition: dict[str, Any], *, actor: str, note: str | None, action: str
    ) -> ApplyResult:
        name = definition["name"]
        digest = checksum(definition)
        row = await self._workflow(session, name, for_update=True)
        if row is None:
            row = WorkflowRow(name=name, latest_version=0)
            session.add(row)
            await session.flush()
        elif row.latest_version:
            latest = await self._version_row(session, row, row.latest_version)
            if latest.checksum == digest and row.archived_at is None:
                return ApplyResult(name, row.latest_version, created=False)
        version = row.latest_version + 1
        session.add(
            WorkflowVersionRow(
                workflow_id=row.id,
                version=version,
                checksum=digest,
                definition=definition,
                created_by=actor,
                note=note,
            )
        )
        row.latest_version = version
        row.description = definition.get("description")
        row.updated_at = utcnow()
        row.archived_at = None
        await record(session, actor=actor, action=action, target=f"{name} v{version}", detail={"note": note})
        await session.flush()
        return ApplyResult(name, version, created=True)

    async def _version_row(self, session: AsyncSession, row: WorkflowRow, version: int) -> WorkflowVersionRow:
        found = (
            await session.execute(
                select(WorkflowVersionRow).where(
                    WorkflowVersionRow.workflow_id == row.id, WorkflowVersionRow.version == version
                )
            )
        ).scalar_one_or_none()
        if found is None:
            raise WorkflowNotFoundError(
                f"workflow {row.name!r} has no version {version} (latest: v{row.latest_version})"
            )
        return found

    async def get(self, name: str, version: int | None = None) -> StoredVersion:
        """A stored version (the latest when ``version`` is None)."""
        async with self.sessions() as session:
            row = await self._workflow(session, name)
            if row is None or not row.latest_version:
                raise WorkflowNotFoundError(f"no stored workflow named {name!r} (see `switchboard list`)")
            return _version(await self._version_row(session, row, version or row.latest_version), name)

    async def versions(self, name: str) -> list[StoredVersion]:
        async with self.sessions() as session:
            row = await self._workflow(session, name)
            if row is None:
                raise WorkflowNotFoundError(f"no stored workflow named {name!r} (see `switchboard list`)")
            rows = (
                await session.execute(
                    select(WorkflowVersionRow)
                    .where(WorkflowVersionRow.workflow_id == row.id)
                    .order_by(WorkflowVersionRow.version)
                )
            ).scalars()
            return [_version(r, name) for r in rows]

    async def list(self, *, include_archived: bool = False) -> list[WorkflowSummary]:
        async with self.sessions() as session:
            query = select(WorkflowRow).order_by(WorkflowRow.name)
            if not include_archived:
                query = query.where(WorkflowRow.archived_at.is_(None))
            rows = (await session.execute(query)).scalars()
            return [
                WorkflowSummary(r.name, r.description, r.latest_version, r.updated_at, r.archived_at is not None)
                for r in rows
            ]

    async def diff(self, name: str, old: int, new: int) -> str:
        """A unified diff between two versions' YAML."""
        before, after = await self.get(name, old), await self.get(name, new)

        def lines(v: StoredVersion) -> list[str]:
            return yaml.safe_dump(v.definition, sort_keys=False, allow_unicode=True).splitlines(keepends=True)

        return "".join(difflib.unified_diff(lines(before), lines(after), f"{name} v{old}", f"{name} v{new}"))

    async def rollback(self, name: str, version: int, *, actor: str) -> ApplyResult:
        """Make a new version whose content equals ``version`` (nothing if it is the latest)."""
        target = await self.get(name, version)
        return await self.apply(target.definition, actor=actor, note=f"rollback to v{version}", action="rollback")

    async def archive(self, name: str, *, actor: str) -> None:
        """Hide a workflow from lists and runs; `apply` brings it back."""
        async with self.sessions() as session, session.begin():
            row = await self._workflow(session, name, for_update=True)
            if row is None:
                raise WorkflowNotFoundError(f"no stored workflow named {name!r} (see `switchboard list`)")
            row.archived_at = utcnow()
            await record(session, actor=actor, action="archive", target=name, detail={})
