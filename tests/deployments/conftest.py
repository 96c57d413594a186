"""Real processes for the deployment tests: `switchboard server`, `worker`, CLI calls."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.bot.conftest import free_port
from tests.conftest import create_postgres_database, drop_postgres_database


async def until(condition: Any, timeout: float, what: str) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while not (value := await condition()):
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"waited {timeout}s for {what}")
        await asyncio.sleep(0.2)
    return value


class Processes:
    """The processes a test started; all stopped (SIGTERM, then SIGKILL) at the end."""

    api: str = ""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.started: list[tuple[str, asyncio.subprocess.Process]] = []

    async def start(self, label: str, *args: str, env: dict[str, str] | None = None) -> asyncio.subprocess.Process:
        log = (self.logs / f"{label}.log").open("wb")
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "switchboard.cli", *args, env=env or self.env, stdout=log, stderr=log
        )
        log.close()
        self.started.append((label, process))
        return process

    async def cli(self, *args: str) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "switchboard.cli",
            *args,
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode is not None
        return process.returncode, stdout.decode(), stderr.decode()

    def log(self, label: str) -> str:
        path = self.logs / f"{label}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    async def stop(self, process: asyncio.subprocess.Process, timeout: float = 20) -> int | None:
        """SIGTERM (what systemd sends); the exit code, or None if it had to be killed."""
        if process.returncode is not None:
            return process.returncode
        process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(process.wait(), timeout)
        except TimeoutError:
            process.kill()
            await process.wait()
            return None

    async def stop_all(self) -> None:
        for _, process in reversed(self.started):
            await self.stop(process)

    async def start_server(self, database_url: str | None = None, *args: str) -> asyncio.subprocess.Process:
        """`switchboard server` (on ``database_url``, else SQLite; ``args`` added to its command
        line); waits for /api/health and points every later process at it (PREFECT_API_URL)."""
        port = free_port()
        self.api = f"http://127.0.0.1:{port}/api"
        env = dict(self.env)
        if database_url:
            env["PREFECT_API_DATABASE_CONNECTION_URL"] = database_url
        server = await self.start("server", "server", "--port", str(port), *args, env=env)

        async def healthy() -> bool:
            assert server.returncode is None, self.log("server")
            try:
                async with httpx.AsyncClient() as client:
                    return (await client.get(f"{self.api}/health", timeout=1)).status_code == 200
            except httpx.HTTPError:
                return False

        await until(healthy, 90, "the Prefect server to answer /api/health")
        self.env["PREFECT_API_URL"] = self.api
        return server

    async def start_worker(
        self, name: str, *args: str, env: dict[str, str] | None = None
    ) -> asyncio.subprocess.Process:
        """A `switchboard worker` named ``name``; waits until it polls the pool."""
        worker = await self.start(name, "worker", "--name", name, *args, env=env)
        await until(lambda: self._worker_seen(name, worker), 60, f"worker {name} to poll the pool")
        return worker

    async def _worker_seen(self, name: str, worker: asyncio.subprocess.Process) -> bool:
        assert worker.returncode is None, self.log(name)
        return f"Worker {name!r} started" in self.log(name)


@pytest.fixture
async def processes(tmp_path: Path) -> AsyncIterator[Processes]:
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "PREFECT_PROFILES_PATH")}
    env |= {
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "SWITCHBOARD_HOME": str(tmp_path / "home"),
        "SWITCHBOARD_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'switchboard.db'}",
    }
    started = Processes(env, tmp_path)
    try:
        yield started
    finally:
        await started.stop_all()


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
