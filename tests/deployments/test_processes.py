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


def test_the_servers_ui_finds_its_api_on_its_own_origin_unless_told_otherwise() -> None:
    # tests/deployments/test_server_ui.py shows a real server's UI working with the default.
    def ui_api_url(environ: dict[str, str], **options: str) -> str | None:
        return server_command("0.0.0.0", 4300, environ, **options).env.get("PREFECT_UI_API_URL")

    assert ui_api_url({}) == "/api"
    # a PREFECT_API_URL in the server's environment (another server) does not leak into the UI
    assert ui_api_url({"PREFECT_API_URL": "http://elsewhere:9/api"}) == "/api"
    assert ui_api_url({"PREFECT_UI_API_URL": "https://set/api"}) == "https://set/api"
    behind_proxy = server_command(
        "127.0.0.1",
        4300,
        {"PREFECT_SERVER_UI_API_URL": "https://old/api"},
        ui_api_url="https://prefect.example.com/api",
    ).env
    assert behind_proxy["PREFECT_UI_API_URL"] == "https://prefect.example.com/api"
    assert "PREFECT_SERVER_UI_API_URL" not in behind_proxy
