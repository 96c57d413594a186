"""Encrypted credentials on SQLite and Postgres: at rest, rotation, owners, OAuth refresh."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

import switchboard
from storage.credentials import CredentialError, CredentialExistsError, CredentialStore
from storage.crypto import Keyring, SecretKeyError, load_keyring, parse_keys
from storage.db import create_engine
from storage.migrate import upgrade
from switchboard.cli import app
from tests.fakes.http import FakeHTTP, Reply

TOKEN = "ghp_KNOWN-TOKEN-0123456789abcdef"


@pytest.fixture
async def engine_url(database_url: str) -> AsyncIterator[str]:
    engine = create_engine(database_url)
    await upgrade(engine)
    await engine.dispose()
    yield database_url


def keyring(*keys: bytes) -> Keyring:
    return Keyring(keys)


async def with_store(url: str, ring: Keyring, action):  # type: ignore[no-untyped-def]
    engine = create_engine(url)
    try:
        return await action(CredentialStore(engine, ring))
    finally:
        await engine.dispose()


def database_bytes(url: str) -> bytes:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = Path(str(parsed.database))
        return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
    dump = subprocess.run(
        ["pg_dump", "-h", "127.0.0.1", "-U", "postgres", "--data-only", str(parsed.database)],
        capture_output=True,
        check=True,
        timeout=60,
    )
    return dump.stdout


async def test_secrets_are_encrypted_at_rest_and_never_listed(engine_url: str) -> None:
    ring = keyring(Fernet.generate_key())

    async def scenario(store: CredentialStore) -> None:
        info = await store.add(
            "gh", provider="github", secret=TOKEN, actor="admin", base_url="http://127.0.0.1:1/api/v3"
        )
        assert TOKEN not in json.dumps(info.to_dict())
        listed = await store.list()
        assert [i.name for i in listed] == ["gh"] and TOKEN not in json.dumps([i.to_dict() for i in listed])
        resolved = await store.resolve("gh", "github")
        assert resolved["token"] == TOKEN and resolved["base_url"] == "http://127.0.0.1:1/api/v3"

    await with_store(engine_url, ring, scenario)
    raw = database_bytes(engine_url)
    assert b"gh" in raw, "the dump is real"
    assert TOKEN.encode() not in raw


async def test_owner_credentials_win_and_mistakes_are_clear(engine_url: str) -> None:
    ring = keyring(Fernet.generate_key())

    async def scenario(store: CredentialStore) -> None:
        await store.add("gh", provider="github", secret="shared-token", actor="admin")
        await store.add("gh", provider="github", secret="users-token", actor="U1", owner="U1")
        assert (await store.resolve("gh", owner="U1"))["token"] == "users-token"
        assert (await store.resolve("gh", owner="U2"))["token"] == "shared-token"
        assert (await store.resolve("gh"))["token"] == "shared-token"
        with pytest.raises(CredentialExistsError):
            await store.add("gh", provider="github", secret="again", actor="admin")
        with pytest.raises(CredentialError, match="is for github, but the node needs a openai"):
            await store.resolve("gh", "openai")
        with pytest.raises(CredentialError, match="no credential named 'nope'"):
            await store.resolve("nope")
        await store.remove("gh", owner="U1", actor="admin")
        assert (await store.resolve("gh", owner="U1"))["token"] == "shared-token"

    await with_store(engine_url, ring, scenario)


async def test_rotate_key_reencrypts_everything(engine_url: str) -> None:
    old, new = Fernet.generate_key(), Fernet.generate_key()

    async def add(store: CredentialStore) -> None:
        for i in range(3):
            await store.add(f"c{i}", provider="http", secret=f"token-{i}", actor="admin")

    async def rotate(store: CredentialStore) -> int:
        return await store.rotate_key(actor="admin")

    async def read_all(store: CredentialStore) -> list[str]:
        return [(await store.resolve(f"c{i}"))["token"] for i in range(3)]

    await with_store(engine_url, keyring(old), add)
    assert await with_store(engine_url, keyring(new, old), rotate) == 3  # both keys readable meanwhile
    assert await with_store(engine_url, keyring(new), read_all) == ["token-0", "token-1", "token-2"]
    with pytest.raises(SecretKeyError, match="cannot be decrypted"):
        await with_store(engine_url, keyring(old), read_all)


async def test_oauth_tokens_refresh_once_under_concurrency(engine_url: str, fake_http: FakeHTTP) -> None:
    fake_http.script(
        "POST",
        "/token",
        Reply(200, {"access_token": "fresh-access", "expires_in": 3600, "refresh_token": "r2"}, delay=0.2),
    )
    expired = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    oauth = {
        "access_token": "stale",
        "refresh_token": "r1",
        "expires_at": expired,
        "client_id": "cid",
        "client_secret": "csecret",
        "token_url": fake_http.url("/token"),
    }

    async def scenario(store: CredentialStore) -> list[str]:
        await store.add("drive", provider="gdrive", secret=json.dumps(oauth), actor="admin")
        resolved = await asyncio.gather(*(store.resolve("drive", "gdrive") for _ in range(5)))
        again = await store.resolve("drive")
        return [r["access_token"] for r in resolved] + [again["refresh_token"]]

    tokens = await with_store(engine_url, keyring(Fernet.generate_key()), scenario)
    assert tokens == ["fresh-access"] * 5 + ["r2"]
    calls = fake_http.calls("/token", "POST")
    assert len(calls) == 1, "refreshed once, under the row lock"
    assert b"grant_type=refresh_token" in calls[0].body and b"refresh_token=r1" in calls[0].body


async def test_refusal_to_refresh_says_reconnect(engine_url: str, fake_http: FakeHTTP) -> None:
    fake_http.script("POST", "/token", Reply(400, {"error": "invalid_grant"}))
    oauth = {"access_token": "a", "refresh_token": "r", "expires_at": 0, "token_url": fake_http.url("/token")}

    async def scenario(store: CredentialStore) -> None:
        await store.add("drive", provider="gdrive", secret=json.dumps(oauth), actor="admin")
        with pytest.raises(CredentialError, match="reconnect"):
            await store.resolve("drive")

    await with_store(engine_url, keyring(Fernet.generate_key()), scenario)


def test_keys_from_settings_or_a_generated_file(tmp_path: Path) -> None:
    with pytest.raises(SecretKeyError, match="not a Fernet key"):
        parse_keys("not-a-key")
    ring = load_keyring(None, tmp_path)
    key_file = tmp_path / "secret.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert load_keyring(None, tmp_path).primary_id == ring.primary_id


def test_cli_reads_the_secret_from_stdin_and_never_prints_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("SWITCHBOARD_SECRET_KEY", Fernet.generate_key().decode())
    runner = CliRunner()
    added = runner.invoke(app, ["credentials", "add", "gh", "--provider", "github"], input=TOKEN + "\n")
    assert added.exit_code == 0, added.output
    assert "stored credential gh (github), encrypted" in added.stdout and TOKEN not in added.output
    listed = runner.invoke(app, ["credentials", "list", "--json"])
    assert [c["name"] for c in json.loads(listed.stdout)] == ["gh"] and TOKEN not in listed.output
    duplicate = runner.invoke(app, ["credentials", "add", "gh", "--provider", "github"], input="x\n")
    assert duplicate.exit_code == 2 and "exists" in duplicate.stderr
    assert "re-encrypted 1 credential(s)" in runner.invoke(app, ["credentials", "rotate-key"]).stdout
    assert runner.invoke(app, ["credentials", "remove", "gh"]).exit_code == 0
    assert json.loads(runner.invoke(app, ["credentials", "list", "--json"]).stdout) == []
    actions = [e["action"] for e in json.loads(runner.invoke(app, ["audit", "--json"]).stdout)]
    assert actions == ["credential-remove", "credential-rotate", "credential-add"]
    assert TOKEN.encode() not in (tmp_path / "cli.db").read_bytes()


@switchboard.node("test.token_length", credential="github")
async def token_length(ctx: switchboard.NodeContext) -> dict[str, int]:
    """Report the length of the resolved token (test only; never the token)."""
    credential = await ctx.credential()
    return {"length": len(credential["token"])}


@pytest.mark.usefixtures("prefect_server")
async def test_nodes_resolve_credentials_preferring_the_triggering_user(
    engine_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = Fernet.generate_key()
    monkeypatch.setenv("SWITCHBOARD_DATABASE_URL", engine_url)
    monkeypatch.setenv("SWITCHBOARD_SECRET_KEY", key.decode())

    async def seed(store: CredentialStore) -> None:
        await store.add("gh", provider="github", secret="x" * 10, actor="admin")
        await store.add("gh", provider="github", secret="y" * 20, actor="U7", owner="U7")

    await with_store(engine_url, keyring(key), seed)
    definition = {"name": "creds", "nodes": [{"id": "t", "type": "test.token_length", "credential": "gh"}]}
    shared = await switchboard.arun(definition)
    own = await switchboard.arun(definition, triggered_by="U7")
    assert (shared.nodes["t"].output, own.nodes["t"].output) == ({"length": 10}, {"length": 20})
    missing = await switchboard.arun({**definition, "nodes": [{**definition["nodes"][0], "credential": "nope"}]})
    assert missing.nodes["t"].status == "failed"
    assert "no credential named 'nope'" in (missing.nodes["t"].error or "")
    assert "reconnect credential 'nope'" in (missing.nodes["t"].error or "")


async def test_nodes_never_receive_switchboards_own_secrets(engine: object, tmp_path: Path) -> None:
    from nodes.errors import AuthError
    from switchboard.credentials import credential_store, resolver_for
    from switchboard.settings import Settings

    settings = Settings(home=tmp_path, secret_key=Fernet.generate_key().decode())
    store = credential_store(engine, settings)  # type: ignore[arg-type]
    await store.add("webhook:deploy", provider="webhook", secret="whsec-abc", actor="test")
    resolve = resolver_for(engine, settings, None)  # type: ignore[arg-type]
    with pytest.raises(AuthError, match="belongs to Switchboard itself") as caught:
        await resolve("webhook:deploy", None)  # a node that declares no credential kind
    assert "whsec-abc" not in str(caught.value)
