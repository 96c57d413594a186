"""Doctor checks of the database, its migrations, the secret key and the secrets it decrypts."""

from __future__ import annotations

import asyncio
import stat

from sqlalchemy.engine import make_url

from storage.crypto import Keyring, SecretKeyError, parse_keys
from switchboard.cli.doctor.checks import NEW_KEY, TIMEOUT, Check, reason, redact_url
from switchboard.health import DatabaseProbe, head_revision, is_known_revision
from switchboard.settings import Settings
from switchboard.webhooks import PROVIDER as WEBHOOK_PROVIDER


async def database(probe: DatabaseProbe, url: str, *, configured: bool) -> Check:
    shown = redact_url(url)
    where = "SWITCHBOARD_DATABASE_URL" if configured else "the embedded SQLite database"

    try:
        await asyncio.wait_for(probe.ping(), TIMEOUT)
    except TimeoutError:
        return Check("database", "fail", f"{where} {shown} did not answer within {TIMEOUT:.0f} s", database_fix(url))
    except Exception as exc:
        why = reason(exc, make_url(url).password if "://" in url else None)
        return Check("database", "fail", f"cannot connect to {where} {shown} ({why})", database_fix(url))
    return Check("database", "ok", f"{where} {shown} is reachable")


def database_fix(url: str) -> str:
    if url.startswith("sqlite"):
        return "check that the SQLite file's directory is writable (SWITCHBOARD_HOME or SWITCHBOARD_DATABASE_URL)"
    return "start the database server, or correct SWITCHBOARD_DATABASE_URL (host, port, user, password, database)"


async def migrations(probe: DatabaseProbe) -> Check:
    current = await probe.revision()
    head = head_revision()
    if current == head:
        return Check("migrations", "ok", f"schema at the current migration {head}")
    if current is not None and not is_known_revision(current):
        return Check(
            "migrations",
            "fail",
            f"the database is at migration {current}, which this Switchboard does not know (a newer one migrated it)",
            "upgrade Switchboard to the version that migrated the database",
        )
    summary = f"the database is at migration {current or 'none'}, this Switchboard needs {head}"
    if probe.dialect == "sqlite":
        # ensure_schema migrates the embedded SQLite database on first use.
        return Check("migrations", "warn", summary + " (SQLite migrates itself on next use)", "switchboard db upgrade")
    return Check("migrations", "fail", summary, "switchboard db upgrade")


def secret_key(settings: Settings) -> tuple[Check, Keyring | None]:
    configured = settings.secret_key.get_secret_value() if settings.secret_key else ""
    if configured.strip():
        try:
            keyring = parse_keys(configured)
        except SecretKeyError as exc:
            return Check("secret key", "fail", str(exc), f"set SWITCHBOARD_SECRET_KEY to a Fernet key: {NEW_KEY}"), None
        count = len(keyring.keys)
        return (
            Check(
                "secret key", "ok", f"SWITCHBOARD_SECRET_KEY set ({count} key(s), encrypting with {keyring.primary_id})"
            ),
            keyring,
        )
    path = settings.home_dir / "secret.key"
    production = "production should set SWITCHBOARD_SECRET_KEY (and keep it backed up)"
    if not path.exists():
        return (
            Check(
                "secret key",
                "warn",
                f"SWITCHBOARD_SECRET_KEY is not set; a key is generated in {path} on first use",
                production,
            ),
            None,
        )
    try:
        keyring = parse_keys(path.read_text())
    except (OSError, SecretKeyError):
        return (
            Check(
                "secret key",
                "fail",
                f"{path} is not a readable Fernet key",
                f"restore the file from a backup; {production}",
            ),
            None,
        )
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        return (
            Check(
                "secret key", "fail", f"{path} has mode {mode:04o}: other users can read the key", f"chmod 600 {path}"
            ),
            keyring,
        )
    summary = f"SWITCHBOARD_SECRET_KEY is not set; using the generated key {path} (mode 0600, id {keyring.primary_id})"
    return Check("secret key", "warn", summary, production), keyring


async def stored_secrets(probe: DatabaseProbe, keyring: Keyring | None) -> tuple[Check, bool]:
    """Try to decrypt every stored credential and Slack installation; also returns whether any
    webhook secret is stored (webhooks in use)."""
    stored = await probe.sealed_secrets()
    webhooks = any(s.provider == WEBHOOK_PROVIDER for s in stored)
    sealed = [(s.label, s.key_id, s.secret) for s in stored]
    if not sealed:
        return Check("stored secrets", "ok", "no credentials stored yet"), webhooks
    if keyring is None:
        return (
            Check(
                "stored secrets",
                "fail",
                f"{len(sealed)} encrypted secret(s) stored but no usable key to decrypt them",
                "set SWITCHBOARD_SECRET_KEY to the key that encrypted them",
            ),
            webhooks,
        )
    unreadable: list[tuple[str, str]] = []
    for label, stored_key_id, secret in sealed:
        try:
            keyring.decrypt(secret)
        except SecretKeyError:
            unreadable.append((label, stored_key_id))
    if unreadable:
        missing = sorted({k for _, k in unreadable})
        names = ", ".join(label for label, _ in unreadable[:10]) + (" ..." if len(unreadable) > 10 else "")
        return (
            Check(
                "stored secrets",
                "fail",
                f"{len(unreadable)} of {len(sealed)} stored secret(s) do not decrypt with the configured key: {names}",
                f"add the key(s) with id {', '.join(missing)} to SWITCHBOARD_SECRET_KEY (after the current one), "
                "then run `switchboard credentials rotate-key`",
            ),
            webhooks,
        )
    primary = keyring.primary_id
    old = sum(1 for _, stored_key_id, _ in sealed if stored_key_id != primary)
    if old:
        return (
            Check(
                "stored secrets",
                "warn",
                f"all {len(sealed)} stored secret(s) decrypt; {old} still under an older key",
                "switchboard credentials rotate-key",
            ),
            webhooks,
        )
    return Check("stored secrets", "ok", f"all {len(sealed)} stored secret(s) decrypt"), webhooks
