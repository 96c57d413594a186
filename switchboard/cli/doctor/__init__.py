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

from prefect.settings import get_current_settings

from switchboard.cli.doctor import database as db_checks
from switchboard.cli.doctor import prefect as prefect_checks
from switchboard.cli.doctor import slack as slack_checks
from switchboard.cli.doctor.checks import MARKS, TIMEOUT, Check, Status, reason, redact_url
from switchboard.cli.doctor.plugins import plugins
from switchboard.cli.doctor.prices import prices
from switchboard.health import probe_database
from switchboard.settings import Settings

__all__ = ["MARKS", "Check", "Status", "redact_url", "run_checks"]


async def run_checks(settings: Settings, *, slack_api: bool = True) -> list[Check]:
    """Every check, in fix order. ``slack_api``: also call Slack's ``auth.test`` with the bot token."""
    url = settings.effective_database_url
    checks: list[Check] = []
    webhooks = False
    key_check, keyring = db_checks.secret_key(settings)
    async with probe_database(settings) as probe:
        database = await db_checks.database(probe, url, configured=bool(settings.database_url))
        checks.append(database)
        current = False
        if database.status == "fail":
            checks.append(Check("migrations", "info", "not checked: the database is unreachable"))
        else:
            migrations = await db_checks.migrations(probe)
            checks.append(migrations)
            current = migrations.status == "ok"
        checks.append(key_check)
        if current:
            try:
                secrets_check, webhooks = await asyncio.wait_for(db_checks.stored_secrets(probe, keyring), TIMEOUT * 2)
            except Exception as exc:
                secrets_check = Check("stored secrets", "fail", f"cannot read stored secrets ({reason(exc)})")
            checks.append(secrets_check)
        else:
            checks.append(Check("stored secrets", "info", "not checked: the database is unreachable or not migrated"))
    api_url = get_current_settings().api.url
    checks += await prefect_checks.prefect(api_url or None)
    checks += await slack_checks.slack(settings, call_api=slack_api)
    checks.append(slack_checks.public_url(settings, webhooks=webhooks))
    checks.append(plugins())
    checks.append(prices(settings))
    return checks
