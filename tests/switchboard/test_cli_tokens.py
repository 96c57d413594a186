"""`switchboard tokens`: a token printed once, stored hashed, listed without secrets, revoked."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

import switchboard
from switchboard.cli import app
from switchboard.tokens import TokenRefusedError

runner = CliRunner()


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "switchboard.db"
    monkeypatch.setenv("SWITCHBOARD_DATABASE_URL", f"sqlite+aiosqlite:///{path}")
    monkeypatch.setenv("SWITCHBOARD_HOME", str(tmp_path / "home"))
    return path


def printed_token(output: str) -> str:
    found = re.findall(r"sbt_[A-Za-z0-9_-]{43}", output)
    assert len(found) == 1, output
    return found[0]


async def authenticate(secret: str) -> str:
    async with switchboard.default_client() as client:
        return (await client.tokens.authenticate(secret)).name


async def stored_columns() -> list[str]:
    async with switchboard.default_client() as client, client.engine.connect() as connection:
        rows = await connection.execute(text("SELECT * FROM api_tokens"))
        return [str(value) for row in rows for value in row]


def test_create_prints_the_token_once_and_stores_only_its_hash(database: Path) -> None:
    created = runner.invoke(
        app, ["tokens", "create", "ci", "--scope", "run", "--workflow", "greet", "--expires", "30d", "--owner", "U123"]
    )
    assert created.exit_code == 0, created.output
    secret = printed_token(created.stdout)
    assert asyncio.run(authenticate(secret)) == "ci"
    assert not [value for value in asyncio.run(stored_columns()) if secret[4:] in value]

    listed = runner.invoke(app, ["tokens", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    (shown,) = json.loads(listed.stdout)
    assert (shown["name"], shown["scope"], shown["workflows"], shown["owner"], shown["revoked"]) == (
        "ci",
        "run",
        ["greet"],
        "U123",
        False,
    )
    assert shown["expires_at"] and shown["last_used_at"]  # authenticate() above used it
    assert secret[4:] not in listed.stdout and secret[4:] not in runner.invoke(app, ["tokens", "list"]).stdout

    again = runner.invoke(app, ["tokens", "create", "ci", "--scope", "read"])
    assert again.exit_code == 2 and "exists already" in again.output


def test_revoke_refuses_the_token_from_then_on(database: Path) -> None:
    secret = printed_token(runner.invoke(app, ["tokens", "create", "temp", "--scope", "read"]).stdout)
    revoked = runner.invoke(app, ["tokens", "revoke", "temp"])
    assert revoked.exit_code == 0, revoked.output
    with pytest.raises(TokenRefusedError, match="revoked"):
        asyncio.run(authenticate(secret))
    assert "revoked" in runner.invoke(app, ["tokens", "list"]).stdout
    assert runner.invoke(app, ["tokens", "revoke", "temp"]).exit_code == 2
    # The name is free again once revoked.
    assert runner.invoke(app, ["tokens", "create", "temp", "--scope", "read"]).exit_code == 0


@pytest.mark.parametrize(
    ("arguments", "complaint"),
    [
        (["--scope", "write"], "choose read, run or admin"),
        (["--scope", "run", "--expires", "soon"], "not a duration"),
        (["--scope", "run", "--expires", "0d"], "not a duration"),
        (["--scope", "admin", "--workflow", "greet"], "covers every workflow"),
        (["--scope", "run", "--owner", "bob"], "not a Slack user id"),
    ],
)
def test_bad_arguments_are_named(database: Path, arguments: list[str], complaint: str) -> None:
    created = runner.invoke(app, ["tokens", "create", "x", *arguments])
    assert created.exit_code == 2, created.output
    assert complaint in created.output
    assert "sbt_" not in created.stdout
