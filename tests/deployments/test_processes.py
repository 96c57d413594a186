"""`switchboard server` / `switchboard worker` commands: environment defaults and usage errors."""

from __future__ import annotations

import os
import subprocess
import sys

from deployments.processes import api_url, redact_url, server_command, server_database, worker_command


def test_server_command_sets_recorder_defaults_the_operator_can_override() -> None:
    command = server_command("127.0.0.1", 4300, {"PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "7"})
    assert command.argv[1:] == ["-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", "4300"]
    assert command.env["PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE"] == "7"
    assert command.env["PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL"] == "1"
    assert command.env["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"


def test_worker_command_polls_every_second_on_the_switchboard_pool() -> None:
    command = worker_command(2, "w1", {})
    assert command.argv[3:] == [
        "worker", "start", "--pool", "switchboard", "--type", "process", "--limit", "2",
        "--install-policy", "never", "--no-create-pool-if-not-found", "--name", "w1",
    ]  # fmt: skip
    assert command.env["PREFECT_WORKER_QUERY_SECONDS"] == "1"
    assert command.env["PREFECT_WORKER_PREFETCH_SECONDS"] == "10"
    assert worker_command(4, None, {"PREFECT_WORKER_QUERY_SECONDS": "5"}).env["PREFECT_WORKER_QUERY_SECONDS"] == "5"


def test_database_and_urls_are_printable() -> None:
    url = "postgresql+asyncpg://prefect:s3cret@db:5432/prefect"
    assert server_database({"PREFECT_API_DATABASE_CONNECTION_URL": url}) == (
        "postgresql+asyncpg://prefect:***@db:5432/prefect"
    )
    assert redact_url("sqlite+aiosqlite:///x.db") == "sqlite+aiosqlite:///x.db"
    assert server_database({"PREFECT_HOME": "/srv/prefect"}) == "sqlite: /srv/prefect/prefect.db"
    assert api_url("127.0.0.1", 4200) == "http://127.0.0.1:4200/api"


def test_worker_without_an_api_url_is_a_usage_error() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    done = subprocess.run(
        [sys.executable, "-m", "switchboard.cli", "worker"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "PREFECT_API_URL is not set" in done.stderr and "switchboard server" in done.stderr
