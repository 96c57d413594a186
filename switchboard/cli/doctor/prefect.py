"""Doctor checks of Prefect: its API, the work pool and its workers, Switchboard's deployments."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from prefect.exceptions import ObjectNotFound
from prefect.settings import get_current_settings

from switchboard import embedded_prefect
from switchboard.cli.doctor.checks import HEARTBEAT_MISSES, TIMEOUT, Check, reason
from switchboard.work_pool import CLEANUP_DEPLOYMENT, CLEANUP_FLOW_NAME, FLOW_NAME, GENERIC_DEPLOYMENT, WORK_POOL


def _strip_auth(url: str) -> str:
    parsed = httpx.URL(url)
    return str(parsed.copy_with(userinfo=b"")) if parsed.userinfo else url


async def prefect(api_url: str | None) -> list[Check]:
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
        async with asyncio.timeout(budget), embedded_prefect.client() as client:
            error = await client.api_healthcheck()
            if error is not None:
                return [Check("prefect", "fail", f"{where} does not answer ({reason(error)})", unreachable_fix)]
            checks = [Check("prefect", "ok", f"{where} answers")]
            if not api_url:
                checks.append(Check("work pool", "info", "embedded: runs execute in-process (no work pool or workers)"))
                return checks
            return checks + await _work_pool(client) + await _deployments(client)
    except TimeoutError:
        return [Check("prefect", "fail", f"{where} did not answer within {budget:.0f} s", unreachable_fix)]
    except Exception as exc:
        return [Check("prefect", "fail", f"{where} does not answer ({reason(exc)})", unreachable_fix)]


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
