"""Shared fixtures: an isolated Switchboard home, a real Prefect test server, HTTP fakes, databases;
the bot-server and process fixtures (``bot``, ``two_bots``, ``processes``) are in
:mod:`tests.helpers.fixtures`, registered here for every directory."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

# Isolate every path the engine writes (Prefect database, result storage) before any import
# of switchboard or prefect reads the environment.
_HOME = tempfile.mkdtemp(prefix="switchboard-tests-")
os.environ["SWITCHBOARD_HOME"] = _HOME
for _var in ("PREFECT_API_URL", "PREFECT_HOME", "PREFECT_PROFILES_PATH", "SWITCHBOARD_HTTP_ALLOW_HOSTS"):
    os.environ.pop(_var, None)

import pytest  # noqa: E402

import switchboard  # noqa: E402, F401 - applies Prefect defaults before prefect is imported
from tests.fakes.http import FakeHTTP  # noqa: E402

# Loaded after the environment above is set: the plugin imports the bot and the storage layer.
pytest_plugins = ["tests.helpers.fixtures"]


@pytest.fixture(scope="session")
def migrated_prefect_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Prefect SQLite database migrated once for every test process of this run
    (:mod:`tests.helpers.prefect_db`); servers that tests start copy it."""
    from tests.helpers import prefect_db

    # Under xdist each process has its own base temp directory; their parent is shared.
    shared = tmp_path_factory.getbasetemp()
    root = shared.parent if os.environ.get("PYTEST_XDIST_WORKER") else shared
    return prefect_db.template(root)


@pytest.fixture(scope="session")
def prefect_server(migrated_prefect_database: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prefect API server (SQLite) for the whole session; yields its API URL."""
    import prefect.testing.utilities as harness
    from prefect.settings import PREFECT_API_URL

    from tests.helpers import prefect_db

    # Prefect's harness keeps its database in a fresh mkdtemp(): one that holds the migrated copy.
    where = tmp_path_factory.mktemp("prefect-harness")
    prefect_db.seed(where, migrated_prefect_database, name="prefect-test.db")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(harness, "mkdtemp", lambda: str(where))
        with harness.prefect_test_harness(server_startup_timeout=120):
            yield str(PREFECT_API_URL.value())


@pytest.fixture
def fake_http() -> Iterator[FakeHTTP]:
    """A scriptable HTTP server on 127.0.0.1 that records requests."""
    fake = FakeHTTP().start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def switchboard_home() -> str:
    return _HOME


POSTGRES_ADMIN_DSN = os.environ.get("SWITCHBOARD_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


async def _postgres_admin(statement: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=5)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def create_postgres_database(prefix: str) -> tuple[str, str]:
    """A new, empty Postgres database: ``(name, postgresql+asyncpg URL)``; drop it with
    :func:`drop_postgres_database`. Skips the test when Postgres is unreachable, except in CI
    (CI=true), where that is a failure."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        await _postgres_admin(f'CREATE DATABASE "{name}"')
    except (OSError, ConnectionError) as exc:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_ADMIN_DSN}: {exc} (CI=true makes this a failure)")
    return name, f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"


async def drop_postgres_database(name: str) -> None:
    await _postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


#: Where every test that asks for a database gets both backends: the storage layer, the only
#: code that speaks SQL. Above it a test gets PostgreSQL (what production runs on) unless it is
#: marked ``both_databases`` (its behaviour differs by backend); the bot and process fixtures
#: run the layers above on SQLite files, the embedded default.
BOTH_DATABASES_UNDER = Path(__file__).parent / "storage"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "database_url" not in metafunc.fixturenames:
        return
    both = metafunc.definition.path.is_relative_to(BOTH_DATABASES_UNDER) or (
        metafunc.definition.get_closest_marker("both_databases") is not None
    )
    metafunc.parametrize("database_url", ["sqlite", "postgres"] if both else ["postgres"], indirect=True)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "both_databases: run on SQLite and on PostgreSQL (see tests/conftest.py)")


@pytest.fixture
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database per test: a SQLite file, or a new Postgres database
    (which, and whether both, :func:`pytest_generate_tests` decides)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'switchboard.db'}"
        return
    name, url = await create_postgres_database("sb_test")
    try:
        yield url
    finally:
        await drop_postgres_database(name)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[Any]:
    """An engine on a fresh database (SQLite file or Postgres), migrated to the current schema."""
    from storage.db import create_engine
    from storage.migrate import upgrade

    migrated = create_engine(database_url)
    await upgrade(migrated)
    try:
        yield migrated
    finally:
        await migrated.dispose()


@pytest.fixture
def files(engine: Any, tmp_path: Path) -> Any:
    """A file store (metadata in the test's database, blobs under tmp_path) for node tests."""
    from storage.files import FileStore

    return FileStore(engine, tmp_path / "blobs")
