"""The ``switchboard`` command line.

Exit codes: 0 completed, 1 failed, 2 invalid definition or inputs (or bad usage).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from prefect.exceptions import PrefectHTTPStatusError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

import switchboard
from deployments.sync import WORK_POOL, api_url_configured
from flows.artifact import preview
from flows.model import DefinitionError, Workflow
from flows.results import RunResult
from flows.runner import NodeEvent
from nodes import catalogue
from nodes.registry import REGISTRY, UnknownNodeTypeError
from storage.credentials import CredentialError
from storage.crypto import SecretKeyError
from storage.migrate import SchemaBehindError
from storage.runs import RunRecordNotFoundError
from storage.workflows import WorkflowNotFoundError
from switchboard import credentials as credential_records
from switchboard import runs as run_records
from switchboard import workflows as stored_workflows
from switchboard.cli_webhooks import app as webhooks_app
from switchboard.database import open_engine

app = typer.Typer(
    name="switchboard",
    help="Run workflow automations as Prefect flows.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2

_STATUS_STYLE = {
    "completed": "green",
    "failed": "red",
    "crashed": "red",
    "skipped": "yellow",
    "cancelled": "magenta",
    "running": "cyan",
}
_EVENT_MARK = {"started": "▶", "retrying": "↻"}


def _quiet_prefect_console(verbose: bool) -> None:
    """Keep Prefect's console chatter out of the CLI (its logs still reach the Prefect API)."""
    if verbose:
        return
    names = [None, *logging.Logger.manager.loggerDict]
    for name in names:
        for handler in logging.getLogger(name).handlers:
            if type(handler).__name__ == "PrefectConsoleHandler":
                handler.setLevel(logging.CRITICAL)


def _print_problems(error: DefinitionError) -> None:
    head = f"{error.source}: " if error.source else ""
    err.print(f"[red]✗[/red] {escape(head)}{len(error.problems)} problem(s)")
    for problem in error.problems:
        err.print(f"  - {escape(str(problem))}")


def _parse_inputs(pairs: list[str]) -> dict[str, str]:
    inputs: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{pair!r} is not key=value", param_hint="-i/--input")
        inputs[key.strip()] = value
    return inputs


def _progress_listener(event: NodeEvent) -> None:
    if event.kind in _EVENT_MARK:
        suffix = f" (attempt {event.attempt})" if event.kind == "retrying" else ""
        out.print(f"  {_EVENT_MARK[event.kind]} {escape(event.label)}{suffix}", style="dim")
        return
    if event.kind == "waiting":
        out.print(f"  ⏸ {escape(event.label)} waiting for an answer (approve it in Slack or the Prefect UI)")
        return
    result = event.result
    if event.kind != "finished" or result is None:
        return  # run_started: nothing to show
    style = _STATUS_STYLE.get(result.status, "")
    mark = {"completed": "✔", "failed": "✗", "skipped": "–"}[result.status]
    detail = " (cached)" if result.cached else ""
    if result.error and result.status != "completed":
        detail += f" — {result.error}"
    out.print(
        f"  [{style}]{mark} {escape(event.node_id)} {result.status}[/{style}] "
        f"{result.duration_ms:.0f} ms{escape(detail)}"
    )


def _node_table(result: RunResult) -> Table:
    version = f"v{result.version}" if result.version is not None else "draft"
    table = Table(title=f"{result.workflow} {version} · run {result.run_id}", title_justify="left")
    for column in ("node", "status", "attempts", "ms", "output"):
        table.add_column(column, overflow="fold")
    for node_id, node in result.nodes.items():
        style = _STATUS_STYLE.get(node.status, "")
        status = node.status + (" (cached)" if node.cached else "")
        shown = node.error if node.error and node.status != "completed" else preview(node.output, 60)
        table.add_row(
            escape(node_id),
            f"[{style}]{status}[/{style}]",
            str(node.attempts),
            f"{node.duration_ms:.0f}",
            escape(shown or ""),
        )
    return table


def _report(result: RunResult, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(result.to_dict(), ensure_ascii=False, default=str) + "\n")
    else:
        out.print(_node_table(result))
        style = _STATUS_STYLE.get(result.status, "")
        out.print(f"[{style}]{result.status}[/{style}]" + (f": {escape(result.error)}" if result.error else ""))
        if result.status in ("failed", "crashed"):
            out.print(f"retry with: switchboard retry {result.run_id}")
    raise typer.Exit(EXIT_OK if result.status == "completed" else EXIT_FAILED)


@app.command()
def validate(file: Annotated[Path, typer.Argument(help="Workflow file (YAML or JSON).")]) -> None:
    """Check a workflow file and print every problem (exit 2 if there are any)."""
    try:
        plan = switchboard.validate(file)
    except DefinitionError as exc:
        _print_problems(exc)
        raise typer.Exit(EXIT_INVALID) from None
    out.print(f"[green]✔[/green] {plan.workflow.name}: {len(plan.nodes)} nodes, valid")


def _resolve_workflow(target: str) -> tuple[Any, int | None]:
    """A workflow file path, or the name of a stored workflow (its latest version)."""
    path = Path(target)
    if path.exists() or path.suffix in (".yaml", ".yml", ".json"):
        return path, None
    try:
        stored = asyncio.run(stored_workflows.get_workflow(target))
    except WorkflowNotFoundError as exc:
        err.print(f"[red]✗[/red] {escape(str(exc))}; or give a workflow file path")
        raise typer.Exit(EXIT_INVALID) from None
    return stored.definition, stored.version


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
    given = _parse_inputs(inputs or [])
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
        _print_problems(exc)
        raise typer.Exit(EXIT_INVALID) from None
    _quiet_prefect_console(verbose)
    listeners = [] if as_json else [_progress_listener]
    if not as_json:
        label = f" v{version}" if version is not None else ""
        out.print(f"[bold]{escape(workflow.name)}{label}[/bold]: running {len(workflow.nodes)} nodes")
    result = asyncio.run(
        switchboard.arun(
            plan,
            given,
            trigger="cli",
            version=version,
            inputs_are_text=True,
            listeners=listeners,
            triggered_by=stored_workflows.default_actor(),
        )
    )
    _report(result, as_json)


def _run_remote(target: str, given: dict[str, str], *, as_json: bool, wait: bool) -> None:
    from switchboard import remote as remote_runs

    if Path(target).exists() or Path(target).suffix in (".yaml", ".yml", ".json"):
        err.print(
            f"[red]✗[/red] --remote runs stored workflows: `switchboard apply {escape(target)}`, "
            "then `switchboard run NAME --remote`"
        )
        raise typer.Exit(EXIT_INVALID)

    async def queue(engine: Any) -> Any:
        return await remote_runs.submit(
            engine, target, given, inputs_are_text=True, trigger="cli", triggered_by=stored_workflows.default_actor()
        )

    _queue_remote(queue, as_json=as_json, wait=wait)


def _retry_remote(run_id: str, *, as_json: bool, wait: bool) -> None:
    from switchboard import remote as remote_runs

    async def queue(engine: Any) -> Any:
        return await remote_runs.submit_retry(engine, run_id, triggered_by=stored_workflows.default_actor())

    _queue_remote(queue, as_json=as_json, wait=wait)


def _queue_remote(queue: Any, *, as_json: bool, wait: bool) -> None:
    """Queue a run for the workers with ``queue(engine)``; with ``wait``, follow it to its end."""
    from switchboard import remote as remote_runs

    if not api_url_configured():
        err.print("[red]✗[/red] --remote needs PREFECT_API_URL: the Prefect server your workers poll")
        raise typer.Exit(EXIT_INVALID)
    _quiet_prefect_console(False)

    def said(flow_run: Any) -> None:
        if not as_json and flow_run.state is not None:
            style = _STATUS_STYLE.get(flow_run.state.type.value.lower(), "")
            name = flow_run.state.name
            out.print(f"  {flow_run.name}: " + (f"[{style}]{name}[/{style}]" if style else name))

    async def go() -> dict[str, Any] | None:
        async with open_engine() as engine:
            queued = await queue(engine)
            if not as_json:
                out.print(
                    f"[bold]{escape(queued.workflow)} v{queued.version}[/bold]: run {queued.run_id} queued "
                    f"(flow run {queued.flow_run_id})"
                )
            if not wait:
                if as_json:
                    _emit_json({"run_id": queued.run_id, "flow_run_id": str(queued.flow_run_id), "status": "scheduled"})
                return None
            return await remote_runs.wait(engine, queued, on_state=said)

    try:
        result = asyncio.run(go())
    except DefinitionError as exc:
        _print_problems(exc)
        raise typer.Exit(EXIT_INVALID) from None
    except (
        WorkflowNotFoundError,
        RunRecordNotFoundError,
        remote_runs.RemoteUnavailableError,
        switchboard.RunNotFoundError,
        switchboard.NotRetryableError,
    ) as exc:
        err.print(f"[red]✗[/red] {escape(str(exc))}")
        raise typer.Exit(EXIT_INVALID) from None
    if result is not None:
        _report(RunResult.from_dict(result), as_json)


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
    _quiet_prefect_console(verbose)
    listeners = [] if as_json else [_progress_listener]
    try:
        result = asyncio.run(
            switchboard.aretry(run_id, listeners=listeners, triggered_by=stored_workflows.default_actor())
        )
    except (switchboard.RunNotFoundError, switchboard.NotRetryableError) as exc:
        err.print(f"[red]✗[/red] {escape(str(exc))}")
        raise typer.Exit(EXIT_INVALID) from None
    except DefinitionError as exc:
        _print_problems(exc)
        raise typer.Exit(EXIT_INVALID) from None
    _report(result, as_json)


@app.command()
def nodes(
    node_type: Annotated[str | None, typer.Argument(help="Show one node type in full.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the node catalogue as JSON.")] = False,
    as_markdown: Annotated[
        bool, typer.Option("--markdown", help="Print the catalogue as Markdown (docs/nodes.md).")
    ] = False,
) -> None:
    """List node types with their params and help text."""
    if node_type is not None:
        try:
            specs = [REGISTRY.get(node_type)]
        except UnknownNodeTypeError as exc:
            err.print(f"[red]✗[/red] {escape(str(exc))}")
            raise typer.Exit(EXIT_INVALID) from None
    else:
        specs = list(REGISTRY)
    if as_markdown:
        sys.stdout.write(catalogue.markdown(specs))
        return
    if as_json:
        catalogue_json = [
            {
                "type": s.type,
                "version": s.version,
                "description": s.description,
                "credential": s.credential,
                "params": s.params_schema(),
                "output": s.output_schema,
            }
            for s in specs
        ]
        sys.stdout.write(json.dumps(catalogue_json, indent=2) + "\n")
        return
    if node_type is None:
        table = Table(title="node types", title_justify="left")
        table.add_column("type")
        table.add_column("v")
        table.add_column("params")
        table.add_column("description", overflow="fold")
        for s in specs:
            names = [f.alias or name for name, f in s.params_model.model_fields.items()]
            table.add_row(s.type, str(s.version), ", ".join(names), escape(s.summary))
        out.print(table)
        out.print("details: switchboard nodes TYPE")
        return
    spec = specs[0]
    out.print(
        f"[bold]{spec.type}[/bold] v{spec.version}" + (f" · credential: {spec.credential}" if spec.credential else "")
    )
    out.print(escape(spec.description))
    table = Table(title="params", title_justify="left")
    for column in ("name", "type", "required/default", "description"):
        table.add_column(column, overflow="fold")
    for row in catalogue.param_rows(spec):
        table.add_row(*(escape(cell) for cell in row))
    out.print(table)
    outputs = catalogue.output_rows(spec)
    if outputs:
        table = Table(title="output", title_justify="left")
        for column in ("field", "type", "presence", "description"):
            table.add_column(column, overflow="fold")
        for row in outputs:
            table.add_row(*(escape(cell) for cell in row))
        out.print(table)
    if spec.ports is not None:
        ports = spec.ports({})
        out.print(f"ports: {', '.join(ports) if ports else 'one per case, plus default'}")


@app.command()
def schema() -> None:
    """Print the JSON Schema of workflow files (for editors and CI checks)."""
    document: dict[str, Any] = Workflow.model_json_schema(by_alias=True)
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["title"] = "Switchboard workflow"
    node_def = document.get("$defs", {}).get("NodeDef", {})
    if "properties" in node_def:
        node_def["properties"]["type"]["examples"] = REGISTRY.types()
    sys.stdout.write(json.dumps(document, indent=2) + "\n")


db_app = typer.Typer(help="Switchboard's database.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Migrate the configured database (SWITCHBOARD_DATABASE_URL) to the current schema."""
    revision = asyncio.run(stored_workflows.db_upgrade())
    out.print(f"[green]✔[/green] database at migration {revision}")


def _stored(call: Any) -> Any:
    """Run a storage call; a missing workflow or an old schema is a clear exit 2."""
    try:
        return asyncio.run(call)
    except (WorkflowNotFoundError, RunRecordNotFoundError, SchemaBehindError) as exc:
        err.print(f"[red]✗[/red] {escape(str(exc))}")
        raise typer.Exit(EXIT_INVALID) from None


def _emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, default=str) + "\n")


@app.command()
def apply(
    file: Annotated[Path, typer.Argument(help="Workflow file (YAML or JSON).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    deploy_: Annotated[
        bool, typer.Option("--deploy", help="Then sync this workflow's schedule to Prefect (`switchboard deploy`).")
    ] = False,
) -> None:
    """Validate a workflow file and store it as a new version if it changed."""
    try:
        result = _stored(stored_workflows.apply(file))
    except DefinitionError as exc:
        _print_problems(exc)
        raise typer.Exit(EXIT_INVALID) from None
    report = _deploy(result.name) if deploy_ else None
    if as_json:
        data: dict[str, Any] = {"name": result.name, "version": result.version, "created": result.created}
        if report is not None:
            data["deployments"] = report.to_dict()["deployments"]
        _emit_json(data)
        return
    if result.created:
        out.print(f"[green]✔[/green] stored {result.name} v{result.version}")
    else:
        out.print(f"{result.name} v{result.version} unchanged")
    if report is not None:
        _print_deploy_report(report)
    elif switchboard.load(file).schedule is not None:
        out.print(f"it has a schedule: run `switchboard deploy {result.name}` to sync it to Prefect (or use --deploy)")


def _deploy(name: str | None) -> Any:
    try:
        return _stored(stored_workflows.deploy(name))
    except PrefectHTTPStatusError as exc:
        err.print(f"[red]✗[/red] the Prefect API refused: {escape(str(exc))}")
        raise typer.Exit(EXIT_FAILED) from None


def _print_deploy_report(report: Any) -> None:
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


def _print_own_deployments(report: Any) -> None:
    for name, action in (("run-workflow/run-workflow", report.generic), ("switchboard-cleanup/daily", report.cleanup)):
        if action != "unchanged":
            style = _DEPLOY_STYLE.get(action, "")
            out.print(f"{name}: [{style}]{action}[/{style}]" if style else f"{name}: {action}")
    if report.changed:
        out.print(f"deployments run-workflow/workflow-<name> on work pool {WORK_POOL}")
    else:
        out.print("in sync: nothing changed")


_DEPLOY_STYLE = {"created": "green", "updated": "cyan", "paused": "yellow", "resumed": "green", "removed": "red"}


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
        _emit_json(report.to_dict())
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
    rows = _stored(stored_workflows.list_workflows(include_archived=include_archived))
    if as_json:
        _emit_json([row.to_dict() for row in rows])
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
) -> None:
    """Show a stored workflow version."""
    stored = _stored(stored_workflows.get_workflow(name, version))
    if as_json:
        _emit_json(stored.to_dict())
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
    text = _stored(stored_workflows.diff(name, old, new))
    sys.stdout.write(text or f"v{old} and v{new} are identical\n")


@app.command()
def rollback(
    name: Annotated[str, typer.Argument(help="A stored workflow's name.")],
    version: Annotated[int, typer.Argument(help="The version to bring back.")],
) -> None:
    """Store a new version equal to an earlier one."""
    result = _stored(stored_workflows.rollback(name, version))
    if result.created:
        out.print(f"[green]✔[/green] {result.name} v{result.version} = v{version}")
    else:
        out.print(f"{result.name} v{result.version} already equals v{version}")


@app.command()
def archive(name: Annotated[str, typer.Argument(help="A stored workflow's name.")]) -> None:
    """Hide a stored workflow from lists and runs (`apply` brings it back)."""
    _stored(stored_workflows.archive(name))
    out.print(f"[green]✔[/green] archived {name}")


@app.command()
def audit(
    limit: Annotated[int, typer.Option("--limit", help="How many entries, newest first.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Who did what, when."""
    rows = _stored(stored_workflows.audit(limit))
    if as_json:
        _emit_json([row.to_dict() for row in rows])
        return
    table = Table(title="audit log", title_justify="left")
    for column in ("at", "actor", "action", "target"):
        table.add_column(column)
    for row in rows:
        table.add_row(f"{row.at:%Y-%m-%d %H:%M:%S}", escape(row.actor), row.action, escape(row.target))
    out.print(table)


credentials_app = typer.Typer(
    help="Encrypted credentials (secrets are read from stdin or a prompt).", no_args_is_help=True
)
app.add_typer(credentials_app, name="credentials")
app.add_typer(webhooks_app, name="webhooks")


def _credentials(call: Any) -> Any:
    try:
        return _stored(call)
    except (CredentialError, SecretKeyError) as exc:
        err.print(f"[red]✗[/red] {escape(str(exc))}")
        raise typer.Exit(EXIT_INVALID) from None


@credentials_app.command("add")
def credentials_add(
    name: Annotated[str, typer.Argument(help="The name workflows use in `credential:`.")],
    provider: Annotated[str, typer.Option("--provider", help="github, airtable, openai, hubspot, gdrive, ...")],
    base_url: Annotated[str | None, typer.Option("--base-url", help="API base URL (Enterprise, self-hosted).")] = None,
    owner: Annotated[str | None, typer.Option("--owner", help="A Slack user id: that user's own credential.")] = None,
    scopes: Annotated[list[str] | None, typer.Option("--scopes", help="OAuth scopes (repeatable).")] = None,
) -> None:
    """Store a credential. The secret (a token, or OAuth JSON) comes from stdin or a prompt, never argv."""
    prompt = sys.stdin.isatty()
    secret = typer.prompt("secret (token or OAuth JSON)", hide_input=True) if prompt else sys.stdin.read()
    info = _credentials(
        credential_records.add(name, provider=provider, secret=secret, owner=owner, base_url=base_url, scopes=scopes)
    )
    whose = f" for {info.owner}" if info.owner else ""
    out.print(f"[green]✔[/green] stored credential {escape(info.name)}{escape(whose)} ({info.provider}), encrypted")


@credentials_app.command("list")
def credentials_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List credentials (names, providers, owners; never secrets)."""
    infos = _credentials(credential_records.list_credentials())
    if as_json:
        _emit_json([i.to_dict() for i in infos])
        return
    table = Table(title="credentials", title_justify="left")
    for column in ("name", "owner", "provider", "base url", "expires", "key"):
        table.add_column(column, overflow="fold")
    for i in infos:
        expires = f"{i.expires_at:%Y-%m-%d %H:%M}" if i.expires_at else ""
        table.add_row(
            escape(i.name), escape(i.owner or "shared"), i.provider, escape(i.base_url or ""), expires, i.key_id
        )
    out.print(table)


@credentials_app.command("remove")
def credentials_remove(
    name: Annotated[str, typer.Argument(help="The credential's name.")],
    owner: Annotated[str | None, typer.Option("--owner", help="Remove that user's own credential.")] = None,
) -> None:
    """Delete a credential."""
    _credentials(credential_records.remove(name, owner=owner))
    out.print(f"[green]✔[/green] removed credential {escape(name)}")


@credentials_app.command("rotate-key")
def credentials_rotate_key() -> None:
    """Re-encrypt every credential under the first key in SWITCHBOARD_SECRET_KEY."""
    count = _credentials(credential_records.rotate_key())
    out.print(f"[green]✔[/green] re-encrypted {count} credential(s) under the current key")


@app.command()
def runs(
    workflow: Annotated[str | None, typer.Option("--workflow", help="Only this workflow's runs.")] = None,
    status: Annotated[
        str | None, typer.Option("--status", help="running, completed, failed, crashed, cancelled")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="How many, newest first.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List runs (kept in step with Prefect: a run whose process died shows how it ended)."""
    records = _stored(run_records.list_runs(workflow=workflow, status=status, limit=limit))
    if as_json:
        _emit_json([r.to_dict() for r in records])
        return
    table = Table(title="runs", title_justify="left")
    for column in ("run", "workflow", "status", "trigger", "by", "started", "error"):
        table.add_column(column, overflow="fold")
    for r in records:
        style = _STATUS_STYLE.get(r.status, "")
        label = f"{r.workflow} v{r.version}" if r.version is not None else r.workflow
        table.add_row(
            r.id,
            escape(label),
            f"[{style}]{r.status}[/{style}]" if style else r.status,
            r.trigger,
            escape(r.triggered_by or ""),
            f"{r.started_at:%Y-%m-%d %H:%M:%S}",
            escape((r.error or "")[:80]),
        )
    out.print(table)


@app.command()
def bot(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 3000,
    socket: Annotated[
        bool, typer.Option("--socket", help="Connect over Slack's Socket Mode (SLACK_APP_TOKEN) instead of HTTP.")
    ] = False,
) -> None:
    """Serve the Slack bot over HTTP: /slack/events (commands, buttons, modals) and /healthz.

    With --socket, connect to Slack over Socket Mode instead: no public URL needed.
    """
    from bot import socket_mode
    from bot.app import BotConfigError
    from bot.server import run
    from switchboard.settings import Settings

    try:
        if socket:
            socket_mode.run(Settings())
        else:
            run(Settings(), host=host, port=port)
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
    out.print(f"UI: {url.removesuffix('/api')}")
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
    _quiet_prefect_console(False)
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
        asyncio.run(serve(limit=limit, name=name, grace=grace))


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
    from switchboard.doctor import run_checks
    from switchboard.settings import Settings

    _quiet_prefect_console(False)
    checks = asyncio.run(run_checks(Settings(), slack_api=slack_api))
    failed = any(c.status == "fail" for c in checks)
    if as_json:
        _emit_json({"ok": not failed, "checks": [c.to_dict() for c in checks]})
    else:
        styles = {"ok": "green", "warn": "yellow", "fail": "red", "info": "dim"}
        for c in checks:
            style = styles[c.status]
            out.print(f"[{style}]{c.mark}[/{style}] [bold]{escape(c.name)}[/bold]: {escape(c.summary)}")
            if c.fix and c.status in ("warn", "fail"):
                out.print(f"    fix: {escape(c.fix)}")
    raise typer.Exit(EXIT_FAILED if failed else EXIT_OK)


def _age(text: str | None) -> Any:
    from switchboard.retention import parse_age

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
    from switchboard.retention import cleanup as clean

    age = _age(older_than)
    _quiet_prefect_console(False)
    result = _stored(clean(age, dry_run=dry_run, actor=stored_workflows.default_actor()))
    if as_json:
        _emit_json(result.to_dict())
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


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
