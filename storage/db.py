"""The one engine factory, and the schema check every entry point runs.

``sqlite+aiosqlite://`` is the embedded default (it migrates itself on first use);
``postgresql+asyncpg://`` is the production store (``switchboard db upgrade`` migrates it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from storage.migrate import SchemaBehindError, current_revision, head_revision, upgrade

#: Seconds a single statement may run on Postgres before the server cancels it.
STATEMENT_TIMEOUT_SECONDS = 30
#: How often a write transaction that lost a race is run again.
WRITE_ATTEMPTS = 8

T = TypeVar("T")


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(url: str) -> AsyncEngine:
    """An async engine with pool and timeout settings sized for a small (2-core) host."""
    options: dict[str, Any] = {"pool_pre_ping": True}
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        options["connect_args"] = {"timeout": 30}
    else:
        options.update(
            pool_size=5,
            max_overflow=5,
            pool_timeout=30,
            pool_recycle=1800,
            connect_args={
                "server_settings": {
                    "statement_timeout": str(STATEMENT_TIMEOUT_SECONDS * 1000),
                    "application_name": "switchboard",
                },
                "command_timeout": STATEMENT_TIMEOUT_SECONDS + 5,
            },
        )
    engine = create_async_engine(url, **options)
    if is_sqlite(url):
        event.listen(engine.sync_engine, "connect", _sqlite_connect)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
    return engine


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite only opens a transaction before the first write, so a read-then-write
    # (state.incr, apply) would read outside it and could lose an update. Take over:
    # no implicit BEGIN, and every transaction starts with BEGIN IMMEDIATE (one writer at a
    # time; the others wait up to busy_timeout instead of failing).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[Any]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def ensure_schema(engine: AsyncEngine) -> None:
    """Make sure the schema is current: SQLite migrates itself; Postgres must be upgraded."""
    async with engine.connect() as connection:
        current = await connection.run_sync(current_revision)
    head = head_revision()
    if current == head:
        return
    if engine.dialect.name == "sqlite":
        await upgrade(engine)
        return
    raise SchemaBehindError(
        f"the database is at migration {current or 'none'}, this Switchboard needs {head}: run `switchboard db upgrade`"
    )


async def retry_conflicts(write: Callable[[], Awaitable[T]], *, what: str) -> T:
    """Run a write transaction again when it lost a race.

    Two first writers of a row collide on a unique key (IntegrityError) and SQLite may report
    a lock; either way the transaction rolled back and can simply run again.
    """
    for attempt in range(WRITE_ATTEMPTS):
        try:
            return await write()
        except (IntegrityError, OperationalError) as exc:
            if isinstance(exc, OperationalError) and "locked" not in str(exc).lower():
                raise
            await asyncio.sleep(0.01 * (attempt + 1))
    raise RuntimeError(f"could not write {what}: too many concurrent writers")
