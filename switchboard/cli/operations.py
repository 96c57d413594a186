"""Running Switchboard's processes and looking after them.

``bot``, ``server``, ``worker``, ``doctor`` and ``db upgrade``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

import typer
from rich.markup import escape

from switchboard.cli.doctor import run_checks
from switchboard.cli.output import (
    EXIT_FAILED,
    EXIT_INVALID,
    EXIT_OK,
    emit_json,
    err,
    out,
    quiet_prefect_console,
)
from switchboard.cli.root import app
from switchboard.cli.session import run_settings, settings
from switchboard.database import upgrade_database
from switchboard.work_pool import WORK_POOL

db_app = typer.Typer(help="Switchboard's database.", no_args_is_help=True)


@app.command()
def bot(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 3000,
    socket: Annotated[
        bool, typer.Option("--socket", help="Connect over Slack's Socket Mode (SLACK_APP_TOKEN) instead of HTTP.")
    ] = False,
) -> None:
    """Serve the Slack bot and the HTTP API: /slack/events, /api/v1, /hooks/NAME and /healthz.

    With --socket, connect to Slack over Socket Mode instead: no public URL needed (and no HTTP routes).
    """
    from bot import socket_mode
    from bot.app import BotConfigError
    from bot.server import run

    try:
        if socket:
            socket_mode.run(run_settings())
        else:
            run(run_settings(), host=host, port=port)
    except BotConfigError as exc:
        err.print(f"[red]✗[/red] {escape(str(exc))}")
        raise typer.Exit(EXIT_INVALID) from None


@app.command()
def server(
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0: every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 4200,
    ui_api_url: Annotated[
        str | None,
        typer.Option(
            help="Where browsers reach the API, for a server behind a proxy (default: PREFECT_UI_API_URL, "
            "else /api on the address the UI was loaded from)."
        ),
    ] = None,
) -> None:
    """Run the Prefect server (API and UI) that workers, bots and `deploy` talk to.

    Its database is PREFECT_API_DATABASE_CONNECTION_URL (postgresql+asyncpg://user:pass@host/db
    for several workers), else SQLite under PREFECT_HOME. Stops cleanly on SIGTERM or Ctrl-C.
    """
    import os

    from deployments import processes

    command = processes.server_command(host, port, ui_api_url=ui_api_url)
    url = processes.api_url(host, port)
    out.print(f"Prefect server on {escape(processes.server_database(command.env))}")
    out.print(f"UI: {url.removesuffix('/api')}/v2/ (each run's artifact draws its graph; the classic UI is at /)")
    out.print(f"for workers, bots and `switchboard deploy`: export PREFECT_API_URL={url}")
    if os.environ.get("PREFECT_API_URL") and os.environ["PREFECT_API_URL"].rstrip("/") != url:
        err.print(f"[yellow]![/yellow] PREFECT_API_URL is {escape(os.environ['PREFECT_API_URL'])} in this shell")
    raise typer.Exit(processes.supervise(command))


@app.command()
def worker(
    limit: Annotated[int, typer.Option(min=1, help="Flow runs this worker runs at once.")] = 4,
    name: Annotated[str | None, typer.Option(help="The worker's name in Prefect (default: Prefect's).")] = None,
    isolated: Annotated[
        bool,
        typer.Option("--isolated", help="A new Python process per run (Prefect's process worker), not in-process."),
    ] = False,
    grace: Annotated[
        float, typer.Option(min=0, help="On SIGTERM, seconds running runs get to finish before they are crashed.")
    ] = 30.0,
) -> None:
    """Run a worker for the switchboard work pool (needs PREFECT_API_URL).

    By default the worker is warm: it runs workflow runs inside its own process, so a run's
    first node starts without a Python start-up (~4 s), and it marks Crashed the runs of
    workers that died. --isolated starts a process per run instead. Creates the work pool if
    it is missing and polls every second (PREFECT_WORKER_QUERY_SECONDS,
    PREFECT_WORKER_PREFETCH_SECONDS, PREFECT_WORKER_HEARTBEAT_SECONDS override). Stops
    cleanly on SIGTERM or Ctrl-C.
    """
    from deployments import processes

    if not isolated:
        from deployments.warm_worker import hold_stop_signals

        hold_stop_signals()  # before any thread starts (see there)
    quiet_prefect_console(False)
    try:
        url = asyncio.run(processes.prepare_worker())
    except processes.WorkerConfigError as exc:
        err.print(f"[red]✗[/red] {escape(str(exc))}")
        raise typer.Exit(EXIT_INVALID) from None
    mode = "a process per run" if isolated else "in-process"
    out.print(f"worker for work pool {WORK_POOL} on {escape(url)} (up to {limit} runs at once, {mode})")
    if isolated:
        raise typer.Exit(processes.supervise(processes.worker_command(limit, name)))
    from prefect.settings import temporary_settings

    from deployments.warm_worker import serve

    # The worker's own decisions (runs reaped, cancelled, given back) go to stderr; the
    # console handler of Prefect's root logger was quieted above.
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    worker_logger = logging.getLogger("deployments")
    worker_logger.addHandler(handler)
    worker_logger.setLevel(logging.INFO)
    worker_logger.propagate = False
    with temporary_settings(updates=processes.worker_settings()):
        asyncio.run(serve(limit=limit, name=name, grace=grace, settings=run_settings()))


@app.command()
def doctor(
    as_json: Annotated[bool, typer.Option("--json", help="Print the checks as JSON.")] = False,
    slack_api: Annotated[
        bool, typer.Option("--slack-api/--no-slack-api", help="Check the bot token with Slack's auth.test.")
    ] = True,
) -> None:
    """Check the database, migrations, secret key, Prefect, workers and Slack; say what to fix.

    Exit 0 when nothing failed (✗), 1 otherwise.
    """
    quiet_prefect_console(False)
    checks = asyncio.run(run_checks(settings(), slack_api=slack_api))
    failed = any(c.status == "fail" for c in checks)
    if as_json:
        emit_json({"ok": not failed, "checks": [c.to_dict() for c in checks]})
    else:
        styles = {"ok": "green", "warn": "yellow", "fail": "red", "info": "dim"}
        for c in checks:
            style = styles[c.status]
            out.print(f"[{style}]{c.mark}[/{style}] [bold]{escape(c.name)}[/bold]: {escape(c.summary)}")
            if c.fix and c.status in ("warn", "fail"):
                out.print(f"    fix: {escape(c.fix)}")
    raise typer.Exit(EXIT_FAILED if failed else EXIT_OK)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Migrate the configured database (SWITCHBOARD_DATABASE_URL) to the current schema."""
    revision = asyncio.run(upgrade_database(settings()))
    out.print(f"[green]✔[/green] database at migration {revision}")
