"""Shared fixtures: an isolated Switchboard home, a real Prefect test server, HTTP fakes."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

# Isolate every path the engine writes (Prefect database, result storage) before any import
# of switchboard or prefect reads the environment.
_HOME = tempfile.mkdtemp(prefix="switchboard-tests-")
os.environ["SWITCHBOARD_HOME"] = _HOME
for _var in ("PREFECT_API_URL", "PREFECT_HOME", "PREFECT_PROFILES_PATH", "SWITCHBOARD_HTTP_ALLOW_HOSTS"):
    os.environ.pop(_var, None)

import pytest  # noqa: E402

import switchboard  # noqa: E402, F401 - applies Prefect defaults before prefect is imported
from tests.fakes.http import FakeHTTP  # noqa: E402


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[str]:
    """A real Prefect API server (SQLite) for the whole session; yields its API URL."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
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
