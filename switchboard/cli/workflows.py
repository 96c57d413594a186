"""Stored workflows from the command line.

``validate``, ``apply``, ``deploy``, ``list``, ``show``, ``diff``, ``rollback``, ``archive``, ``audit``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from prefect.exceptions import PrefectHTTPStatusError
from rich.markup import escape
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

import switchboard
from deployments.sync import SyncReport
from deployments.sync import deploy as deploy_schedules
from flows.graph import mermaid
from flows.model import Workflow
from switchboard.cli.output import (
    EXIT_FAILED,
    EXIT_INVALID,
    emit_json,
    err,
    out,
    print_problems,
)
from switchboard.cli.root import app
from switchboard.cli.session import with_client
from switchboard.errors import DefinitionError
from switchboard.subworkflows import static_calls
from switchboard.work_pool import WORK_POOL, api_url_configured

_DEPLOY_STYLE = {"created": "green", "updated": "cyan", "paused": "yellow", "resumed": "green", "removed": "red"}


@app.command()
def validate(
    file: Annotated[Path, typer.Argument(help="Workflow file (YAML or JSON).")],
    graph: Annotated[bool, typer.Option("--graph", help="Print the workflow as a Mermaid flowchart.")] = False,
) -> None:
    """Check a workflow file and print every problem (exit 2 if there are any).

    Its calls to stored workflows (`core.workflow`) are checked against the database too: a
    cycle is a problem, a workflow that is not stored a warning.
    """
    try:
        plan = switchboard.validate(file)
        if static_calls(plan.workflow):
            _check_stored_calls(plan.workflow)
    except DefinitionError as exc:
        print_problems(exc)
        raise typer.Exit(EXIT_INVALID) from None
    if graph:
        sys.stdout.write(mermaid(plan))
        return
    out.print(f"[green]✔[/green] {plan.workflow.name}: {len(plan.nodes)} nodes, valid")


def _check_stored_calls(workflow: Workflow) -> None:
    """Refuse a cycle through the stored workflows (:class:`DefinitionError`) and warn of
    calls to workflows that are not stored; without a reachable database, say what was not
    checked (the file itself is valid)."""

    async def check(client: switchboard.Client) -> dict[str, str]:
        await client.workflows.check_calls(workflow)
        return await client.workflows.unknown_calls(workflow)

    try:
        unknown = with_client(check)
    except (OSError, SQLAlchemyError) as exc:
        err.print(f"[yellow]![/yellow] calls to stored workflows not checked: no database ({escape(str(exc)[:200])})")
        return
    for node_id, name in unknown.items():
        err.print(f"[yellow]![/yellow] node '{escape(node_id)}' calls workflow '{escape(name)}', which is not stored")


@app.command()
def apply(
    file: Annotated[Path, typer.Argument(help="A workflow file (YAML or JSON), or a folder of them.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    deploy_: Annotated[
        bool, typer.Option("--deploy", help="Then sync this workflow's schedule to Prefect (`switchboard deploy`).")
    ] = False,
    prune: Annotated[
        bool, typer.Option("--prune", help="With a folder: archive stored workflows that are not in it.")
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="With a folder: print what would change and change nothing (exit 3 if anything would)."
        ),
    ] = False,
) -> None:
    """Validate a workflow file and store it as a new version if it changed.

    Given a folder, apply every *.yaml, *.yml and *.json below it in one transaction: all or
    nothing, every problem of every file listed.
    """
    if file.is_dir():
        _apply_folder(file, as_json=as_json, prune=prune, dry_run=dry_run, deploy_=deploy_)
        return
    if prune or dry_run:
        err.print("[red]✗[/red] --prune and --dry-run apply a folder; give the folder that holds the workflows")
        raise typer.Exit(EXIT_INVALID)
    try:
        result = with_client(lambda client: client.workflows.apply(file))
    except DefinitionError as exc:
        print_problems(exc)
        raise typer.Exit(EXIT_INVALID) from None
    report = _deploy(result.name) if deploy_ else None
    if as_json:
        data: dict[str, Any] = {"name": result.name, "version": result.version, "created": result.created}
        if report is not None:
            data["deployments"] = report.to_dict()["deployments"]
        emit_json(data)
        return
    if result.created:
        out.print(f"[green]✔[/green] stored {result.name} v{result.version}")
    else:
        out.print(f"{result.name} v{result.version} unchanged")
    if report is not None:
        _print_deploy_report(report)
    elif switchboard.load(file).schedule is not None:
        out.print(f"it has a schedule: run `switchboard deploy {result.name}` to sync it to Prefect (or use --deploy)")


#: Exit code of ``apply DIR --dry-run`` when applying would change something (for CI).
EXIT_WOULD_CHANGE = 3


def _apply_folder(folder: Path, *, as_json: bool, prune: bool, dry_run: bool, deploy_: bool) -> None:
    try:
        changes = with_client(lambda client: client.workflows.apply_folder(folder, prune=prune, dry_run=dry_run))
    except DefinitionError as exc:
        print_problems(exc)
        raise typer.Exit(EXIT_INVALID) from None
    changed = [c for c in changes if c.change != "unchanged"]
    report = _deploy(None) if deploy_ and not dry_run else None
    if as_json:
        data: dict[str, Any] = {"dry_run": dry_run, "changes": [c.to_dict() for c in changes]}
        if report is not None:
            data["deployments"] = report.to_dict()["deployments"]
        emit_json(data)
    else:
        table = Table(title=f"{folder}{' (dry run: nothing changed)' if dry_run else ''}", title_justify="left")
        for column in ("workflow", "change", "version"):
            table.add_column(column)
        for c in changes:
            table.add_row(escape(c.name), c.change, f"v{c.version}")
        out.print(table)
        counts = {kind: sum(1 for c in changes if c.change == kind) for kind in ("created", "new version", "archived")}
        summary = ", ".join(f"{count} {kind}" for kind, count in counts.items() if count) or "nothing to change"
        out.print(("would apply: " if dry_run else "applied: ") + summary)
        if report is not None:
            _print_deploy_report(report)
    if dry_run and changed:
        raise typer.Exit(EXIT_WOULD_CHANGE)


def _deploy(name: str | None) -> SyncReport:
    try:
        return with_client(lambda client: deploy_schedules(client, name))
    except PrefectHTTPStatusError as exc:
        err.print(f"[red]✗[/red] the Prefect API refused: {escape(str(exc))}")
        raise typer.Exit(EXIT_FAILED) from None


def _print_deploy_report(report: SyncReport) -> None:
    table = Table(title="deployments", title_justify="left")
    for column in ("workflow", "action", "version", "schedule", "changed"):
        table.add_column(column, overflow="fold", no_wrap=column in ("workflow", "action", "version"))
    for c in report.changes:
        style = _DEPLOY_STYLE.get(c.action, "")
        table.add_row(
            escape(c.workflow),
            f"[{style}]{c.action}[/{style}]" if style else c.action,
            f"v{c.version}" if c.version is not None else "",
            escape(c.schedule + (" · paused" if c.paused and c.action != "removed" else "")),
            ", ".join(c.changed),
        )
    out.print(table)
    _print_own_deployments(report)


def _print_own_deployments(report: SyncReport) -> None:
    for name, action in (("run-workflow/run-workflow", report.generic), ("switchboard-cleanup/daily", report.cleanup)):
        if action != "unchanged":
            style = _DEPLOY_STYLE.get(action, "")
            out.print(f"{name}: [{style}]{action}[/{style}]" if style else f"{name}: {action}")
    if report.changed:
        out.print(f"deployments run-workflow/workflow-<name> on work pool {WORK_POOL}")
    else:
        out.print("in sync: nothing changed")


@app.command()
def deploy(
    name: Annotated[str | None, typer.Argument(help="Only this stored workflow (default: all).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print what changed as JSON.")] = False,
) -> None:
    """Sync stored schedules to Prefect deployments: create, update, pause and remove them.

    Idempotent: run it again and nothing changes. Needs PREFECT_API_URL pointing at the
    Prefect server the workers use.
    """
    if not api_url_configured():
        err.print(
            "[yellow]![/yellow] PREFECT_API_URL is not set: the deployments go to the embedded Prefect server, "
            "which no worker will see (start one with `prefect server start` and set PREFECT_API_URL)"
        )
    report = _deploy(name)
    if as_json:
        emit_json(report.to_dict())
        return
    if not report.changes:
        out.print("no scheduled workflows" + (f" named {escape(name)}" if name else ""))
        _print_own_deployments(report)
        return
    _print_deploy_report(report)


@app.command("list")
def list_(
    include_archived: Annotated[bool, typer.Option("--all", help="Include archived workflows.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List stored workflows."""
    rows = with_client(lambda client: client.workflows.list(include_archived=include_archived))
    if as_json:
        emit_json([row.to_dict() for row in rows])
        return
    table = Table(title="workflows", title_justify="left")
    for column in ("name", "version", "updated", "description"):
        table.add_column(column, overflow="fold")
    for row in rows:
        name = row.name + (" (archived)" if row.archived else "")
        table.add_row(
            escape(name), f"v{row.latest_version}", f"{row.updated_at:%Y-%m-%d %H:%M}", escape(row.description or "")
        )
    out.print(table)


@app.command()
def show(
    name: Annotated[str, typer.Argument(help="A stored workflow's name.")],
    version: Annotated[int | None, typer.Option("--version", help="A version (default: latest).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    graph: Annotated[bool, typer.Option("--graph", help="Print the workflow as a Mermaid flowchart.")] = False,
) -> None:
    """Show a stored workflow version."""
    stored = with_client(lambda client: client.workflows.get(name, version))
    if graph:
        try:
            sys.stdout.write(mermaid(switchboard.validate(stored.definition)))
        except DefinitionError as exc:  # stored before a node type it uses went away
            print_problems(exc)
            raise typer.Exit(EXIT_INVALID) from None
        return
    if as_json:
        emit_json(stored.to_dict())
        return
    stamp = f"{stored.created_at:%Y-%m-%d %H:%M}"
    out.print(f"[bold]{escape(stored.name)}[/bold] v{stored.version} · {stamp} · {escape(stored.created_by or '')}")
    if stored.note:
        out.print(escape(stored.note))
    out.print(escape(yaml.safe_dump(stored.definition, sort_keys=False, allow_unicode=True)), end="")


@app.command()
def diff(
    name: Annotated[str, typer.Argument(help="A stored workflow's name.")],
    old: Annotated[int, typer.Argument(help="The older version.")],
    new: Annotated[int, typer.Argument(help="The newer version.")],
) -> None:
    """Show what changed between two versions (unified diff of their YAML)."""
    text = with_client(lambda client: client.workflows.diff(name, old, new))
    sys.stdout.write(text or f"v{old} and v{new} are identical\n")


@app.command()
def rollback(
    name: Annotated[str, typer.Argument(help="A stored workflow's name.")],
    version: Annotated[int, typer.Argument(help="The version to bring back.")],
) -> None:
    """Store a new version equal to an earlier one."""
    result = with_client(lambda client: client.workflows.rollback(name, version))
    if result.created:
        out.print(f"[green]✔[/green] {result.name} v{result.version} = v{version}")
    else:
        out.print(f"{result.name} v{result.version} already equals v{version}")


@app.command()
def archive(name: Annotated[str, typer.Argument(help="A stored workflow's name.")]) -> None:
    """Hide a stored workflow from lists and runs (`apply` brings it back)."""
    with_client(lambda client: client.workflows.archive(name))
    out.print(f"[green]✔[/green] archived {name}")


@app.command()
def audit(
    limit: Annotated[int, typer.Option("--limit", help="How many entries, newest first.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Who did what, when."""
    rows = with_client(lambda client: client.audit.entries(limit))
    if as_json:
        emit_json([row.to_dict() for row in rows])
        return
    table = Table(title="audit log", title_justify="left")
    for column in ("at", "actor", "action", "target"):
        table.add_column(column)
    for row in rows:
        table.add_row(f"{row.at:%Y-%m-%d %H:%M:%S}", escape(row.actor), row.action, escape(row.target))
    out.print(table)
