"""``switchboard run``, ``retry``, ``runs`` and ``cleanup``: runs here or on the workers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

import switchboard
from flows.results import RunResult
from flows.usage import format_usd
from switchboard.cli.output import (
    EXIT_FAILED,
    EXIT_INVALID,
    EXIT_OK,
    STATUS_STYLE,
    emit_json,
    err,
    out,
    parse_inputs,
    print_problems,
    progress_listener,
    quiet_prefect_console,
    report,
)
from switchboard.cli.root import app
from switchboard.cli.session import run_settings, settings, with_client
from switchboard.client import Client
from switchboard.errors import DefinitionError, WorkflowNotFoundError
from switchboard.remote import RemoteRun
from switchboard.retention import parse_age
from switchboard.runs import RunRecord
from switchboard.work_pool import api_url_configured
from switchboard.workflows import StoredVersion


def _resolve_workflow(target: str) -> tuple[Any, int | None]:
    """A workflow file path, or the name of a stored workflow (its latest version)."""
    path = Path(target)
    if path.exists() or path.suffix in (".yaml", ".yml", ".json"):
        return path, None
    try:
        stored = asyncio.run(_latest(target))
    except WorkflowNotFoundError as exc:
        err.print(f"[red]✗[/red] {escape(str(exc))}; or give a workflow file path")
        raise typer.Exit(EXIT_INVALID) from None
    return stored.definition, stored.version


async def _latest(name: str) -> StoredVersion:
    async with Client(settings()) as client:
        return await client.workflows.get(name)


@app.command()
def run(
    target: Annotated[str, typer.Argument(help="A workflow file (YAML or JSON), or a stored workflow's name.")],
    inputs: Annotated[
        list[str] | None,
        typer.Option("--input", "-i", help="An input as key=value (parsed by the input's declared type)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print only the run result JSON.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show Prefect's own logs.")] = False,
    remote: Annotated[
        bool,
        typer.Option("--remote", help="Queue it for the workers (a stored workflow; needs PREFECT_API_URL)."),
    ] = False,
    wait: Annotated[bool, typer.Option("--wait", help="With --remote: wait for the run to end and show it.")] = False,
) -> None:
    """Run a workflow (a file, or the latest stored version of a name) and show its nodes.

    With --remote the run becomes a flow run of the run-workflow deployment that a
    `switchboard worker` executes; --wait follows it to its end (--json: the run result).
    """
    given = parse_inputs(inputs or [])
    if wait and not remote:
        raise typer.BadParameter("--wait goes with --remote (local runs always wait)", param_hint="--wait")
    if remote:
        _run_remote(target, given, as_json=as_json, wait=wait)
        return
    source, version = _resolve_workflow(target)
    try:
        plan = switchboard.validate(source)
        workflow = plan.workflow
        workflow.resolve_inputs(given, from_text=True)
    except DefinitionError as exc:
        print_problems(exc)
        raise typer.Exit(EXIT_INVALID) from None
    configured = run_settings()
    quiet_prefect_console(verbose)
    listeners = [] if as_json else [progress_listener]
    if not as_json:
        label = f" v{version}" if version is not None else ""
        out.print(f"[bold]{escape(workflow.name)}{label}[/bold]: running {len(workflow.nodes)} nodes")
    client = Client(configured)  # not opened: the run opens the database for itself
    result = asyncio.run(
        client.runs.run(
            plan,
            given,
            trigger="cli",
            version=version,
            inputs_are_text=True,
            listeners=listeners,
            triggered_by=client.actor,
        )
    )
    report(result, as_json)


def _run_remote(target: str, given: dict[str, str], *, as_json: bool, wait: bool) -> None:
    if Path(target).exists() or Path(target).suffix in (".yaml", ".yml", ".json"):
        err.print(
            f"[red]✗[/red] --remote runs stored workflows: `switchboard apply {escape(target)}`, "
            "then `switchboard run NAME --remote`"
        )
        raise typer.Exit(EXIT_INVALID)

    async def queue(client: Client) -> RemoteRun:
        return await client.runs.submit(target, given, inputs_are_text=True, trigger="cli", triggered_by=client.actor)

    _queue_remote(queue, as_json=as_json, wait=wait)


def _retry_remote(run_id: str, *, as_json: bool, wait: bool) -> None:
    async def queue(client: Client) -> RemoteRun:
        return await client.runs.submit_retry(run_id, triggered_by=client.actor)

    _queue_remote(queue, as_json=as_json, wait=wait)


def _queue_remote(queue: Callable[[Client], Awaitable[RemoteRun]], *, as_json: bool, wait: bool) -> None:
    """Queue a run for the workers with ``queue(client)``; with ``wait``, follow it to its end."""
    if not api_url_configured():
        err.print("[red]✗[/red] --remote needs PREFECT_API_URL: the Prefect server your workers poll")
        raise typer.Exit(EXIT_INVALID)
    quiet_prefect_console(False)

    def said(flow_run: Any) -> None:
        if not as_json and flow_run.state is not None:
            style = STATUS_STYLE.get(flow_run.state.type.value.lower(), "")
            name = flow_run.state.name
            out.print(f"  {flow_run.name}: " + (f"[{style}]{name}[/{style}]" if style else name))

    async def go(client: Client) -> RunResult | None:
        queued = await queue(client)
        if not as_json:
            out.print(
                f"[bold]{escape(queued.workflow)} v{queued.version}[/bold]: run {queued.run_id} queued "
                f"(flow run {queued.flow_run_id})"
            )
        if not wait:
            if as_json:
                emit_json({"run_id": queued.run_id, "flow_run_id": str(queued.flow_run_id), "status": "scheduled"})
            return None
        return await client.runs.wait(queued, on_state=said)

    try:
        result = with_client(go)
    except DefinitionError as exc:
        print_problems(exc)
        raise typer.Exit(EXIT_INVALID) from None
    if result is not None:
        report(result, as_json)


@app.command()
def retry(
    run_id: Annotated[str, typer.Argument(help="The id of a failed run.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print only the run result JSON.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show Prefect's own logs.")] = False,
    remote: Annotated[
        bool, typer.Option("--remote", help="Queue the retry for the workers (PREFECT_API_URL).")
    ] = False,
    wait: Annotated[bool, typer.Option("--wait", help="With --remote: wait for it to end and show it.")] = False,
) -> None:
    """Resume a failed run: completed nodes are reused, the rest run again."""
    if wait and not remote:
        raise typer.BadParameter("--wait goes with --remote (local retries always wait)", param_hint="--wait")
    if remote:
        _retry_remote(run_id, as_json=as_json, wait=wait)
        return
    client = Client(run_settings())
    quiet_prefect_console(verbose)
    listeners = [] if as_json else [progress_listener]
    try:
        result = asyncio.run(client.runs.retry(run_id, listeners=listeners, triggered_by=client.actor))
    except (switchboard.RunNotFoundError, switchboard.NotRetryableError) as exc:
        err.print(f"[red]✗[/red] {escape(str(exc))}")
        raise typer.Exit(EXIT_INVALID) from None
    except DefinitionError as exc:
        print_problems(exc)
        raise typer.Exit(EXIT_INVALID) from None
    report(result, as_json)


@app.command()
def runs(
    workflow: Annotated[str | None, typer.Option("--workflow", help="Only this workflow's runs.")] = None,
    status: Annotated[
        str | None, typer.Option("--status", help="running, completed, failed, crashed, cancelled")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="How many, newest first.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    tree: Annotated[
        bool, typer.Option("--tree", help="Show sub-workflow runs under the runs that started them.")
    ] = False,
) -> None:
    """List runs (kept in step with Prefect: a run whose process died shows how it ended)."""
    records = with_client(lambda client: client.runs.list(workflow=workflow, status=status, limit=limit))
    if as_json:
        emit_json([r.to_dict() for r in records])
        return
    table = Table(title="runs", title_justify="left")
    for column in ("run", "workflow", "status", "trigger", "by", "started", "tokens · cost", "error"):
        table.add_column(column, overflow="fold", no_wrap=column == "run")
    for depth, r in _as_tree(records) if tree else ((0, r) for r in records):
        style = STATUS_STYLE.get(r.status, "")
        label = f"{r.workflow} v{r.version}" if r.version is not None else r.workflow
        table.add_row(
            ("  " * (depth - 1) + "└ " if depth else "") + r.id,
            escape(label),
            f"[{style}]{r.status}[/{style}]" if style else r.status,
            r.trigger,
            escape(r.triggered_by or ""),
            f"{r.started_at:%Y-%m-%d %H:%M:%S}",
            _spent(r),
            escape((r.error or "")[:80]),
        )
    out.print(table)


def _spent(record: RunRecord) -> str:
    """``1,234 · $0.0021`` for a run that called models (``· no price`` when none was priced)."""
    if record.total_tokens is None:
        return ""
    return f"{record.total_tokens:,} · {format_usd(record.cost_usd)}"


def _as_tree(records: list[RunRecord]) -> list[tuple[int, RunRecord]]:
    """The runs with each sub-workflow run after the run that started it (depth first, in the
    listed order); a run whose parent is not listed is a root."""
    listed = {r.id for r in records}
    children: dict[str, list[RunRecord]] = {}
    for r in records:
        if r.parent_run_id in listed:
            children.setdefault(r.parent_run_id, []).append(r)
    ordered: list[tuple[int, RunRecord]] = []
    seen: set[str] = set()
    stack = [(0, r) for r in reversed(records) if r.parent_run_id not in listed]
    while stack:
        depth, r = stack.pop()
        if r.id in seen:
            continue
        seen.add(r.id)
        ordered.append((depth, r))
        stack += [(depth + 1, child) for child in reversed(children.get(r.id, []))]
    return ordered


def _age(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return parse_age(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--older-than") from None


@app.command()
def cleanup(
    older_than: Annotated[
        str | None, typer.Option("--older-than", help="Age like 30d, 12h, 90m (default: SWITCHBOARD_RETENTION_DAYS).")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count what would be deleted; delete nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the counts as JSON.")] = False,
) -> None:
    """Delete run records, and their Prefect flow runs, that ended longer ago than the age.

    Runs still running are never deleted. Run it from cron or a systemd timer.
    """
    age = _age(older_than)
    quiet_prefect_console(False)
    result = with_client(lambda client: client.retention.cleanup(age, dry_run=dry_run))
    if as_json:
        emit_json(result.to_dict())
    else:
        verb = "would delete" if dry_run else "deleted"
        out.print(
            f"{verb} {result.runs_deleted} run record(s) and {result.flow_runs_deleted} Prefect flow run(s) "
            f"that ended before {result.cutoff:%Y-%m-%d %H:%M} UTC"
            + (f" ({result.flow_runs_missing} flow run(s) were already gone)" if result.flow_runs_missing else "")
        )
        if result.running_kept:
            out.print(f"kept {result.running_kept} older run(s) still marked running")
        if result.failed:
            err.print(
                f"[red]✗[/red] kept {len(result.failed)} run(s) whose Prefect flow run could not be deleted "
                "(is the Prefect API up?); the next clean-up tries again"
            )
    raise typer.Exit(EXIT_FAILED if result.failed else EXIT_OK)
