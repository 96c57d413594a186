"""``switchboard nodes`` and ``schema``: the node catalogue and the workflow file schema."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from flows.model import Workflow
from nodes import catalogue
from nodes.plugins import failed_plugins
from nodes.registry import REGISTRY, UnknownNodeTypeError
from switchboard.cli.output import (
    EXIT_INVALID,
    err,
    out,
)
from switchboard.cli.root import app


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
                "package": s.package,
                "package_version": s.package_version,
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
        table.add_column("from")
        table.add_column("description", overflow="fold")
        for s in specs:
            names = [f.alias or name for name, f in s.params_model.model_fields.items()]
            table.add_row(s.type, str(s.version), ", ".join(names), escape(s.origin), escape(s.summary))
        out.print(table)
        for plugin in failed_plugins():
            err.print(
                f"[red]✗[/red] node plugin {escape(plugin.name)} ({escape(plugin.value)}"
                f"{', ' + escape(plugin.package) if plugin.package else ''}) did not load: {escape(plugin.error or '')}"
            )
        out.print("details: switchboard nodes TYPE")
        return
    spec = specs[0]
    out.print(
        f"[bold]{spec.type}[/bold] v{spec.version}"
        + (f" · credential: {spec.credential}" if spec.credential else "")
        + f" · from {escape(spec.origin)}"
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
