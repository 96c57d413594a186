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
from rich.console import Console
from rich.markup import escape
from rich.table import Table

import switchboard
from flows.artifact import preview
from flows.model import DefinitionError, Workflow
from flows.results import RunResult
from flows.runner import NodeEvent
from nodes.registry import REGISTRY, NodeSpec, UnknownNodeTypeError

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

_STATUS_STYLE = {"completed": "green", "failed": "red", "skipped": "yellow", "cancelled": "magenta"}
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
    result = event.result
    assert result is not None
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
        out.print(f"retry with: switchboard retry {result.run_id}" if result.status == "failed" else "", end="")
        if result.status == "failed":
            out.print()
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


@app.command()
def run(
    file: Annotated[Path, typer.Argument(help="Workflow file (YAML or JSON).")],
    inputs: Annotated[
        list[str] | None,
        typer.Option("--input", "-i", help="An input as key=value (parsed by the input's declared type)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print only the run result JSON.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show Prefect's own logs.")] = False,
) -> None:
    """Run a workflow file in this process and show its nodes as they finish."""
    given = _parse_inputs(inputs or [])
    try:
        plan = switchboard.validate(file)
        workflow = plan.workflow
        workflow.resolve_inputs(given, from_text=True)
    except DefinitionError as exc:
        _print_problems(exc)
        raise typer.Exit(EXIT_INVALID) from None
    _quiet_prefect_console(verbose)
    listeners = [] if as_json else [_progress_listener]
    if not as_json:
        out.print(f"[bold]{escape(workflow.name)}[/bold]: running {len(workflow.nodes)} nodes")
    result = asyncio.run(switchboard.arun(workflow, given, trigger="cli", inputs_are_text=True, listeners=listeners))
    _report(result, as_json)


@app.command()
def retry(
    run_id: Annotated[str, typer.Argument(help="The id of a failed run.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print only the run result JSON.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show Prefect's own logs.")] = False,
) -> None:
    """Resume a failed run: completed nodes are reused, the rest run again."""
    _quiet_prefect_console(verbose)
    listeners = [] if as_json else [_progress_listener]
    try:
        result = asyncio.run(switchboard.aretry(run_id, listeners=listeners))
    except (switchboard.RunNotFoundError, switchboard.NotRetryableError) as exc:
        err.print(f"[red]✗[/red] {escape(str(exc))}")
        raise typer.Exit(EXIT_INVALID) from None
    except DefinitionError as exc:
        _print_problems(exc)
        raise typer.Exit(EXIT_INVALID) from None
    _report(result, as_json)


def _field_rows(spec: NodeSpec) -> list[tuple[str, str, str, str]]:
    schema = spec.params_schema()
    required = set(schema.get("required", []))
    rows = []
    for name, prop in schema.get("properties", {}).items():
        kind = (
            prop.get("type")
            or " | ".join(str(p.get("type", p.get("$ref", "any")).split("/")[-1]) for p in prop.get("anyOf", []))
            or ("enum: " + ", ".join(map(str, prop["enum"])) if "enum" in prop else "any")
        )
        default = "required" if name in required else f"default {json.dumps(prop.get('default'))}"
        rows.append((name, str(kind), default, prop.get("description", "")))
    return rows


@app.command()
def nodes(
    node_type: Annotated[str | None, typer.Argument(help="Show one node type in full.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the node catalogue as JSON.")] = False,
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
    if as_json:
        catalogue = [
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
        sys.stdout.write(json.dumps(catalogue, indent=2) + "\n")
        return
    if node_type is None:
        table = Table(title="node types", title_justify="left")
        table.add_column("type")
        table.add_column("v")
        table.add_column("params")
        table.add_column("description", overflow="fold")
        for s in specs:
            table.add_row(s.type, str(s.version), ", ".join(s.params_model.model_fields), escape(s.summary))
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
    for row in _field_rows(spec):
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


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
