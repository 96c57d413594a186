"""``switchboard doctor``: what is misconfigured or down, and what to do about it.

:func:`run_checks` returns one :class:`Check` per concern, in the order a fix is best applied
(the database before its migrations, the key before the secrets it decrypts). A check that
cannot run because an earlier one failed says so as ``info``. Nothing here prints, logs or
returns a secret: URLs are shown without their password, tokens never.

Status: ``ok`` (✔), ``warn`` (!, works but should change), ``fail`` (✗, something will not
work), ``info`` (·, nothing to check or a mode worth knowing).
"""

from __future__ import annotations

import asyncio
import stat
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import httpx
from prefect.exceptions import ObjectNotFound
from prefect.settings import get_current_settings
from sqlalchemy import select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from deployments.sync import WORK_POOL
from storage.crypto import Keyring, SecretKeyError, parse_keys
from storage.db import create_engine, sessionmaker
from storage.migrate import current_revision, head_revision, is_known_revision
from storage.models import CredentialRow
from storage.slack_installations import SlackInstallationRow
from switchboard import embedded_prefect
from switchboard.settings import Settings

Status = Literal["ok", "warn", "fail", "info"]
MARKS: dict[str, str] = {"ok": "✔", "warn": "!", "fail": "✗", "info": "·"}

#: The work pool workers serve (``prefect.yaml``).
#: Seconds any single network check may take.
TIMEOUT = 5.0
#: A worker is alive if it sent a heartbeat within this many of its heartbeat intervals.
HEARTBEAT_MISSES = 3
#: The credential provider of webhook secrets (switchboard.webhooks.PROVIDER).
WEBHOOK_PROVIDER = "webhook"
_NEW_KEY = "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"


@dataclass(frozen=True)
class Check:
    """One finding: ``summary`` says what was found, ``fix`` what to do (for warn and fail)."""

    name: str
    status: Status
    summary: str
    fix: str | None = None

    @property
    def mark(self) -> str:
        return MARKS[self.status]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "summary": self.summary, "fix": self.fix}


def redact_url(url: str) -> str:
    """A database URL with its password replaced by ``***``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(unparseable URL)"


def _reason(exc: BaseException, secret: str | None = None) -> str:
    """An exception as one short line, with ``secret`` (a password) removed if it appears."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if secret:
        message = message.replace(secret, "***")
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


# --- database ------------------------------------------------------------------------------


async def _database(engine: AsyncEngine, url: str, *, configured: bool) -> Check:
    shown = redact_url(url)
    where = "SWITCHBOARD_DATABASE_URL" if configured else "the embedded SQLite database"

    async def ping() -> None:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    try:
        await asyncio.wait_for(ping(), TIMEOUT)
    except TimeoutError:
        return Check("database", "fail", f"{where} {shown} did not answer within {TIMEOUT:.0f} s", _database_fix(url))
    except Exception as exc:
        reason = _reason(exc, make_url(url).password if "://" in url else None)
        return Check("database", "fail", f"cannot connect to {where} {shown} ({reason})", _database_fix(url))
    return Check("database", "ok", f"{where} {shown} is reachable")


def _database_fix(url: str) -> str:
    if url.startswith("sqlite"):
        return "check that the SQLite file's directory is writable (SWITCHBOARD_HOME or SWITCHBOARD_DATABASE_URL)"
    return "start the database server, or correct SWITCHBOARD_DATABASE_URL (host, port, user, password, database)"


async def _migrations(engine: AsyncEngine) -> Check:
    async with engine.connect() as connection:
        current = await connection.run_sync(current_revision)
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
    if engine.dialect.name == "sqlite":
        # ensure_schema migrates the embedded SQLite database on first use.
        return Check("migrations", "warn", summary + " (SQLite migrates itself on next use)", "switchboard db upgrade")
    return Check("migrations", "fail", summary, "switchboard db upgrade")


# --- the secret key and what it decrypts ---------------------------------------------------


def _secret_key(settings: Settings) -> tuple[Check, Keyring | None]:
    configured = settings.secret_key.get_secret_value() if settings.secret_key else ""
    if configured.strip():
        try:
            keyring = parse_keys(configured)
        except SecretKeyError as exc:
            return Check(
                "secret key", "fail", str(exc), f"set SWITCHBOARD_SECRET_KEY to a Fernet key: {_NEW_KEY}"
            ), None
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


async def _stored_secrets(engine: AsyncEngine, keyring: Keyring | None) -> tuple[Check, bool]:
    """Try to decrypt every stored credential and Slack installation; also returns whether any
    webhook secret is stored (webhooks in use)."""
    sessions = sessionmaker(engine)
    async with sessions() as session:
        credentials = (
            await session.execute(
                select(
                    CredentialRow.name,
                    CredentialRow.owner,
                    CredentialRow.provider,
                    CredentialRow.key_id,
                    CredentialRow.secret,
                )
            )
        ).all()
        installations = (
            await session.execute(
                select(SlackInstallationRow.team_id, SlackInstallationRow.key_id, SlackInstallationRow.secret)
            )
        ).all()
    webhooks = any(row.provider == WEBHOOK_PROVIDER for row in credentials)
    sealed = [
        (f"{row.name}" + (f" (owner {row.owner})" if row.owner else ""), row.key_id, row.secret) for row in credentials
    ] + [(f"Slack installation {row.team_id or 'enterprise'}", row.key_id, row.secret) for row in installations]
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


# --- Prefect -------------------------------------------------------------------------------


def _strip_auth(url: str) -> str:
    parsed = httpx.URL(url)
    return str(parsed.copy_with(userinfo=b"")) if parsed.userinfo else url


async def _prefect(api_url: str | None) -> list[Check]:
    if api_url:
        where = f"PREFECT_API_URL {_strip_auth(api_url)}"
        unreachable_fix = (
            "start the Prefect server (`switchboard server` or `prefect server start`) or correct PREFECT_API_URL"
        )
    else:
        where = "the embedded Prefect server (PREFECT_API_URL is not set; it starts in-process on demand)"
        unreachable_fix = "check PREFECT_HOME's database, or set PREFECT_API_URL to a running Prefect server"
    # The embedded server starts a subprocess first: give it its start-up time.
    budget = TIMEOUT if api_url else get_current_settings().server.ephemeral.startup_timeout_seconds + TIMEOUT
    try:
        async with asyncio.timeout(budget):
            async with embedded_prefect.client() as client:
                error = await client.api_healthcheck()
                if error is not None:
                    return [Check("prefect", "fail", f"{where} does not answer ({_reason(error)})", unreachable_fix)]
                checks = [Check("prefect", "ok", f"{where} answers")]
                if not api_url:
                    checks.append(
                        Check("work pool", "info", "embedded: runs execute in-process (no work pool or workers)")
                    )
                    return checks
                return checks + await _work_pool(client) + await _deployments(client)
    except TimeoutError:
        return [Check("prefect", "fail", f"{where} did not answer within {budget:.0f} s", unreachable_fix)]
    except Exception as exc:
        return [Check("prefect", "fail", f"{where} does not answer ({_reason(exc)})", unreachable_fix)]


async def _work_pool(client: Any) -> list[Check]:
    try:
        pool = await client.read_work_pool(WORK_POOL)
    except ObjectNotFound:
        return [
            Check(
                "work pool",
                "fail",
                f"the work pool {WORK_POOL!r} does not exist: remote runs have nowhere to go",
                f"switchboard deploy (or prefect work-pool create {WORK_POOL} --type process)",
            )
        ]
    checks = [
        Check("work pool", "warn", f"the work pool {WORK_POOL!r} is paused", f"prefect work-pool resume {WORK_POOL}")
        if pool.is_paused
        else Check("work pool", "ok", f"the work pool {WORK_POOL!r} exists ({pool.type})")
    ]
    workers = await client.read_workers_for_work_pool(WORK_POOL)
    now = datetime.now(UTC)
    default_interval = get_current_settings().worker.heartbeat_seconds

    def alive(worker: Any) -> bool:
        beat = worker.last_heartbeat_time
        if beat is None:
            return False
        interval = worker.heartbeat_interval_seconds or default_interval
        return now - beat <= timedelta(seconds=interval * HEARTBEAT_MISSES)

    live = [w for w in workers if alive(w)]
    start = f"start one: `switchboard worker` (or `prefect worker start --pool {WORK_POOL}`)"
    if not live:
        seen = f" ({len(workers)} known, none with a recent heartbeat)" if workers else ""
        checks.append(Check("workers", "fail", f"no live worker in {WORK_POOL!r}{seen}: remote runs wait", start))
    else:
        names = ", ".join(sorted(w.name for w in live)[:5])
        checks.append(Check("workers", "ok", f"{len(live)} worker(s) with a recent heartbeat: {names}"))
    return checks


async def _deployments(client: Any) -> list[Check]:
    """The on-demand deployment remote runs need, and the scheduled clean-up."""
    from deployments.entrypoint import CLEANUP_FLOW_NAME, FLOW_NAME
    from deployments.sync import CLEANUP_DEPLOYMENT, GENERIC_DEPLOYMENT

    generic = f"{FLOW_NAME}/{GENERIC_DEPLOYMENT}"
    cleanup = f"{CLEANUP_FLOW_NAME}/{CLEANUP_DEPLOYMENT}"
    wanted = [
        (
            generic,
            Check("deployments", "ok", f"{generic} exists (Slack, webhook and --remote runs)"),
            Check(
                "deployments",
                "warn",
                f"{generic} does not exist yet (the first remote run creates it)",
                "switchboard deploy",
            ),
        ),
        (
            cleanup,
            Check("retention", "ok", f"{cleanup} deletes old runs on its schedule"),
            Check(
                "retention",
                "info",
                f"no {cleanup} deployment: old runs stay until `switchboard cleanup` runs",
                "switchboard deploy (or SWITCHBOARD_CLEANUP_SCHEDULE=off and a cron job)",
            ),
        ),
    ]
    checks: list[Check] = []
    for name, found, missing in wanted:
        try:
            await client.read_deployment_by_name(name)
            checks.append(found)
        except ObjectNotFound:
            checks.append(missing)
    return checks


# --- Slack and the public URL --------------------------------------------------------------


def _secret(value: Any) -> str:
    return value.get_secret_value() if value is not None else ""


async def _slack(settings: Settings, *, call_api: bool) -> list[Check]:
    bot_token = _secret(settings.slack_bot_token)
    signing = _secret(settings.slack_signing_secret)
    app_token = _secret(settings.slack_app_token)
    client_secret = _secret(settings.slack_client_secret)
    client_id = settings.slack_client_id or ""
    if not (bot_token or signing or app_token or client_id or client_secret):
        return [Check("slack", "info", "Slack is not configured (the bot is not used)")]
    problems: list[tuple[str, str]] = []
    notes: list[str] = []
    if bool(client_id) != bool(client_secret):
        problems.append(
            ("SLACK_CLIENT_ID and SLACK_CLIENT_SECRET go together", "set both (the app's Basic Information page)")
        )
    multi = bool(client_id and client_secret)
    if multi:
        notes.append("multi-workspace (each workspace installs the app)")
        if bot_token:
            notes.append("SLACK_BOT_TOKEN is not used in multi-workspace mode")
    elif not bot_token:
        problems.append(
            (
                "no bot token",
                "set SLACK_BOT_TOKEN (xoxb-..., one workspace) or SLACK_CLIENT_ID and SLACK_CLIENT_SECRET (any)",
            )
        )
    elif not bot_token.startswith("xoxb-"):
        problems.append(("SLACK_BOT_TOKEN is not a bot token (xoxb-...)", "copy the Bot User OAuth Token"))
    if app_token and not app_token.startswith("xapp-"):
        problems.append(
            ("SLACK_APP_TOKEN is not an app-level token (xapp-...)", "create an app-level token with connections:write")
        )
    if not signing:
        if app_token:
            notes.append("Socket Mode only (`switchboard bot --socket`): no SLACK_SIGNING_SECRET for HTTP requests")
        else:
            problems.append(
                (
                    "SLACK_SIGNING_SECRET is not set: requests from Slack cannot be verified",
                    "set SLACK_SIGNING_SECRET (the app's Basic Information page), or SLACK_APP_TOKEN for Socket Mode",
                )
            )
    elif app_token:
        notes.append("HTTP and Socket Mode possible")
    if problems:
        return [Check("slack", "fail", "; ".join(p for p, _ in problems), "; ".join(f for _, f in problems))]
    checks = [Check("slack", "ok", "settings consistent" + (f": {'; '.join(notes)}" if notes else ""))]
    if call_api and bot_token and not multi:
        checks.append(await _auth_test(settings.slack_api_url, bot_token))
    return checks


async def _auth_test(api_url: str, token: str) -> Check:
    url = api_url.rstrip("/") + "/auth.test"
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT) as http:
            response = await http.post(url, headers={"Authorization": f"Bearer {token}"})
        body = response.json()
    except Exception as exc:
        return Check(
            "slack auth.test",
            "fail",
            f"Slack's Web API at {api_url} cannot be reached ({_reason(exc, token)})",
            "check the network, or SWITCHBOARD_SLACK_API_URL",
        )
    if not isinstance(body, dict) or not body.get("ok"):
        code = (
            body.get("error", f"HTTP {response.status_code}")
            if isinstance(body, dict)
            else f"HTTP {response.status_code}"
        )
        return Check(
            "slack auth.test",
            "fail",
            f"Slack refused the bot token ({code})",
            "copy the current Bot User OAuth Token (reinstalling the app issues a new one)",
        )
    return Check(
        "slack auth.test",
        "ok",
        f"bot token valid: team {body.get('team')} ({body.get('team_id')}), user {body.get('user')}",
    )


def _public_url(settings: Settings, *, webhooks: bool) -> Check:
    users = []
    if webhooks:
        users.append("webhooks")
    if settings.oauth_providers():
        users.append("/flow connect")
    if settings.slack_multi_workspace:
        users.append("the Slack install flow")
    url = settings.public_url
    if not users:
        return Check(
            "public url", "info", f"SWITCHBOARD_PUBLIC_URL {url or 'not set'} (no webhooks, connect or install flow)"
        )
    used = ", ".join(users)
    if not url:
        return Check(
            "public url",
            "fail",
            f"SWITCHBOARD_PUBLIC_URL is not set, but {used} need it",
            "set SWITCHBOARD_PUBLIC_URL to where Slack and browsers reach the bot (https://...)",
        )
    parsed = httpx.URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        return Check(
            "public url", "fail", f"SWITCHBOARD_PUBLIC_URL {url!r} is not an http(s) URL", "use https://host[:port]"
        )
    if parsed.scheme == "http" and parsed.host not in ("127.0.0.1", "localhost"):
        return Check(
            "public url", "warn", f"SWITCHBOARD_PUBLIC_URL {url} is plain http ({used})", "serve the bot over https"
        )
    return Check("public url", "ok", f"SWITCHBOARD_PUBLIC_URL {url} ({used})")


# --- all of them ---------------------------------------------------------------------------


async def run_checks(settings: Settings, *, slack_api: bool = True) -> list[Check]:
    """Every check, in fix order. ``slack_api``: also call Slack's ``auth.test`` with the bot token."""
    url = settings.effective_database_url
    checks: list[Check] = []
    webhooks = False
    key_check, keyring = _secret_key(settings)
    engine = create_engine(url)
    try:
        database = await _database(engine, url, configured=bool(settings.database_url))
        checks.append(database)
        current = False
        if database.status == "fail":
            checks.append(Check("migrations", "info", "not checked: the database is unreachable"))
        else:
            migrations = await _migrations(engine)
            checks.append(migrations)
            current = migrations.status == "ok"
        checks.append(key_check)
        if current:
            try:
                secrets_check, webhooks = await asyncio.wait_for(_stored_secrets(engine, keyring), TIMEOUT * 2)
            except Exception as exc:
                secrets_check = Check("stored secrets", "fail", f"cannot read stored secrets ({_reason(exc)})")
            checks.append(secrets_check)
        else:
            checks.append(Check("stored secrets", "info", "not checked: the database is unreachable or not migrated"))
    finally:
        await engine.dispose()
    api_url = get_current_settings().api.url
    checks += await _prefect(api_url or None)
    checks += await _slack(settings, call_api=slack_api)
    checks.append(_public_url(settings, webhooks=webhooks))
    return checks
