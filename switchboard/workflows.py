"""Stored workflows from Python: apply, list, show, diff, rollback, archive, audit.

Every function opens the configured database (``SWITCHBOARD_DATABASE_URL``; the embedded
SQLite default migrates itself, Postgres must be at the current migration).
"""

from __future__ import annotations

import getpass
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from flows.plan import build_plan
from storage.audit import AuditEntry, entries
from storage.db import create_engine
from storage.migrate import upgrade
from storage.workflows import ApplyResult, StoredVersion, WorkflowNotFoundError, WorkflowStore, WorkflowSummary
from switchboard import embedded_prefect
from switchboard.database import open_engine
from switchboard.settings import Settings

if TYPE_CHECKING:
    from deployments.sync import SyncReport


def default_actor() -> str:
    """Who is acting, for the audit log, when no Slack user is involved."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


@asynccontextmanager
async def open_store(settings: Settings | None = None) -> AsyncIterator[WorkflowStore]:
    """A :class:`WorkflowStore` on the configured database, schema checked."""
    async with open_engine(settings) as engine:
        yield WorkflowStore(engine)


async def db_upgrade(settings: Settings | None = None) -> str | None:
    """Migrate the configured database to the current schema; returns the revision."""
    engine = create_engine((settings or Settings()).effective_database_url)
    try:
        return await upgrade(engine)
    finally:
        await engine.dispose()


async def apply(source: Any, *, actor: str | None = None) -> ApplyResult:
    """Validate a workflow and store it as a new version if its content changed."""
    plan = build_plan(source)
    async with open_store() as store:
        return await store.apply(plan.workflow.to_dict(), actor=actor or default_actor())


async def list_workflows(*, include_archived: bool = False) -> list[WorkflowSummary]:
    async with open_store() as store:
        return await store.list(include_archived=include_archived)


async def get_workflow(name: str, version: int | None = None) -> StoredVersion:
    async with open_store() as store:
        return await store.get(name, version)


async def diff(name: str, old: int, new: int) -> str:
    async with open_store() as store:
        return await store.diff(name, old, new)


async def rollback(name: str, version: int, *, actor: str | None = None) -> ApplyResult:
    async with open_store() as store:
        return await store.rollback(name, version, actor=actor or default_actor())


async def archive(name: str, *, actor: str | None = None) -> None:
    async with open_store() as store:
        await store.archive(name, actor=actor or default_actor())


async def audit(limit: int = 100) -> list[AuditEntry]:
    async with open_store() as store:
        return await entries(store.engine, limit=limit)


async def deploy(name: str | None = None) -> SyncReport:
    """Make Prefect's deployments match the stored schedules (all workflows, or only ``name``).

    Creates, updates, pauses, resumes and removes the ``workflow-<name>`` deployments on the
    configured Prefect API (``PREFECT_API_URL``); a second call changes nothing. Raises
    :class:`WorkflowNotFoundError` for a ``name`` that is neither stored nor deployed.
    """

    from deployments.sync import sync

    async with open_store() as store:
        known = await store.list(include_archived=True)
        live = [w.name for w in known if not w.archived and (name is None or w.name == name)]
        stored = [await store.get(n) for n in live]
    async with embedded_prefect.client() as client:
        report = await sync(
            client, stored, only=None if name is None else [name], cleanup_cron=Settings().cleanup_schedule
        )
    if name is not None and not report.changes and all(w.name != name for w in known):
        raise WorkflowNotFoundError(f"no stored workflow named {name!r} (see `switchboard list`)")
    return report
