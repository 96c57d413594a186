"""`switchboard doctor` against a real Prefect server, real databases and a fake Slack."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.exceptions import ObjectAlreadyExists
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from deployments.sync import ensure_cleanup_deployment, ensure_generic_deployment
from storage.credentials import CredentialStore
from storage.crypto import key_id, parse_keys
from storage.db import create_engine
from storage.migrate import head_revision, upgrade
from switchboard.cli import app
from switchboard.cli.doctor import prefect as prefect_checks
from switchboard.cli.doctor import slack as slack_checks
from switchboard.settings import Settings
from switchboard.work_pool import WORK_POOL
from tests.fakes.http import FakeHTTP
from tests.fakes.slack import BOT_TOKEN, SIGNING_SECRET, FakeSlack

runner = CliRunner()
KEY = Fernet.generate_key().decode()
SECRET_TEXT = "ghp_doctorTestSecretValue123"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No Slack, OAuth or public-URL settings leak in from the environment."""
    for name in list(os.environ):
        if name.startswith(("SLACK_", "SWITCHBOARD_SLACK_", "SWITCHBOARD_OAUTH_")) or name in (
            "SWITCHBOARD_PUBLIC_URL",
            "SWITCHBOARD_SECRET_KEY",
            "SWITCHBOARD_DATABASE_URL",
        ):
            monkeypatch.delenv(name)


async def invoke(*args: str) -> Any:
    """The CLI in a thread: it runs its own event loop."""
    return await asyncio.to_thread(runner.invoke, app, ["doctor", *args])


def by_name(output: str) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in json.loads(output)["checks"]}


async def ensure_pool(name: str) -> None:
    async with get_client() as client:
        with contextlib.suppress(ObjectAlreadyExists):
            await client.create_work_pool(WorkPoolCreate(name=name, type="process"))


async def heartbeat(pool: str, worker: str, interval: float | None = None) -> None:
    async with get_client() as client:
        await client.send_worker_heartbeat(pool, worker, heartbeat_interval_seconds=interval)


async def store_credential(engine: AsyncEngine, key: str, name: str = "github", provider: str = "github") -> None:
    store = CredentialStore(engine, parse_keys(key))
    await store.add(name, provider=provider, secret=SECRET_TEXT, actor="test")


@pytest.mark.usefixtures("prefect_server")
async def test_a_healthy_setup_passes(
    engine: AsyncEngine, database_url: str, fake_http: FakeHTTP, monkeypatch: pytest.MonkeyPatch
) -> None:
    slack = FakeSlack(fake_http)
    await store_credential(engine, KEY)
    await store_credential(engine, KEY, name="webhook:hello", provider="webhook")
    await ensure_pool(WORK_POOL)
    async with get_client() as client:  # what `switchboard deploy` keeps
        await ensure_generic_deployment(client)
        await ensure_cleanup_deployment(client, "15 3 * * *")
    await heartbeat(WORK_POOL, "doctor-test-worker")
    monkeypatch.setenv("SWITCHBOARD_DATABASE_URL", database_url)
    monkeypatch.setenv("SWITCHBOARD_SECRET_KEY", KEY)
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SIGNING_SECRET)
    monkeypatch.setenv("SWITCHBOARD_SLACK_API_URL", slack.api_url)
    monkeypatch.setenv("SWITCHBOARD_PUBLIC_URL", "https://switchboard.example.com")

    result = await invoke()
    assert result.exit_code == 0, result.output
    for line in (
        "✔ database: SWITCHBOARD_DATABASE_URL",
        "✔ migrations: schema at the current migration",
        "✔ secret key: SWITCHBOARD_SECRET_KEY set (1 key(s)",
        "✔ stored secrets: all 2 stored secret(s) decrypt",
        "✔ prefect: PREFECT_API_URL http://",
        "✔ work pool: the work pool 'switchboard' exists",
        "✔ workers: ",
        "doctor-test-worker",
        "✔ deployments: run-workflow/run-workflow exists",
        "✔ retention: switchboard-cleanup/daily deletes old runs",
        "✔ slack: settings consistent",
        "✔ slack auth.test: bot token valid: team Fake",
        "✔ public url: SWITCHBOARD_PUBLIC_URL https://switchboard.example.com (webhooks)",
    ):
        assert line in result.stdout
    for secret in (KEY, SECRET_TEXT, BOT_TOKEN, SIGNING_SECRET):
        assert secret not in result.output
    assert [c.method for c in slack.calls()] == ["auth.test"]

    checks = by_name((await invoke("--json", "--no-slack-api")).stdout)
    assert "slack auth.test" not in checks
    assert {c["status"] for c in checks.values()} <= {"ok", "info"}


@pytest.mark.usefixtures("prefect_server")
async def test_json_shape(engine: AsyncEngine, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_DATABASE_URL", database_url)
    monkeypatch.setenv("SWITCHBOARD_SECRET_KEY", KEY)
    result = await invoke("--json")
    payload = json.loads(result.stdout)
    assert set(payload) == {"ok", "checks"}
    assert payload["ok"] is (result.exit_code == 0)
    names = [c["name"] for c in payload["checks"]]
    assert names[:5] == ["database", "migrations", "secret key", "stored secrets", "prefect"]
    assert names[-4:] == ["slack", "public url", "node plugins", "model prices"]
    for check in payload["checks"]:
        assert set(check) == {"name", "status", "summary", "fix"}
        assert check["status"] in {"ok", "warn", "fail", "info"}
        if check["status"] in {"warn", "fail"}:
            assert check["fix"]
    assert by_name(result.stdout)["slack"]["status"] == "info"
    assert by_name(result.stdout)["node plugins"] == {
        "name": "node plugins",
        "status": "info",
        "summary": "none installed (entry point group `switchboard.nodes`)",
        "fix": None,
    }


@pytest.mark.both_databases  # SQLite migrates itself, PostgreSQL is upgraded by an operator
@pytest.mark.usefixtures("prefect_server")
async def test_a_database_behind_its_migrations(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    behind = create_engine(database_url)
    try:
        await upgrade(behind, "0007")
    finally:
        await behind.dispose()
    monkeypatch.setenv("SWITCHBOARD_DATABASE_URL", database_url)
    monkeypatch.setenv("SWITCHBOARD_SECRET_KEY", KEY)
    result = await invoke()
    if database_url.startswith("postgresql"):
        assert result.exit_code == 1
        assert (
            f"✗ migrations: the database is at migration 0007, this Switchboard needs {head_revision()}"
            in result.stdout
        )
    else:  # the embedded SQLite database migrates itself on first use: a warning
        assert "! migrations: the database is at migration 0007" in result.stdout
        assert "SQLite migrates itself on next use" in result.stdout
    assert "fix: switchboard db upgrade" in result.stdout
    assert "· stored secrets: not checked" in result.stdout


@pytest.mark.usefixtures("prefect_server")
async def test_an_unreachable_database_fails_quickly(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again when the block ends
    monkeypatch.setenv("SWITCHBOARD_DATABASE_URL", f"postgresql+asyncpg://switchboard:hunter2@127.0.0.1:{port}/sb")
    monkeypatch.setenv("SWITCHBOARD_SECRET_KEY", KEY)
    started = time.monotonic()
    result = await invoke()
    assert time.monotonic() - started < 15
    assert result.exit_code == 1
    shown = f"postgresql+asyncpg://switchboard:***@127.0.0.1:{port}/sb"
    assert f"✗ database: cannot connect to SWITCHBOARD_DATABASE_URL {shown}" in result.stdout
    assert "hunter2" not in result.output
    assert "· migrations: not checked: the database is unreachable" in result.stdout


@pytest.mark.usefixtures("prefect_server")
async def test_a_wrong_secret_key_fails_without_printing_secrets(
    engine: AsyncEngine, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    old_key = Fernet.generate_key().decode()
    await store_credential(engine, old_key)
    monkeypatch.setenv("SWITCHBOARD_DATABASE_URL", database_url)
    monkeypatch.setenv("SWITCHBOARD_SECRET_KEY", KEY)
    result = await invoke()
    assert result.exit_code == 1
    assert "✗ stored secrets: 1 of 1 stored secret(s) do not decrypt with the configured key: github" in result.stdout
    assert f"add the key(s) with id {key_id(old_key.encode())} to SWITCHBOARD_SECRET_KEY" in result.stdout
    for secret in (KEY, old_key, SECRET_TEXT):
        assert secret not in result.output

    # Listing the old key after the new one decrypts it: a warning to rotate.
    monkeypatch.setenv("SWITCHBOARD_SECRET_KEY", f"{KEY},{old_key}")
    checks = by_name((await invoke("--json")).stdout)
    assert checks["stored secrets"]["status"] == "warn"
    assert checks["stored secrets"]["fix"] == "switchboard credentials rotate-key"


@pytest.mark.usefixtures("prefect_server")
async def test_the_generated_key_file(
    engine: AsyncEngine, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWITCHBOARD_DATABASE_URL", database_url)
    monkeypatch.setenv("SWITCHBOARD_HOME", str(tmp_path))
    path = tmp_path / "secret.key"
    path.write_text(Fernet.generate_key().decode())
    path.chmod(0o644)
    checks = by_name((await invoke("--json")).stdout)
    assert checks["secret key"]["status"] == "fail" and checks["secret key"]["fix"] == f"chmod 600 {path}"
    path.chmod(0o600)
    checks = by_name((await invoke("--json")).stdout)
    assert checks["secret key"]["status"] == "warn"
    assert "production should set SWITCHBOARD_SECRET_KEY" in checks["secret key"]["fix"]


@pytest.mark.usefixtures("prefect_server")
async def test_slack_settings(fake_http: FakeHTTP, monkeypatch: pytest.MonkeyPatch) -> None:
    slack = FakeSlack(fake_http)
    settings = Settings(slack_bot_token=SecretStr(BOT_TOKEN))
    [check] = await slack_checks.slack(settings, call_api=True)
    assert check.status == "fail" and "SLACK_SIGNING_SECRET is not set" in check.summary
    assert BOT_TOKEN not in check.summary + (check.fix or "")

    socket_only = Settings(
        slack_bot_token=SecretStr(BOT_TOKEN), slack_app_token=SecretStr("xapp-1"), slack_api_url=slack.api_url
    )
    checks = await slack_checks.slack(socket_only, call_api=True)
    assert [c.status for c in checks] == ["ok", "ok"] and "Socket Mode only" in checks[0].summary

    refused = Settings(
        slack_bot_token=SecretStr("xoxb-revoked"),
        slack_signing_secret=SecretStr(SIGNING_SECRET),
        slack_api_url=slack.api_url,
    )
    checks = await slack_checks.slack(refused, call_api=True)
    assert checks[1].status == "fail" and "Slack refused the bot token (invalid_auth)" in checks[1].summary

    half = Settings(slack_client_id="1.2", slack_signing_secret=SecretStr(SIGNING_SECRET))
    [check] = await slack_checks.slack(half, call_api=False)
    assert check.status == "fail" and "SLACK_CLIENT_ID and SLACK_CLIENT_SECRET go together" in check.summary

    # Through the CLI: exit 1 and the fix.
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    result = await invoke("--no-slack-api")
    assert result.exit_code == 1
    assert "✗ slack: SLACK_SIGNING_SECRET is not set" in result.stdout
    assert BOT_TOKEN not in result.output


async def test_public_url_is_needed_by_webhooks_and_connect(monkeypatch: pytest.MonkeyPatch) -> None:
    assert slack_checks.public_url(Settings(), webhooks=False).status == "info"
    missing = slack_checks.public_url(Settings(), webhooks=True)
    assert missing.status == "fail" and "webhooks need it" in missing.summary
    monkeypatch.setenv("SWITCHBOARD_OAUTH_GITHUB_CLIENT_ID", "abc")
    assert "/flow connect" in slack_checks.public_url(Settings(), webhooks=False).summary
    ok = slack_checks.public_url(Settings(public_url="https://sb.example.com"), webhooks=True)
    assert ok.status == "ok"


@pytest.mark.usefixtures("prefect_server")
async def test_work_pool_missing_or_without_live_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    pool = f"doctor-{uuid.uuid4().hex[:8]}"
    monkeypatch.setattr(prefect_checks, "WORK_POOL", pool)
    async with get_client() as client:
        [check] = await prefect_checks._work_pool(client)
    assert check.status == "fail" and f"prefect work-pool create {pool}" in (check.fix or "")
    assert "switchboard deploy" in (check.fix or "")

    await ensure_pool(pool)
    await heartbeat(pool, "short-lived", interval=1)
    async with get_client() as client:
        pool_check, workers = await prefect_checks._work_pool(client)
    assert (pool_check.status, workers.status) == ("ok", "ok")
    await asyncio.sleep(3.5)  # three missed heartbeats
    async with get_client() as client:
        _, workers = await prefect_checks._work_pool(client)
    assert workers.status == "fail" and "1 known, none with a recent heartbeat" in workers.summary
    assert "switchboard worker" in (workers.fix or "")


async def test_model_prices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert by_name((await invoke("--json", "--no-slack-api")).stdout)["model prices"]["status"] == "info"
    prices = tmp_path / "prices.yaml"
    prices.write_text("acme-llm: {input: 1, output: 2}\ngpt-4o: {input: 3, output: 9}\n")
    monkeypatch.setenv("SWITCHBOARD_PRICES", str(prices))
    good = by_name((await invoke("--json", "--no-slack-api")).stdout)["model prices"]
    assert good["status"] == "ok" and "over the built-in list, 1 added" in good["summary"]
    prices.write_text("gpt-4o: {input: free}\n")
    result = await invoke("--json", "--no-slack-api")
    bad = by_name(result.stdout)["model prices"]
    assert result.exit_code != 0
    assert bad["status"] == "fail"
    assert bad["summary"] == f"{prices}: gpt-4o.input: expected a number of USD per million tokens"
    assert "SWITCHBOARD_PRICES" in bad["fix"]
