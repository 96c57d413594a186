"""What every CLI command prints with: the consoles, exit codes, styles, run reports, JSON."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from flows.artifact import preview, redact, value_preview
from flows.events import NodeEvent
from flows.model import DefinitionError
from flows.results import RunResult
from flows.usage import describe as describe_usage

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

#: Exit codes: 0 completed, 1 failed, 2 invalid definition or inputs (or bad usage); ``apply DIR
#: --dry-run`` exits 3 when applying would change something.
EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2

STATUS_STYLE = {
    "completed": "green",
    "failed": "red",
    "crashed": "red",
    "skipped": "yellow",
    "cancelled": "magenta",
    "running": "cyan",
}
_EVENT_MARK = {"started": "▶", "retrying": "↻"}


def quiet_prefect_console(verbose: bool) -> None:
    """Keep Prefect's console chatter out of the CLI (its logs still reach the Prefect API)."""
    if verbose:
        return
    names = [None, *logging.Logger.manager.loggerDict]
    for name in names:
        for handler in logging.getLogger(name).handlers:
            if type(handler).__name__ == "PrefectConsoleHandler":
                handler.setLevel(logging.CRITICAL)


def print_problems(error: DefinitionError) -> None:
    """Every problem of a definition, one per line, on stderr."""
    head = f"{error.source}: " if error.source else ""
    err.print(f"[red]✗[/red] {escape(head)}{len(error.problems)} problem(s)")
    for problem in error.problems:
        err.print(f"  - {escape(str(problem))}")


def parse_inputs(pairs: list[str]) -> dict[str, str]:
    """``-i key=value`` options as a mapping (values typed later, by the workflow's inputs)."""
    inputs: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{pair!r} is not key=value", param_hint="-i/--input")
        inputs[key.strip()] = value
    return inputs


def progress_listener(event: NodeEvent) -> None:
    """Print a run's node events as they happen."""
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
    style = STATUS_STYLE.get(result.status, "")
    mark = {"completed": "✔", "failed": "✗", "skipped": "–"}[result.status]
    detail = " (cached)" if result.cached else ""
    if result.error and result.status != "completed":
        detail += f" — {result.error}"
    out.print(
        f"  [{style}]{mark} {escape(event.node_id)} {result.status}[/{style}] "
        f"{result.duration_ms:.0f} ms{escape(detail)}"
    )


def node_table(result: RunResult) -> Table:
    """A run's nodes as a table: status, attempts, duration, output preview."""
    version = f"v{result.version}" if result.version is not None else "draft"
    table = Table(title=f"{result.workflow} {version} · run {result.run_id}", title_justify="left")
    for column in ("node", "status", "attempts", "ms", "output"):
        table.add_column(column, overflow="fold")
    for node_id, node in result.nodes.items():
        style = STATUS_STYLE.get(node.status, "")
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


def report(result: RunResult, as_json: bool) -> None:
    """Print a run result (table or JSON) and exit with its status."""
    if as_json:
        sys.stdout.write(json.dumps(result.to_dict(), ensure_ascii=False, default=str) + "\n")
    else:
        out.print(node_table(result))
        for name, value in redact(result.outputs).items():
            out.print(f"[bold]{escape(name)}[/bold] = {escape(value_preview(value, 200))}")
        spent = describe_usage(result.usage)
        if spent:
            out.print(f"models: {escape(spent)}")
        style = STATUS_STYLE.get(result.status, "")
        out.print(f"[{style}]{result.status}[/{style}]" + (f": {escape(result.error)}" if result.error else ""))
        if result.status in ("failed", "crashed"):
            out.print(f"retry with: switchboard retry {result.run_id}")
    raise typer.Exit(EXIT_OK if result.status == "completed" else EXIT_FAILED)


def emit_json(data: Any) -> None:
    """One line of JSON on stdout."""
    sys.stdout.write(json.dumps(data, ensure_ascii=False, default=str) + "\n")
