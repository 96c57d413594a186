"""Fresh PostgreSQL databases for the deployment tests; their processes come from the shared
``processes`` fixture (:mod:`tests.helpers.fixtures`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import create_postgres_database, drop_postgres_database


@pytest.fixture
async def postgres_databases() -> AsyncIterator[Any]:
    """Makes fresh Postgres databases (dropped at the end): ``url = await make("prefect")``.

    Returns asyncpg-style SQLAlchemy URLs (``postgresql+asyncpg://...``).
    """
    made: list[str] = []

    async def make(label: str) -> str:
        name, url = await create_postgres_database(f"sb_test_{label}")
        made.append(name)
        return url

    try:
        yield make
    finally:
        for name in made:
            await drop_postgres_database(name)
